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
    export/trunk/          the trained trunk as a SavedModel

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
"""

import hashlib
import json
import math
import os
import re
import shutil
import sys
import threading
import time

import gin
import keras
import tensorflow as tf
from absl import logging

from export import export_trunk
from zoo import checks, files
from zoo.data import tfrecord
from zoo.errors import (
    ConfigMismatch,
    DataError,
    ExistingFile,
    Interrupted,
    MissingFile,
    NotWritable,
    TrainingDiverged,
    UserError,
    UserTypeError,
    ZooError,
    first_line,
)
from zoo.methods import Method
from zoo.methods.base import deserialize, serialize, trusted_exports

__all__ = [
    "CostBudget",
    "ConfigMismatch",
    "TrainingDiverged",
    "checkpoints",
    "format_report",
    "prepare_model_dir",
    "request_stop",
    "restore",
    "train",
]

# Keras optimizers and schedules are gin objects: `@keras.optimizers.RMSprop()`.
for _cls in (
    keras.optimizers.Adam,
    keras.optimizers.AdamW,
    keras.optimizers.SGD,
    keras.optimizers.RMSprop,
    keras.optimizers.Adagrad,
    keras.optimizers.Nadam,
    keras.optimizers.Lion,
    keras.optimizers.Lamb,
):
    gin.external_configurable(_cls, module="keras.optimizers")
for _cls in (
    keras.optimizers.schedules.CosineDecay,
    keras.optimizers.schedules.CosineDecayRestarts,
    keras.optimizers.schedules.ExponentialDecay,
    keras.optimizers.schedules.PiecewiseConstantDecay,
    keras.optimizers.schedules.PolynomialDecay,
    keras.optimizers.schedules.InverseTimeDecay,
):
    gin.external_configurable(_cls, module="keras.optimizers.schedules")
for _cls in (
    keras.callbacks.EarlyStopping,
    keras.callbacks.ReduceLROnPlateau,
    keras.callbacks.TerminateOnNaN,
):
    gin.external_configurable(_cls, module="keras.callbacks")

STRATEGIES = ("auto", "default", "mirrored")


def _significant(config_text):
    """The configuration without comments and blank lines (what "same run" compares)."""
    lines = (line.split("#", 1)[0].rstrip() for line in config_text.splitlines())
    return "\n".join(line for line in lines if line)


def _entries(model_dir):
    """What a model_dir holds besides its lock."""
    return [n for n in os.listdir(model_dir) if n != files.LOCK]


def _holds_work(model_dir):
    """True when the run trained an epoch or finished (its files would be lost)."""
    return bool(checkpoints(model_dir)) or os.path.exists(os.path.join(model_dir, "metrics.json"))


def prepare_model_dir(model_dir, config_text, overwrite=False):
    """Creates `model_dir` for a run of `config_text`, or checks that it holds the same run.

    Runs are compared by their parsed configuration (comments and blank lines aside), so
    `config_text` should be canonical: `gin_setup.parse` returns `gin.config_str()`. A
    model_dir holding a run of another configuration that trained at least one epoch is
    refused (ConfigMismatch) unless `overwrite`, which deletes that run first; one that
    never trained (it failed before its first epoch) is simply taken over.

    Returns:
        "new" for a new run, "resume" when an unfinished run of this configuration is
        continued, "finished" when this configuration already ran to the end (its
        metrics.json exists; `overwrite` starts it again).
    """
    if os.path.exists(model_dir) and not os.path.isdir(model_dir):
        raise ExistingFile(f"--model_dir {model_dir} is a file; give a folder for the run.")
    stored_path = os.path.join(model_dir, "config.gin")
    if os.path.isfile(stored_path):
        with open(stored_path) as f:
            same = _significant(f.read()) == _significant(config_text)
        if same and not overwrite:
            if os.path.exists(os.path.join(model_dir, "metrics.json")):
                return "finished"
            _write_config(model_dir, stored_path, config_text)  # and check it can write
            return "resume"
        if not same and not overwrite and _holds_work(model_dir):
            raise ConfigMismatch(
                f"{model_dir} holds a run of another configuration (see {stored_path}). "
                "Use another --model_dir, or --overwrite to delete that run."
            )
        _empty(model_dir)
    elif os.path.isdir(model_dir) and _entries(model_dir):
        if not overwrite:
            raise ConfigMismatch(
                f"{model_dir} is not empty and holds no zoo run; use another --model_dir or "
                "--overwrite to delete its content."
            )
        _empty(model_dir)
    files.make_dirs(model_dir, "model_dir")
    _write_config(model_dir, stored_path, config_text)
    return "new"


def _write_config(model_dir, path, config_text):
    try:
        files.write_text(path, config_text)
    except OSError as error:
        raise NotWritable(
            f"cannot write in the model_dir {model_dir}: {error.strerror}; give a folder you "
            "can write."
        ) from None


def _empty(model_dir):
    """Deletes the old run in `model_dir`, keeping the lock the new one holds."""
    try:
        for name in _entries(model_dir):
            path = os.path.join(model_dir, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
    except OSError as error:
        raise NotWritable(
            f"cannot delete the old run in {model_dir}: {error.strerror}; give a folder you "
            "can write."
        ) from None


def run_ops_one_at_a_time(strategy: str = "auto") -> bool:
    """Sets TensorFlow's inter-op parallelism to 1, for bit-identical same-seed runs.

    With independent ops running concurrently, same-seed runs of a multi-threaded CPU
    process end apart in the last bits (measured on the quickstart: 2 of 6 runs in one
    process differed after 3 steps; Adam then turns the noise in the gradients of
    convolution biases that a BatchNorm follows into full-size steps). One op at a time
    gave bit-identical weights in every run measured, at about 0.8x the speed (README,
    "Determinism"). It must run before TensorFlow executes its first op: `zoo-train`
    calls it when `train.serial_ops` is bound to True. It is skipped for a multi-device
    strategy, whose replicas run concurrently.

    Returns:
        True when ops now run one at a time.
    """
    if strategy == "mirrored" or (
        strategy == "auto" and len(tf.config.list_physical_devices("GPU")) > 1
    ):
        return False
    if tf.config.threading.get_inter_op_parallelism_threads() == 1:
        return True
    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already runs
        logging.warning(
            "TensorFlow has already run ops in this process: its runs may differ from "
            "each other in the last bits (see the README, Determinism)."
        )
        return False
    return True


def make_strategy(name):
    """ "auto": MirroredStrategy over the GPUs when there are several, else the default."""
    if name not in STRATEGIES:
        raise UserError(f"`strategy` must be one of {STRATEGIES}. Received: {name!r}")
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


_stop = threading.Event()


def request_stop():
    """Asks the run in progress to stop after the training step it is in (between
    stages when it is not training): `train` then raises Interrupted, every finished
    epoch kept. Safe to call from a signal handler or another thread."""
    _stop.set()


def _check_stop(model_dir, where):
    if _stop.is_set():
        _stop.clear()
        done = checkpoints(model_dir)
        last = f"epoch {_epoch_of(done[-1])}" if done else "none yet"
        raise Interrupted(
            f"stopped on request {where} (last checkpoint: {last}); run the same command "
            "again to resume."
        )


class _StopOnRequest(keras.callbacks.Callback):
    """Ends `fit` after the step in progress once `request_stop()` was called; the
    epoch's checkpoint is not written (the epoch did not finish)."""

    def __init__(self, model_dir):
        super().__init__()
        self.model_dir = model_dir
        self.epoch = 1

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        _check_stop(self.model_dir, f"after step {batch + 1} of epoch {self.epoch}")


