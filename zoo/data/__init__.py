"""Data: sources (synthetic scenes, TFRecords, image folders), TFRecord I/O and input harmonization.

Names are imported on first use, so that numpy-only parts (the synthetic renderer in
worker processes) load without TensorFlow.
"""

import importlib

_EXPORTS = {
    "harmonize_dataset": "zoo.data.harmonize",
    "harmonizer": "zoo.data.harmonize",
    "Holdout": "zoo.data.sources",
    "ImageFolder": "zoo.data.sources",
    "LabelledFraction": "zoo.data.sources",
    "Photos": "zoo.data.sources",
    "Source": "zoo.data.sources",
    "Synthetic": "zoo.data.sources",
    "TFRecords": "zoo.data.sources",
    "split": "zoo.data.sources",
    "read_tfrecords": "zoo.data.tfrecord",
    "write_tfrecords": "zoo.data.tfrecord",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'zoo.data' has no attribute {name!r}")
