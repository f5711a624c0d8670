"""Each hook of zoo/internals.py against the installed Keras: a release that changes
one of the private APIs it relies on fails here, by name."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo import internals
from zoo.optimizers import LARS


def _nested():
    inner = keras.Sequential(
        [keras.Input((4,)), keras.layers.Dense(3), keras.layers.BatchNormalization(name="bn_in")],
        name="inner",
    )
    images = keras.Input((4,))
    out = keras.layers.BatchNormalization(name="bn_out")(inner(images))
    return keras.Model(images, out)


def test_all_layers_lists_nested_layers_once():
    model = _nested()
    names = [layer.name for layer in internals.all_layers(model)]
    assert len(names) == len(set(names))
    assert {"inner", "bn_in", "bn_out"} <= set(names)
    assert "bn_in" not in [layer.name for layer in model.layers]  # what the public API gives


def test_state_unlocked_lets_a_built_layer_add_a_variable():
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    with pytest.raises(ValueError, match="already built"):
        layer.add_weight(shape=(2,), name="late")
    with internals.state_unlocked(layer):
        layer.add_weight(shape=(2,), name="late")
    assert [w.name for w in layer.weights][-1] == "late" and len(layer.weights) == 3
    with pytest.raises(ValueError, match="already built"):  # locked again after the block
        layer.add_weight(shape=(2,), name="later")


def test_recording_moments_sees_each_training_call_with_its_batch_statistics():
    model = _nested()
    norms = [
        ly for ly in internals.all_layers(model) if isinstance(ly, keras.layers.BatchNormalization)
    ]
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    seen = []
    with internals.recording_moments(norms, lambda *call: seen.append(call)):
        model(x, training=False)  # inference: moving statistics, nothing recorded
        assert seen == []
        model(x, training=True)
        tf.function(lambda v: model(v, training=True))(x)  # also while tracing a graph
    assert [layer.name for layer, _, _ in seen] == ["bn_in", "bn_out", "bn_in", "bn_out"]
    hidden = model.get_layer("inner").layers[0](x).numpy()  # the Dense before bn_in
    layer, mean, variance = seen[0]
    np.testing.assert_allclose(mean.numpy(), hidden.mean(0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(variance.numpy(), hidden.var(0), rtol=1e-4, atol=1e-6)
    assert all("_moments" not in vars(layer) for layer in norms)  # the class's method again
    with pytest.raises(TypeError, match="not a BatchNormalization"):
        with internals.recording_moments([model.get_layer("inner")], print):
            pass


def test_slot_of_finds_the_slot_keras_made_for_a_variable():
    variables = [keras.Variable(np.ones((2, 2), "float32")), keras.Variable(np.ones(3, "float32"))]
    optimizer = LARS()  # a Keras optimizer made with add_optimizer_variables
    optimizer.build(variables)
    slots = [internals.slot_of(optimizer, optimizer.velocities, v) for v in variables]
    assert [tuple(s.shape) for s in slots] == [(2, 2), (3,)]
    assert slots[0] is optimizer.velocities[0] and slots[1] is optimizer.velocities[1]


def _moments_seen(layer, x, strategy=None):
    """The batch mean and variance `layer` (momentum 0) normalizes `x` [N, C] with in
    training mode, on one device or split between `strategy`'s replicas: its moving
    statistics after that one call."""
    if strategy is None:
        layer(x, training=True)
    else:
        rows = tf.data.Dataset.from_tensor_slices(x).batch(len(x))
        batch = next(iter(strategy.experimental_distribute_dataset(rows)))
        strategy.run(tf.function(lambda b: layer(b, training=True)), (batch,))
    return layer.moving_mean.numpy(), layer.moving_variance.numpy()


def test_sync_batch_norm_keeps_a_small_variance_under_a_large_mean(mirrored):
    # channel 0 is 1000 ± 0.01: E[x²] − E[x]² loses it in float32; channel 1 is ordinary
    rng = np.random.default_rng(0)
    x = np.stack([1000 + 0.01 * rng.normal(size=16), rng.normal(size=16)], 1).astype("float32")
    want_mean, want_var = x.astype("float64").mean(0), x.astype("float64").var(0)
    for strategy in (None, mirrored):
        with (strategy or tf.distribute.get_strategy()).scope():
            ours = internals.SyncBatchNormalization(momentum=0.0)
            keras_own = keras.layers.BatchNormalization(momentum=0.0, synchronized=True)
            for layer in (ours, keras_own):
                layer.build(x.shape)
        mean, var = _moments_seen(ours, x, strategy)
        np.testing.assert_allclose(mean, want_mean, rtol=1e-6)
        np.testing.assert_allclose(var, want_var, rtol=1e-3)
        _, theirs = _moments_seen(keras_own, x, strategy)  # what this layer is for
        assert abs(theirs[0] - want_var[0]) > 0.5 * want_var[0]
        np.testing.assert_allclose(theirs[1], want_var[1], rtol=1e-3)
    rebuilt = internals.SyncBatchNormalization.from_config(ours.get_config())
    assert rebuilt.synchronized and rebuilt.epsilon == ours.epsilon
