"""Sources: where a task's examples come from, streamed with bounded memory.

A source is a finite, ordered stream of dict examples. Every source says what it
provides (`signature()`: entry -> (dtype, shape)), streams the entries a task asks for
(`examples(keys)`: the same order on every call; `shuffled(keys, seed)`: a seeded random
order, a new one on every pass), and names itself (`identity()`) so that tasks reading
the same examples can share them. Sources:

* `Synthetic(spec, num)`: scenes of the embedded benchmark, rendered once by parallel
  workers into the data cache (`zoo.data.cache`) and streamed from it, or
  (`storage="render"`) rendered on the fly by parallel workers on every pass;
* `TFRecords(path)`: a folder of TFRecords written by `zoo.data.write_tfrecords`;
* `ImageFolder(path)`: JPEG / PNG / BMP / GIF files, unlabelled, labelled by class
  sub-folder (`labels="folders"`), or with a parallel folder of masks or depth maps;
* `Photos()`: the photographs installed with scikit-image, as an image folder;
* `Holdout(source, fraction, seed, part)`: a seeded split of any source;
* `LabelledFraction(source, fraction, seed)`: a share of a source in a fixed seeded
  order, nested across fractions (the labelled subsets of a label-fraction grid).

Images are float32 RGB in [0, 1] (grayscale replicated, alpha dropped, 16-bit scaled).
Memory does not grow with the dataset: files are read as they are needed, and the only
buffers are tf.data's shuffle and prefetch buffers (`shuffle_buffer` bounds the first by
bytes). An image folder shuffles its whole list of files (positions only, 8 bytes a file)
before decoding, so that a folder stored class by class gives batches of every class;
streams without random access (TFRecords, synthetic scenes, which are drawn at random
anyway) shuffle decoded examples in the bounded buffer.
"""

import abc
import dataclasses
import hashlib
import json
import os

import gin
import keras
import numpy as np
import tensorflow as tf
from absl import logging
from PIL import Image
from PIL import Image as PILImage

from zoo import checks, files
from zoo.data import cache, tfrecord
from zoo.data.photos import (
    ADAPTATION_PHOTOS,
    COLOR_PHOTOS,
    HELDOUT_PHOTOS,
    PHOTOS,
    photo_path,
    skimage_data_dir,
)
from zoo.data.synthetic import CLASSES, POSE_BINS, SCENE_NAMES, SceneSpec
from zoo.data.synthetic.io import examples_of, output_signature
from zoo.data.synthetic.scene import MODES
from zoo.errors import DataError, ExistingFile, MissingEntry, MissingFile, UserError, UserTypeError
from zoo.progress import Progress

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
# How a mask file is read: .npy, 16-bit PNG, 8-bit PNG (depth in `depth_scale` units).
_MASK_KINDS = {".npy": 0, "png": 1, "png8": 2}
# In a semantic mask folder: the class names, one a line, of labels 0, 1, ...
CLASS_LIST = "classes.txt"
MASK_KEYS = ("semantics", "depth")
STORAGES = ("cache", "render")
# The shuffle buffer of a training stream holds at most this many bytes of examples.
SHUFFLE_BYTES = 256 * 2**20


