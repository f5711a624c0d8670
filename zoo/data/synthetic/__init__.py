"""Embedded synthetic scene benchmark (Newell & Deng 2020, Ren & Lee 2018).

`SceneSpec` says what to render, `generate(spec, index)` renders one example,
`dataset(spec, num)` streams examples through `tf.data`, and `write_tfrecords(spec, num,
out_dir, shards)` stores them (see `scene` for the conventions of every map).
"""

from zoo.data.synthetic.io import dataset, write_tfrecords
from zoo.data.synthetic.objects import CLASSES
from zoo.data.synthetic.scene import POSE_BINS, SCENE_NAMES, SceneSpec, describe, generate

__all__ = [
    "CLASSES",
    "POSE_BINS",
    "SCENE_NAMES",
    "SceneSpec",
    "dataset",
    "describe",
    "generate",
    "write_tfrecords",
]