class _StopOnNonFinite(keras.callbacks.Callback):
    """Raises TrainingDiverged naming the losses (`*loss` logs) that are NaN or infinite."""

    def __init__(self, checkpoint_dir):
        super().__init__()
        self.checkpoint_dir = checkpoint_dir
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        bad = [k for k, v in logs.items() if k.endswith("loss") and not math.isfinite(float(v))]
        if bad:
            good = checkpoints(os.path.dirname(self.checkpoint_dir))
            last = good[-1] if good else "none yet"
            raise TrainingDiverged(
                f"{', '.join(sorted(bad))} became NaN or infinite at epoch "
                f"{self.epoch + 1}, step {batch + 1}. Training stopped; the last good "
                f"checkpoint is {last}. Lower the learning rate or that task's loss weight."
            )


def _task_names() -> set:
    """The names of the zoo's task classes."""
    from zoo.tasks.base import Task

    names, classes = set(), [Task]
    while classes:
        cls = classes.pop()
        classes += cls.__subclasses__()
        if isinstance(cls.__dict__.get("name"), str):
            names.add(cls.__dict__["name"])
    return names


class CostBudget(keras.callbacks.Callback):
    """Counts compute in cost units: a step costs the sum of its tasks' costs.

    Saves `<folder>/cost_<units>.weights.h5` each time the total crosses a multiple of
    `snapshot_every`, and stops training once it reaches `budget`. The count follows the
    step number, so a resumed run continues it. Give it to a run with
    `zoo.experiment.train.callbacks = [@zoo.experiment.CostBudget()]`.

    Args:
        task_costs: dict or None. Task -> cost units of one of its steps (Doersch &
            Zisserman budget compute, e.g. GPU hours); tasks of the method not listed
            cost 1, listed tasks the method does not have are unused (one table serves
            a paper's experiments), and a name no zoo task has is refused. For a model
            without tasks, a step costs the sum of the values.
        budget: float or None. Stop once the summed cost reaches it. Defaults to None.
        snapshot_every: float or None. Save the weights each time the summed cost
            crosses a multiple of it (the paper snapshots about every 2.4K GPU hours).
            Defaults to None.
        folder: str or None. Where snapshots go: `<model_dir>/snapshots` by default, a
            relative folder inside `model_dir` (`train` sets `model_dir`). Outside a run
            (no `model_dir`), only an absolute folder is accepted: nothing is written to
            whatever the current directory happens to be.
    """

    def __init__(self, task_costs=None, budget=None, snapshot_every=None, folder=None):
        super().__init__()
        task_costs = dict(task_costs or {})
        bad = [t for t, c in task_costs.items() if not (isinstance(c, (int, float)) and c > 0)]
        if bad:
            raise UserError(f"task_costs must be numbers > 0; check {bad}: {task_costs}")
        for name, value in (("budget", budget), ("snapshot_every", snapshot_every)):
            if value is not None and not (isinstance(value, (int, float)) and value > 0):
                raise UserError(f"`{name}` must be a number > 0 or None. Received: {value!r}")
        self.task_costs = task_costs
        self.budget, self.snapshot_every, self.folder = budget, snapshot_every, folder
        self.model_dir = None
        self.step_cost = None
        self.epoch = 0
        self.spent = 0.0  # cost units of the steps done so far

    def on_train_begin(self, logs=None):
        tasks = list(getattr(self.model, "tasks", None) or [])
        if tasks:
            # one table of costs serves every experiment of a paper (doersch17/base.gin):
            # costs of tasks this run does not have are unused; names of no task are typos
            known = set(tasks) | _task_names()
            unknown = sorted(set(self.task_costs) - known)
            if unknown:
                raise UserError(
                    f"CostBudget: task_costs name unknown tasks {unknown}; this run's tasks: "
                    f"{tasks}, the zoo's: {sorted(_task_names())}"
                )
            self.step_cost = float(sum(self.task_costs.get(t, 1.0) for t in tasks))
        else:
            self.step_cost = float(sum(self.task_costs.values()) or 1.0)
        folder = self.folder or "snapshots"
        if not os.path.isabs(folder):
            if self.model_dir is None:
                raise UserError(
                    f"CostBudget outside a run writes its snapshots only to an absolute "
                    f"folder. Received: folder={self.folder!r}; give an absolute path, or "
                    "run it through zoo.experiment.train (which sets its model_dir)."
                )
            folder = os.path.join(self.model_dir, folder)
        self.folder = folder

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        step = self.epoch * self.params["steps"] + batch + 1
        before, self.spent = (step - 1) * self.step_cost, step * self.step_cost
        if self.snapshot_every and int(self.spent // self.snapshot_every) > int(
            before // self.snapshot_every
        ):
            os.makedirs(self.folder, exist_ok=True)
            units = int(self.spent // self.snapshot_every * self.snapshot_every)
            files.save_weights(
                self.model, os.path.join(self.folder, f"cost_{units:09d}.weights.h5")
            )
        if self.budget is not None and self.spent >= self.budget:
            self.model.stop_training = True


gin.external_configurable(CostBudget, module="zoo.experiment")


_CHECKPOINT = re.compile(r"^epoch_(\d+)\.weights\.h5$")


def checkpoints(model_dir):
    """The run's complete checkpoint files, oldest first."""
    folder = os.path.join(model_dir, "checkpoints")
    if not os.path.isdir(folder):
        return []
    return [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if _CHECKPOINT.match(f)]


def _epoch_of(path):
    return int(_CHECKPOINT.match(os.path.basename(path)).group(1))


def _digest(path):
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _readable(path, digest=None):
    """None when `path` is a complete weights file (and has `digest`), else the reason."""
    if digest is not None and _digest(path) != digest:
        return "its content differs from what was written (sha256)"
    try:
        import h5py

        with h5py.File(path, "r") as f:
            f.visititems(lambda name, item: item[()] if isinstance(item, h5py.Dataset) else None)
    except (OSError, RuntimeError, ValueError) as error:
        return str(error).splitlines()[0]
    return None


def method_config(model_dir: str) -> dict:
    """A run's `method.json` (the method as a Keras config), or a DataError naming the
    file when it is not a JSON object."""
    path = os.path.join(model_dir, "method.json")
    try:
        with open(path) as f:
            config = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(
            f"{path} is damaged (not JSON: {error}); train the run again, or restore the "
            "file from a copy."
        ) from None
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise DataError(
            f"{path} is damaged (not a Keras config: a JSON object with a 'config' entry); "
            "train the run again, or restore the file from a copy."
        )
    return config


def _refusal(error) -> str:
    """The first sentence of the innermost cause Keras gives for refusing a config."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    return first_line(error).split(". ")[0].rstrip(" .,")


def method_harmonizer(model_dir: str) -> str:
    """The deterministic harmonizer every task of a run's method shares (read from its
    `method.json`), or "identity" (tasks differ, or theirs are training augmentations)."""
    from zoo.data.harmonize import served

    config = method_config(model_dir)
    found = set()

    def visit(value):
        if isinstance(value, dict):
            if "harmonizer" in value and isinstance(value["harmonizer"], str):
                found.add(value["harmonizer"])
            for item in value.values():
                visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)

    visit(config)
    return served(found)


def restore(model_dir: str, checkpoint: str | None = None) -> tuple[Method, str]:
    """Rebuilds a run's method from its `method.json` and loads a checkpoint (no gin).

    Args:
        model_dir: str. A zoo-train model_dir.
        checkpoint: str or None. A file of the run's checkpoints/ (or its name, e.g.
            "epoch_002.weights.h5"). Defaults to the last one.

    Returns:
        (Method, checkpoint path).
    """
    config = os.path.join(model_dir, "method.json")
    done = checkpoints(model_dir)
    if not os.path.exists(config) or not done:
        raise MissingFile(
            f"{model_dir} holds no trained run (needs method.json and a checkpoint in "
            "checkpoints/); train one with zoo-train first."
        )
    if checkpoint is None:
        checkpoint = done[-1]
    elif not os.path.exists(checkpoint):
        names = [os.path.basename(c) for c in done]
        if checkpoint not in names:
            raise MissingFile(
                f"checkpoint {checkpoint!r} is not in {model_dir}/checkpoints; it has {names}."
            )
        checkpoint = done[names.index(checkpoint)]
    problem = _readable(checkpoint)
    if problem:
        raise DataError(
            f"checkpoint {checkpoint} cannot be read ({problem}); re-run zoo-train on "
            f"{model_dir} to set it aside and write it again, or choose an earlier one."
        )
    text = method_config(model_dir)
    try:
        with trusted_exports():  # a trunk finetuned from an export
            method = deserialize(text)
    except ZooError:  # the zoo's own message (e.g. an exported trunk that moved)
        raise
    except (ValueError, TypeError, KeyError, AttributeError, ImportError) as error:
        # Keras' safe mode refuses functions and classes outside Keras and the zoo
        raise DataError(
            f"{config} cannot be rebuilt, refused: {_refusal(error)} (a method.json names "
            "Keras and zoo classes only); train the run again, or restore the file."
        ) from None
    load_checkpoint(method, checkpoint)
    return method, checkpoint


def load_checkpoint(method: Method, path: str) -> None:
    """Loads a checkpoint into `method`, refusing (and leaving untouched) one whose
    variables are not the method's, with what to do instead of Keras' list of layers.

    Such a checkpoint is another method's, or one written before a method's variables
    moved: e.g. a `loss_balance="grad_norm"` run checkpointed before its weights moved
    into the `loss_balancer` layer (2026-12-03) does not resume in a later zoo.
    """
    try:
        method.load_weights(path)
    except ValueError as error:
        if "could not be loaded" not in str(error):
            raise
        detail = next((line for line in str(error).splitlines() if "expected" in line), str(error))
        raise DataError(
            f"checkpoint {path} does not hold this method's variables ({detail.strip()}). "
            "It was written by another method or by a zoo version whose variables were "
            "laid out differently, and is left as it is: resume it with the zoo version "
            "that wrote it, or train into a new model_dir."
        ) from None


class _Progress:
    """The run's progress.json: what is done, kept across the processes of one run."""

    def __init__(self, model_dir):
        self.path = os.path.join(model_dir, "progress.json")
        self.state = {"epochs": {}}
        if os.path.exists(self.path):
            with open(self.path) as f:
                self.state = json.load(f)

    def __getitem__(self, key):
        return self.state.get(key)

    def set(self, **values):
        self.state.update(values)
        files.write_json(self.path, self.state)

    def epoch(self, epoch):
        return self.state["epochs"].get(str(epoch))

    def set_epoch(self, epoch, record):
        self.state["epochs"][str(epoch)] = record
        files.write_json(self.path, self.state)


