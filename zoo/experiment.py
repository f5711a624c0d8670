"""One experiment, end to end: data, model, training, held-out evaluation, export.

`train(model_dir)` is configured with gin (see gin_configs/) and is what `zoo-train`
runs. Everything a run writes lives under `model_dir`:

    config.gin             the gin files and bindings the run was started with
    operative_config.gin   every value gin used
    method.json            the method (networks, tasks, knobs) as a Keras config: a run
                           is rebuilt from it and a checkpoint, without gin (`restore`)
    checkpoints/           weights after each good epoch (epoch_001.weights.h5, ...)
    snapshots/             weights each `snapshot_every` cost units (cost_000000100.weights.h5)
    backup/                BackupAndRestore state: re-running the command resumes
    logs/                  TensorBoard
    metrics.json           held-out metrics of every task, untrained and trained
    export/trunk/          the trained trunk as a SavedModel
"""

import json
import math
import os
import shutil
import time

import gin
import keras
import tensorflow as tf

from export import export_trunk
from zoo.methods import Method
from zoo.methods.base import deserialize, serialize

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


class TrainingDiverged(RuntimeError):
    """A task's loss became NaN or infinite; the last good checkpoint is kept."""


class ConfigMismatch(ValueError):
    """The model_dir holds a run of another configuration."""


def prepare_model_dir(model_dir, config_text, overwrite=False):
    """Creates `model_dir` for a run of `config_text`, or checks that it holds the same run.

    A model_dir that holds a run of another configuration is refused (ConfigMismatch)
    unless `overwrite`, which deletes that run first.

    Returns:
        "new" for a new run, "resume" when an unfinished run of this configuration is
        continued (BackupAndRestore), "finished" when this configuration already ran to
        the end (its metrics.json exists; `overwrite` starts it again).
    """
    stored_path = os.path.join(model_dir, "config.gin")
    if os.path.exists(stored_path):
        with open(stored_path) as f:
            stored = f.read()
        if stored != config_text and not overwrite:
            raise ConfigMismatch(
                f"{model_dir} holds a run of another configuration (see {stored_path}). "
                "Use another --model_dir, or --overwrite to delete that run."
            )
        if stored == config_text and not overwrite:
            finished = os.path.exists(os.path.join(model_dir, "metrics.json"))
            return "finished" if finished else "resume"
        shutil.rmtree(model_dir)
    elif os.path.isdir(model_dir) and os.listdir(model_dir) and not overwrite:
        raise ConfigMismatch(
            f"{model_dir} is not empty and holds no zoo run; use another --model_dir or "
            "--overwrite to delete its content."
        )
    elif os.path.isdir(model_dir) and overwrite:
        shutil.rmtree(model_dir)
    os.makedirs(model_dir, exist_ok=True)
    with open(stored_path, "w") as f:
        f.write(config_text)
    return "new"


def make_strategy(name):
    """ "auto": MirroredStrategy over the GPUs when there are several, else the default."""
    if name not in STRATEGIES:
        raise ValueError(f"`strategy` must be one of {STRATEGIES}. Received: {name!r}")
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


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
            good = (
                sorted(os.listdir(self.checkpoint_dir))
                if os.path.isdir(self.checkpoint_dir)
                else []
            )
            last = os.path.join(self.checkpoint_dir, good[-1]) if good else "none yet"
            raise TrainingDiverged(
                f"{', '.join(sorted(bad))} became NaN or infinite at epoch "
                f"{self.epoch + 1}, step {batch + 1}. Training stopped; the last good "
                f"checkpoint is {last}. Lower the learning rate or that task's loss weight."
            )


