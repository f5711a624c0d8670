"""Every use of Keras' private API in the zoo, each behind one function or class.

Keras has no public way to do these things; each function names what it relies
on, and `tests/test_internals.py` checks each against the installed Keras, so a release
that changes one fails those tests by name instead of silently changing results
(`setup.cfg` caps Keras and TensorFlow to the tested minor versions).
"""

import contextlib

import keras
import tensorflow as tf


def all_layers(model) -> list:
    """Every layer inside `model`, nested ones included, each once (Keras'
    `Layer._flatten_layers`: `model.layers` lists only the direct children)."""
    return list(model._flatten_layers())  # noqa: SLF001  (no public recursive listing)


@contextlib.contextmanager
def state_unlocked(layer):
    """Lets a built `layer` create new variables inside the block (Keras' layer
    `_tracker.unlock()` / `lock()`, which its own `Dense.enable_lora` uses)."""
    tracker = layer._tracker  # noqa: SLF001  (Keras locks a built layer's state)
    tracker.unlock()
    try:
        yield
    finally:
        tracker.lock()


@contextlib.contextmanager
def recording_moments(layers, record):
    """Inside the block, each call of a `keras.layers.BatchNormalization` in `layers`
    that normalizes with its batch's statistics (training mode, trainable) also calls
    `record(layer, mean, variance)` with those statistics (Keras routes them through the
    instance's `_moments(inputs, mask)`; the wrapper is set on each instance and removed
    after the block)."""
    for layer in layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            raise TypeError(f"recording_moments: {layer.name} is not a BatchNormalization")

    def recording(layer):
        measure = layer._moments  # noqa: SLF001  (where BatchNormalization computes them)

        def moments(inputs, mask):
            mean, variance = measure(inputs, mask)
            record(layer, mean, variance)
            return mean, variance

        return moments

    for layer in layers:
        layer._moments = recording(layer)  # noqa: SLF001
    try:
        yield
    finally:
        for layer in layers:
            del layer._moments  # noqa: SLF001  (back to the class's method)


def slot_of(optimizer, slots: list, variable):
    """The optimizer variable of `slots` (made by `add_optimizer_variables`) that belongs
    to `variable`, as Keras' own optimizers find it (`Optimizer._get_variable_index`,
    which also maps a replica's copy of a distributed variable to its slot)."""
    return slots[optimizer._get_variable_index(variable)]  # noqa: SLF001  (no public lookup)


@keras.saving.register_keras_serializable(package="zoo")
class SyncBatchNormalization(keras.layers.BatchNormalization):
    """BatchNormalization over the global batch of every replica, with a variance that
    stays accurate when a channel's mean is large against its spread.

    Keras' `synchronized=True` all-reduces Σx and Σx² and takes E[x²] − E[x]²: in
    float32 that cancels away a small variance under a large mean (a channel at
    1000 ± 0.01, 16 rows: 0.125 instead of 7.7e-5), and the cancellation's rounding
    differs with how the batch is split, so one replica and two gave steps 1e-3 apart.
    Here the mean is all-reduced first, then Σ(x − mean)², as `tf.nn.moments` does on
    one device: two rounds of all-reduce instead of one, and the one-process statistics
    to float32 rounding on any number of replicas. (Overrides Keras' `_moments(inputs,
    mask)`, where the layer computes its batch statistics; a masked call keeps Keras'.)
    """

    def __init__(self, **kwargs):
        kwargs.pop("synchronized", None)  # always (from_config passes it back)
        super().__init__(synchronized=True, **kwargs)

    def _moments(self, inputs, mask):
        if mask is not None:
            return super()._moments(inputs, mask)
        axes = self._reduction_axes
        replica = tf.distribute.get_replica_context()
        if replica is None:  # cross-replica context: nothing to synchronise
            return tf.nn.moments(inputs, axes)
        shape = tf.shape(inputs)
        count = tf.cast(tf.reduce_prod(tf.gather(shape, axes)), inputs.dtype)
        count = replica.all_reduce(tf.distribute.ReduceOp.SUM, count)
        total = tf.reduce_sum(inputs, axes, keepdims=True)
        mean = replica.all_reduce(tf.distribute.ReduceOp.SUM, total) / count
        # Σ(x − mean) is 0 over the global batch: the variance's gradient through the
        # mean vanishes, so the mean is a constant here, as in tf.nn.moments
        squares = tf.reduce_sum(tf.square(inputs - tf.stop_gradient(mean)), axes, keepdims=True)
        variance = replica.all_reduce(tf.distribute.ReduceOp.SUM, squares) / count
        return tf.squeeze(mean, axes), tf.squeeze(variance, axes)