class _PreciseBatchNorm(keras.callbacks.Callback):
    """At the end of the last epoch, before its checkpoint is written, sets BatchNorm's
    moving statistics from `steps` training batches (`Method.precise_batch_norm`)."""

    def __init__(self, batch_size, steps, epochs, say):
        super().__init__()
        self.batch_size, self.steps, self.epochs, self.say = batch_size, steps, epochs, say

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 != self.epochs:
            return
        count = self.model.precise_batch_norm(self.model.datasets(self.batch_size), self.steps)
        self.say(
            f"BatchNorm statistics of {count} layers measured on {self.steps} training "
            "batches (precise BatchNorm)"
        )


class _EpochCheckpoints(keras.callbacks.Callback):
    """Writes checkpoints/epoch_NNN.weights.h5 (weights and optimizer state) atomically
    after each epoch, with the epoch's logs, time and digest in progress.json first."""

    def __init__(self, model_dir, progress):
        super().__init__()
        self.folder = os.path.join(model_dir, "checkpoints")
        self.progress = progress
        self.start = None

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        path = os.path.join(self.folder, f"epoch_{epoch + 1:03d}.weights.h5")
        seconds = time.perf_counter() - self.start
        record = {"logs": {k: float(v) for k, v in (logs or {}).items()}, "seconds": seconds}

        def write(temporary):
            self.model.save_weights(temporary)
            # recorded before the rename: a listed checkpoint always has its record
            self.progress.set_epoch(epoch + 1, {**record, "sha256": _digest(temporary)})

        files.write_file(path, write)


