"""The callbacks of a run: stop on request or on a non-finite loss, cost budgets and
snapshots, precise BatchNorm at the end, and the epoch checkpoints."""

import math
import os
import time

import gin
import keras

from zoo import files
from zoo.errors import TrainingDiverged, UserError
from zoo.experiment.checkpoints import checkpoints, sha256_of
from zoo.experiment.run_state import check_stop
from zoo.tasks.base import Task


class StopOnRequest(keras.callbacks.Callback):
    """Ends `fit` after the step in progress once `request_stop()` was called; the
    epoch's checkpoint is not written (the epoch did not finish)."""

    def __init__(self, model_dir):
        super().__init__()
        self.model_dir = model_dir
        self.epoch = 1

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        check_stop(self.model_dir, f"after step {batch + 1} of epoch {self.epoch}")


class StopOnNonFinite(keras.callbacks.Callback):
    """Raises TrainingDiverged naming the losses (`*loss` logs) that are NaN or infinite,
    or above `bound` (a float, or None: no bound)."""

    def __init__(self, checkpoint_dir, bound=None):
        super().__init__()
        self.checkpoint_dir, self.bound = checkpoint_dir, bound
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        losses = {k: float(v) for k, v in logs.items() if k.endswith("loss")}
        bad = [k for k, v in losses.items() if not math.isfinite(v)]
        above = [k for k, v in losses.items() if self.bound is not None and v > self.bound]
        if bad or above:
            good = checkpoints(os.path.dirname(self.checkpoint_dir))
            last = good[-1] if good else "none yet"
            what = [f"{', '.join(sorted(bad))} became NaN or infinite"] if bad else []
            what += [f"{', '.join(sorted(above))} exceeded {self.bound:g}"] if above else []
            raise TrainingDiverged(
                f"{' and '.join(what)} at epoch {self.epoch + 1}, step {batch + 1}. Training "
                f"stopped; the last good checkpoint is {last}. Lower the learning rate or "
                "that task's loss weight."
            )


def _task_names() -> set:
    """The names of the zoo's task classes."""
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


class PreciseBatchNorm(keras.callbacks.Callback):
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


class EpochCheckpoints(keras.callbacks.Callback):
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
            self.progress.set_epoch(epoch + 1, {**record, "sha256": sha256_of(temporary)})

        files.write_file(path, write)
