"""The training loop of multi-worker runs, where Keras' `fit` does not work
(keras-team/keras#20585, tensorflow#72388): `strategy.run` of the method's own
`train_step`, with the callbacks of `fit` called at the same points.

Input: every worker builds the method's stream of *global* batches from the same seed
and keeps its replicas' rows of each (`replica_batches`), so the replicas together see
exactly the batches of a one-process run and each worker a disjoint part of them.
Building the whole batch on every worker costs data-pipeline time, which the zoo's
pipelines (synthetic rendering, decoding) keep small beside a training step; in return
a run on N workers trains on the same examples in the same steps as on one process.

Stopping: a stop request (Ctrl-C) on any worker is agreed by all of them after the step
in progress (an all-reduce of the flag in the step), so every worker stops after the
same step instead of waiting in a collective for one that has left.
"""

import keras
import tensorflow as tf

from zoo.errors import UserError
from zoo.experiment.run_state import request_stop, stop_requested


def replica_batches(dataset_fn, batch_size: int, strategy) -> tf.distribute.DistributedDataset:
    """`strategy.distribute_datasets_from_function` of `dataset_fn(batch_size)`'s global
    batches, each replica given its consecutive rows (replica i: rows i·b to (i+1)·b − 1
    of every tensor, b = its leading size / replicas), as `fit` splits a batch on one
    machine."""
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        raise UserError(
            f"batch_size {batch_size} is the global batch: it must divide among the "
            f"{replicas} replicas of the cluster (a multiple of {replicas})."
        )

    def input_fn(context):
        local = replicas // context.num_input_pipelines
        first = context.input_pipeline_id * local

        def rows(tensor, replica):
            replica = tf.cast(replica, tf.int32)
            size = tf.shape(tensor)[0] // replicas
            return tensor[replica * size : (replica + 1) * size]

        def split(*batch):
            batch = batch[0] if len(batch) == 1 else batch
            return tf.data.Dataset.range(first, first + local).map(
                lambda replica: tf.nest.map_structure(lambda t: rows(t, replica), batch)
            )

        return dataset_fn(batch_size).flat_map(split)

    return strategy.distribute_datasets_from_function(input_fn)


def fit(model, data, strategy, *, initial_epoch, epochs, steps_per_epoch, callbacks, verbose):
    """Trains `model` (a zoo Method) on the distributed `data` as `Model.fit` would:
    `strategy.run(model.train_step)` per step, the metrics reset each epoch, and the
    callbacks (plus a History and, with `verbose`, a progress bar) called at fit's
    points with fit's logs (each metric's mean over the replicas). Returns the
    History."""
    callbacks = keras.callbacks.CallbackList(
        callbacks,
        add_history=True,
        add_progbar=verbose != 0,
        model=model,
        verbose=verbose,
        epochs=epochs,
        steps=steps_per_epoch,
    )

    def replica_step(batch, stop):
        # (an identity on the replica's device: a tensor from outside has none)
        return model.train_step(batch), tf.identity(stop)

    # a method whose step makes Python choices names them `step_variant` (MGM's stage):
    # a new value is traced anew
    @tf.function
    def step(iterator, stop, variant):
        del variant
        logs, stops = strategy.run(replica_step, args=(next(iterator), stop))
        # what `fit` logs: the mean over the replicas of each one's metrics
        logs = {k: strategy.reduce("MEAN", v, axis=None) for k, v in logs.items()}
        return logs, strategy.reduce("SUM", stops, axis=None)

    iterator = iter(data)
    model.stop_training = False
    callbacks.on_train_begin()
    logs = {}
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callbacks.on_epoch_begin(epoch)
        for batch in range(steps_per_epoch):
            callbacks.on_train_batch_begin(batch)
            stop = tf.constant(float(stop_requested()))
            out, agreed = step(iterator, stop, getattr(model, "step_variant", None))
            if float(agreed) > 0 and not stop_requested():
                request_stop()  # another worker was asked: stop after this step too
            logs = {name: float(value) for name, value in out.items()}
            callbacks.on_train_batch_end(batch, logs)
            if model.stop_training:
                break
        callbacks.on_epoch_end(epoch, dict(logs))
        if model.stop_training:
            break
    callbacks.on_train_end(logs)
    return model.history