def _resume_point(model, model_dir, progress, epochs):
    """Loads the last good checkpoint into `model`; returns its epoch (0: none).

    A checkpoint that is not complete, whose digest differs from the one recorded when
    it was written, or of an epoch beyond the run's, is renamed `*.unreadable` with a
    warning; the one before is tried next.
    """
    for path in reversed(checkpoints(model_dir)):
        epoch = _epoch_of(path)
        record = progress.epoch(epoch)
        problem = None
        if epoch > epochs:
            problem = f"the run has {epochs} epochs"
        else:  # no record: a run of an older zoo; its history lacks that epoch
            problem = _readable(path, (record or {}).get("sha256"))
        if problem is None:
            load_checkpoint(model, path)
            return epoch
        aside = path + ".unreadable"
        os.replace(path, aside)
        logging.warning("checkpoint %s is unusable (%s); set aside as %s", path, problem, aside)
        print(f"warning: checkpoint {path} is unusable ({problem}); set aside as {aside}")
    return 0


def _check_length(key, value):
    checks.int_at_least(value, 1, key, keyed=True)


def epoch_lines(verbose: int) -> int:
    """Keras' `verbose` for `fit`: a progress bar (1) becomes one line per epoch (2) when
    standard output is not a terminal."""
    if verbose == 1 and not (hasattr(sys.stdout, "isatty") and sys.stdout.isatty()):
        return 2
    return verbose


