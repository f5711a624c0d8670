"""Augmentation steps and views: shapes, seeds, probabilities, against hand computation."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.data import augment
from zoo.errors import UserError


def _image(size=32, seed=0):
    return tf.constant(np.random.default_rng(seed).random((size, size, 3)), tf.float32)


def _seed(k):
    return tf.constant([k, 7], tf.int64)


def test_views_are_seeded_and_differ_between_views_and_seeds():
    views = augment.moco_v2_views()
    image = _image()
    a, b = views(image, _seed(1)), views(image, _seed(1))
    assert a.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(a.numpy(), b.numpy())  # same seed, same views
    assert np.abs(a[0] - a[1]).mean() > 0.01  # the two views differ
    assert np.abs(a.numpy() - views(image, _seed(2)).numpy()).mean() > 0.01
    assert 0.0 <= a.numpy().min() and a.numpy().max() <= 1.0


def test_random_resized_crop_of_the_whole_image_is_the_image():
    image = _image(16)
    whole = augment.RandomResizedCrop(scale=(1.0, 1.0), ratio=(1.0, 1.0))
    np.testing.assert_allclose(whole.crop(image, _seed(0)).numpy(), image.numpy(), atol=1e-5)
    # a quarter of the area, resized to 8 px: a 8x8 crop at an integer place
    small = augment.RandomResizedCrop(size=8, scale=(0.25, 0.25), ratio=(1.0, 1.0))
    out = small.crop(image, _seed(3)).numpy()
    windows = [image.numpy()[t : t + 8, left : left + 8] for t in range(9) for left in range(9)]
    assert min(np.abs(out - w).max() for w in windows) < 1e-5


def test_fixed_offset_crops_are_the_offset_apart():
    image = tf.reshape(tf.range(40 * 40 * 3, dtype=tf.float32), (40, 40, 3))
    crops = augment.FixedOffsetCrops(size=(16, 20), offset=4).crops(
        image, tf.random.split(_seed(5), 3)
    )
    assert crops.shape == (3, 16, 20, 3)
    corners = []
    for crop in crops.numpy():
        index = int(crop[0, 0, 0]) // 3
        corners.append((index // 40, index % 40))
    for (t0, l0), (t1, l1) in zip(corners, corners[1:]):
        assert abs(t1 - t0) == 4 and abs(l1 - l0) == 4
    with pytest.raises(ValueError, match="do not fit"):
        augment.FixedOffsetCrops(size=48).crops(image, tf.random.split(_seed(0), 2))


def test_flip_and_grayscale_are_exact_at_probability_one_and_identity_at_zero():
    image = _image(8)
    np.testing.assert_array_equal(
        augment.HorizontalFlip(1.0)(image, _seed(0)).numpy(), image.numpy()[:, ::-1]
    )
    np.testing.assert_array_equal(augment.HorizontalFlip(0.0)(image, _seed(0)), image)
    gray = augment.Grayscale(1.0)(image, _seed(0)).numpy()
    luma = image.numpy() @ np.array([0.2989, 0.587, 0.114])
    np.testing.assert_allclose(gray, np.repeat(luma[..., None], 3, -1), atol=2e-3)
    np.testing.assert_array_equal(augment.ColorJitter(p=0.0)(image, _seed(0)), image)


def test_probability_is_the_share_of_images_changed():
    image = _image(8)
    flip = augment.HorizontalFlip(0.3)
    flipped = [not np.array_equal(flip(image, _seed(k)).numpy(), image.numpy()) for k in range(400)]
    assert abs(np.mean(flipped) - 0.3) < 0.07


def test_gaussian_blur_matches_a_numpy_convolution():
    image = _image(12)
    sigma, radius = 1.3, 3
    x = np.arange(-radius, radius + 1)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    w /= w.sum()
    padded = np.pad(image.numpy(), [(radius, radius), (radius, radius), (0, 0)], mode="reflect")
    rows = sum(w[i] * padded[i : i + 12] for i in range(2 * radius + 1))
    expected = sum(w[i] * rows[:, i : i + 12] for i in range(2 * radius + 1))
    got = augment.gaussian_blur(image, sigma, radius).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    # a constant image stays constant
    flat = tf.fill((12, 12, 3), 0.4)
    np.testing.assert_allclose(augment.gaussian_blur(flat, 2.0, 3).numpy(), 0.4, atol=1e-6)

    # a fixed radius (MGM's 3x3 kernel): the step blurs with radius 1 at any sigma
    step = augment.GaussianBlur(sigma=(1.3, 1.3), p=1.0, reference_size=None, radius=1)
    want = augment.gaussian_blur(image, 1.3, 1).numpy()
    np.testing.assert_allclose(step(image, _seed(0)).numpy(), want, atol=1e-6)
    assert step.get_config()["radius"] == 1 and "radius" not in augment.GaussianBlur().get_config()
    with pytest.raises(ValueError, match="GaussianBlur: `radius` must be an int >= 1 or None"):
        augment.GaussianBlur(radius=0)


def test_mgm_views_are_the_code_s_simclr_augmentation():
    views = augment.mgm_views()
    assert views.count == 2 and views.crop.scale == (0.08, 1.0)
    jitter, gray, blur, flip = views.steps
    assert (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == (
        0.8,
        0.8,
        0.8,
        0.2,
    )
    assert jitter.p == 0.8 and gray.p == 0.2 and flip.p == 0.5
    assert blur.sigma == (0.01, 1.0) and blur.radius == 1 and blur.p == 0.5
    out = views(_image(32), _seed(1))
    assert out.shape[0] == 2


def test_color_jitter_keeps_the_range_and_changes_colours():
    image = _image(16)
    out = augment.ColorJitter(p=1.0).jitter(image, _seed(4)).numpy()
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.abs(out - image.numpy()).mean() > 0.01


def test_views_in_a_dataset_and_config_round_trip():
    views = augment.Views(
        augment.FixedOffsetCrops(size=24, offset=4),
        [augment.HorizontalFlip(), augment.ColorJitter(0.2, 0.2, 0.2, 0.05)],
        count=3,
    )
    rebuilt = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(views))
    assert rebuilt == views and rebuilt.output_size(32) == (24, 24)
    ds = tf.data.Dataset.from_tensor_slices(tf.stack([_image(32, 0), _image(32, 1)]))
    ds = tf.data.Dataset.zip(ds, tf.data.Dataset.random(seed=1).batch(2))
    out = [v.numpy() for v in ds.map(views)]
    assert out[0].shape == (3, 24, 24, 3)
    with pytest.raises(ValueError, match="count"):
        augment.Views(count=0)
    with pytest.raises(ValueError, match="probability"):
        augment.Grayscale(1.5)
    with pytest.raises(ValueError, match="scale"):
        augment.RandomResizedCrop(scale=(0.5, 0.2))


def _scene(size=16, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "image": _image(size, seed),
        "depth": tf.constant(rng.uniform(1, 5, (size, size)), tf.float32),
        "semantics": tf.constant(rng.integers(0, 5, (size, size)), tf.int32),
        "normals": tf.constant(rng.normal(size=(size, size, 3)), tf.float32),
        "scene": tf.constant(3),
    }


def test_scale_crop_flip_moves_the_image_and_its_maps_alike():
    scene = _scene()
    same = augment.ScaleCropFlip(scales=(1.0,), flip=0.0)(scene, _seed(0))
    for key in scene:
        np.testing.assert_array_equal(same[key].numpy(), scene[key].numpy())
    mirror = augment.ScaleCropFlip(scales=(1.0,), flip=1.0)(scene, _seed(0))
    np.testing.assert_array_equal(mirror["semantics"].numpy(), scene["semantics"].numpy()[:, ::-1])
    normals = scene["normals"].numpy()[:, ::-1] * [-1.0, 1.0, 1.0]  # x points the other way
    np.testing.assert_array_equal(mirror["normals"].numpy(), normals)

    # x2: a 16 px crop of the maps upsampled with the nearest pixel, one place for all
    found = set()
    for k in range(6):
        out = augment.ScaleCropFlip(scales=(2.0,), flip=0.0)(scene, _seed(k))
        big = {
            key: np.repeat(np.repeat(scene[key].numpy(), 2, 0), 2, 1)
            for key in ("depth", "semantics")
        }
        corners = [
            (y, x)
            for y in range(17)
            for x in range(17)
            if np.array_equal(out["semantics"].numpy(), big["semantics"][y : y + 16, x : x + 16])
            and np.array_equal(out["depth"].numpy(), big["depth"][y : y + 16, x : x + 16])
        ]
        assert corners, k
        found.add(corners[0])
    assert len(found) > 1  # the place is random

    # pad 0.25: a 16 px window of the scene with 4 px of padding on every side
    padded = {
        "semantics": np.pad(scene["semantics"].numpy(), 4, constant_values=255),
        "depth": np.pad(scene["depth"].numpy(), 4),
    }
    found = set()
    for k in range(6):
        out = augment.ScaleCropFlip(scales=(1.0,), flip=0.0, pad=0.25)(scene, _seed(k))
        corners = [
            (y, x)
            for y in range(9)
            for x in range(9)
            if all(
                np.array_equal(out[key].numpy(), padded[key][y : y + 16, x : x + 16])
                for key in padded
            )
        ]
        assert corners, k
        found.add(corners[0])
    assert len(found) > 1 and found != {(4, 4)}

    # x0.5: the scaled scene at the top left, padded: image and depth with 0, labels 255
    half = augment.ScaleCropFlip(scales=(0.5,), flip=0.0)(scene, _seed(0))
    assert (half["semantics"].numpy()[8:] == 255).all() and (
        half["depth"].numpy()[:, 8:] == 0
    ).all()
    assert (half["semantics"].numpy()[:8, :8] < 5).all() and half["depth"].numpy()[
        :8, :8
    ].min() >= 1
    small = tf.image.resize(scene["image"], [8, 8], method="bilinear").numpy()
    np.testing.assert_allclose(half["image"].numpy()[:8, :8], small, atol=1e-6)
    assert int(half["scene"]) == 3


def test_scale_crop_flip_to_a_size_and_the_held_out_centre():
    """With a (height, width) `size`: training crops of that size from the scaled scene,
    held-out examples cropped at their centre (NYUD's 425x560 of 480x640), padded where
    the size is larger."""
    scene = _scene()  # 16 x 16
    step = augment.ScaleCropFlip(scales=(1.0,), flip=0.0, size=(10, 16))
    corners = set()
    for k in range(8):
        out = step(scene, _seed(k))
        assert out["image"].shape == (10, 16, 3) and out["normals"].shape == (10, 16, 3)
        rows = [
            y
            for y in range(7)
            if np.array_equal(out["semantics"].numpy(), scene["semantics"].numpy()[y : y + 10])
            and np.array_equal(out["depth"].numpy(), scene["depth"].numpy()[y : y + 10])
        ]
        assert rows, k
        corners.add(rows[0])
    assert len(corners) > 1
    held = step.heldout(scene)
    for key in ("image", "depth", "semantics", "normals"):
        np.testing.assert_array_equal(held[key].numpy(), scene[key].numpy()[3:13])
    assert int(held["scene"]) == 3
    larger = augment.ScaleCropFlip(size=(20, 16)).heldout(scene)
    np.testing.assert_array_equal(larger["depth"].numpy()[:16], scene["depth"].numpy())
    assert (larger["semantics"].numpy()[16:] == 255).all() and (
        larger["depth"].numpy()[16:] == 0
    ).all()
    assert augment.ScaleCropFlip().heldout(scene) is scene  # no size: unchanged
    with pytest.raises(UserError, match=r"\(height, width\)"):
        augment.ScaleCropFlip(size=(10, 0))


def test_a_dense_task_augments_its_training_examples_only():
    from zoo.data.synthetic import SceneSpec
    from zoo.tasks import Depth

    spec = SceneSpec(variant="----", mode="multi", resolution=32)
    task = Depth(
        spec,
        num_examples=8,
        eval_examples=4,
        augment=augment.ScaleCropFlip(scales=(0.5,), flip=0.0),
    )
    train = next(iter(task.pipeline("train", 4)))[1].numpy()
    held = next(iter(task.pipeline("eval", 4)))[1].numpy()
    assert (train[:, 16:] == 0).all() and (train[:, :16, :16] > 0).mean() > 0.99
    assert (held > 0).mean() > 0.99
    again = type(task).from_config(task.get_config())
    assert again.augment == task.augment

    # steps on the harmonized image alone (Newell & Deng's Cutout): the maps stay
    cut = augment.Views(crop=None, steps=[augment.Cutout(0.5)], count=1)
    plain = Depth(spec, num_examples=8, eval_examples=4)
    cutout = Depth(spec, num_examples=8, eval_examples=4, image_augment=cut)
    (x, y), (x_cut, y_cut) = (next(iter(t.pipeline("train", 4))) for t in (plain, cutout))
    np.testing.assert_array_equal(y_cut.numpy(), y.numpy())
    changed = np.any(x_cut.numpy() != x.numpy(), axis=-1)  # [4, 32, 32]
    assert (x_cut.numpy()[changed] == 0).all()
    for rows, cols in (np.nonzero(c) for c in changed):  # inside one 16 x 16 square
        assert rows.max() - rows.min() < 16 and cols.max() - cols.min() < 16
    assert changed.sum() > 4 * 100
    assert type(cutout).from_config(cutout.get_config()).image_augment == cut


def test_newell_and_deng_steps_as_the_authors_code_draws_them():
    """Channel jitter (x 2^N(0, .25²) + N(0, .25²) per channel), Cutout (a res / 4
    square of zeros inside the image), pad-and-crop (res / 8 of zeros, a random window;
    sometimes unchanged) and the channels' mean as grey."""
    image = _image(16, 0)
    out = augment.ChannelJitter(p=1.0)(image, _seed(3)).numpy()
    x = image.numpy()
    factor = (out[0, 0] - out[5, 7]) / (x[0, 0] - x[5, 7])
    np.testing.assert_allclose(
        out - x * factor, np.broadcast_to(out[0, 0] - x[0, 0] * factor, x.shape), atol=1e-5
    )
    assert (factor > 0).all() and not np.allclose(factor, 1.0)
    np.testing.assert_array_equal(augment.ChannelJitter(p=0.0)(image, _seed(3)), image)

    ones = tf.ones((16, 12, 3))
    for k in range(5):
        cut = augment.Cutout()(ones, _seed(k)).numpy()
        rows, cols = np.nonzero(cut[..., 0] == 0)
        assert len(rows) == 9  # 0.25 x 12 = 3: a 3 x 3 square
        assert rows.max() - rows.min() == 2 and cols.max() - cols.min() == 2
        assert (cut[rows, cols] == 0).all()

    shifts = set()
    for k in range(12):
        moved = augment.PadCrop(unchanged=0.0)(ones, _seed(k)).numpy()[..., 0]
        rows, cols = np.nonzero(moved)
        assert (
            moved.shape == (16, 12)
            and moved[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1].all()
        )
        # at most 2 px (0.125 x 16) of zeros on a side
        assert 14 <= len(set(rows)) <= 16 and 10 <= len(set(cols)) <= 12
        shifts.add((rows.min(), cols.min(), rows.max(), cols.max()))
    assert len(shifts) > 3
    np.testing.assert_array_equal(augment.PadCrop(unchanged=1.0)(image, _seed(0)), image)

    grey = augment.Grayscale(p=1.0, mode="mean")(image, _seed(0)).numpy()
    np.testing.assert_allclose(grey, np.repeat(x.mean(-1, keepdims=True), 3, -1), atol=1e-6)
    assert augment.Grayscale().get_config() == {"p": 0.2}  # earlier configs unchanged