class Source(abc.ABC):
    """The protocol every source follows (see the module docstring)."""

    # entry -> class names, for labelled sources (e.g. {"label": ("cat", "dog")})
    label_names: dict = {}
    # the farthest depth (metres) of its depth maps, for sources that know it
    max_depth: float | None = None

    @abc.abstractmethod
    def signature(self) -> dict:
        """{entry: (tf.DType, shape)}; unknown sizes are None."""

    @abc.abstractmethod
    def examples(self, keys) -> tf.data.Dataset:
        """A dataset of dicts with exactly `keys`, in the same order on every call."""

    def identity(self) -> str:
        """Equal for sources that give the same examples."""
        return json.dumps(source_config(self), sort_keys=True, default=str)

    @abc.abstractmethod
    def get_config(self) -> dict:
        """The constructor arguments (`source_config` makes them JSON)."""

    @classmethod
    def from_config(cls, config: dict) -> "Source":
        """The source of `get_config`'s (Keras-serialized) arguments."""
        return cls(**{key: _deserialized(value) for key, value in config.items()})

    def prepare(self, keys) -> None:  # noqa: B027
        """Announces entries a later `examples` call will want (several tasks on one
        source: the synthetic cache then renders them all at once). Defaults to nothing."""

    def check(self, keys, who: str) -> None:
        """Raises MissingEntry naming what `who` needs and this source does not give."""
        missing = [k for k in keys if k not in self.signature()]
        if missing:
            raise MissingEntry(
                f"{who} needs {missing}, which {self} does not give (it gives "
                f"{sorted(self.signature())}){self._hint(missing)}."
            )

    def _hint(self, missing) -> str:
        return ""

    def example_bytes(self, keys) -> int:
        """Bytes of one example's `keys` (unknown sizes counted as 256)."""
        total = 0
        for key in keys:
            dtype, shape = self.signature()[key]
            size = int(np.prod([256 if d is None else d for d in shape], dtype=np.int64))
            total += size * max(1, dtype.size)
        return total

    def shuffle_buffer(self, keys, limit: int = 2048) -> int:
        """A shuffle buffer of at most SHUFFLE_BYTES (16 .. `limit` examples)."""
        return int(np.clip(SHUFFLE_BYTES // max(1, self.example_bytes(keys)), 16, limit))

    def shuffled(self, keys, seed: int) -> tf.data.Dataset:
        """(position, example) pairs of one pass in a seeded random order, reshuffled on
        every iteration (`.repeat()` gives epochs of different orders); `position` is the
        example's place in `examples(keys)`.

        Defaults to the ordered stream through a shuffle buffer of `shuffle_buffer(keys)`
        decoded examples; sources with random access shuffle every position."""
        return (
            self.examples(keys)
            .enumerate()
            .shuffle(self.shuffle_buffer(keys), seed=seed, reshuffle_each_iteration=True)
        )

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


# -- configs -------------------------------------------------------------------------
# Sources, and the SceneSpecs they render, are Keras serializables: a task's or a
# method's config holds them as `keras.saving.serialize_keras_object` writes them.

keras.saving.register_keras_serializable(package="zoo")(SceneSpec)


def source_config(source) -> dict:
    """The JSON-able Keras config of a source or SceneSpec (`source_from_config`
    rebuilds it)."""
    return keras.saving.serialize_keras_object(source)


def source_from_config(config: dict):
    """The source or SceneSpec `source_config` described; also reads the formats of
    configs written before sources were Keras serializables (`{"source": class name,
    "config": ...}` and `{"scene_spec": fields}`), so older runs' method.json load."""
    if "scene_spec" in config:
        return SceneSpec(**config["scene_spec"])
    if "class_name" not in config and {"source", "config"} <= set(config):
        values = {k: _deserialized(v) for k, v in config["config"].items()}
        return _LEGACY_NAMES[config["source"]](**values)
    return keras.saving.deserialize_keras_object(config)


def _deserialized(value):
    """A config value with the sources and SceneSpecs in it rebuilt."""
    if isinstance(value, dict) and (
        "class_name" in value or "scene_spec" in value or {"source", "config"} <= set(value)
    ):
        return source_from_config(value)
    return value


def as_source(value, num_examples: int | None = None, who: str = "the task") -> Source:
    """A Source from what a task's `source` may be: a Source, a SceneSpec (`num_examples`
    scenes), or a path (a folder of TFRecords, else an image folder)."""
    if isinstance(value, Source):
        return value
    if isinstance(value, dict) and "source" in value:
        return source_from_config(value)
    if isinstance(value, SceneSpec):
        return Synthetic(value, num_examples)
    if isinstance(value, (str, os.PathLike)):
        path = os.fspath(value)
        if not os.path.exists(path):
            raise MissingFile(f"{who}: data path {path!r} does not exist.")
        if os.path.isfile(path) or any(f.endswith(".tfrecord") for f in os.listdir(path)):
            return TFRecords(path)
        return ImageFolder(path)
    raise UserTypeError(
        f"{who}: a source must be a zoo.data source, a SceneSpec or a folder (TFRecords or "
        f"images). Received: {value!r}"
    )


# -- synthetic scenes -----------------------------------------------------------------

_ANNOUNCED = {}  # identity -> entries announced with `prepare`


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.data", denylist=["spec", "num"])
class Synthetic(Source):
    """Examples 0 .. num - 1 of a SceneSpec.

    Args:
        spec: SceneSpec.
        num: int. Number of scenes.
        storage: str. "cache": rendered once into the data cache (`zoo.data.cache`) by
            parallel workers, then read from it by every later run; "render": rendered
            on the fly by parallel workers on every pass (no disk; costs the renderer's
            time each epoch). Defaults to "cache".
        workers: int or None. Rendering processes. Defaults to the CPU count.
    """

    def __init__(self, spec: SceneSpec, num: int, storage: str = "cache", workers=None):
        if not isinstance(spec, SceneSpec):
            raise UserTypeError(f"Synthetic: `spec` must be a SceneSpec. Received: {spec!r}")
        checks.int_at_least(num, 1, "num", "Synthetic")
        if storage not in STORAGES:
            raise UserError(
                f"Synthetic: `storage` must be one of {STORAGES}. Received: {storage!r}"
            )
        checks.int_at_least(workers, 1, "workers", "Synthetic", none=True)
        self.spec, self.num, self.storage, self.workers = spec, num, storage, workers

    def get_config(self):
        return {
            "spec": self.spec,
            "num": self.num,
            "storage": self.storage,
            "workers": self.workers,
        }

    @property
    def max_depth(self) -> float:
        """The farthest depth of the scenes (`SceneSpec.max_depth`)."""
        return self.spec.max_depth

    def identity(self):
        # how the scenes are stored does not change them
        return json.dumps({"synthetic": dataclasses.asdict(self.spec), "num": self.num})

    def signature(self):
        return output_signature(self.spec)

    def _hint(self, missing):

        modes = [
            m
            for m in MODES
            if set(missing) <= set(output_signature(dataclasses.replace(self.spec, mode=m)))
        ]
        return f"; synthetic mode {modes} gives them" if modes else ""

    def __len__(self):
        return self.num

    @property
    def label_names(self):

        if self.spec.mode == "single":
            return {"label": tuple(CLASSES), "pose": tuple(POSE_BINS)}
        return {"semantics": ("background", *CLASSES), "scene": tuple(SCENE_NAMES)}

    def __repr__(self):
        spec = self.spec
        return (
            f"Synthetic(mode {spec.mode!r}, variant {spec.variant!r}, {spec.size} px, "
            f"split {spec.split!r}, {self.num} scenes)"
        )

    def prepare(self, keys):
        _ANNOUNCED.setdefault(self.identity(), set()).update(keys)

    def examples(self, keys):
        keys = list(keys)
        self.check(keys, "the task")
        if self.storage == "render":
            return self._rendered(keys)
        entry = cache.find(self.spec, self.num, keys)
        if entry is None:
            wanted = set(keys) | _ANNOUNCED.get(self.identity(), set())

            bar = Progress(self.num, f"rendering {self.num} scenes into the data cache")
            entry = cache.render(self.spec, self.num, wanted, self.workers, bar.update)
            bar.close()
        ds = tfrecord.read_tfrecords(entry, keys=keys)
        signature = self.signature()
        return ds.take(self.num).map(
            lambda e: {k: tf.ensure_shape(e[k], signature[k][1]) for k in keys}
        )

    def _rendered(self, keys):
        signature = self.signature()
        spec, num, workers = self.spec, self.num, self.workers

        def generate():
            for example in examples_of(spec, range(num), workers):
                yield {k: np.asarray(example[k], signature[k][0].as_numpy_dtype) for k in keys}

        return tf.data.Dataset.from_generator(
            generate,
            output_signature={k: tf.TensorSpec(signature[k][1], signature[k][0]) for k in keys},
        )


# -- TFRecords ------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.data")
class TFRecords(Source):
    """A folder (or glob) of TFRecords written by `zoo.data.write_tfrecords`.

    A `labels.json` beside the records ({entry: [class names]}) names the classes of
    label entries (served models return them).

    Args:
        path: str. The folder, a glob or one file.
    """

    def __init__(self, path: str):
        self.path = os.fspath(path)
        self._files = tfrecord.record_files(self.path)
        self._spec = tfrecord.feature_spec(self._files)
        folder = self.path if os.path.isdir(self.path) else os.path.dirname(self.path)
        names = os.path.join(folder, "labels.json")
        if os.path.exists(names):
            with open(names) as f:
                self.label_names = {k: tuple(v) for k, v in json.load(f).items()}

    def get_config(self):
        return {"path": self.path}

    def identity(self):
        stamps = [(f, os.path.getsize(f), os.path.getmtime(f)) for f in self._files]
        return json.dumps({"tfrecords": stamps})

    def signature(self):
        out = {}
        for key, (kind, dtype, rank) in self._spec.items():
            if kind == "image":
                out[key] = (tf.float32, (None, None, None))
            elif kind == "string":
                out[key] = (tf.string, ())
            else:
                out[key] = (tf.as_dtype(dtype), (None,) * rank)
        return out

    def examples(self, keys):
        self.check(keys, "the task")
        return tfrecord.read_tfrecords(self._files, keys=list(keys))

    def __len__(self):
        if not hasattr(self, "_count"):  # counted once, by reading the records
            records = tf.data.TFRecordDataset(self._files)
            self._count = int(records.reduce(np.int64(0), lambda n, _: n + 1))
        return self._count

    def __repr__(self):
        return f"TFRecords({self.path!r})"


# -- image folders --------------------------------------------------------------------


def list_images(directory, recursive=True):
    """Sorted paths of the image files (any letter case of IMAGE_EXTENSIONS) under `directory`."""
    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise MissingFile(f"Image folder {directory!r} does not exist or is not a folder.")
    found = []
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        found += [os.path.join(root, f) for f in names if f.lower().endswith(IMAGE_EXTENSIONS)]
        if not recursive:
            break
    return sorted(found)


def _inspect(path):
    """(width, height, PIL mode) of a decodable image file, or None."""
    try:
        with Image.open(path) as image:
            size, mode = image.size, image.mode
            image.verify()
        return size[0], size[1], mode
    except Exception:  # noqa: BLE001  (PIL raises many types for broken files; all mean "skip it")
        return None


def _shown(paths, limit=3):
    return ", ".join(map(str, paths[:limit])) + (
        f", ... ({len(paths)} in all)" if len(paths) > limit else ""
    )


def resize_and_center_crop(image, size, method="bilinear"):
    """Resizes `image` [H, W, C] to the smallest size covering `size` (an int: a square;
    or (height, width)), keeping its aspect, and crops the centre: a square's shorter
    side becomes `size`."""
    out_h, out_w = checks.image_size(size, "size")
    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    scale = tf.maximum(out_h / h, out_w / w)
    new_h = tf.maximum(out_h, tf.cast(tf.round(h * scale), tf.int32))
    new_w = tf.maximum(out_w, tf.cast(tf.round(w * scale), tf.int32))
    smooth = method == "bilinear"
    resized = tf.image.resize(image, [new_h, new_w], method=method, antialias=smooth)
    top, left = (new_h - out_h) // 2, (new_w - out_w) // 2
    resized = resized[top : top + out_h, left : left + out_w]
    if smooth:
        resized = tf.clip_by_value(resized, 0.0, 1.0)
    return tf.ensure_shape(tf.cast(resized, image.dtype), [out_h, out_w, None])


def resize_shorter_side(image, size):
    """Resizes `image` [H, W, C] (antialiased) so that its shorter side is `size`."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = size / tf.reduce_min(shape)
    new = tf.maximum(size, tf.cast(tf.round(shape * scale), tf.int32))
    return tf.clip_by_value(tf.image.resize(image, new, antialias=True), 0.0, 1.0)


def random_crop(image, size, seed):
    """A size x size crop at a random place (stateless `seed` [2]) of an image at least
    that large; smaller images are first resized so that their shorter side is `size`."""
    shape = tf.shape(image)
    short = tf.minimum(shape[0], shape[1])
    image = tf.cond(
        short < size,
        lambda: tf.image.resize(
            image,
            tf.cast(
                tf.math.ceil(tf.cast(shape[:2], tf.float32) * size / tf.cast(short, tf.float32)),
                tf.int32,
            ),
            antialias=True,
        ),
        lambda: image,
    )
    return tf.image.stateless_random_crop(image, [size, size, 3], seed)


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.data")
class ImageFolder(Source):
    """Image files in a folder: JPEG, PNG (8 or 16 bit), BMP, GIF; grayscale, palette,
    RGBA and CMYK become RGB.

    Files that are not decodable images are skipped and counted in one warning.

    Args:
        path: str. The folder.
        labels: str. "none" (unlabelled) or "folders" (each sub-folder of `path` is a
            class, named by the folder; entry "label", the class index in sorted order).
            Defaults to "none".
        masks: str or None. A folder parallel to `path` holding, for every image
            `a/b.jpg`, a mask `a/b.png` of the same size (or `a/b.npy`): entry `mask_key`.
            Defaults to None.
        mask_key: str. "semantics" (8-bit PNG of class indices) or "depth" (16-bit or
            8-bit PNG divided by `depth_scale`, or .npy float metres; 0 means unknown).
            Defaults to "semantics".
        depth_scale: float. PNG depth units per metre. Defaults to 1000 (millimetres).
        class_names: sequence of str or None. Semantics: the names of the classes 0, 1,
            ...; a mask holding a larger label is refused. Defaults to None: the lines of
            `<masks>/classes.txt` if it exists, else "0" .. "<the largest label found>"
            (every mask is scanned once).
        size: int or None. Resize the shorter side to `size` and keep the centre square
            (masks by nearest neighbour). Defaults to None: every image must have the
            same size.
        crop: int or None. Instead of the centre square, `crops_per_image` random
            crop x crop squares of each image, taken after resizing its shorter side to
            `size` if that is given too (images without masks; the places are
            drawn from `seed` and the example's position, so they are the same on every
            pass: raise `crops_per_image` for more variety). Defaults to None.
        crops_per_image: int. Defaults to 1.
        seed: int. Seed of the random crops. Defaults to 0.
        recursive: bool. Unlabelled folders: include sub-folders. Defaults to True.
    """

    def __init__(
        self,
        path: str,
        labels: str = "none",
        masks: str | None = None,
        mask_key: str = "semantics",
        depth_scale: float = 1000.0,
        class_names=None,
        size: int | None = None,
        crop: int | None = None,
        crops_per_image: int = 1,
        seed: int = 0,
        recursive: bool = True,
    ):
        if not isinstance(path, (str, os.PathLike)):
            raise UserTypeError(
                "ImageFolder: `path` must be a folder of images (in photos/pretext.gin: "
                "--gin_bindings='PHOTO_FOLDER = \"/your/photos\"'; in contrastive/*.gin: "
                f"--gin_bindings='IMAGE_FOLDER = \"/your/images\"'). Received: {path!r}"
            )
        self.path, self.labels, self.masks, self.mask_key = os.fspath(path), labels, masks, mask_key
        self.depth_scale, self.size, self.crop = depth_scale, size, crop
        self.class_names = None if class_names is None else tuple(map(str, class_names))
        self.crops_per_image, self.seed, self.recursive = crops_per_image, seed, recursive
        if labels not in ("none", "folders"):
            raise UserError(
                f"ImageFolder: `labels` must be 'none' or 'folders'. Received: {labels!r}"
            )
        if mask_key not in MASK_KEYS:
            raise UserError(
                f"ImageFolder: `mask_key` must be one of {MASK_KEYS}. Received: {mask_key!r}"
            )
        for key, value in (("size", size), ("crop", crop)):
            checks.int_at_least(value, 1, key, "ImageFolder", none=True)
        checks.int_at_least(crops_per_image, 1, "crops_per_image", "ImageFolder")
        if crop is not None and size is not None and crop > size:
            raise UserError(
                f"ImageFolder: `crop` ({crop}) must be at most `size` ({size}), the shorter "
                "side the images are resized to before cropping."
            )
        if crop is not None and masks is not None:
            raise UserError("ImageFolder: random crops are for images without masks; use `size`.")
        self._files, self._classes = self._find_files()
        self._files, infos = self._decodable(self._files)
        self._masks, self._mask_kinds = self._find_masks(infos) if masks else (None, None)
        self._shape = self._check_sizes(infos)
        self.label_names = {}
        if self._classes:
            self.label_names["label"] = tuple(self._classes)
        if self._masks and mask_key == "semantics":
            names = semantic_classes(self.masks, self._masks, self.class_names)[0]
            self.label_names["semantics"] = names

    # -- scanning -----------------------------------------------------------------

    def _find_files(self):
        if self.labels == "none":
            found = list_images(self.path, self.recursive)
            if not found:
                raise UserError(
                    f"Image folder {self.path!r} holds no image file (extensions "
                    f"{', '.join(IMAGE_EXTENSIONS)})."
                )
            return [(f, -1) for f in found], None
        if not os.path.isdir(self.path):
            raise MissingFile(f"Image folder {self.path!r} does not exist or is not a folder.")
        classes = sorted(
            d for d in os.listdir(self.path) if os.path.isdir(os.path.join(self.path, d))
        )
        if not classes:
            raise UserError(
                f"Image folder {self.path!r} has no class sub-folders (labels='folders' reads "
                "one sub-folder per class: <folder>/<class name>/<image>)."
            )
        loose = list_images(self.path, recursive=False)
        if loose:
            raise UserError(
                f"{len(loose)} images lie directly in {self.path!r} ({_shown(loose)}), outside "
                "any class sub-folder; move them into one."
            )
        found = []
        for index, name in enumerate(classes):
            images = list_images(os.path.join(self.path, name))
            if not images:
                raise UserError(
                    f"Class folder {os.path.join(self.path, name)!r} holds no image file; add "
                    "images or remove the folder."
                )
            found += [(f, index) for f in images]
        return found, classes

    def _decodable(self, found):
        infos = {f: _inspect(f) for f, _ in found}
        bad = sorted(f for f, info in infos.items() if info is None)
        if bad:
            logging.warning(
                "Skipping %d of %d files of %s that are not decodable images: %s",
                len(bad),
                len(found),
                self.path,
                _shown(bad),
            )
        good = [(f, label) for f, label in found if infos[f] is not None]
        if not good:
            raise UserError(f"Image folder {self.path!r} holds no decodable image.")
        return good, infos

    def _find_masks(self, infos):
        if not os.path.isdir(self.masks):
            raise MissingFile(f"Mask folder {self.masks!r} does not exist or is not a folder.")
        masks, missing, kinds = [], [], []
        for image, _ in self._files:
            stem = os.path.splitext(os.path.relpath(image, self.path))[0]
            candidates = [os.path.join(self.masks, stem + e) for e in (".png", ".npy")]
            mask = next((c for c in candidates if os.path.exists(c)), None)
            if mask is None:
                missing.append(image)
                continue
            kinds.append(_MASK_KINDS[".npy" if mask.endswith(".npy") else "png"])
            width, height, _ = infos[image]
            if mask.endswith(".npy"):
                if self.mask_key != "depth":
                    raise UserError(
                        f"{mask}: .npy masks are for depth; give semantics as 8-bit PNG."
                    )
                shape = np.load(mask, mmap_mode="r").shape
                if len(shape) not in (2, 3) or len(shape) == 3 and shape[2] != 1:
                    raise DataError(
                        f"Depth map {mask} has shape {shape}; a .npy depth map is [H, W] or "
                        "[H, W, 1] (metres)."
                    )
                mode = "F"
            else:
                info = _inspect(mask)
                if info is None:
                    raise DataError(f"Mask {mask} is not a decodable PNG.")
                shape, mode = (info[1], info[0]), info[2]
            if tuple(shape[:2]) != (height, width):
                raise DataError(
                    f"Mask {mask} is {shape[1]}x{shape[0]} but its image {image} is "
                    f"{width}x{height}; a mask must have its image's size."
                )
            wanted = ("L", "P") if self.mask_key == "semantics" else ("I;16", "I", "F", "L")
            if mode == "L" and self.mask_key == "depth":
                kinds[-1] = _MASK_KINDS["png8"]
            if mode not in wanted:
                raise DataError(
                    f"Mask {mask} has PIL mode {mode!r}; {self.mask_key} masks must be "
                    + (
                        "8-bit single-channel PNG (class indices)."
                        if self.mask_key == "semantics"
                        else "16-bit or 8-bit PNG, or .npy."
                    )
                )
            masks.append(mask)
        if missing:
            raise MissingEntry(
                f"{len(missing)} of {len(self._files)} images in {self.path!r} have no mask in "
                f"{self.masks!r} (same relative path, .png or .npy): {_shown(missing)}."
            )
        return masks, kinds

    def _check_sizes(self, infos):
        if self.crop is not None:
            return (self.crop, self.crop)
        if self.size is not None:
            return (self.size, self.size)
        sizes = {}
        for f, _ in self._files:
            sizes.setdefault(infos[f][:2], f)
        if len(sizes) > 1:
            shown = "; ".join(f"{f}: {w}x{h}" for (w, h), f in list(sizes.items())[:3])
            raise UserError(
                f"Images in {self.path!r} have {len(sizes)} different sizes ({shown}); set "
                "`size` (ImageFolder.size) to resize them to one."
            )
        width, height = next(iter(sizes))
        return (height, width)

    # -- the protocol -------------------------------------------------------------

    def get_config(self):
        return {
            "path": self.path,
            "labels": self.labels,
            "masks": self.masks,
            "mask_key": self.mask_key,
            "depth_scale": self.depth_scale,
            "class_names": None if self.class_names is None else list(self.class_names),
            "size": self.size,
            "crop": self.crop,
            "crops_per_image": self.crops_per_image,
            "seed": self.seed,
            "recursive": self.recursive,
        }

    def identity(self):
        stamps = [(f, os.path.getsize(f), os.path.getmtime(f)) for f, _ in self._files]
        digest = hashlib.sha256(json.dumps(stamps).encode()).hexdigest()
        return json.dumps(
            {"images": digest, **{k: v for k, v in self.get_config().items() if k != "path"}}
        )

    def __len__(self):
        return len(self._files) * self.crops_per_image

    @property
    def files(self):
        """The image files read, in order (each `crops_per_image` times)."""
        return [f for f, _ in self._files]

    def signature(self):
        out = {"image": (tf.float32, (*self._shape, 3)), "path": (tf.string, ())}
        if self._classes:
            out["label"] = (tf.int32, ())
        if self._masks:
            dtype = tf.int32 if self.mask_key == "semantics" else tf.float32
            out[self.mask_key] = (dtype, self._shape)
        return out

    def examples(self, keys):
        keys = list(keys)
        self.check(keys, "the task")
        load = self._loader(keys)
        return tf.data.Dataset.range(len(self)).map(
            lambda i: load(i), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )

    def shuffled(self, keys, seed):
        keys = list(keys)
        self.check(keys, "the task")
        load = self._loader(keys)
        order = tf.data.Dataset.range(len(self))
        order = order.shuffle(len(self), seed=seed, reshuffle_each_iteration=True)
        return order.map(
            lambda i: (i, load(i)), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )

    def _loader(self, keys):
        """A graph function: position (int64) -> the example's `keys`."""
        repeat = self.crops_per_image
        paths = tf.constant([f for f, _ in self._files])
        labels = tf.constant([label for _, label in self._files], tf.int32)
        masks = tf.constant(self._masks or [""] * len(self._files))
        kinds = tf.constant(self._mask_kinds or [0] * len(self._files), tf.int32)
        signature = self.signature()

        def load(index):
            row = index // repeat
            path = tf.gather(paths, row)
            data = tf.io.read_file(path)
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            image = tf.image.convert_image_dtype(image, tf.float32)
            example = {"path": path, "label": tf.gather(labels, row)}
            if self.crop is not None:
                if self.size is not None:
                    image = resize_shorter_side(image, self.size)
                seed = tf.stack([tf.cast(self.seed, tf.int64), index])
                image = random_crop(image, self.crop, seed)
            elif self.size is not None:
                image = resize_and_center_crop(image, self.size)
            example["image"] = tf.ensure_shape(image, signature["image"][1])
            if self.mask_key in keys:
                example[self.mask_key] = self._load_mask(
                    tf.gather(masks, row), tf.gather(kinds, row)
                )
            return {k: example[k] for k in keys}

        return load

    def _load_mask(self, path, kind):
        """The [H, W] mask at `path`, of kind `_MASK_KINDS[...]`, resized like the image."""
        if self.mask_key == "semantics":
            mask = tf.cast(tf.io.decode_png(tf.io.read_file(path), channels=1), tf.int32)
        else:

            def png(dtype):
                data = tf.io.decode_png(tf.io.read_file(path), channels=1, dtype=dtype)
                return tf.cast(data, tf.float32) / self.depth_scale

            mask = tf.switch_case(
                kind,
                [
                    lambda: tf.ensure_shape(
                        tf.numpy_function(_load_npy, [path], tf.float32), [None, None, 1]
                    ),
                    lambda: png(tf.uint16),
                    lambda: png(tf.uint8),
                ],
            )
        mask = tf.ensure_shape(mask, [None, None, 1])
        if self.size is not None:
            mask = resize_and_center_crop(mask, self.size, method="nearest")
        return tf.ensure_shape(mask[..., 0], self._shape)

    def __repr__(self):
        return f"ImageFolder({self.path!r})"


def semantic_classes(folder, masks=None, class_names=None):
    """(names, where they came from) of the classes in semantic masks: `class_names`,
    else the lines of `<folder>/classes.txt`, else "0" .. the largest label of the masks.

    Args:
        folder: str. The mask folder.
        masks: list of str or None. The mask files. Defaults to every PNG under `folder`.
        class_names: sequence of str or None.

    Raises DataError, naming the files, when a mask holds a label without a name.
    """
    names, origin = class_names, "class_names"
    listed = os.path.join(folder, CLASS_LIST)
    if names is None and os.path.exists(listed):
        with open(listed) as f:
            names = [line.strip() for line in f if line.strip()]
        origin = listed
    if names is not None and not names:
        raise UserError(f"{origin} names no class.")
    if masks is None:
        masks = [m for m in list_images(folder) if m.lower().endswith(".png")]
    largest = {}
    for mask in masks:
        with Image.open(mask) as image:
            largest[mask] = int(image.getextrema()[1])
    if names is None:
        top = max(largest.values(), default=0)
        return tuple(str(i) for i in range(top + 1)), f"labels 0..{top} found in the masks"
    beyond = sorted(m for m, value in largest.items() if value >= len(names))
    if beyond:
        shown = ", ".join(f"{m} (label {largest[m]})" for m in beyond[:3])
        raise DataError(
            f"{len(beyond)} masks in {folder!r} hold labels beyond the {len(names)} classes "
            f"of {origin} (0..{len(names) - 1}): {shown}"
            + (f", ... ({len(beyond)} in all)" if len(beyond) > 3 else "")
            + "; name every class, or fix the masks."
        )
    return tuple(map(str, names)), origin


def _load_npy(path):
    array = np.load(path.decode()).astype(np.float32)
    return array[..., None] if array.ndim == 2 else array


# ImageFolder's parameters that Photos sets itself
_NOT_FOR_PHOTOS = ["path", "labels", "masks", "mask_key", "depth_scale", "class_names", "recursive"]


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.data", denylist=_NOT_FOR_PHOTOS)
class Photos(ImageFolder):
    """The photographs installed with scikit-image, as an image folder (never downloaded).

    Args:
        names: list of str. Keys of `SKIMAGE_PHOTOS`. Defaults to the nine colour
            photographs (`COLOR_PHOTOS`).
        **kwargs: as ImageFolder (size, crop, crops_per_image, seed).
    """

    def __init__(self, names=COLOR_PHOTOS, **kwargs):
        self.names = tuple(names)
        unknown = [n for n in self.names if n not in PHOTOS]
        if unknown:
            raise UserError(f"Photos: unknown photo names {unknown}; known: {sorted(PHOTOS)}")
        if not self.names:
            raise UserError("Photos: `names` is empty; give at least one photo name.")
        self._data_dir = skimage_data_dir()
        super().__init__(self._data_dir, **kwargs)

    def _find_files(self):
        paths = [photo_path(n) for n in self.names]
        missing = [p for p in paths if not os.path.exists(p)]
        if missing:
            raise MissingFile(
                f"{missing} are missing; reinstall scikit-image and scikit-learn, which "
                "install these photographs."
            )
        return [(p, -1) for p in paths], None

    def get_config(self):
        config = super().get_config()
        del (
            config["path"],
            config["labels"],
            config["masks"],
            config["mask_key"],
            config["class_names"],
            config["recursive"],
        )
        return {"names": self.names, **config}

    def __repr__(self):
        return f"Photos({list(self.names)})"


@gin.configurable(module="zoo.data")
def real_photos(
    part: str = "train",
    crop: int = 227,
    size: int | None = None,
    crops_per_image: int = 256,
    seed: int = 0,
) -> "Photos":
    """Ren & Lee's real domain, made of the photographs that need no download.

    Random crops of `ADAPTATION_PHOTOS` ("train", what a domain-adaptation method reads)
    or `HELDOUT_PHOTOS` ("heldout", never trained on: domain-gap measurements, nearest
    neighbours, predictions). The texture photographs of the "P" renders are in neither.

    Args:
        part: str. "train" or "heldout". Defaults to "train".
        crop: int. Side of the square crops. Defaults to 227 (the paper's input).
        size: int or None. The shorter side of each photo is resized to `size` before
            cropping (None: crops of the photos as they are, 300-640 px). Defaults to None.
        crops_per_image: int. Crops of each photo. Defaults to 256.
        seed: int. Seed of the crops' places. Defaults to 0 (another seed for "heldout").
    """
    if part not in ("train", "heldout"):
        raise UserError(f"real_photos: `part` must be 'train' or 'heldout'. Received: {part!r}")
    names = ADAPTATION_PHOTOS if part == "train" else HELDOUT_PHOTOS
    return Photos(
        names,
        size=size,
        crop=crop,
        crops_per_image=crops_per_image,
        seed=seed + (0 if part == "train" else 1),
    )


def real_crops(part: str, size: int, crops_per_image: int = 256) -> "Photos":
    """`real_photos(part)` crops of `size` px from photos resized to twice that first (a
    crop shows about a quarter of a photo): the real domain a domain-adaptation method
    reads by default ("train") and the one its measurements read ("heldout")."""
    return real_photos(part, crop=size, size=2 * size, crops_per_image=crops_per_image)


# -- held-out splits ------------------------------------------------------------------


def _hash(index, seed):
    """A seeded 32-bit hash (int64 tensor) of example positions."""
    h = tf.bitwise.bitwise_xor(tf.cast(index, tf.int64), tf.constant(seed * 0x9E3779B1, tf.int64))
    h = tf.math.floormod(h * 0x85EBCA6B, 2**32)
    h = tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 13))
    h = tf.math.floormod(h * 0xC2B2AE35, 2**32)
    return tf.bitwise.bitwise_xor(h, tf.bitwise.right_shift(h, 16))


