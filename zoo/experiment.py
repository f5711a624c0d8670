"""One experiment, end to end: data, model, training, held-out evaluation, export.

`train(model_dir)` is configured with gin (see gin_configs/) and is what `zoo-train`
runs. Everything a run writes lives under `model_dir`:

    config.gin             the gin files and bindings the run was started with
    operative_config.gin   every value gin used
    checkpoints/           weights after each good epoch (epoch_001.weights.h5, ...)
    snapshots/             weights each `snapshot_every` cost units (cost_000000100.weights.h5)
    backup/                BackupAndRestore state: re-running the command resumes
    logs/                  TensorBoard
    metrics.json           held-out metrics of every task, untrained and trained
    export/trunk/          the trained trunk as a SavedModel
"""

import contextlib
import json
import math
import os
import shutil
import time

import gin
import keras
import numpy as np
import tensorflow as tf

from export import export_trunk
from zoo.models import MultiTaskModel

OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
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


def make_optimizer(name, learning_rate):
    if name not in OPTIMIZERS:
        raise ValueError(f"`optimizer` must be one of {OPTIMIZERS}. Received: {name!r}")
    return keras.optimizers.get({"class_name": name, "config": {"learning_rate": learning_rate}})


def evaluate_tasks(model, batch_size):
    """Held-out metrics of every task: {task: {metric: value}} over its whole eval split."""
    results = {}
    for name, task in model.tasks.items():
        targets, outputs = [], []
        for inputs, target in task.pipeline("eval", batch_size):
            outputs.append(model.task_networks[name](inputs, training=False).numpy())
            targets.append(target.numpy())
        results[name] = task.evaluate(np.concatenate(targets), np.concatenate(outputs))
    return results


class _StopOnNonFinite(keras.callbacks.Callback):
    """Raises TrainingDiverged naming the task whose loss is NaN or infinite."""

    def __init__(self, tasks, checkpoint_dir):
        super().__init__()
        self.tasks = tasks
        self.checkpoint_dir = checkpoint_dir
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        bad = [t for t in self.tasks if not math.isfinite(float(logs.get(f"{t}_loss", 0.0)))]
        if bad or not math.isfinite(float(logs.get("loss", 0.0))):
            good = (
                sorted(os.listdir(self.checkpoint_dir))
                if os.path.isdir(self.checkpoint_dir)
                else []
            )
            last = os.path.join(self.checkpoint_dir, good[-1]) if good else "none yet"
            raise TrainingDiverged(
                f"the loss of task(s) {bad or ['(total)']} became NaN or infinite at epoch "
                f"{self.epoch + 1}, step {batch + 1}. Training stopped; the last good "
                f"checkpoint is {last}. Lower the learning rate or that task's loss weight."
            )


