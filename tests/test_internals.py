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
