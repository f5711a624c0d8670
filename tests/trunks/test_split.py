"""CMC's trunks: ResNet-9's "half" widths and a trunk per group of channels."""

import keras
import numpy as np
import pytest

from zoo.errors import UserError
from zoo.trunks import channel_split, resnet9


def _half(**kwargs):
    # Newell & Deng's half ResNet-9 (the authors' code): block 2 and the residual units'
    # first convolutions halved, the stem and block 3 kept
    return resnet9(widths=[64, 128, 128, 512], inner_widths=(64, 256), **kwargs)


def test_the_half_resnet9_and_the_pair_have_about_one_full_networks_parameters():
    full = resnet9(input_shape=(32, 32, 3))
    pair = channel_split(_half, input_shape=(32, 32, 3))
    assert 0.9 < pair.count_params() / full.count_params() < 1.1  # 1.01
    assert tuple(pair.output["block3"].shape) == (None, 4, 4, 1024)  # both halves
    assert tuple(pair.output["l/block3"].shape) == (None, 4, 4, 512)
    assert tuple(pair.get_layer("channel_split_l").input.shape) == (None, 32, 32, 1)
    assert tuple(pair.get_layer("channel_split_ab").input.shape) == (None, 32, 32, 2)
    unit = pair.get_layer("channel_split_ab").get_layer("block1_unit_1_1_conv")
    assert unit.kernel.shape[-1] == 64  # the inner width


def test_each_trunk_sees_only_its_channels_and_the_joined_map_is_theirs():
    keras.utils.set_random_seed(0)
    pair = channel_split(lambda **k: resnet9(width_multiplier=0.125, **k), input_shape=(16, 16, 3))
    images = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")
    out = pair(images)
    changed = images.copy()
    changed[..., 1:] = 0.0  # ab changes: L's half is untouched
    again = pair(changed)
    np.testing.assert_allclose(out["l/block3"], again["l/block3"], atol=1e-6)
    assert not np.allclose(out["ab/block3"], again["ab/block3"])
    joined = np.concatenate([out["l/block3"], out["ab/block3"]], axis=-1)
    np.testing.assert_allclose(out["block3"], joined, atol=1e-6)
    rebuilt = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(pair))
    rebuilt.set_weights(pair.get_weights())
    np.testing.assert_array_equal(rebuilt(images)["block3"], out["block3"])
    with pytest.raises(UserError, match="splits"):
        channel_split(resnet9, splits=((0,), (3,)))
    with pytest.raises(UserError, match="inner_widths"):
        resnet9(inner_widths=(64,))
