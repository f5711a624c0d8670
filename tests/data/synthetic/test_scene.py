import colorsys
import json

import numpy as np
import pytest

from zoo.data import read_tfrecords
from zoo.data.synthetic import CLASSES, POSE_BINS, SceneSpec, describe, generate
from zoo.data.synthetic.io import dataset, write_tfrecords
from zoo.data.synthetic.objects import MODELS_PER_CLASS, model_ids
from zoo.data.synthetic.scene import render


def _backproject(depth, focal):
    s = depth.shape[0]
    coords = np.arange(s) + 0.5 - 0.5 * s
    u, v = np.meshgrid(coords, coords)
    return np.stack([u / focal * depth, -v / focal * depth, depth], axis=-1)


def _neighbour_differs(ids):
    padded = np.pad(ids, 1, mode="edge")
    centre = padded[1:-1, 1:-1]
    return (
        (padded[:-2, 1:-1] != centre)
        | (padded[2:, 1:-1] != centre)
        | (padded[1:-1, :-2] != centre)
        | (padded[1:-1, 2:] != centre)
    )


@pytest.mark.parametrize("variant", ["----", "TCVL"])
def test_normals_are_unit_and_agree_with_depth(variant):
    spec = SceneSpec(variant=variant, mode="multi", resolution=96)
    agree, total = np.zeros(2), np.zeros(2)  # (all interior pixels, object pixels only)
    for index in range(4):
        ex = generate(spec, index)
        np.testing.assert_allclose(np.linalg.norm(ex["normals"], axis=-1), 1.0, atol=1e-5)
        points = _backproject(ex["depth"].astype(np.float64), describe(spec, index)["focal"])
        du = points[1:-1, 2:] - points[1:-1, :-2]
        dv = points[2:, 1:-1] - points[:-2, 1:-1]
        estimate = np.cross(dv, du)
        estimate /= np.linalg.norm(estimate, axis=-1, keepdims=True)
        normals = ex["normals"][1:-1, 1:-1]
        cosine = np.abs(np.sum(estimate * normals, axis=-1))
        # interior: the 3x3 neighbourhood is one instance and the depth is smooth there
        # (no crease or step between parts: small second differences)
        z = ex["depth"].astype(np.float64)
        curvature = np.maximum(
            np.abs(z[1:-1, 2:] - 2 * z[1:-1, 1:-1] + z[1:-1, :-2]),
            np.abs(z[2:, 1:-1] - 2 * z[1:-1, 1:-1] + z[:-2, 1:-1]),
        )
        interior = ~_neighbour_differs(ex["instances"])[1:-1, 1:-1]
        interior &= curvature < 0.01 * z[1:-1, 1:-1]
        on_object = interior & (ex["instances"][1:-1, 1:-1] > 0)
        agree += [np.sum(cosine[interior] > 0.9), np.sum(cosine[on_object] > 0.9)]
        total += [interior.sum(), on_object.sum()]
        # rendered normals face the camera
        assert np.all(np.sum(ex["normals"] * points, axis=-1) < 1e-3)
    assert total[0] > 20000 and total[1] > 1000
    assert np.all(agree / total > 0.95), agree / total


def test_contours_lie_exactly_on_instance_boundaries():
    spec = SceneSpec(variant="TCVL", mode="multi", resolution=64)
    for index in range(5):
        ex = generate(spec, index)
        np.testing.assert_array_equal(
            ex["contours"].astype(bool), _neighbour_differs(ex["instances"])
        )
        assert ex["contours"].sum() > 0


def test_semantics_equal_the_class_of_each_instance():
    spec = SceneSpec(variant="-C-L", mode="multi", resolution=64)
    for index in range(5):
        desc = describe(spec, index)
        ex = generate(spec, index)
        assert np.all(ex["semantics"][ex["instances"] == 0] == 0)
        for k, obj in enumerate(desc["objects"], start=1):
            values = np.unique(ex["semantics"][ex["instances"] == k])
            assert values.tolist() in ([], [obj["class_id"] + 1])
        lo, hi = spec.num_objects
        assert lo <= len(desc["objects"]) <= hi