class CostBudget(keras.callbacks.Callback):
    """Counts compute in cost units: a step costs the sum of its tasks' costs.

    Saves `<folder>/cost_<units>.weights.h5` each time the total crosses a multiple of
    `snapshot_every`, and stops training once it reaches `budget`. The count follows the
    step number, so a resumed run (BackupAndRestore) continues it. Give it to a run with
    `zoo.experiment.train.callbacks = [@zoo.experiment.CostBudget()]`.

    Args:
        task_costs: dict or None. Task -> cost units of one of its steps (Doersch &
            Zisserman budget compute, e.g. GPU hours); tasks of the method not listed
            cost 1. For a model without tasks, a step costs the sum of the values.
        budget: float or None. Stop once the summed cost reaches it. Defaults to None.
        snapshot_every: float or None. Save the weights each time the summed cost
            crosses a multiple of it (the paper snapshots about every 2.4K GPU hours).
            Defaults to None.
        folder: str or None. Where snapshots go. Defaults to `<model_dir>/snapshots`
            (`train` sets `model_dir`).
    """

    def __init__(self, task_costs=None, budget=None, snapshot_every=None, folder=None):
        super().__init__()
        task_costs = dict(task_costs or {})
        bad = [t for t, c in task_costs.items() if not (isinstance(c, (int, float)) and c > 0)]
        if bad:
            raise ValueError(f"task_costs must be numbers > 0; check {bad}: {task_costs}")
        for name, value in (("budget", budget), ("snapshot_every", snapshot_every)):
            if value is not None and not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"`{name}` must be a number > 0 or None. Received: {value!r}")
        self.task_costs = task_costs
        self.budget, self.snapshot_every, self.folder = budget, snapshot_every, folder
        self.model_dir = None
        self.step_cost = None
        self.epoch = 0
        self.spent = 0.0  # cost units of the steps done so far

    def on_train_begin(self, logs=None):
        tasks = list(getattr(self.model, "tasks", None) or [])
        if tasks:
            unknown = sorted(set(self.task_costs) - set(tasks))
            if unknown:
                raise ValueError(
                    f"CostBudget: task_costs name unknown tasks {unknown}; tasks: {tasks}"
                )
            self.step_cost = float(sum(self.task_costs.get(t, 1.0) for t in tasks))
        else:
            self.step_cost = float(sum(self.task_costs.values()) or 1.0)
        if self.folder is None:
            self.folder = os.path.join(self.model_dir or ".", "snapshots")

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
            self.model.save_weights(os.path.join(self.folder, f"cost_{units:09d}.weights.h5"))
        if self.budget is not None and self.spent >= self.budget:
            self.model.stop_training = True


gin.external_configurable(CostBudget, module="zoo.experiment")