def _in_holdout(index, fraction, seed):
    """True for the examples (int64 position) a seeded hash puts in the held-out part."""
    return tf.cast(_hash(index, seed), tf.float64) < fraction * 2.0**32


def _filtered(ds, mine):
    """(position, example) pairs of the positions `mine` (bool [N]) keeps, each given
    its place among them."""
    place = tf.cumsum(tf.cast(mine, tf.int64)) - 1
    ds = ds.filter(lambda i, e: tf.gather(mine, i))
    return ds.map(lambda i, e: (tf.gather(place, i), e))


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.data")
class Holdout(Source):
    """One part of a seeded split of a source: each example goes to the held-out part
    with probability `fraction`, decided by a hash of its position and `seed` (the same
    on every pass and in every process).

    Args:
        source: Source.
        fraction: float in (0, 1). Share of the held-out part.
        part: str. "train" (the rest) or "eval" (the held-out part). Defaults to "train".
        seed: int. Defaults to 0.
    """

    def __init__(self, source: Source, fraction: float, part: str = "train", seed: int = 0):
        if not (isinstance(fraction, float) and 0.0 < fraction < 1.0):
            raise UserError(
                f"Holdout: `fraction` must be a float in (0, 1). Received: {fraction!r}"
            )
        if part not in ("train", "eval"):
            raise UserError(f"Holdout: `part` must be 'train' or 'eval'. Received: {part!r}")
        self.source, self.fraction, self.part, self.seed = source, fraction, part, seed
        self.label_names, self.max_depth = source.label_names, source.max_depth

    def get_config(self):
        return {
            "source": self.source,
            "fraction": self.fraction,
            "part": self.part,
            "seed": self.seed,
        }

    def signature(self):
        return self.source.signature()

    def prepare(self, keys):
        self.source.prepare(keys)

    def examples(self, keys):
        held = self.part == "eval"
        fraction, seed = self.fraction, self.seed
        ds = self.source.examples(keys).enumerate()
        ds = ds.filter(lambda i, e: tf.equal(_in_holdout(i, fraction, seed), held))
        return ds.map(lambda i, e: e)

    def shuffled(self, keys, seed):
        held = self.part == "eval"
        mine = _in_holdout(tf.range(len(self.source), dtype=tf.int64), self.fraction, self.seed)
        return _filtered(self.source.shuffled(keys, seed), tf.equal(mine, held))

    def __len__(self):
        n = len(self.source)
        held = int(
            tf.reduce_sum(
                tf.cast(
                    _in_holdout(tf.range(n, dtype=tf.int64), self.fraction, self.seed), tf.int32
                )
            )
        )
        return held if self.part == "eval" else n - held

    def __repr__(self):
        return f"Holdout({self.source!r}, {self.fraction}, part={self.part!r})"


