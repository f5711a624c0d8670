import keras
import numpy as np
import pytest

from zoo.evaluation.protocols import coarse_targets, dense_probe, load_trunk, probe
from zoo.trunks import resnet


def _trunk():
    keras.utils.set_random_seed(0)
    return resnet(
        26,
        version=2,
        width_multiplier=0.0625,
        stop_at="block3",
        output_stride=8,
        input_shape=(48, 48, 3),
    )


def _fit(model):
    rng = np.random.default_rng(0)
    x, y = rng.random((8, 48, 48, 3)).astype("float32"), rng.integers(0, 3, 8)
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    before = [(w, w.numpy().copy()) for w in model.weights]
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    return {w.path for w, value in before if not np.array_equal(value, w.numpy())}


def test_linear_trains_only_the_linear_layer():
    model = probe(_trunk(), "linear", classes=3, endpoint="block3", pooling="max3x3")
    assert {w.path for w in model.trainable_weights} == {"probe_logits/kernel", "probe_logits/bias"}
    assert model.get_layer("probe_logits").kernel.shape == (3 * 3 * 64, 3)  # 3x3 x (16*4)
    assert _fit(model) == {"probe_logits/kernel", "probe_logits/bias"}  # BN stats frozen too


def test_lasso_linear_adds_one_trainable_row():
    model = probe(_trunk(), "lasso_linear", classes=3, lasso_block="block3")
    paths = {w.path for w in model.trainable_weights}
    assert paths == {"probe_lasso/alpha_probe", "probe_logits/kernel", "probe_logits/bias"}
    assert model.get_layer("probe_lasso").alphas().shape == (1, 2)  # ResNet-26: 2 units


def test_frozen_k_and_finetune():
    trunk = _trunk()
    model = probe(trunk, "frozen_k", classes=3, endpoint="block3", frozen_stages=2)
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable and all(p.startswith(("block3_", "probe_")) for p in trainable)
    changed = _fit(model)
    assert any(p.startswith("block3_") for p in changed)
    assert not any(p.startswith(("stem", "block1_", "block2_")) for p in changed)
    full = probe(_trunk(), "finetune", classes=3, endpoint="block3")
    assert len(full.trainable_weights) == len(_trunk().trainable_weights) + 2


def test_bad_arguments():
    with pytest.raises(ValueError, match="protocol"):
        probe(_trunk(), "knn", classes=3)
    with pytest.raises(ValueError, match="endpoint 'block4'"):
        probe(_trunk(), "linear", classes=3)
    small = resnet(18, width_multiplier=0.125, input_shape=(32, 32, 3))  # block4: 1x1
    with pytest.raises(ValueError, match="does not pool to 3x3"):
        probe(small, "linear", classes=3, endpoint="block4", pooling="max3x3")


@pytest.mark.slow
def test_load_trunk_from_an_export_keeps_endpoints_and_values(tmp_path):
    from export import export_trunk

    trunk = _trunk()
    path = export_trunk(trunk, str(tmp_path / "trunk"))
    loaded = load_trunk(path, input_shape=(48, 48, 3))
    images = np.random.default_rng(1).random((2, 48, 48, 3)).astype("float32")
    expected, got = trunk(images), loaded(images)
    assert set(expected) <= set(got)
    for key in ("block3/unit_2", "block3", "stem"):
        np.testing.assert_allclose(got[key].numpy(), expected[key].numpy(), atol=1e-4)
    model = probe(loaded, "linear", classes=3, endpoint="block3", pooling="max3x3")
    assert {w.path for w in model.trainable_weights} == {"probe_logits/kernel", "probe_logits/bias"}


def test_load_trunk_random_and_errors(tmp_path):
    trunk = load_trunk(
        "random",
        builder=lambda input_shape: resnet(18, width_multiplier=0.125, input_shape=input_shape),
        input_shape=(32, 32, 3),
    )
    assert trunk.output["block4"].shape == (None, 1, 1, 64)
    with pytest.raises(ValueError, match="needs `builder`"):
        load_trunk("random")
    with pytest.raises(FileNotFoundError, match="neither"):
        load_trunk(str(tmp_path))


def test_dense_probes():
    coarse = dense_probe(_trunk(), "linear", 11, endpoint="block3")
    assert coarse.output.shape == (None, 6, 6, 11)  # 48 / 8
    assert len(coarse.trainable_weights) == 2
    up = dense_probe(_trunk(), "finetune", 1, endpoint="block3", decoder="up_projection")
    assert up.output.shape == (None, 48, 48, 1)  # three 2x blocks from 6x6
    with pytest.raises(ValueError, match="dense_probe"):
        dense_probe(_trunk(), "lasso_linear", 1, endpoint="block3")


def test_coarse_targets():
    depth = np.arange(16, dtype="float32").reshape(1, 4, 4)
    np.testing.assert_allclose(
        coarse_targets(depth, 2, "depth").numpy()[0], [[2.5, 4.5], [10.5, 12.5]]
    )
    labels = np.array([[[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]], "int32")
    np.testing.assert_array_equal(coarse_targets(labels, 2, "labels").numpy()[0], [[1, 2], [3, 4]])


def test_recompute_batch_norm_averages_the_batch_statistics():
    import keras

    from zoo.evaluation.protocols import recompute_batch_norm

    inputs = keras.Input((3,))
    trained = keras.layers.BatchNormalization(name="trained")
    frozen = keras.layers.BatchNormalization(name="frozen")
    frozen.trainable = False
    model = keras.Model(inputs, frozen(trained(inputs)))
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(40, 3)).astype("float32")
    assert recompute_batch_norm(model, x, batch_size=10) == 1
    batches = x.reshape(4, 10, 3)
    np.testing.assert_allclose(trained.moving_mean.numpy(), batches.mean(1).mean(0), rtol=1e-5)
    np.testing.assert_allclose(trained.moving_variance.numpy(), batches.var(1).mean(0), rtol=1e-4)
    np.testing.assert_array_equal(frozen.moving_mean.numpy(), np.zeros(3))
    assert trained.momentum == 0.99
