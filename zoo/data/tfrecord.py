"""TFRecord files of dict examples: the zoo's on-disk format.

Each record is a `tf.train.Example`; a dict entry `key` becomes these features:

* image (an entry named in `image_keys`; uint8, or float in [0, 1]; shape [H, W, C]
  with C in 1, 3, 4):
    - `key`: PNG bytes (8 bit),
    - `key/shape`: int64 [H, W, C],
    - `key/format`: b"png";
* any other array or number (float maps, masks, labels):
    - `key`: raw bytes of the array, C order, little endian,
    - `key/shape`: int64 list (empty for a scalar),
    - `key/dtype`: numpy dtype name, e.g. b"float32";
* str or bytes:
    - `key`: the bytes,
    - `key/dtype`: b"string".

Readers infer the layout from the first record, so files written by
`write_tfrecords` read back without a separate schema. Images come back as float32
in [0, 1], arrays with their dtype and shape, strings as tf.string.

Shards are written round robin (example i goes to shard i mod n) and read back by
interleaving them one record at a time, so reading gives the order of writing.
"""

import contextlib
import glob
import io
import os
import re

import numpy as np
import tensorflow as tf
from google.protobuf.message import DecodeError
from PIL import Image

from zoo import checks
from zoo.errors import DataError, ExistingFile, MissingEntry, MissingFile, UserError

_DTYPES = (
    "float16",
    "float32",
    "float64",
    "int8",
    "int16",
    "int32",
    "int64",
    "uint8",
    "uint16",
    "bool",
)


def _bytes(value):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _ints(values):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _encode_png(key, value):
    array = np.asarray(value)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4):
        raise UserError(
            f"Image entry {key!r} must have shape [H, W, C] with C in (1, 3, 4). "
            f"Received shape {array.shape}."
        )
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.floating):
            raise UserError(
                f"Image entry {key!r} must be uint8 or float in [0, 1]. Received {array.dtype}."
            )
        array = np.round(np.clip(array, 0.0, 1.0) * 255.0).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(buffer, format="PNG")
    return {
        key: _bytes(buffer.getvalue()),
        f"{key}/shape": _ints(array.shape),
        f"{key}/format": _bytes(b"png"),
    }


def encode_example(example, image_keys=("image",)):
    """Serializes a dict of arrays, numbers and strings to a `tf.train.Example` (bytes)."""
    features = {}
    for key, value in example.items():
        if not isinstance(key, str) or not key or "/" in key:
            raise UserError(f"Example keys must be non-empty strings without '/'. Got {key!r}.")
        if key in image_keys:
            features.update(_encode_png(key, value))
        elif isinstance(value, (str, bytes)):
            data = value.encode() if isinstance(value, str) else value
            features[key] = _bytes(data)
            features[f"{key}/dtype"] = _bytes(b"string")
        else:
            array = np.asarray(value)
            if array.dtype.name not in _DTYPES:
                raise UserError(
                    f"Entry {key!r} has dtype {array.dtype}; supported: {list(_DTYPES)}, "
                    f"str and bytes."
                )
            features[key] = _bytes(
                np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
            )
            features[f"{key}/shape"] = _ints(array.shape)
            features[f"{key}/dtype"] = _bytes(array.dtype.name.encode())
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def shard_paths(out_dir, shards, prefix="data"):
    """Paths `{out_dir}/{prefix}-00000-of-0000N.tfrecord` of an N-shard set."""
    return [
        os.path.join(out_dir, f"{prefix}-{i:05d}-of-{shards:05d}.tfrecord") for i in range(shards)
    ]


def write_tfrecords(
    examples, out_dir, shards=1, prefix="data", image_keys=("image",), overwrite=False
):
    """Writes dict examples round robin into `shards` TFRecord files.

    Args:
        examples: iterable of dicts (see the module docstring for the encoding).
        out_dir: str. Created if missing.
        shards: int. Number of files. Defaults to 1.
        prefix: str. File name prefix. Defaults to "data".
        image_keys: tuple of str. Entries stored as PNG. Defaults to ("image",).
        overwrite: bool. Replace an existing shard set with this prefix.
            Defaults to False: existing files raise `FileExistsError`.

    Returns:
        (list of shard paths, number of examples written).
    """
    checks.int_at_least(shards, 1, "shards", keyed=True)
    os.makedirs(out_dir, exist_ok=True)
    existing = sorted(glob.glob(os.path.join(out_dir, f"{prefix}-*.tfrecord")))
    if existing and not overwrite:
        raise ExistingFile(
            f"{out_dir} already holds {len(existing)} '{prefix}-*.tfrecord' files "
            f"(e.g. {existing[0]}); pass overwrite=True to replace them or choose another "
            f"prefix or folder."
        )
    for path in existing:
        os.remove(path)
    paths = shard_paths(out_dir, shards, prefix)
    writers = [tf.io.TFRecordWriter(p) for p in paths]
    count = 0
    try:
        for count, example in enumerate(examples, start=1):
            writers[(count - 1) % shards].write(encode_example(example, image_keys))
    finally:
        for w in writers:
            w.close()
    return paths, count


# Every TFRecord file this process reads: a DataLossError names no file, and
# `data_loss_error` finds the damaged one among them.
_OPENED = []