@gin.configurable(module="zoo.experiment", denylist=["model_dir"])
def train(
    model_dir: str,
    method=gin.REQUIRED,
    optimizer=gin.REQUIRED,
    batch_size: int = 16,
    epochs: int = 5,
    steps_per_epoch: int = 50,
    strategy: str = "auto",
    seed: int = 0,
    callbacks=(),
    deterministic: bool = True,
    serial_ops: bool = False,
    verbose: int = 1,
    precise_batch_norm: int = 0,
) -> dict:
    """Builds a method, evaluates it, trains it, evaluates it again, exports its trunk.

    The stages, each done once per run whatever the number of processes (the run's
    progress.json records them): build (`_build`), evaluate untrained, fit the remaining
    epochs (`_fit_remaining_epochs`: resume, fit, precise BatchNorm at the end), evaluate
    trained, export, report (`_report`). Re-running it on a model_dir whose run was
    interrupted resumes that run (see the module docstring); `prepare_model_dir` first
    checks the configuration is the same.

    Args:
        model_dir: str. Where everything is written (see the module docstring).
        method: callable. Builds the Method inside the strategy scope: a gin reference
            without parentheses, e.g. `@zoo.methods.MultiTask` (its knobs are its own
            bindings, `zoo.methods.MultiTask.lasso_block = "block3"`).
        optimizer: keras Optimizer or dict {player: Optimizer}, e.g.
            `@keras.optimizers.RMSprop()` with any of its arguments (schedules, weight
            decay, clipnorm). One optimizer gives every player its own copy.
        batch_size: int. Global batch size of every data stream. Defaults to 16.
        epochs: int. Defaults to 5.
        steps_per_epoch: int. Steps between checkpoints: a resumed run redoes at most
            the steps of one epoch. Defaults to 50.
        strategy: str. "auto", "default" or "mirrored". Defaults to "auto".
        seed: int. Seeds Keras, NumPy and TensorFlow. Defaults to 0.
        callbacks: list of keras callbacks added to the run's own (e.g.
            `@zoo.experiment.CostBudget()`); one with a `model_dir` attribute of None
            gets the run's. Defaults to none.
        deterministic: bool. Deterministic TensorFlow ops: the same data, initial
            weights and first steps from run to run; concurrent ops still make runs
            drift apart in the last bits (README, "Determinism"). Defaults to True.
        serial_ops: bool. Run TensorFlow's ops one at a time (`run_ops_one_at_a_time`),
            which with `deterministic` makes same-seed runs bit-identical on a CPU, at
            about 0.8x the speed (a process that already ran ops warns instead).
            Defaults to False.
        verbose: int. Keras progress bar (1; one line per epoch when standard output is
            not a terminal, so logs do not fill with redraws), one line per epoch (2) or
            nothing (0). Defaults to 1.
        precise_batch_norm: int. After the last epoch, before its checkpoint, set every
            trained BatchNorm's moving statistics to the mean batch statistics of this
            many training batches under the final weights (`Method.precise_batch_norm`;
            README, "Precise BatchNorm"): short runs at a constant learning rate end with
            moving averages that lag behind the weights. 0 keeps the moving averages, as
            the papers do. Defaults to 0.

    Returns:
        dict with "untrained" and "trained" held-out metrics per objective,
        "metric_info", "history" (every epoch, across the processes of a resumed run),
        "seconds" (training time, summed the same way), and "export" (the trunk's
        SavedModel).
    """
    _check_train_arguments(method, batch_size, epochs, steps_per_epoch, precise_batch_norm)
    callbacks = list(callbacks or ())
    # one writer per model_dir; a DataLossError of any pipeline becomes a DataError
    # naming the damaged file
    with files.exclusive(model_dir), tfrecord.damaged_files_named():
        say = print if verbose else logging.info
        distribution = _runtime(strategy, seed, deterministic, serial_ops)
        model, progress = _build(model_dir, method, optimizer, distribution)
        if progress["untrained"] is None:  # evaluate untrained
            progress.set(untrained=model.heldout_metrics(batch_size))
        _check_stop(model_dir, "before training")
        _fit_remaining_epochs(
            model,
            model_dir,
            progress,
            distribution,
            batch_size=batch_size,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            callbacks=callbacks,
            precise_batch_norm=precise_batch_norm,
            verbose=verbose,
            say=say,
        )
        if progress["trained"] is None:  # evaluate trained
            trained = model.heldout_metrics(batch_size)
            progress.set(trained=trained, examples=model.heldout_examples())
            _check_stop(model_dir, "after the held-out evaluation")
        export_path = os.path.join(model_dir, "export", "trunk")
        if progress["export"] is None:  # export
            export_trunk(model.trunk, export_path, model.serving_harmonizer(), overwrite=True)
            progress.set(export=export_path)
        return _report(model, model_dir, progress, export_path)


