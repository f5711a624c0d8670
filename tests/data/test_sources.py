import dataclasses
import io
import json
import logging
import os

import numpy as np
import pytest
from PIL import Image

from zoo.data import Holdout, ImageFolder, Photos, Synthetic, TFRecords, cache, split
from zoo.data.sources import COLOR_PHOTOS, First, as_source, source_config, source_from_config
from zoo.data.synthetic import SceneSpec, generate
from zoo.data.synthetic.io import examples_of
from zoo.data.tfrecord import write_tfrecords
from zoo.tasks import SemanticSegmentation


def _save(path, array, **kwargs):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)


def _read(source, keys):
    return list(source.examples(keys).as_numpy_iterator())


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "a.png": rng.integers(0, 256, (6, 7, 3), dtype=np.uint8),
        "sub/b.PNG": rng.integers(0, 256, (5, 4, 3), dtype=np.uint8),
        "sub/deeper/c.png": rng.integers(0, 256, (3, 3), dtype=np.uint8),  # grayscale
    }
    for name, array in arrays.items():
        _save(tmp_path / name, array)
    (tmp_path / "d.jpg").write_bytes(b"this is not a JPEG")
    (tmp_path / "notes.txt").write_text("ignored: not an image extension")
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buffer, "JPEG")
    (tmp_path / "sub/truncated.jpg").write_bytes(buffer.getvalue()[:300])
    return tmp_path, arrays


def test_folder_reads_recursively_skips_broken_files_and_resizes(folder, caplog):
    path, arrays = folder
    with caplog.at_level(logging.WARNING):
        source = ImageFolder(str(path), size=4)
    assert "Skipping 2 of 5 files" in caplog.text and "d.jpg" in caplog.text
    assert "truncated.jpg" in caplog.text
    assert len(source) == 3 and source.signature()["image"][1] == (4, 4, 3)
    examples = _read(source, ["image", "path"])
    names = [os.path.relpath(e["path"].decode(), path) for e in examples]
    assert names == ["a.png", "sub/b.PNG", "sub/deeper/c.png"]
    gray = examples[2]["image"]
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])
    assert all(0.0 <= e["image"].min() and e["image"].max() <= 1.0 for e in examples)


def test_mixed_sizes_need_size_and_original_pixels_are_kept(folder):
    path, arrays = folder
    with pytest.raises(ValueError, match=r"3 different sizes .*a.png: 7x6.*set `size`"):
        ImageFolder(str(path))
    only = path / "sub" / "deeper"
    (image,) = _read(ImageFolder(str(only)), ["image"])
    np.testing.assert_allclose(
        image["image"][..., 1], arrays["sub/deeper/c.png"] / 255.0, atol=1e-6
    )


def test_every_image_kind_becomes_rgb(tmp_path):
    rgb = np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    _save(tmp_path / "rgba.png", np.concatenate([rgb, np.full((8, 8, 1), 7, np.uint8)], -1))
    _save(tmp_path / "g16.png", (rgb[..., 0].astype(np.uint16) * 257))
    _save(tmp_path / "x.bmp", rgb)
    _save(tmp_path / "x.gif", rgb)
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=100)
    images = {
        os.path.basename(e["path"].decode()): e["image"]
        for e in _read(ImageFolder(str(tmp_path)), ["image", "path"])
    }
    assert sorted(images) == ["cmyk.jpg", "g16.png", "rgba.png", "x.bmp", "x.gif"]
    assert all(v.shape == (8, 8, 3) for v in images.values())
    np.testing.assert_allclose(images["rgba.png"], rgb / 255.0, atol=1e-6)
    np.testing.assert_allclose(images["x.bmp"], rgb / 255.0, atol=1e-6)
    np.testing.assert_allclose(images["g16.png"][..., 2], rgb[..., 0] / 255.0, atol=1e-6)
    assert np.abs(images["cmyk.jpg"] - rgb / 255.0).mean() < 0.05