@keras.saving.register_keras_serializable(package="zoo")
class First(Source):
    """The first `num` examples of a source (e.g. the n labels of a transfer run)."""

    def __init__(self, source: Source, num: int):
        checks.int_at_least(num, 1, "num", "First")
        self.source, self.num = source, num
        self.label_names, self.max_depth = source.label_names, source.max_depth

    def get_config(self):
        return {"source": self.source, "num": self.num}

    def signature(self):
        return self.source.signature()

    def prepare(self, keys):
        self.source.prepare(keys)

    def examples(self, keys):
        return self.source.examples(keys).take(self.num)

    def shuffled(self, keys, seed):
        num = self.num
        return self.source.shuffled(keys, seed).filter(lambda i, e: i < num)

    def __len__(self):
        return min(self.num, len(self.source))

    def __repr__(self):
        return f"First({self.source!r}, {self.num})"


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.data")
class LabelledFraction(Source):
    """A share of a source's examples, chosen in a fixed seeded order: its examples are
    the first round(fraction · N) of the source's positions sorted by a seeded hash, so
    the subsets of one seed are nested (the 10 % holds the 5 %) and the same in every
    process (CompL's label fractions: a fixed list of files per fraction).

    Args:
        source: Source. It must know its length.
        fraction: float in (0, 1]. Share kept (at least one example).
        seed: int. The order. Defaults to 0.
        complement: bool. Keep the other examples instead: the rest of the source
            (MGMr's weakly labelled real images). Defaults to False.
    """

    def __init__(self, source: Source, fraction: float, seed: int = 0, complement: bool = False):
        checks.number_in(fraction, "fraction", 0, 1, "LabelledFraction", low_open=True)
        self.source, self.fraction, self.seed = source, float(fraction), seed
        self.complement = bool(complement)
        self.label_names, self.max_depth = source.label_names, source.max_depth
        try:
            total = len(source)
        except TypeError:
            raise UserError(
                f"LabelledFraction: {source} does not know how many examples it has."
            ) from None
        self.count = max(1, int(round(self.fraction * total)))
        order = np.argsort(_hash(tf.range(total, dtype=tf.int64), seed).numpy(), kind="stable")
        kept = np.zeros(total, bool)
        kept[order[: self.count]] = True
        if self.complement:
            kept, self.count = ~kept, total - self.count
            if not self.count:
                raise UserError(
                    f"LabelledFraction: fraction {self.fraction} of {total} examples leaves "
                    "none for the complement."
                )
        self._kept = kept

    def get_config(self):
        return {
            "source": self.source,
            "fraction": self.fraction,
            "seed": self.seed,
            "complement": self.complement,
        }

    def positions(self) -> np.ndarray:
        """The kept positions of the source, in order."""
        return np.flatnonzero(self._kept)

    def signature(self):
        return self.source.signature()

    def prepare(self, keys):
        self.source.prepare(keys)

    def examples(self, keys):
        kept = tf.constant(self._kept)
        ds = self.source.examples(keys).enumerate()
        return ds.filter(lambda i, e: tf.gather(kept, i)).map(lambda i, e: e)

    def shuffled(self, keys, seed):
        return _filtered(self.source.shuffled(keys, seed), tf.constant(self._kept))

    def __len__(self):
        return self.count

    def __repr__(self):
        rest = ", complement=True" if self.complement else ""
        return f"LabelledFraction({self.source!r}, {self.fraction}, seed={self.seed}{rest})"