def _check_train_arguments(method, batch_size, epochs, steps_per_epoch, precise_batch_norm):
    if isinstance(method, Method) or not callable(method):
        raise UserTypeError(
            "`method` must build the method inside the strategy scope: give the gin "
            "reference without parentheses (`@zoo.methods.MultiTask`, not "
            f"`@zoo.methods.MultiTask()`). Received: {method!r}"
        )
    for key, value in (
        ("batch_size", batch_size),
        ("epochs", epochs),
        ("steps_per_epoch", steps_per_epoch),
    ):
        _check_length(key, value)
    wanted = f"`precise_batch_norm` must be an int >= 0 (0: off). Received: {precise_batch_norm!r}"
    if isinstance(precise_batch_norm, bool) or not isinstance(precise_batch_norm, int):
        raise UserTypeError(wanted)
    if precise_batch_norm < 0:
        raise UserError(wanted)


def _runtime(strategy, seed, deterministic, serial_ops):
    """The stage before any model: serial ops, seeds, determinism; the strategy."""
    if serial_ops:
        run_ops_one_at_a_time(strategy)
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    return make_strategy(strategy)


def _build(model_dir, method, optimizer, distribution):
    """Builds and compiles the method in the strategy's scope, writes its method.json
    and the operative config; returns it with the run's progress."""
    with distribution.scope():
        model = method()
        if not isinstance(model, Method):
            raise UserTypeError(f"`method` built {type(model).__name__}, not a zoo Method.")
        model.compile(optimizer)
    files.write_json(os.path.join(model_dir, "method.json"), serialize(model))
    files.write_text(os.path.join(model_dir, "operative_config.gin"), gin.operative_config_str())
    return model, _Progress(model_dir)