class CostBudget(keras.callbacks.Callback):
    """Counts compute in cost units: a step costs the sum of its tasks' costs.

    Saves `snapshots/cost_<units>.weights.h5` each time the total crosses a multiple of
    `snapshot_every`, and stops training once it reaches `budget`. The count follows the
    step number, so a resumed run (BackupAndRestore) continues it.
    """

    def __init__(self, task_costs, steps_per_epoch, budget=None, snapshot_every=None, folder=None):
        super().__init__()
        unknown = [t for t, c in task_costs.items() if not (isinstance(c, (int, float)) and c > 0)]
        if unknown:
            raise ValueError(f"task_costs must be numbers > 0; check {unknown}: {task_costs}")
        for name, value in (("budget", budget), ("snapshot_every", snapshot_every)):
            if value is not None and not value > 0:
                raise ValueError(f"`{name}` must be > 0 or None. Received: {value!r}")
        self.step_cost = float(sum(task_costs.values()))
        self.steps_per_epoch = steps_per_epoch
        self.budget, self.snapshot_every, self.folder = budget, snapshot_every, folder
        self.epoch = 0
        self.spent = 0.0  # cost units of the steps done so far

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        step = self.epoch * self.steps_per_epoch + batch + 1
        before, self.spent = (step - 1) * self.step_cost, step * self.step_cost
        if self.snapshot_every and int(self.spent // self.snapshot_every) > int(
            before // self.snapshot_every
        ):
            os.makedirs(self.folder, exist_ok=True)
            units = int(self.spent // self.snapshot_every * self.snapshot_every)
            self.model.save_weights(os.path.join(self.folder, f"cost_{units:09d}.weights.h5"))
        if self.budget is not None and self.spent >= self.budget:
            self.model.stop_training = True


def build_model(trunk, tasks, input_size, lasso_block=None, lasso_l1=1e-3, loss_weights=None):
    """The MultiTaskModel of an experiment (call inside the strategy scope)."""
    image = (input_size, input_size, 3)
    # tasks on other input sizes (patches) need a trunk that takes any size
    same = all(tuple(t.input_shape(input_size)) == image for t in tasks)
    return MultiTaskModel(
        trunk(input_shape=image if same else (None, None, 3)),
        tasks,
        lasso_block=lasso_block,
        lasso_l1=lasso_l1,
        loss_weights=loss_weights,
        input_size=input_size,
    )


@contextlib.contextmanager
def isolated_gin_config():
    """Runs the body on an empty gin config and gives the caller's config back afterwards.

    A run is rebuilt from its own operative config; a caller that is itself configured
    with gin (a sweep, a notebook) keeps its bindings.
    """
    from gin import config as gin_config

    saved = (
        {key: dict(values) for key, values in gin_config._CONFIG.items()},
        dict(gin_config._SINGLETONS),
        set(gin_config._IMPORTS),
        {key: dict(values) for key, values in gin_config._OPERATIVE_CONFIG.items()},
        gin_config._CONFIG_IS_LOCKED,
    )
    gin.clear_config()
    try:
        yield
    finally:
        gin.clear_config()
        gin_config._CONFIG.update(saved[0])
        gin_config._SINGLETONS.update(saved[1])
        gin_config._IMPORTS.update(saved[2])
        gin_config._OPERATIVE_CONFIG.update(saved[3])
        gin_config._set_config_is_locked(saved[4])


def checkpoints(model_dir):
    """The run's checkpoint files, oldest first."""
    folder = os.path.join(model_dir, "checkpoints")
    if not os.path.isdir(folder):
        return []
    return [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if f.endswith(".h5")]


def restore(model_dir, checkpoint=None):
    """Rebuilds a run's model from its operative config and loads a checkpoint.

    The global gin config becomes the run's; call it inside `isolated_gin_config()` to
    keep the caller's.

    Args:
        model_dir: str. A zoo-train model_dir.
        checkpoint: str or None. A file of the run's checkpoints/ (or its name, e.g.
            "epoch_002.weights.h5"). Defaults to the last one.

    Returns:
        (MultiTaskModel, checkpoint path, the run's `train` bindings).
    """
    config = os.path.join(model_dir, "operative_config.gin")
    done = checkpoints(model_dir)
    if not os.path.exists(config) or not done:
        raise FileNotFoundError(
            f"{model_dir} holds no trained run (needs operative_config.gin and a checkpoint "
            "in checkpoints/); train one with zoo-train first."
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
    gin.clear_config()
    gin.parse_config_file(config)
    bindings = gin.get_bindings("zoo.experiment.train")
    model = build_model(
        bindings["trunk"],
        bindings["tasks"],
        bindings.get("input_size", 64),
        bindings.get("lasso_block"),
        bindings.get("lasso_l1", 1e-3),
        bindings.get("loss_weights"),
    )
    model.load_weights(checkpoint)
    return model, checkpoint, bindings


@gin.configurable(module="zoo.experiment")
def train(
    model_dir,
    trunk=gin.REQUIRED,
    tasks=gin.REQUIRED,
    input_size=64,
    batch_size=16,
    epochs=5,
    steps_per_epoch=50,
    optimizer="adam",
    learning_rate=1e-3,
    per_task_optimizers=False,
    lasso_block=None,
    lasso_l1=1e-3,
    loss_weights=None,
    task_costs=None,
    budget=None,
    snapshot_every=None,
    strategy="auto",
    seed=0,
    export_harmonizer="identity",
    deterministic=True,
    verbose=1,
):
    """Trains a MultiTaskModel on `tasks`, evaluates it before and after, exports the trunk.

    Args:
        model_dir: str. Where everything is written (see the module docstring).
        trunk: callable. Builds the trunk from `input_shape=` (e.g. a gin-configured
            `zoo.trunks.resnet`).
        tasks: list of zoo.tasks.Task.
        input_size: int. Square input size of the trunk. Defaults to 64.
        batch_size: int. Global batch size of every task. Defaults to 16.
        epochs: int. Defaults to 5.
        steps_per_epoch: int. Defaults to 50.
        optimizer: str. "adam", "adamw", "rmsprop" or "sgd". Defaults to "adam".
        learning_rate: float. Defaults to 1e-3.
        per_task_optimizers: bool. One optimizer per task (Doersch & Zisserman) instead
            of one on the weighted sum of losses. Defaults to False.
        lasso_block: str or None. Heads read a LassoMix of this block's units.
        lasso_l1: float. Lasso penalty. Defaults to 1e-3.
        loss_weights: dict or None. Task -> weight. Defaults to 1 each.
        task_costs: dict or None. Task -> cost units of one of its steps (Doersch &
            Zisserman budget compute, e.g. GPU hours). Defaults to 1 each.
        budget: float or None. Stop once the steps' summed cost reaches it (an upper
            bound besides epochs x steps_per_epoch). Defaults to None.
        snapshot_every: float or None. Save the weights in snapshots/ each time the
            summed cost crosses a multiple of it (the paper snapshots about every 2.4K
            GPU hours). Defaults to None.
        strategy: str. "auto", "default" or "mirrored". Defaults to "auto".
        seed: int. Seeds Keras, NumPy and TensorFlow. Defaults to 0.
        export_harmonizer: str. Harmonizer inside the exported trunk. Defaults to "identity".
        deterministic: bool. Deterministic TensorFlow ops: two runs of the same config
            and seed in one process give the same weights. Separate processes start
            from the same data and weights but end slightly apart on a CPU (not yet
            explained). Defaults to True.
        verbose: int. Keras progress bar (1) or none (0). Defaults to 1.

    Returns:
        dict with "untrained" and "trained" held-out metrics per task, "history",
        "seconds", and "export" (the trunk's SavedModel folder).
    """
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    distribution = make_strategy(strategy)
    with distribution.scope():
        model = build_model(trunk, tasks, input_size, lasso_block, lasso_l1, loss_weights)
        if per_task_optimizers:
            model.compile(
                task_optimizers={t.name: make_optimizer(optimizer, learning_rate) for t in tasks}
            )
        else:
            model.compile(optimizer=make_optimizer(optimizer, learning_rate))
        model.build_optimizers()
        data = tf.data.Dataset.zip({t.name: t.pipeline("train", batch_size) for t in tasks})
    with open(os.path.join(model_dir, "operative_config.gin"), "w") as f:
        f.write(gin.operative_config_str())

    untrained = evaluate_tasks(model, batch_size)
    checkpoint_dir = os.path.join(model_dir, "checkpoints")
    os.makedirs(checkpoint_dir, exist_ok=True)
    callbacks = []
    if budget is not None or snapshot_every is not None:
        callbacks.append(
            CostBudget(
                {t.name: (task_costs or {}).get(t.name, 1.0) for t in tasks},
                steps_per_epoch,
                budget,
                snapshot_every,
                os.path.join(model_dir, "snapshots"),
            )
        )
    callbacks += [
        _StopOnNonFinite([t.name for t in tasks], checkpoint_dir),
        keras.callbacks.BackupAndRestore(os.path.join(model_dir, "backup")),
        keras.callbacks.ModelCheckpoint(
            os.path.join(checkpoint_dir, "epoch_{epoch:03d}.weights.h5"), save_weights_only=True
        ),
        keras.callbacks.TensorBoard(os.path.join(model_dir, "logs")),
    ]
    start = time.perf_counter()
    history = model.fit(
        data,
        epochs=epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=callbacks,
        verbose=verbose,
        shuffle=False,  # the pipelines shuffle
    )
    seconds = time.perf_counter() - start
    trained = evaluate_tasks(model, batch_size)
    export_path = export_trunk(
        model.trunk, os.path.join(model_dir, "export", "trunk"), export_harmonizer, overwrite=True
    )
    results = {
        "untrained": untrained,
        "trained": trained,
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "seconds": seconds,
        "export": export_path,
    }
    with open(os.path.join(model_dir, "metrics.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(model_dir, "operative_config.gin"), "w") as f:
        f.write(gin.operative_config_str())
    return results


# What each metric means, for the report a run prints.
METRIC_HELP = {
    "delta1": ("higher", "share of pixels with depth within 1.25x of the truth"),
    "abs_rel": ("lower", "mean |depth error| / true depth"),
    "rmse": ("lower", "root mean squared depth error (m)"),
    "mean_angle": ("lower", "mean angle between predicted and true normals (deg)"),
    "within_22_5": ("higher", "share of pixels with normal error below 22.5 deg"),
    "ods_f_score": ("higher", "contour F-score at the best single threshold"),
    "f_score": ("higher", "contour F-score at probability 0.5"),
    "miou": ("higher", "mean intersection over union of classes"),
    "accuracy": ("higher", "share of correct labels"),
    "bin_accuracy": ("higher", "share of cells whose most likely colour bin is the truth's"),
    "ab_rmse": ("lower", "colour error of the annealed-mean prediction (Lab ab units)"),
    "triplet_accuracy": ("higher", "share of triplets with the positive patch nearer"),
    "moving_iou": ("higher", "intersection over union of the moving pixels"),
}


def format_report(results, model_dir):
    """Plain-text table of held-out metrics, untrained vs trained, and where the files are."""
    lines = [
        f"Held-out metrics (test-split models of the synthetic scenes), after "
        f"{results['seconds']:.0f} s of training:",
        f"  {'task':<22} {'metric':<13} {'untrained':>10} {'trained':>10}  meaning",
    ]
    for task, metrics in results["trained"].items():
        for name, value in metrics.items():
            if name not in METRIC_HELP:
                continue
            better, meaning = METRIC_HELP[name]
            before = results["untrained"][task][name]
            lines.append(
                f"  {task:<22} {name:<13} {before:>10.3f} {value:>10.3f}  {meaning} "
                f"({better} is better)"
            )
    lines += [
        "",
        f"Outputs in {model_dir}:",
        "  metrics.json (all metrics), checkpoints/, logs/ (tensorboard --logdir "
        f"{os.path.join(model_dir, 'logs')}),",
        f"  operative_config.gin, and the trained trunk as a SavedModel in {results['export']}",
    ]
    return "\n".join(lines)
