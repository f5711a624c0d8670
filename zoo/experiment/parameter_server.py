"""Doersch & Zisserman's asynchronous per-task training (sec. 4), on TensorFlow's
ParameterServerStrategy: `strategy = "parameter_server"`.

The cluster (`TF_CONFIG`) has a chief, workers and parameter servers. The parameter
servers hold every variable (the shared trunk, each task's head and each task's own
optimizer state); workers and parameter servers only run a `tf.distribute.Server`
(`serve`). The chief runs the driver: for each task a thread schedules that task's step
(`MultiTask.task_train_step` on the task's own stream) on whichever worker is free,
one step of a task at a time, so that a task's updates are applied in order while the
tasks update the shared trunk without waiting for each other: over a long run, a task
whose step is cheaper takes more steps (over a few, the timing of each task's first,
traced step weighs as much). Each step counts the other tasks' updates applied to the
variables while it ran (its staleness). The paper's synchronous aggregation of one
task's gradients over several machines is one step on a larger batch here.

An epoch ends when the tasks together took `steps_per_epoch` steps per task; the chief
then writes the checkpoint and logs `<task>_loss` (the epoch's mean), `<task>_steps`
and `<task>_staleness` (mean per step). Asynchronous runs are not reproducible: the
order of the tasks' updates depends on timing.
"""

import os
import threading
import time

import keras
import numpy as np
import tensorflow as tf

from zoo.experiment.run_state import stop_requested


def serve(config: dict) -> None:
    """Runs this worker's or parameter server's `tf.distribute.Server` until the process
    is stopped (the chief drives the cluster)."""
    os.environ.setdefault("GRPC_FAIL_FAST", "use_caller")
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    server = tf.distribute.Server(
        resolver.cluster_spec(),
        job_name=config["task"]["type"],
        task_index=config["task"].get("index", 0),
        protocol=resolver.rpc_layer or "grpc",
        start=True,
    )
    server.join()


def make_strategy() -> tf.distribute.ParameterServerStrategy:
    """The chief's strategy over the cluster of `TF_CONFIG`."""
    return tf.distribute.ParameterServerStrategy(
        tf.distribute.cluster_resolver.TFConfigClusterResolver()
    )


class _TaskRunner:
    """Schedules one task's steps, one at a time, until the epoch's total is reached."""

    def __init__(self, model, task, strategy, coordinator, batch_size, skip, counter):
        self.task = task
        self.coordinator = coordinator
        # built here (the pipelines read files in Python first), sent to every worker
        data = coordinator.create_per_worker_dataset(
            model.task_datasets(task, batch_size).skip(skip)
        )
        self.iterator = iter(data)

        optimizer = model.player_optimizers[task]

        @tf.function
        def step(iterator):
            # the count of updates when the step reads the variables, and after its own
            # update (ordered by control dependencies: the count is otherwise free to
            # change when the step's other ops run)
            start = counter.read_value()
            with tf.control_dependencies([start]):
                batch = next(iterator)
                loss = strategy.run(lambda b: model.task_train_step(task, b), args=(batch,))
            with tf.control_dependencies([loss, optimizer.iterations.value]):
                end = counter.assign_add(1)
            return loss, end - start - 1

        self.step = step
        self.losses, self.staleness = [], []

    def run(self, done, target, lock, failures):
        try:
            while True:
                with lock:
                    if done[0] >= target or stop_requested() or failures:
                        return
                    done[0] += 1
                loss, stale = self.coordinator.schedule(self.step, args=(self.iterator,)).fetch()
                self.losses.append(float(loss))
                self.staleness.append(int(stale))
        except Exception as error:  # noqa: BLE001 (re-raised by the chief's thread)
            failures.append(error)


def fit(model, strategy, *, batch_size, initial_epoch, epochs, steps_per_epoch, callbacks, verbose):
    """Trains `model` (MultiTask with per-task players) asynchronously per task; the
    callbacks are called at the epochs' ends (module docstring). Returns the History."""
    coordinator = tf.distribute.coordinator.ClusterCoordinator(strategy)
    with strategy.scope():
        counter = tf.Variable(0, dtype=tf.int64, trainable=False, name="async_updates")
    skip = initial_epoch * steps_per_epoch
    runners = [
        _TaskRunner(model, task, strategy, coordinator, batch_size, skip, counter)
        for task in model.tasks
    ]
    callbacks = keras.callbacks.CallbackList(
        callbacks, add_history=True, add_progbar=False, model=model, verbose=verbose
    )
    callbacks.set_params({"epochs": epochs, "steps": steps_per_epoch, "verbose": verbose})
    model.stop_training = False
    callbacks.on_train_begin()
    logs = {}
    for epoch in range(initial_epoch, epochs):
        callbacks.on_epoch_begin(epoch)
        start = time.perf_counter()
        done, lock, failures = [0], threading.Lock(), []
        for runner in runners:
            runner.losses, runner.staleness = [], []
        threads = [
            threading.Thread(
                target=r.run, args=(done, steps_per_epoch * len(runners), lock, failures)
            )
            for r in runners
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if failures:
            raise failures[0]
        logs = {}
        for r in runners:
            logs[f"{r.task}_loss"] = float(np.mean(r.losses)) if r.losses else float("nan")
            logs[f"{r.task}_steps"] = float(len(r.losses))
            logs[f"{r.task}_staleness"] = float(np.mean(r.staleness)) if r.staleness else 0.0
        if verbose:
            shown = ", ".join(
                f"{r.task}: {len(r.losses)} steps, loss {logs[f'{r.task}_loss']:.4f}, "
                f"staleness {logs[f'{r.task}_staleness']:.2f}"
                for r in runners
            )
            print(f"Epoch {epoch + 1}/{epochs} ({time.perf_counter() - start:.0f} s): {shown}")
        # a stop request ends the epoch early: StopOnRequest raises, with no checkpoint
        callbacks.on_train_batch_end(len(runners) * steps_per_epoch - 1, logs)
        callbacks.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    callbacks.on_train_end(logs)
    return model.history
