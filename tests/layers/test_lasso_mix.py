import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.layers import LassoMix
from zoo.trunks import resnet


def _units(m=3, shape=(2, 4, 4, 5), seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=shape).astype("float32") for _ in range(m)]


def _set_rows(layer, rows):
    for variable, row in zip(layer.weights, rows):
        variable.assign(np.asarray(row, "float32"))


def test_output_is_normalised_combination():
    units = _units(m=2)
    layer = LassoMix(["a", "b"], l1=0.0)
    layer(units)
    _set_rows(layer, [[3.0, 4.0], [1.0, -1.0]])
    out = layer(units)
    np.testing.assert_allclose(out["a"].numpy(), 0.6 * units[0] + 0.8 * units[1], atol=1e-6)
    s = 1 / np.sqrt(2)
    np.testing.assert_allclose(out["b"].numpy(), s * units[0] - s * units[1], atol=1e-6)
    np.testing.assert_allclose(layer.alphas(), [[0.6, 0.8], [s, -s]], atol=1e-7)


def test_rows_have_unit_norm_whatever_the_raw_values():
    layer = LassoMix(["a", "b", "c"], init="random", seed=3)
    layer(_units(m=5))
    _set_rows(layer, np.random.default_rng(1).normal(size=(3, 5)) * [[0.01], [1.0], [50.0]])
    np.testing.assert_allclose(np.linalg.norm(layer.alphas(), axis=1), 1.0, atol=1e-6)


def test_l1_penalty_on_normalised_alpha():
    units = _units(m=2)
    layer = LassoMix(["a", "b"], l1=0.25)
    inputs = [keras.Input(u.shape[1:]) for u in units]
    model = keras.Model(inputs, layer(inputs))
    _set_rows(layer, [[3.0, -4.0], [0.0, 2.0]])
    model(units)
    assert len(model.losses) == 1
    # |0.6| + |-0.8| + |0| + |1| = 2.4
    np.testing.assert_allclose(float(model.losses[0]), 0.25 * 2.4, rtol=1e-6)


def test_penalty_gradient_matches_hand_derivation():
    layer = LassoMix(["a"], l1=1.0)
    units = _units(m=4)
    layer(units)
    raw = np.array([0.5, -2.0, 1.0, 0.3])
    _set_rows(layer, [raw])
    with tf.GradientTape() as tape:
        layer(units)
        penalty = layer.losses[0]
    grad = tape.gradient(penalty, layer.weights[0]).numpy()
    # d/dα Σ|α/‖α‖| = (sign(α̂) − α̂ (α̂ · sign(α̂))) / ‖α‖
    norm = np.linalg.norm(raw)
    hat = raw / norm
    expected = (np.sign(hat) - hat * hat.dot(np.sign(hat))) / norm
    np.testing.assert_allclose(grad, expected, rtol=1e-5)


def test_inits():
    units = _units(m=4)
    uniform = LassoMix(["a", "b"])
    uniform(units)
    np.testing.assert_allclose(uniform.alphas(), np.full((2, 4), 0.5), atol=1e-7)
    last = LassoMix(["a"], init="last")
    last(units)
    np.testing.assert_allclose(last.alphas(), [[0, 0, 0, 1]])
    given = LassoMix(["a", "b"], init=[[1, 0, 0, 0], [0, 0, 2, 0]])
    given(units)
    np.testing.assert_allclose(given.alphas(), [[1, 0, 0, 0], [0, 0, 1, 0]])
    r1, r2 = LassoMix(["a"], init="random", seed=5), LassoMix(["a"], init="random", seed=5)
    r1(units), r2(units)
    np.testing.assert_array_equal(r1.alphas(), r2.alphas())
    assert np.any(r1.alphas() < 0)


def test_add_tasks_keeps_existing_rows():
    units = _units(m=3)
    layer = LassoMix(["rp", "col"], init="random", seed=1)
    layer(units)
    before = layer.alphas()
    layer.add_tasks(["imagenet"], init="last")
    assert layer.task_names == ["rp", "col", "imagenet"]
    np.testing.assert_array_equal(layer.alphas()[:2], before)
    np.testing.assert_allclose(layer.alphas()[2], [0, 0, 1])
    out = layer(units)
    assert set(out) == {"rp", "col", "imagenet"}
    np.testing.assert_allclose(out["imagenet"].numpy(), units[2], atol=1e-6)
    assert len(layer.trainable_weights) == 3
    # the config rebuilds all three rows
    clone = LassoMix.from_config(layer.get_config())
    clone(units)
    np.testing.assert_allclose(clone.alphas(), layer.alphas(), atol=1e-6)