def checkpoints(model_dir):
    """The run's checkpoint files, oldest first."""
    folder = os.path.join(model_dir, "checkpoints")
    if not os.path.isdir(folder):
        return []
    return [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".h5")]


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
        raise FileNotFoundError(
            f"{model_dir} holds no trained run (needs method.json and a checkpoint in "
            "checkpoints/); train one with zoo-train first."
        )
    if checkpoint is None:
        checkpoint = done[-1]
    elif not os.path.exists(checkpoint):
        names = [os.path.basename(c) for c in done]
        if checkpoint not in names:
            raise FileNotFoundError(
                f"checkpoint {checkpoint!r} is not in {model_dir}/checkpoints; it has {names}."
            )
        checkpoint = done[names.index(checkpoint)]
    with open(config) as f:
        method = deserialize(json.load(f))
    method.load_weights(checkpoint)
    return method, checkpoint


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
    verbose: int = 1,
) -> dict:
    """Builds a method, evaluates it, trains it, evaluates it again, exports its trunk.

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
        steps_per_epoch: int. Defaults to 50.
        strategy: str. "auto", "default" or "mirrored". Defaults to "auto".
        seed: int. Seeds Keras, NumPy and TensorFlow. Defaults to 0.
        callbacks: list of keras callbacks added to the run's own (e.g.
            `@zoo.experiment.CostBudget()`); one with a `model_dir` attribute of None
            gets the run's. Defaults to none.
        deterministic: bool. Deterministic TensorFlow ops: two runs of the same config
            and seed in one process give the same weights. Separate processes start
            from the same data and weights but end slightly apart on a CPU (not yet
            explained). Defaults to True.
        verbose: int. Keras progress bar (1) or none (0). Defaults to 1.

    Returns:
        dict with "untrained" and "trained" held-out metrics per objective,
        "metric_info", "history", "seconds", and "export" (the trunk's SavedModel).
    """
    if isinstance(method, Method) or not callable(method):
        raise TypeError(
            "`method` must build the method inside the strategy scope: give the gin "
            "reference without parentheses (`@zoo.methods.MultiTask`, not "
            f"`@zoo.methods.MultiTask()`). Received: {method!r}"
        )
    for key, value in (
        ("batch_size", batch_size),
        ("epochs", epochs),
        ("steps_per_epoch", steps_per_epoch),
    ):
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            raise ValueError(f"`{key}` must be an int >= 1. Received: {key}={value!r}")
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    distribution = make_strategy(strategy)
    with distribution.scope():
        model = method()
        if not isinstance(model, Method):
            raise TypeError(f"`method` built {type(model).__name__}, not a zoo Method.")
        model.compile(optimizer)
        data = model.datasets(batch_size)
    with open(os.path.join(model_dir, "method.json"), "w") as f:
        json.dump(serialize(model), f, indent=1)
    with open(os.path.join(model_dir, "operative_config.gin"), "w") as f:
        f.write(gin.operative_config_str())

    untrained = model.heldout_metrics(batch_size)
    checkpoint_dir = os.path.join(model_dir, "checkpoints")
    os.makedirs(checkpoint_dir, exist_ok=True)
    extra = list(callbacks or ())
    for callback in extra:
        if getattr(callback, "model_dir", "") is None:
            callback.model_dir = model_dir
    start = time.perf_counter()
    history = model.fit(
        data,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=[
            *extra,
            _StopOnNonFinite(checkpoint_dir),
            keras.callbacks.BackupAndRestore(os.path.join(model_dir, "backup")),
            keras.callbacks.ModelCheckpoint(
                os.path.join(checkpoint_dir, "epoch_{epoch:03d}.weights.h5"),
                save_weights_only=True,
            ),
            keras.callbacks.TensorBoard(os.path.join(model_dir, "logs")),
        ],
        verbose=verbose,
        shuffle=False,  # the pipelines shuffle
    )
    seconds = time.perf_counter() - start
    trained = model.heldout_metrics(batch_size)
    export_path = export_trunk(
        model.trunk,
        os.path.join(model_dir, "export", "trunk"),
        model.serving_harmonizer(),
        overwrite=True,
    )
    results = {
        "untrained": untrained,
        "trained": trained,
        "metric_info": model.metric_info(),
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "seconds": seconds,
        "export": export_path,
    }
    with open(os.path.join(model_dir, "metrics.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(model_dir, "operative_config.gin"), "w") as f:
        f.write(gin.operative_config_str())
    return results


def format_report(results: dict, model_dir: str) -> str:
    """Plain-text table of every held-out metric, untrained vs trained, and the files."""
    lines = [
        f"Held-out metrics, after {results['seconds']:.0f} s of training:",
        f"  {'task':<22} {'metric':<15} {'untrained':>10} {'trained':>10}  meaning",
    ]
    info = results.get("metric_info", {})
    for task, metrics in results["trained"].items():
        for name, value in metrics.items():
            direction, meaning = info.get(task, {}).get(name, ("neither", ""))
            before = results["untrained"][task][name]
            better = "" if direction == "neither" else f" ({direction} is better)"
            lines.append(
                f"  {task:<22} {name:<15} {before:>10.3f} {value:>10.3f}  {meaning}{better}"
            )
    lines += [
        "",
        f"Outputs in {model_dir}:",
        "  metrics.json (all metrics), checkpoints/, logs/ (tensorboard --logdir "
        f"{os.path.join(model_dir, 'logs')}),",
        f"  method.json, operative_config.gin, and the trained trunk as a SavedModel in "
        f"{results['export']}",
    ]
    return "\n".join(lines)
