"""keras.applications ResNet weights copied into zoo trunks give the same features."""

import os

import h5py
import keras
import numpy as np
import pytest

from zoo.trunks import resnet
from zoo.trunks.imagenet import cached_file

SIZE = 64


def _randomised(model, seed):
    """Random weights everywhere, BatchNorm statistics included (nothing downloaded)."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        values = layer.get_weights()
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = values
            values = [
                rng.uniform(0.5, 1.5, gamma.shape),
                rng.normal(0, 0.1, beta.shape),
                rng.normal(0, 0.1, mean.shape),
                rng.uniform(0.5, 2.0, var.shape),
            ]
        layer.set_weights([np.asarray(v, "float32") for v in values])
    return model


def _keras_features(model, version, images):
    preprocess = keras.applications.resnet_v2 if version == 2 else keras.applications.resnet
    return model(preprocess.preprocess_input(images * 255.0), training=False)


@pytest.fixture(scope="module")
def sources():
    """Randomised keras.applications ResNet50 (v1) and ResNet50V2 without top."""
    return {
        1: _randomised(keras.applications.ResNet50(weights=None, include_top=False), 51),
        2: _randomised(keras.applications.ResNet50V2(weights=None, include_top=False), 52),
    }


@pytest.mark.parametrize("version", [1, 2])
def test_keras_model_weights_give_identical_features(sources, version):
    source = sources[version]
    trunk = resnet(50, version, weights=source, input_shape=(SIZE, SIZE, 3))
    images = np.random.default_rng(0).uniform(0, 1, (2, SIZE, SIZE, 3)).astype("float32")
    ours = trunk(images, training=False)["block4"].numpy()
    theirs = _keras_features(source, version, images).numpy()
    assert ours.shape == theirs.shape == (2, 2, 2, 2048)
    np.testing.assert_allclose(ours, theirs, atol=1e-5 * max(1.0, np.abs(theirs).max()))
    # the slim layout of the same weights is another network
    slim = resnet(50, version, input_shape=(SIZE, SIZE, 3))
    assert slim.count_params() == trunk.count_params()


def test_weights_file_imagenet_cache_and_errors(sources, tmp_path, monkeypatch):
    source = sources[2]
    path = str(tmp_path / "resnet50v2.weights.h5")
    source.save_weights(path)
    trunk = resnet(50, 2, weights=path, stop_at="block3", input_shape=(SIZE, SIZE, 3))
    images = np.random.default_rng(1).uniform(0, 1, (1, SIZE, SIZE, 3)).astype("float32")
    cut = keras.Model(source.input, source.get_layer("conv4_block6_out").output)
    theirs = cut(images * 2.0 - 1.0, training=False).numpy()
    np.testing.assert_allclose(
        trunk(images)["block3"].numpy(), theirs, atol=1e-5 * np.abs(theirs).max()
    )

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(
        FileNotFoundError,
        match=r"resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5.*nothing is downloaded",
    ):
        resnet(50, 1, weights="imagenet")
    os.makedirs(os.path.dirname(cached_file(50, 2)))
    # the cache holds Keras' legacy HDF5 weights files
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(cached_file(50, 2), "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, source)
    again = resnet(50, 2, weights="imagenet", stop_at="block3", input_shape=(SIZE, SIZE, 3))
    np.testing.assert_allclose(again(images)["block3"].numpy(), trunk(images)["block3"].numpy())

    with pytest.raises(ValueError, match="ImageNet weights need the standard widths"):
        resnet(50, 2, width_multiplier=0.5, weights=source)
    with pytest.raises(ValueError, match=r"depths \(50, 101, 152\)"):
        resnet(18, 2, weights="imagenet")
    with pytest.raises(ValueError, match="conv2_block1_preact_bn', which the trunk"):
        resnet(50, 1, weights=source)  # a v2 model's weights for a v1 trunk
