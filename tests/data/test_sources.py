import io
import logging

import numpy as np
import pytest
from PIL import Image

from zoo.data import image_files, image_folder, skimage_photos
from zoo.data.sources import COLOR_PHOTOS


def _png(path, array):
    Image.fromarray(array).save(path)


def _jpeg_bytes(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "a.png": rng.integers(0, 256, (6, 7, 3), dtype=np.uint8),
        "sub/b.PNG": rng.integers(0, 256, (5, 4, 3), dtype=np.uint8),
        "sub/deeper/c.png": rng.integers(0, 256, (3, 3), dtype=np.uint8),  # grayscale
    }
    for name, array in arrays.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        _png(tmp_path / name, array)
    (tmp_path / "d.jpg").write_bytes(b"this is not a JPEG")
    (tmp_path / "notes.txt").write_text("ignored: not an image extension")
    good = _jpeg_bytes(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    (tmp_path / "sub/truncated.jpg").write_bytes(good[: len(good) // 2])
    return tmp_path, arrays


def test_folder_reads_recursively_and_skips_broken_files(folder, caplog):
    path, arrays = folder
    with caplog.at_level(logging.WARNING):
        ds = image_folder(path)
        images = {e["path"].numpy().decode(): e["image"].numpy() for e in ds}
    names = sorted(str(p.relative_to(path)) for p in map(type(path), images))
    assert names == ["a.png", "sub/b.PNG", "sub/deeper/c.png"]
    assert "Skipping 1 of 5 files" in caplog.text and "d.jpg" in caplog.text
    for name, array in arrays.items():
        image = images[str(path / name)]
        expected = array if array.ndim == 3 else np.repeat(array[..., None], 3, axis=-1)
        assert image.dtype == np.float32 and image.shape == expected.shape
        np.testing.assert_allclose(image, expected / 255.0, atol=1e-6)


def test_folder_not_recursive_and_resized(folder):
    path, _ = folder
    images = [e["image"].numpy() for e in image_folder(path, recursive=False, size=4)]
    assert len(images) == 1 and images[0].shape == (4, 4, 3)
    assert 0.0 <= images[0].min() and images[0].max() <= 1.0


def test_shuffle_is_seeded(folder):
    path, _ = folder
    order = lambda seed: [e["path"].numpy() for e in image_folder(path, shuffle_seed=seed)]  # noqa
    assert order(1) == order(1)
    assert sorted(order(1)) == sorted(order(2))


def test_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        image_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="no image file"):
        image_folder(tmp_path)
    (tmp_path / "x.png").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="No decodable image"):
        image_folder(tmp_path)
    with pytest.raises(ValueError, match="size"):
        image_files([tmp_path / "x.png"], size=0)


def test_skimage_photos_are_the_installed_files():
    from skimage import data

    photos = list(skimage_photos())
    assert len(photos) == len(COLOR_PHOTOS) == 9
    astronaut = photos[0]["image"].numpy()
    np.testing.assert_allclose(astronaut, data.astronaut() / 255.0, atol=1e-6)
    resized = [e["image"].numpy() for e in skimage_photos(["coffee", "camera"], size=32)]
    assert [r.shape for r in resized] == [(32, 32, 3), (32, 32, 3)]
    np.testing.assert_array_equal(resized[1][..., 0], resized[1][..., 2])  # grayscale
    with pytest.raises(ValueError, match="unknown photo"):
        skimage_photos(["lena"])