def test_class_folders(tmp_path):
    rng = np.random.default_rng(2)
    for cls, n in (("cat", 2), ("dog", 3)):
        for i in range(n):
            _save(tmp_path / cls / f"{i}.jpg", rng.integers(0, 256, (10, 12, 3), dtype=np.uint8))
    source = ImageFolder(str(tmp_path), labels="folders", size=8)
    assert source.label_names == {"label": ("cat", "dog")}
    assert [e["label"] for e in _read(source, ["label"])] == [0, 0, 1, 1, 1]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"Class folder .*empty' holds no image"):
        ImageFolder(str(tmp_path), labels="folders", size=8)
    os.rmdir(tmp_path / "empty")
    _save(tmp_path / "loose.png", rng.integers(0, 256, (4, 4, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="1 images lie directly in .*loose.png"):
        ImageFolder(str(tmp_path), labels="folders", size=8)
    with pytest.raises(ValueError, match="no class sub-folders"):
        ImageFolder(str(tmp_path / "cat"), labels="folders")


def test_masks_semantics_and_depth(tmp_path):
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 5, (2, 6, 6), dtype=np.uint8)
    depth_mm = rng.integers(500, 9000, (2, 6, 6)).astype(np.uint16)
    for i in range(2):
        _save(tmp_path / "images" / f"{i}.jpg", rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
        _save(tmp_path / "labels" / f"{i}.png", labels[i])
    _save(tmp_path / "depth" / "0.png", depth_mm[0])
    np.save(tmp_path / "depth" / "1.npy", depth_mm[1] / 1000.0)
    semantic = ImageFolder(str(tmp_path / "images"), masks=str(tmp_path / "labels"))
    got = _read(semantic, ["image", "semantics"])
    np.testing.assert_array_equal(np.stack([g["semantics"] for g in got]), labels)
    depth = ImageFolder(str(tmp_path / "images"), masks=str(tmp_path / "depth"), mask_key="depth")
    got = np.stack([g["depth"] for g in _read(depth, ["depth"])])
    np.testing.assert_allclose(got, depth_mm / 1000.0, rtol=1e-6)
    with pytest.raises(KeyError, match="needs \\['depth'\\], which ImageFolder"):
        semantic.check(["image", "depth"], "Task 'depth'")

    _save(tmp_path / "labels" / "1.png", np.zeros((5, 6), np.uint8))
    with pytest.raises(ValueError, match=r"Mask .*1.png is 6x5 but its image .*1.jpg is 6x6"):
        ImageFolder(str(tmp_path / "images"), masks=str(tmp_path / "labels"))
    os.remove(tmp_path / "labels" / "1.png")
    with pytest.raises(KeyError, match=r"1 of 2 images .* have no mask .*1.jpg"):
        ImageFolder(str(tmp_path / "images"), masks=str(tmp_path / "labels"))


def test_mask_classes_come_from_the_data_and_maps_of_every_kind_resize(tmp_path):
    rng = np.random.default_rng(4)
    labels = rng.integers(0, 3, (3, 12, 18), dtype=np.uint8)  # labels 0..2
    depth = rng.uniform(0.5, 9.0, (3, 12, 18)).astype(np.float32)
    for i in range(3):
        _save(tmp_path / "images" / f"{i}.png", rng.integers(0, 256, (12, 18, 3), np.uint8))
        _save(tmp_path / "labels" / f"{i}.png", labels[i])
    (tmp_path / "depth").mkdir()
    np.save(tmp_path / "depth" / "0.npy", depth[0])
    _save(tmp_path / "depth" / "1.png", np.round(depth[1] * 1000).astype(np.uint16))  # 16 bit
    _save(tmp_path / "depth" / "2.png", np.round(depth[2] * 10).astype(np.uint8))  # 8 bit
    images, masks = str(tmp_path / "images"), str(tmp_path / "labels")
    found = ImageFolder(images, masks=masks, size=8)
    assert found.label_names == {"semantics": ("0", "1", "2")}
    assert SemanticSegmentation(found, eval_source=found).classes == 3
    got = np.stack([e["semantics"] for e in _read(found, ["semantics"])])
    # nearest neighbour (pixel centres: source floor((i + 0.5) * 1.5)) of the shorter side
    # 12 -> 8 and 18 -> 12, then the centre 8 columns (2 .. 9 of 12)
    rows = np.floor((np.arange(8) + 0.5) * 1.5).astype(int)
    cols = np.floor((np.arange(2, 10) + 0.5) * 1.5).astype(int)
    np.testing.assert_array_equal(got, labels[:, rows][:, :, cols])
    (tmp_path / "labels" / "classes.txt").write_text("sky\nroad\ncar\n")
    assert ImageFolder(images, masks=masks).label_names["semantics"] == ("sky", "road", "car")
    named = ImageFolder(images, masks=masks, class_names=["a", "b", "c", "d"])
    assert named.label_names["semantics"] == ("a", "b", "c", "d")
    with pytest.raises(
        ValueError, match=r"3 masks .* beyond the 2 classes of class_names .*label 2"
    ):
        ImageFolder(images, masks=masks, class_names=["a", "b"])
    with pytest.raises(ValueError, match="classes=2, but the masks hold labels up to 3"):
        SemanticSegmentation(named, eval_source=named, classes=2)

    metres = ImageFolder(images, masks=str(tmp_path / "depth"), mask_key="depth", depth_scale=1000)
    got = np.stack([e["depth"] for e in _read(metres, ["depth"])])
    np.testing.assert_allclose(got[:2], depth[:2], atol=1e-3)  # .npy, 16-bit millimetres
    np.testing.assert_allclose(got[2], np.round(depth[2] * 10) / 1000)  # 8 bit, same units
    small = ImageFolder(images, masks=str(tmp_path / "depth"), mask_key="depth", size=8)
    got = np.stack([e["depth"] for e in _read(small, ["depth"])])
    assert got.shape == (3, 8, 8)
    np.testing.assert_allclose(got[0], depth[0][rows][:, cols], atol=1e-6)


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolder(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="holds no image file"):
        ImageFolder(str(tmp_path))
    (tmp_path / "x.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="no decodable image"):
        ImageFolder(str(tmp_path))
    with pytest.raises(ValueError, match="`size` must be an int >= 1"):
        ImageFolder(str(tmp_path), size=0)


def test_photos_are_the_installed_files_and_random_crops_vary():
    from skimage import data

    astronaut = _read(Photos(["astronaut"]), ["image"])[0]["image"]
    np.testing.assert_allclose(astronaut, data.astronaut() / 255.0, atol=1e-6)
    assert len(Photos(size=16)) == len(COLOR_PHOTOS) == 9
    crops = Photos(["coffee", "camera"], crop=32, crops_per_image=3, seed=1)
    images = np.stack([e["image"] for e in _read(crops, ["image"])])
    assert images.shape == (6, 32, 32, 3) and len(crops) == 6
    assert np.abs(images[0] - images[1]).mean() > 0.01  # another place of the same photo
    again = np.stack([e["image"] for e in _read(crops, ["image"])])
    np.testing.assert_array_equal(images, again)
    np.testing.assert_array_equal(images[3][..., 0], images[3][..., 2])  # grayscale camera
    with pytest.raises(ValueError, match="unknown photo"):
        Photos(["lena"])


SPEC = SceneSpec(variant="----", mode="multi", resolution=16)


def test_synthetic_cache_is_rendered_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path))  # its own: the session's is shared
    source = Synthetic(SPEC, 12)
    got = _read(source, ["image", "depth"])
    for index in (0, 11):
        truth = generate(SPEC, index)
        np.testing.assert_allclose(got[index]["image"], truth["image"], atol=0.5 / 255)
        np.testing.assert_array_equal(got[index]["depth"], truth["depth"])
    entry = cache.find(SPEC, 12, ["depth"])
    assert os.path.basename(entry) == "n12-depth+image"
    stamp = os.path.getmtime(entry)
    # fewer scenes and fewer entries come from the same entry
    fewer = _read(Synthetic(SPEC, 5), ["depth"])
    assert len(fewer) == 5 and os.path.getmtime(entry) == stamp
    np.testing.assert_array_equal(fewer[4]["depth"], got[4]["depth"])
    assert len(os.listdir(os.path.dirname(entry))) == 1
    # an announced entry is rendered together with the asked ones
    other = Synthetic(SPEC, 7)
    other.prepare(["normals", "image"])
    _read(other, ["contours"])
    assert cache.find(SPEC, 7, ["normals", "contours"]) is not None


def test_render_on_the_fly_equals_the_cache():
    cached = _read(Synthetic(SPEC, 6), ["image", "semantics"])
    rendered = _read(Synthetic(SPEC, 6, storage="render", workers=2), ["image", "semantics"])
    for a, b in zip(cached, rendered, strict=True):
        np.testing.assert_array_equal(a["semantics"], b["semantics"])
        np.testing.assert_allclose(a["image"], b["image"], atol=0.5 / 255)
    one = [e["depth"] for e in examples_of(SPEC, range(9), workers=1)]
    two = [e["depth"] for e in examples_of(SPEC, range(9), workers=2)]
    np.testing.assert_array_equal(np.stack(one), np.stack(two))


def test_synthetic_errors_name_what_is_wrong():
    with pytest.raises(KeyError, match=r"needs \['label'\].*synthetic mode \['single'\]"):
        Synthetic(SPEC, 4).check(["image", "label"], "Task 'classification'")
    with pytest.raises(ValueError, match="`storage` must be one of"):
        Synthetic(SPEC, 4, storage="memory")
    with pytest.raises(ValueError, match="`num` must be an int >= 1"):
        Synthetic(SPEC, 0)


def test_holdout_split_is_seeded_disjoint_and_complete(tmp_path):
    write_tfrecords(({"index": np.int64(i)} for i in range(200)), str(tmp_path), shards=3)
    source = TFRecords(str(tmp_path))
    train, held = split(source, 0.25, seed=3)
    ids = lambda s: [int(e["index"]) for e in _read(s, ["index"])]  # noqa: E731
    a, b = ids(train), ids(held)
    assert len(a) == len(train) and len(b) == len(held) and 30 <= len(b) <= 70
    assert sorted(a + b) == list(range(200)) and not set(a) & set(b)
    assert ids(Holdout(source, 0.25, "eval", seed=3)) == b  # the same on every call
    assert ids(Holdout(source, 0.25, "eval", seed=4)) != b
    with pytest.raises(ValueError, match=r"`fraction` must be a float in \(0, 1\)"):
        Holdout(source, 1.5)


def test_tfrecords_source_and_configs(tmp_path):
    examples = [
        {"image": np.full((4, 4, 3), i / 10, np.float32), "label": np.int32(i)} for i in range(3)
    ]
    write_tfrecords(examples, str(tmp_path), shards=2)
    (tmp_path / "labels.json").write_text(json.dumps({"label": ["a", "b", "c"]}))
    source = as_source(str(tmp_path))
    assert isinstance(source, TFRecords) and source.label_names == {"label": ("a", "b", "c")}
    assert [e["label"] for e in _read(source, ["label"])] == [0, 1, 2]
    with pytest.raises(KeyError, match=r"needs \['depth'\], which TFRecords"):
        source.check(["depth"], "Task 'depth'")
    for original in (source, Holdout(Synthetic(SPEC, 4, storage="render"), 0.5, "eval")):
        rebuilt = source_from_config(json.loads(json.dumps(source_config(original))))
        assert rebuilt.identity() == original.identity() and type(rebuilt) is type(original)


def test_configs_written_before_sources_were_keras_serializables_still_load():
    """method.json files of older runs hold sources as {"source": class, "config": ...}
    with SceneSpecs as {"scene_spec": fields}; they rebuild the same sources."""
    original = Holdout(Synthetic(SPEC, 4, storage="render"), 0.5, "eval")
    spec = json.loads(json.dumps(dataclasses.asdict(SPEC)))
    legacy = {
        "source": "Holdout",
        "config": {
            "source": {
                "source": "Synthetic",
                "config": {"spec": {"scene_spec": spec}, "num": 4, "storage": "render"},
            },
            "fraction": 0.5,
            "part": "eval",
        },
    }
    rebuilt = source_from_config(legacy)
    assert type(rebuilt) is Holdout and rebuilt.identity() == original.identity()
    assert source_from_config({"scene_spec": spec}) == SPEC
    assert source_config(SPEC)["class_name"] == "SceneSpec"  # one serializer: Keras'
    assert source_from_config(json.loads(json.dumps(source_config(SPEC)))) == SPEC


def test_real_domain_photo_sets_are_disjoint_and_cropped_after_resizing():
    from zoo.data import photos
    from zoo.data.sources import real_photos

    sets = [set(photos.ADAPTATION_PHOTOS), set(photos.HELDOUT_PHOTOS), set(photos.TEXTURE_PHOTOS)]
    assert all(not (a & b) for i, a in enumerate(sets) for b in sets[i + 1 :])
    train = real_photos("train", crop=48, size=64, crops_per_image=3)
    assert len(train) == 3 * len(photos.ADAPTATION_PHOTOS)
    assert {os.path.basename(f) for f in train.files} >= {"china.jpg", "astronaut.png"}
    held = real_photos("heldout", crop=48, size=64, crops_per_image=1)
    assert {os.path.basename(f) for f in held.files} == {
        "flower.jpg",
        "motorcycle_left.png",
        "motorcycle_right.png",
    }
    images = np.stack([e["image"].numpy() for e in train.examples(["image"])])
    assert images.shape == (21, 48, 48, 3) and 0.0 <= images.min() and images.max() <= 1.0
    # each crop lies inside the photo resized to a 64 px shorter side
    from zoo.data.photos import load_photo
    from zoo.data.sources import resize_shorter_side

    name = os.path.splitext(os.path.basename(train.files[0]))[0]
    resized = resize_shorter_side(load_photo(name), 64).numpy()
    h, w = resized.shape[:2]
    errors = [
        np.abs(resized[y : y + 48, x : x + 48] - images[0]).max()
        for y in range(h - 47)
        for x in range(w - 47)
    ]
    assert min(errors) < 1e-5
    with pytest.raises(ValueError, match=r"`crop` \(96\) must be at most `size` \(64\)"):
        real_photos("train", crop=96, size=64)
    with pytest.raises(ValueError, match="'train' or 'heldout'"):
        real_photos("test")


def test_a_folder_stored_class_by_class_is_shuffled_over_every_file(tmp_path):
    """2,000 images per class (as many as a shuffle buffer of decoded examples holds):
    every batch of the training pipeline mixes both classes about evenly, positions
    pass through Holdout and First, and each epoch is a new order of the same files."""
    from zoo.tasks import Classification

    for label, name in enumerate(("a_cats", "b_dogs")):
        (tmp_path / name).mkdir()
        pixel = np.full((2, 2, 3), 255 * label, np.uint8)
        for i in range(2000):
            Image.fromarray(pixel).save(tmp_path / name / f"{i:04d}.png")
    source = ImageFolder(str(tmp_path), labels="folders")
    task = Classification(source, eval_source=0.1)
    batches = task.pipeline("train", 32).take(20)
    shares = [float(np.mean(targets.numpy())) for _, targets in batches]
    # binomial(32, 0.5): a share outside [0.15, 0.85] has probability 1e-4 per batch
    assert all(0.15 <= s <= 0.85 for s in shares), shares
    assert 0.4 <= np.mean(shares) <= 0.6

    train = Holdout(source, 0.1)
    ordered = [e["path"] for e in _read(train, ["path"])]
    passes = train.shuffled(["path"], seed=0).repeat(2).as_numpy_iterator()
    first, second = ([(i, e["path"]) for i, e in (next(passes) for _ in ordered)] for _ in "12")
    for one_pass in (first, second):
        assert sorted(one_pass, key=lambda p: p[0]) == list(enumerate(ordered))
    assert [p for _, p in first] != [p for _, p in second]
    head = First(train, 100).shuffled(["path"], seed=0).as_numpy_iterator()
    assert sorted(e["path"] for _, e in head) == sorted(ordered[:100])
