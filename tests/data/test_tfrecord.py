import os

import numpy as np
import pytest

from zoo.data import read_tfrecords, write_tfrecords
from zoo.data.tfrecord import feature_spec


def _examples(n=7):
    rng = np.random.default_rng(0)
    return [
        {
            "image": rng.random((6, 5, 3)).astype("float32"),
            "depth": rng.random((6, 5)).astype("float32"),
            "normals": rng.normal(size=(6, 5, 3)),  # float64
            "instances": rng.integers(0, 9, (6, 5)).astype("int32"),
            "moving": rng.random((2, 3)) > 0.5,
            "label": i,
            "weight": 0.5 * i,
            "name": f"scene_{i}",
        }
        for i in range(n)
    ]


def test_round_trip_in_order_across_shards(tmp_path):
    examples = _examples()
    paths, count = write_tfrecords(examples, str(tmp_path), shards=3)
    assert count == 7 and [os.path.basename(p) for p in paths] == [
        "data-00000-of-00003.tfrecord",
        "data-00001-of-00003.tfrecord",
        "data-00002-of-00003.tfrecord",
    ]
    read = list(read_tfrecords(str(tmp_path)))
    assert len(read) == 7
    for got, want in zip(read, examples):
        assert int(got["label"]) == want["label"]  # order preserved
        assert got["image"].dtype.name == "float32" and got["image"].shape == (6, 5, 3)
        np.testing.assert_allclose(got["image"].numpy(), want["image"], atol=0.5 / 255 + 1e-6)
        np.testing.assert_array_equal(got["depth"].numpy(), want["depth"])
        np.testing.assert_array_equal(got["normals"].numpy(), want["normals"])
        assert got["normals"].dtype.name == "float64"
        np.testing.assert_array_equal(got["instances"].numpy(), want["instances"])
        np.testing.assert_array_equal(got["moving"].numpy(), want["moving"])
        assert got["label"].shape == () and got["label"].dtype.name == "int64"
        assert float(got["weight"]) == want["weight"]
        assert got["name"].numpy().decode() == want["name"]


def test_feature_spec_and_key_selection(tmp_path):
    write_tfrecords(_examples(2), str(tmp_path))
    spec = feature_spec([str(tmp_path / "data-00000-of-00001.tfrecord")])
    assert spec["image"] == ("image", "float32", 3)
    assert spec["depth"] == ("array", "float32", 2)
    assert spec["name"] == ("string", "string", 0)
    first = next(iter(read_tfrecords(str(tmp_path / "*.tfrecord"), keys=["depth"])))
    assert set(first) == {"depth"}
    with pytest.raises(KeyError, match="no entries"):
        read_tfrecords(str(tmp_path), keys=["segmentation"])


def test_uint8_and_grayscale_images(tmp_path):
    rng = np.random.default_rng(1)
    gray = rng.integers(0, 256, (4, 4, 1), dtype=np.uint8)
    write_tfrecords([{"image": gray}], str(tmp_path))
    got = next(iter(read_tfrecords(str(tmp_path))))["image"].numpy()
    assert got.shape == (4, 4, 1)
    np.testing.assert_allclose(got, gray / 255.0, atol=1e-6)


def test_existing_files_are_not_overwritten(tmp_path):
    write_tfrecords(_examples(2), str(tmp_path), shards=2)
    before = (tmp_path / "data-00000-of-00002.tfrecord").read_bytes()
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_tfrecords(_examples(1), str(tmp_path), shards=1)
    assert (tmp_path / "data-00000-of-00002.tfrecord").read_bytes() == before
    write_tfrecords(_examples(1), str(tmp_path), shards=1, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["data-00000-of-00001.tfrecord"]
    write_tfrecords(_examples(1), str(tmp_path), prefix="other")  # another set beside it
    assert len(os.listdir(tmp_path)) == 2


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"\[H, W, C\]"):
        write_tfrecords([{"image": np.zeros((4, 4, 2))}], str(tmp_path / "a"))
    with pytest.raises(ValueError, match="supported"):
        write_tfrecords([{"z": np.zeros(2, complex)}], str(tmp_path / "b"))
    with pytest.raises(ValueError, match="shards"):
        write_tfrecords([], str(tmp_path / "c"), shards=0)
    with pytest.raises(FileNotFoundError, match="No TFRecord"):
        read_tfrecords(str(tmp_path / "nothing-*.tfrecord"))