def _fit_remaining_epochs(model, model_dir, progress, distribution, **run):
    """Resumes from the last good checkpoint and fits the epochs not yet done (nothing
    when training had ended), then records that fitting ended."""
    epochs, steps_per_epoch, say = run["epochs"], run["steps_per_epoch"], run["say"]
    done = _resume_point(model, model_dir, progress, epochs)
    if progress["fit_done"] and done < progress["fit_epochs"]:
        # the last checkpoint was set aside: train its epochs again, then evaluate
        progress.set(fit_done=False, trained=None, export=None)
    if progress["fit_done"]:
        say("training had ended; evaluating and exporting")
        return
    if done:
        say(f"resuming after epoch {done} of {epochs}")
    for callback in run["callbacks"]:
        if getattr(callback, "model_dir", "") is None:
            callback.model_dir = model_dir
    with distribution.scope():
        # the batches of the finished epochs are skipped: a resumed run trains on the
        # same sequence of batches as an uninterrupted one
        data = model.datasets(run["batch_size"]).skip(done * steps_per_epoch)
    precise = []
    if run["precise_batch_norm"]:
        precise = [_PreciseBatchNorm(run["batch_size"], run["precise_batch_norm"], epochs, say)]
    if done < epochs:
        model.fit(
            data,
            initial_epoch=done,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            callbacks=[
                *run["callbacks"],
                _StopOnNonFinite(os.path.join(model_dir, "checkpoints")),
                *precise,
                _EpochCheckpoints(model_dir, progress),
                keras.callbacks.TensorBoard(os.path.join(model_dir, "logs")),
                _StopOnRequest(model_dir),  # last: sees a request made in the others
            ],
            verbose=epoch_lines(run["verbose"]),
            shuffle=False,  # the pipelines shuffle
        )
    last = checkpoints(model_dir)
    progress.set(fit_done=True, fit_epochs=_epoch_of(last[-1]) if last else 0)
    _check_stop(model_dir, "after training")