def test_class_and_pose_frequencies_are_uniform():
    spec = SceneSpec(variant="TCVL", mode="single")
    labels = np.array([(d["label"], d["pose"]) for d in (describe(spec, i) for i in range(3000))])
    classes = np.bincount(labels[:, 0], minlength=10)
    poses = np.bincount(labels[:, 1], minlength=5)
    assert np.all(np.abs(classes - 300) < 60), classes  # ±20% (3.5 binomial std)
    assert np.all(np.abs(poses - 600) < 90), poses
    for index in range(5):  # rendered labels are the described ones
        ex = generate(spec, index)
        assert (int(ex["label"]), int(ex["pose"])) == tuple(labels[index])


def _mean_hue(spec, index):
    desc = describe(spec, index)
    maps = render(desc, spec.size, shadows=False)
    mean = maps["image"][maps["instances"] == 1].mean(axis=0)
    return colorsys.rgb_to_hsv(*mean)[0], desc["label"]


def _nearest_hue_accuracy(variant, n=300):
    spec = SceneSpec(variant=variant, mode="single", resolution=32)
    hues, labels = np.array([_mean_hue(spec, i) for i in range(n)]).T
    labels = labels.astype(int)
    train, test = slice(0, n // 2), slice(n // 2, n)
    angles = np.exp(2j * np.pi * hues)
    means = np.array([np.angle(angles[train][labels[train] == c].mean()) for c in range(10)])
    distance = np.abs(np.angle(angles[test][:, None] * np.exp(-1j * means)[None]))
    return np.mean(distance.argmin(axis=1) == labels[test])


def test_class_hue_is_predictable_only_without_random_colours():
    assert _nearest_hue_accuracy("----") > 0.6
    assert _nearest_hue_accuracy("-C--") < 0.25  # chance is 0.1


def test_train_and_test_models_are_disjoint():
    for c in range(len(CLASSES)):
        train, test = set(model_ids(c, "train")), set(model_ids(c, "test"))
        assert not train & test
        assert train | test == set(range(MODELS_PER_CLASS))
        assert len(train) == 40
    spec = SceneSpec(variant="----", mode="single", split="test")
    for index in range(20):
        ex = generate(spec, index)
        assert int(ex["model"]) in set(model_ids(int(ex["label"]), "test"))


def test_generate_is_deterministic_and_variants_share_content():
    spec = SceneSpec(variant="TCVL", mode="multi", resolution=48, seed=3)
    a, b = generate(spec, 7), generate(spec, 7)
    for key in a:
        assert a[key].tobytes() == b[key].tobytes()
    other = generate(spec, 8)
    assert not np.array_equal(a["image"], other["image"])
    easy = SceneSpec(variant="----", mode="multi", resolution=48, seed=3)
    np.testing.assert_array_equal(generate(easy, 7)["scene"], a["scene"])
    single = [SceneSpec(variant=v, mode="single") for v in ("----", "TCVL")]
    assert [describe(s, 11)["label"] for s in single][0] == describe(single[1], 11)["label"]


def test_motion_mask_marks_moving_objects_of_frame_one():
    spec = SceneSpec(variant="----", mode="motion", resolution=64)
    for index in range(3):
        desc = describe(spec, index)
        ex = generate(spec, index)
        maps = render(desc, spec.size)
        moving = np.flatnonzero(desc["moving"]) + 1
        np.testing.assert_array_equal(ex["motion"].astype(bool), np.isin(maps["instances"], moving))
        assert desc["moving"].any()
        if ex["motion"].any():
            changed = np.abs(ex["image"] - ex["next_image"]).sum(-1) > 1e-6
            assert changed[ex["motion"] > 0].mean() > 0.3
        assert ex["image"].shape == ex["next_image"].shape == (64, 64, 3)


def test_dataset_matches_generate_in_order():
    spec = SceneSpec(variant="TC--", mode="multi", resolution=32)
    items = list(dataset(spec, 4, start=2))
    for offset, item in enumerate(items):
        ex = generate(spec, 2 + offset)
        assert set(item) == set(ex)
        for key in ex:
            np.testing.assert_array_equal(item[key].numpy(), ex[key])


def test_tfrecords_round_trip(tmp_path):
    spec = SceneSpec(variant="TCVL", mode="multi", resolution=32)
    out = str(tmp_path / "syn")
    paths = write_tfrecords(spec, 5, out, shards=2)
    assert len(paths) == 2
    info = json.load(open(tmp_path / "syn" / "spec.json"))
    assert info["num"] == 5 and info["spec"]["variant"] == "TCVL"
    for index, got in enumerate(read_tfrecords(out)):
        ex = generate(spec, index)
        np.testing.assert_allclose(got["image"].numpy(), ex["image"], atol=0.5 / 255 + 1e-6)
        np.testing.assert_array_equal(got["depth"].numpy(), ex["depth"])
        np.testing.assert_array_equal(got["instances"].numpy(), ex["instances"])
    with pytest.raises(FileExistsError, match="overwrite"):
        write_tfrecords(spec, 2, out)


def test_supersampling_smooths_edges_only():
    plain = generate(SceneSpec(variant="----", mode="single"), 3)["image"]
    smooth = generate(SceneSpec(variant="----", mode="single", supersample=True), 3)["image"]
    difference = np.abs(plain - smooth).max(axis=-1)
    assert difference.max() > 0.05  # edges change
    assert np.median(difference) < 1e-3  # flat regions do not


def test_shadows_darken_some_background():
    lit = generate(SceneSpec(variant="----", mode="multi", resolution=64, shadows=False), 0)
    shaded = generate(SceneSpec(variant="----", mode="multi", resolution=64), 0)
    darker = (lit["image"] - shaded["image"]).sum(-1) > 0.05
    assert darker.sum() > 10
    assert np.all(shaded["image"] <= lit["image"] + 1e-6)


def test_single_mode_image_and_labels():
    spec = SceneSpec(variant="----", mode="single")
    ex = generate(spec, 0)
    assert ex["image"].shape == (64, 64, 3) and ex["image"].dtype == np.float32
    assert 0.0 <= ex["image"].min() and ex["image"].max() <= 1.0
    assert 0 <= int(ex["label"]) < 10 and 0 <= int(ex["pose"]) < len(POSE_BINS)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(variant="TCV"), "variant"),
        (dict(variant="CTVL"), "variant"),
        (dict(mode="video"), "mode"),
        (dict(split="val"), "split"),
        (dict(resolution=8), "resolution"),
        (dict(num_objects=(3, 2)), "num_objects"),
    ],
)
def test_bad_spec(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SceneSpec(**kwargs)


def test_bad_index():
    with pytest.raises(ValueError, match="index"):
        generate(SceneSpec(), -1)


def test_photo_factor_keeps_every_label_and_changes_only_the_image():
    from zoo.data import photos

    for mode in ("multi", "motion"):
        plain = generate(SceneSpec(variant="TCVL", mode=mode, resolution=32), 5)
        real_like = generate(SceneSpec(variant="TCVLP", mode=mode, resolution=32), 5)
        again = generate(SceneSpec(variant="TCVLP", mode=mode, resolution=32), 5)
        for key in plain:
            if key in ("image", "next_image"):
                assert np.abs(plain[key] - real_like[key]).mean() > 0.03
                np.testing.assert_array_equal(real_like[key], again[key])  # seeded
            else:
                np.testing.assert_array_equal(plain[key], real_like[key])
    # photo textures come from the texture photographs only
    from zoo.data.synthetic.scene import describe

    desc = describe(SceneSpec(variant="TCVLP", mode="multi"), 2)
    used = {o["texture"]["photo"] for o in desc["objects"]} | {desc["ground"]["texture"]["photo"]}
    assert used <= set(photos.TEXTURE_PHOTOS)
    with pytest.raises(ValueError, match="optionally followed by P"):
        SceneSpec(variant="TCVLX")


def test_sensor_effects_blur_and_add_noise():
    from zoo.data.synthetic.appearance import sensor_effects

    edge = np.zeros((32, 32, 3), np.float32)
    edge[:, 16:] = 1.0
    out = sensor_effects(edge, np.random.default_rng(0))
    assert out.shape == (32, 32, 3) and out.dtype == np.float32
    assert 0.05 < out[16, 15].mean() < 0.95 or 0.05 < out[16, 16].mean() < 0.95  # blurred edge
    flat = sensor_effects(np.full((32, 32, 3), 0.5, np.float32), np.random.default_rng(1))
    assert flat[12:20, 12:20].std() > 0.001  # noise
    assert flat[0, 0].mean() < flat[16, 16].mean()  # vignetting