def test_add_tasks_trains_new_row_with_frozen_trunk():
    trunk = resnet(
        26, stop_at="block3", output_stride=8, width_multiplier=0.0625, input_shape=(16, 16, 3)
    )
    taps = [trunk.output[f"block3/unit_{m}"] for m in (1, 2)]
    mix = LassoMix(["pretext"], name="lasso")
    mix(taps)
    mix.add_tasks(["eval"])
    trunk.trainable = False
    mixed = mix(taps)
    logits = keras.layers.Dense(2, name="head")(
        keras.layers.GlobalAveragePooling2D()(mixed["eval"])
    )
    model = keras.Model(trunk.input, logits)
    names = {w.path for w in model.trainable_weights}
    assert names == {"lasso/alpha_eval", "lasso/alpha_pretext", "head/kernel", "head/bias"}
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    x = np.random.default_rng(0).random((4, 16, 16, 3)).astype("float32")
    y = np.random.default_rng(1).normal(size=(4, 2)).astype("float32")
    before = mix.alphas()
    frozen = [w.numpy().copy() for w in trunk.weights]
    model.fit(x, y, epochs=1, verbose=0)
    after = mix.alphas()
    assert not np.allclose(after[1], before[1])  # eval row learns
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(frozen, trunk.weights))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(task_names=[]), "non-empty list"),
        (dict(task_names=["a", "a"]), "given twice"),
        (dict(task_names=["a"], l1=-1), "l1"),
        (dict(task_names=["a"], init="zeros"), "init"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LassoMix(**kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        LassoMix(["a"])([np.zeros((1, 2, 2, 3)), np.zeros((1, 2, 2, 4))])
    with pytest.raises(ValueError, match="shape"):
        LassoMix(["a"], init=[1.0, 2.0])(_units(m=3))
    layer = LassoMix(["a"])
    layer(_units(m=3))
    with pytest.raises(ValueError, match="given twice"):
        layer.add_tasks(["a"])


def test_serialization_inside_functional_model(tmp_path):
    trunk = resnet(
        18, stop_at="block2", output_stride=8, width_multiplier=0.125, input_shape=(16, 16, 3)
    )
    taps = [trunk.output[k] for k in ("block2/unit_1", "block2/unit_2")]
    mixed = LassoMix(["x", "y"], l1=0.01, init="random", seed=2, name="lasso")(taps)
    model = keras.Model(trunk.input, mixed)
    images = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    a, b = model(images), loaded(images)
    for k in ("x", "y"):
        np.testing.assert_allclose(a[k].numpy(), b[k].numpy(), atol=1e-6)
    np.testing.assert_array_equal(
        loaded.get_layer("lasso").alphas(), model.get_layer("lasso").alphas()
    )
    assert loaded.get_layer("lasso").get_config()["l1"] == 0.01


def _train_one_step(strategy, units, target, l1):
    with strategy.scope():
        inputs = [keras.Input(u.shape[1:]) for u in units]
        mix = LassoMix(["a", "b"], l1=l1, init="random", seed=4)
        mixed = mix(inputs)
        out = keras.layers.Add()([mixed["a"], mixed["b"]])
        model = keras.Model(inputs, out)
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit(units, target, batch_size=len(target), epochs=1, verbose=0, shuffle=False)
    return mix.alphas()


def test_mirrored_strategy_matches_single_device(mirrored):
    units = _units(m=3, shape=(4, 3, 3, 2))
    target = np.random.default_rng(9).normal(size=(4, 3, 3, 2)).astype("float32")
    single = _train_one_step(tf.distribute.get_strategy(), units, target, l1=0.5)
    assert mirrored.num_replicas_in_sync == 2
    result = _train_one_step(mirrored, units, target, l1=0.5)
    initial = LassoMix(["a", "b"], init="random", seed=4)
    initial(units)
    assert not np.allclose(single, initial.alphas())  # it trained
    np.testing.assert_allclose(result, single, atol=1e-5)
