"""Embedded synthetic scene benchmark (Newell & Deng 2020, Ren & Lee 2018).

`SceneSpec` says what to render, `generate(spec, index)` renders one example,
`dataset(spec, num)` streams examples through `tf.data`, `render_arrays(spec, num)`
renders with several processes into numpy arrays, and `write_tfrecords(spec, num,
out_dir, shards)` stores them (see `scene` for the conventions of every map). The
renderer is numpy only; TensorFlow is imported when `dataset` or `write_tfrecords` is.
"""

import importlib

from zoo.data.synthetic.objects import CLASSES
from zoo.data.synthetic.scene import POSE_BINS, SCENE_NAMES, SceneSpec, describe, generate

_LAZY = {
    "dataset": "zoo.data.synthetic.io",
    "write_tfrecords": "zoo.data.synthetic.io",
    "render_arrays": "zoo.data.synthetic.io",
}

__all__ = ["CLASSES", "POSE_BINS", "SCENE_NAMES", "SceneSpec", "describe", "generate", *_LAZY]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'zoo.data.synthetic' has no attribute {name!r}")