def _report(model, model_dir, progress, export_path):
    """The run's results from its progress (every epoch, across the processes of a
    resumed run), written to metrics.json with the final operative config."""
    trained_epochs = range(1, progress["fit_epochs"] + 1)
    records = [progress.epoch(e) for e in trained_epochs if progress.epoch(e)]
    history = {}
    for record in records:
        for key, value in record["logs"].items():
            history.setdefault(key, []).append(value)
    results = {
        "untrained": progress["untrained"],
        "trained": progress["trained"],
        "metric_info": model.metric_info(),
        "examples": progress["examples"] or {},
        "history": history,
        "seconds": sum(r["seconds"] for r in records),
        "export": export_path,
    }
    # every value used
    files.write_text(os.path.join(model_dir, "operative_config.gin"), gin.operative_config_str())
    files.write_json(os.path.join(model_dir, "metrics.json"), results)
    return results


def format_report(results: dict, model_dir: str) -> str:
    """Plain-text table of every held-out metric, untrained vs trained, and the files."""
    lines = [
        f"Held-out metrics, after {results['seconds']:.0f} s of training:",
        f"  {'task':<22} {'metric':<15} {'untrained':>10} {'trained':>10} {'examples':>9}  meaning",
    ]
    info = results.get("metric_info", {})
    counts = results.get("examples") or {}
    for task, metrics in results["trained"].items():
        count = str(counts.get(task, "?"))
        for name, value in metrics.items():
            direction, meaning = info.get(task, {}).get(name, ("neither", ""))
            before = results["untrained"][task][name]
            better = "" if direction == "neither" else f" ({direction} is better)"
            lines.append(
                f"  {task:<22} {name:<15} {before:>10.3f} {value:>10.3f} {count:>9}  "
                f"{meaning}{better}"
            )
    if counts:
        lines.append("  (examples: the held-out examples each metric was computed on)")
    lines += [
        "",
        f"Outputs in {model_dir}:",
        "  metrics.json (all metrics), checkpoints/, logs/ (tensorboard --logdir "
        f"{os.path.join(model_dir, 'logs')}),",
        f"  method.json, operative_config.gin, and the trained trunk as a SavedModel in "
        f"{results['export']}",
    ]
    return "\n".join(lines)
