"""Data: image sources, TFRecord I/O and input harmonization."""

from zoo.data.harmonize import harmonize_dataset, harmonizer
from zoo.data.sources import image_files, image_folder, skimage_photos
from zoo.data.tfrecord import read_tfrecords, write_tfrecords

__all__ = [
    "harmonize_dataset",
    "harmonizer",
    "image_files",
    "image_folder",
    "read_tfrecords",
    "skimage_photos",
    "write_tfrecords",
]
