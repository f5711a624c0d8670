import keras
import numpy as np

from zoo.layers import Unpool2D, up_projection, up_projection_decoder


def test_unpool_places_values_top_left():
    x = np.arange(2 * 2 * 3 * 2, dtype="float32").reshape(2, 2, 3, 2)
    y = Unpool2D()(x).numpy()
    assert y.shape == (2, 4, 6, 2)
    np.testing.assert_array_equal(y[:, ::2, ::2], x)
    mask = np.ones((4, 6), bool)
    mask[::2, ::2] = False
    assert np.all(y[:, mask] == 0)


def test_up_projection_shape_and_parameters():
    inputs = keras.Input((5, 7, 8))
    model = keras.Model(inputs, up_projection(inputs, 4, "up"))
    assert model.output.shape == (None, 10, 14, 4)
    convs = (25 * 8 * 4 + 4) + (9 * 4 * 4 + 4) + (25 * 8 * 4 + 4)
    assert model.count_params() == convs + 3 * 4 * 4  # three BatchNorms


def test_decoder_of_doersch_and_zisserman():
    inputs = keras.Input((6, 6, 1024))
    out = up_projection_decoder(inputs, 1)
    assert out.shape == (None, 48, 48, 1)
    model = keras.Model(inputs, out)
    widths = [layer.filters for layer in model.layers if layer.name.endswith("_conv1")]
    assert widths == [512, 256, 128]


def test_serialization(tmp_path):
    inputs = keras.Input((3, 3, 2))
    model = keras.Model(inputs, Unpool2D(name="unpool")(inputs))
    model.save(str(tmp_path / "m.keras"))
    loaded = keras.models.load_model(str(tmp_path / "m.keras"))
    x = np.random.default_rng(0).random((1, 3, 3, 2)).astype("float32")
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