def _first_example(files):
    try:
        for record in tf.data.TFRecordDataset(files[:1]).take(1):
            return tf.train.Example.FromString(record.numpy())
    except (tf.errors.DataLossError, DecodeError) as error:
        raise DataError(
            f"TFRecord file {files[0]} is damaged or not a TFRecord file "
            f"({_reason(error) if isinstance(error, tf.errors.OpError) else error}); "
            "rewrite it, or remove it from the source."
        ) from None
    raise UserError(f"{files[0]} holds no record.")


def find_damaged(files) -> tuple | None:
    """(file, number of good records before the damage, reason) of the first file that
    cannot be read to its end, or None."""
    for path in files:
        good = 0
        try:
            for _ in tf.data.TFRecordDataset(path):
                good += 1
        except tf.errors.DataLossError as error:
            return path, good, _reason(error)
    return None


def _reason(error):
    """The DataLossError's own words, without TensorFlow's node and op names."""
    text = re.sub(r"\{\{.*?\}\}|\[Op:.*?\]|name:\s*$", "", str(error.message).splitlines()[0])
    return " ".join(text.split())


@contextlib.contextmanager
def damaged_files_named():
    """Turns a DataLossError raised inside into `data_loss_error(error)`."""
    try:
        yield
    except tf.errors.DataLossError as error:
        raise data_loss_error(error) from None


def data_loss_error(error: tf.errors.DataLossError) -> Exception:
    """A DataError naming the damaged file among those this process read (the
    DataLossError of a tf.data pipeline names none); `error` itself when none is found."""
    # the files read last first: the failing pipeline is most likely the newest
    opened = [f for f in dict.fromkeys(reversed(_OPENED)) if os.path.exists(f)]
    found = find_damaged(opened)
    if found is None:
        return error
    path, good, reason = found
    return DataError(
        f"TFRecord file {path} is damaged after {good} good records ({reason}); "
        "rewrite it, or remove it from the source."
    )


def feature_spec(files):
    """Infers {key: (kind, dtype, rank)} from the first record; kind is image|array|string."""
    features = _first_example(files).features.feature
    spec = {}
    for key in sorted(k for k in features if "/" not in k):
        if f"{key}/format" in features:
            spec[key] = ("image", "float32", 3)
        else:
            dtype = features[f"{key}/dtype"].bytes_list.value[0].decode()
            if dtype == "string":
                spec[key] = ("string", "string", 0)
            else:
                spec[key] = ("array", dtype, len(features[f"{key}/shape"].int64_list.value))
    return spec


def _parser(spec):
    parse_spec = {}
    for key, (kind, _, rank) in spec.items():
        parse_spec[key] = tf.io.FixedLenFeature([], tf.string)
        if kind != "string":
            parse_spec[f"{key}/shape"] = tf.io.FixedLenFeature([rank], tf.int64)

    def parse(record):
        raw = tf.io.parse_single_example(record, parse_spec)
        out = {}
        for key, (kind, dtype, _) in spec.items():
            if kind == "image":
                shape = raw[f"{key}/shape"]
                image = tf.io.decode_png(raw[key], channels=0)
                image = tf.reshape(image, shape)
                out[key] = tf.image.convert_image_dtype(image, tf.float32)
            elif kind == "string":
                out[key] = raw[key]
            else:
                stored = tf.uint8 if dtype == "bool" else tf.as_dtype(dtype)
                value = tf.io.decode_raw(raw[key], stored, little_endian=True)
                value = tf.reshape(value, raw[f"{key}/shape"])
                out[key] = tf.cast(value, tf.bool) if dtype == "bool" else value
        return out

    return parse


def record_files(pattern) -> list:
    """The TFRecord files of a folder (its *.tfrecord), a glob or a list, in order."""
    if isinstance(pattern, (list, tuple)):
        files = [os.fspath(f) for f in pattern]
    elif os.path.isdir(pattern):
        files = sorted(glob.glob(os.path.join(pattern, "*.tfrecord")))
    else:
        files = sorted(glob.glob(os.fspath(pattern)))
    if not files:
        raise MissingFile(f"No TFRecord file matches {pattern!r}.")
    return files


def read_tfrecords(pattern, keys=None):
    """Reads TFRecords written by `write_tfrecords` into a dataset of dicts, in writing order.

    Args:
        pattern: str or list of str. A glob (e.g. "dir/data-*.tfrecord"), a folder
            (all its *.tfrecord files) or a list of files.
        keys: list of str or None. Entries to decode. Defaults to None (all).
    """
    files = record_files(pattern)
    _OPENED.extend(files)
    spec = feature_spec(files)
    if keys is not None:
        missing = sorted(set(keys) - set(spec))
        if missing:
            raise MissingEntry(
                f"The records of {pattern} have no entries {missing}; they hold {sorted(spec)}."
            )
        spec = {k: spec[k] for k in keys}
    ds = tf.data.Dataset.from_tensor_slices(files).interleave(
        tf.data.TFRecordDataset,
        cycle_length=len(files),
        block_length=1,
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return ds.map(_parser(spec), num_parallel_calls=tf.data.AUTOTUNE)
