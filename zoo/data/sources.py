"""Image sources: folders of photographs and the photographs that scikit-image ships.

Every source is a `tf.data.Dataset` of dicts with

* `image`: float32 RGB in [0, 1], shape [H, W, 3] (grayscale files are replicated to
  three channels, alpha is dropped);
* `path`: the file it came from (tf.string).
"""

import importlib.util
import os

import tensorflow as tf
from absl import logging
from PIL import Image

from zoo.errors import MissingFile, UserError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")

# Photographs in skimage/data (installed with scikit-image, never downloaded).
SKIMAGE_PHOTOS = {
    "astronaut": "astronaut.png",
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "ihc": "ihc.png",
    "motorcycle_left": "motorcycle_left.png",
    "motorcycle_right": "motorcycle_right.png",
    "retina": "retina.jpg",
    "rocket": "rocket.jpg",
    # grayscale photographs, replicated to three channels
    "brick": "brick.png",
    "camera": "camera.png",
    "grass": "grass.png",
    "gravel": "gravel.png",
    "moon": "moon.png",
}
COLOR_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "hubble_deep_field",
    "ihc",
    "motorcycle_left",
    "motorcycle_right",
    "retina",
    "rocket",
)


def _is_decodable(path):
    try:
        with Image.open(path) as im:
            im.verify()
        return True
    except Exception:  # PIL raises many types for broken files; all mean "skip it".
        return False


def _decode(path, size):
    data = tf.io.read_file(path)
    image = tf.io.decode_image(data, channels=3, expand_animations=False)
    image = tf.image.convert_image_dtype(image, tf.float32)
    if size is not None:
        image = resize_and_center_crop(image, size)
    return {"image": image, "path": path}


def resize_and_center_crop(image, size):
    """Resizes the shorter side of `image` [H, W, C] to `size` and crops the centre square."""
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    scale = size / tf.minimum(h, w)
    new_h = tf.maximum(size, tf.cast(tf.round(h * scale), tf.int32))
    new_w = tf.maximum(size, tf.cast(tf.round(w * scale), tf.int32))
    image = tf.image.resize(image, [new_h, new_w], antialias=True)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    image = image[top : top + size, left : left + size]
    return tf.ensure_shape(tf.clip_by_value(image, 0.0, 1.0), [size, size, None])


def image_files(paths, size=None, shuffle_seed=None, verify=True):
    """A dataset of dicts {"image", "path"} from a list of image files.

    Files that are not decodable images are skipped with one warning that counts them
    (checked with PIL when the dataset is built; a file that passes that check but
    still fails to decode is skipped with a warning when it is read).

    Args:
        paths: list of str. Image files (JPEG or PNG).
        size: int or None. If given, the shorter side is resized to `size` and the
            centre `size` x `size` square is kept. Defaults to None (original size).
        shuffle_seed: int or None. Shuffles the file order with this seed.
            Defaults to None (the given order).
        verify: bool. Check every file with PIL first. Defaults to True.
    """
    paths = [os.fspath(p) for p in paths]
    if size is not None and not (isinstance(size, int) and size > 0):
        raise UserError(f"`size` must be a positive int or None. Received: size={size!r}")
    if verify:
        good = [p for p in paths if _is_decodable(p)]
        bad = sorted(set(paths) - set(good))
        if bad:
            shown = ", ".join(bad[:5]) + (", ..." if len(bad) > 5 else "")
            logging.warning(
                "Skipping %d of %d files that are not decodable images: %s",
                len(bad),
                len(paths),
                shown,
            )
        paths = good
    if not paths:
        raise UserError("No decodable image among the given files.")
    ds = tf.data.Dataset.from_tensor_slices(paths)
    if shuffle_seed is not None:
        ds = ds.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=False)
    ds = ds.map(lambda p: _decode(p, size), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.ignore_errors(log_warning=True)


def list_images(directory, recursive=True):
    """Sorted paths of the JPEG and PNG files (any letter case) under `directory`."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise MissingFile(f"Image folder {directory!r} does not exist or is not a folder.")
    found = []
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        found += [os.path.join(root, f) for f in files if f.lower().endswith(IMAGE_EXTENSIONS)]
        if not recursive:
            break
    return sorted(found)


def image_folder(directory, recursive=True, size=None, shuffle_seed=None, verify=True):
    """A dataset of dicts {"image", "path"} from the JPEG/PNG files in a folder.

    Args:
        directory: str. The folder.
        recursive: bool. Include sub-folders. Defaults to True.
        size, shuffle_seed, verify: as in `image_files`.
    """
    paths = list_images(directory, recursive)
    if not paths:
        raise UserError(
            f"Image folder {directory!r} holds no image file (extensions {IMAGE_EXTENSIONS}, "
            f"recursive={recursive})."
        )
    return image_files(paths, size=size, shuffle_seed=shuffle_seed, verify=verify)


def skimage_photos(names=COLOR_PHOTOS, size=None, shuffle_seed=None):
    """The "real photos" source: photographs shipped inside the installed scikit-image.

    Args:
        names: list of str. Keys of `SKIMAGE_PHOTOS`. Defaults to the nine colour
            photographs (`COLOR_PHOTOS`).
        size, shuffle_seed: as in `image_files`.
    """
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise ImportError(
            "The real-photo source reads the photographs installed with scikit-image; "
            "install it with `pip install scikit-image` (or the zoo's `test` extra)."
        )
    unknown = [n for n in names if n not in SKIMAGE_PHOTOS]
    if unknown:
        raise UserError(
            f"skimage_photos: unknown photo names {unknown}; known: {sorted(SKIMAGE_PHOTOS)}"
        )
    data_dir = os.path.join(os.path.dirname(spec.origin), "data")
    paths = [os.path.join(data_dir, SKIMAGE_PHOTOS[n]) for n in names]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise MissingFile(f"scikit-image at {data_dir} lacks {missing}; reinstall scikit-image.")
    return image_files(paths, size=size, shuffle_seed=shuffle_seed)
