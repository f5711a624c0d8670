"""Every use of Keras' private API in the zoo, each behind one function.

Keras has no public way to do these three things; each function names what it relies
on, and `tests/test_internals.py` checks each against the installed Keras, so a release
that changes one fails those tests by name instead of silently changing results
(`setup.cfg` caps Keras and TensorFlow to the tested minor versions).
"""

import contextlib

import keras


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
