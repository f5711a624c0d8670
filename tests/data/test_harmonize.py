import numpy as np
import pytest
import tensorflow as tf
from skimage import color

from zoo.data import harmonize as h


def _images(shape=(3, 16, 16, 3), seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random(shape).astype("float32")
    first = x.reshape(-1, *shape[-3:])[0]
    first[0, 0] = [0.0, 0.0, 0.0]
    first[0, 1] = [1.0, 1.0, 1.0]
    first[0, 2] = [0.01, 0.02, 0.03]  # the linear segments of sRGB and of Lab's f
    return x


def test_rgb_to_lab_matches_skimage():
    x = _images()
    np.testing.assert_allclose(
        h.rgb_to_lab(x).numpy(), color.rgb2lab(x.astype("float64")), atol=1e-3
    )
    assert h.rgb_to_lab(x).numpy()[0, 0, 1, 0] == pytest.approx(100.0, abs=1e-3)


def test_lab_to_rgb_matches_skimage_and_round_trips():
    x = _images(seed=1)
    lab = color.rgb2lab(x.astype("float64"))
    np.testing.assert_allclose(h.lab_to_rgb(lab).numpy(), color.lab2rgb(lab), atol=1e-4)
    np.testing.assert_allclose(h.lab_to_rgb(h.rgb_to_lab(x)).numpy(), x, atol=1e-4)


def test_lab_l3_is_lightness_on_three_equal_channels():
    x = _images()
    out = h.lab_l3(x).numpy()
    assert out.shape == x.shape
    np.testing.assert_array_equal(out[..., 0], out[..., 1])
    np.testing.assert_array_equal(out[..., 0], out[..., 2])
    np.testing.assert_allclose(
        out[..., 0], color.rgb2lab(x.astype("float64"))[..., 0] / 100, atol=1e-5
    )


def test_lab_is_every_channel_scaled_as_newell_and_deng_do():
    x = _images(seed=2)
    expected = color.rgb2lab(x.astype("float64")) / [100.0, 110.0, 110.0]
    np.testing.assert_allclose(h.lab(x).numpy(), expected, atol=1e-5)
    assert h.harmonizer("lab") is h.lab and h.served(["lab", "lab"]) == "lab"


def test_drop_color_keeps_one_channel_and_fills_others_with_small_noise():
    x = _images(shape=(64, 24, 24, 3), seed=2)
    out = h.drop_color(x, tf.constant([4, 2])).numpy()
    kept_counts = np.zeros(3)
    for image, result in zip(x, out):
        kept = [c for c in range(3) if np.array_equal(image[..., c], result[..., c])]
        assert len(kept) == 1
        k = kept[0]
        kept_counts[k] += 1
        for c in set(range(3)) - {k}:
            assert result[..., c].mean() == pytest.approx(image[..., k].mean(), abs=2e-3)
            assert result[..., c].std() == pytest.approx(0.01 * image[..., k].std(), rel=0.2)
    assert kept_counts.min() >= 8  # each channel is drawn (64 images, 1/3 each)


def test_replicate_channel_copies_one_input_channel():
    x = _images(shape=(30, 8, 8, 3), seed=3)
    out = h.replicate_channel(x, tf.constant([0, 7])).numpy()
    chosen = []
    for image, result in zip(x, out):
        assert np.array_equal(result[..., 0], result[..., 1])
        assert np.array_equal(result[..., 0], result[..., 2])
        chosen += [c for c in range(3) if np.array_equal(result[..., 0], image[..., c])]
    assert len(chosen) == 30 and set(chosen) == {0, 1, 2}


def test_single_image_and_seed_determinism():
    x = _images(shape=(16, 16, 3))
    a = h.drop_color(x, tf.constant([1, 1])).numpy()
    b = h.drop_color(x, tf.constant([1, 1])).numpy()
    c = h.drop_color(x, tf.constant([1, 2])).numpy()
    assert a.shape == (16, 16, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_harmonize_dataset_is_deterministic_and_seeds_each_element():
    x = _images(shape=(12, 8, 8, 3), seed=5)
    ds = tf.data.Dataset.from_tensor_slices({"image": x, "label": np.arange(12)})
    run = lambda seed: np.stack(  # noqa: E731
        [e["image"].numpy() for e in h.harmonize_dataset(ds, h.replicate_channel, seed)]
    )
    first, again, other = run(3), run(3), run(4)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    chosen = {
        int(np.argmin([np.abs(f[..., 0] - i[..., c]).max() for c in range(3)]))
        for f, i in zip(first, x)
    }
    assert len(chosen) > 1  # elements do not share one seed
    labels = [int(e["label"]) for e in h.harmonize_dataset(ds, h.lab_l3, 0)]
    assert labels == list(range(12))


def test_harmonizer_by_name():
    assert h.harmonizer() is h.identity
    assert h.harmonizer("lab_l3") is h.lab_l3
    with pytest.raises(ValueError, match="lab_l3"):
        h.harmonizer("sepia")


def test_works_in_graph_mode():
    fn = tf.function(
        lambda x, s: h.drop_color(x, s),
        input_signature=[tf.TensorSpec([None, None, None, 3]), tf.TensorSpec([2], tf.int64)],
    )
    out = fn(_images(), tf.constant([1, 2], tf.int64))
    assert out.shape == (3, 16, 16, 3)


def test_bad_shape():
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        h.replicate_channel(np.zeros((4, 4, 4), "float32"), tf.constant([0, 0]))