def split(source: Source, fraction: float, seed: int = 0) -> tuple:
    """(train part, held-out part) of a seeded split of `source`."""
    return Holdout(source, fraction, "train", seed), Holdout(source, fraction, "eval", seed)


def write_photo_classes(
    out_dir: str,
    names=("astronaut", "chelsea", "coffee", "rocket"),
    crops_per_photo: int = 30,
    crop: int = 128,
    seed: int = 0,
) -> list:
    """Writes a small labelled image folder from the photographs that scikit-image
    installs: `<out_dir>/<photo name>/<k>.jpg`, random `crop` px squares of each photo
    (resized so that its shorter side is 2 x crop), one class per photo. A quick dataset
    for trying `zoo-finetune`; an existing folder is refused.

    Returns:
        The written files.
    """

    if os.path.exists(out_dir) and os.listdir(out_dir):
        raise ExistingFile(f"{out_dir} exists and is not empty; give another folder.")
    unknown = [n for n in names if n not in PHOTOS]
    if unknown:
        raise UserError(f"unknown photo names {unknown}; known: {sorted(PHOTOS)}")
    rng = np.random.default_rng(seed)
    written = []
    for name in names:
        with PILImage.open(photo_path(name)) as photo:
            photo = photo.convert("RGB")
            scale = 2 * crop / min(photo.size)
            photo = photo.resize((round(photo.size[0] * scale), round(photo.size[1] * scale)))
        for k in range(crops_per_photo):
            left = int(rng.integers(0, photo.size[0] - crop + 1))
            top = int(rng.integers(0, photo.size[1] - crop + 1))
            piece = photo.crop((left, top, left + crop, top + crop))
            path = os.path.join(out_dir, name, f"{k:03d}.jpg")
            files.make_dirs(os.path.dirname(path))
            written.append(
                files.write_file(path, lambda t, p=piece: p.save(t, format="JPEG", quality=90))
            )
    return written


# the class names that configs written before sources were Keras serializables use
_LEGACY_NAMES = {c.__name__: c for c in (Synthetic, TFRecords, ImageFolder, Photos, Holdout, First)}
