"""One experiment, end to end: data, model, training, held-out evaluation, export.

`train(model_dir)` is configured with gin (see gin_configs/) and is what `zoo-train`
runs. Everything a run writes lives under `model_dir`:

    config.gin             the parsed configuration the run was started with (how the
                           files and bindings were spelled does not matter)
    operative_config.gin   every value gin used
    method.json            the method (networks, tasks, knobs) as a Keras config: a run
                           is rebuilt from it and a checkpoint, without gin (`restore`)
    checkpoints/           weights and optimizer state after each epoch
                           (epoch_001.weights.h5, ...)
    snapshots/             weights each `snapshot_every` cost units (cost_000000100.weights.h5)
    progress.json          what is done: untrained metrics, each epoch's logs, time and
                           checkpoint digest, whether training and evaluation ended
    logs/                  TensorBoard
    metrics.json           held-out metrics of every task, untrained and trained
    export/trunk/          the trained trunk as a SavedModel (the commands export it;
                           `train(exporter=export.export_trunk)` from Python)

Crash safety: every file above is written under a temporary name and renamed into place
(`zoo.files`), so it is complete or absent whenever the process dies. Re-running the
same command resumes where the run stopped: inside an epoch, from the last epoch's
checkpoint (that epoch's steps are done again, on the same batches: the data stream
skips the batches of the finished epochs); after training, at the held-out evaluation
or the export. A finished epoch is never trained or written again. A checkpoint that
cannot be read is set aside (renamed `*.unreadable`) with a warning naming it, and the
run resumes from the one before.

One writer: a run holds an OS lock on its model_dir (`zoo.files.exclusive`, the file
`.lock` with the writer's PID) from the configuration check to the end, so a second
run started on the same folder is refused at once; readers (`restore`, zoo-export,
zoo-evaluate) need no lock. `request_stop()` (what Ctrl-C calls in the training
commands) stops a run after the step in progress, between stages otherwise, with an
`Interrupted` error saying how to resume.

The package's modules, one job each: `driver` (`train`, its stages and the report),
`model_dir` (a run's folder), `checkpoints` (finding, verifying, loading; `restore`),
`run_state` (progress.json, stop requests), `callbacks` (the run's own and
`CostBudget`), `runtime` (strategy, precision, seeds, determinism, serial ops),
`cluster` (TF_CONFIG, the chief, a worker's folder) and `loop` (the multi-worker
training loop).

Gin files name Keras' optimizers, schedules and callbacks through `zoo.configurables`,
which the binaries import (a program that parses gin files itself imports it too).
"""

from zoo.errors import ConfigMismatch, TrainingDiverged
from zoo.experiment.callbacks import CostBudget
from zoo.experiment.checkpoints import (
    checkpoints,
    load_checkpoint,
    method_config,
    method_harmonizer,
    restore,
)
from zoo.experiment.driver import format_report, train
from zoo.experiment.model_dir import prepare_model_dir
from zoo.experiment.run_state import request_stop
from zoo.experiment.runtime import (
    PRECISIONS,
    STRATEGIES,
    epoch_lines,
    make_strategy,
    run_ops_one_at_a_time,
)

__all__ = [
    "PRECISIONS",
    "STRATEGIES",
    "ConfigMismatch",
    "CostBudget",
    "TrainingDiverged",
    "checkpoints",
    "epoch_lines",
    "format_report",
    "load_checkpoint",
    "make_strategy",
    "method_config",
    "method_harmonizer",
    "prepare_model_dir",
    "request_stop",
    "restore",
    "run_ops_one_at_a_time",
    "train",
]
