"""What every task has: a data pipeline, a head, a loss, metrics and serving outputs.

A task turns a *source* into batches of `(inputs, targets)`:

* a `SceneSpec` (the embedded synthetic benchmark): the task renders `num_examples`
  scenes of the spec for training (split "train" models) and `eval_examples` of the
  same spec with split "test" for held-out evaluation; rendered scenes are kept in
  memory and shared by every task that uses the same spec;
* a folder of TFRecords written by `zoo.data.write_tfrecords` (`eval_source` then
  names the held-out folder).

Inputs are float RGB in [0, 1] passed through the configured harmonizer. Heads take
the trunk's endpoint named by `endpoint` and return logits (or raw regression maps).
Tasks never import models; `zoo.models.MultiTaskModel` gets tasks.
"""

import abc
import dataclasses
import functools
import os

import keras
import numpy as np
import tensorflow as tf

from zoo.data import harmonize
from zoo.data.synthetic import SceneSpec
from zoo.data.synthetic.io import output_signature, render_arrays
from zoo.data.synthetic.scene import MODES
from zoo.data.tfrecord import read_tfrecords


@functools.lru_cache(maxsize=8)
def rendered(spec, num):
    """`num` scenes of `spec` rendered once per process (all cores), as numpy arrays."""
    return render_arrays(spec, num)


class Task(abc.ABC):
    """Base class; subclasses set `name`, `required` (source entries) and the methods below.

    Args:
        source: SceneSpec or str. Training data (see the module docstring).
        eval_source: SceneSpec, str or None. Held-out data. Defaults to the spec with
            split "test" for a SceneSpec; required for TFRecords.
        endpoint: str. Trunk endpoint the head reads. Defaults to "block4".
        harmonizer: str. Harmonization of the inputs (`zoo.data.harmonize`).
            Defaults to "identity".
        num_examples: int. Synthetic training scenes. Defaults to 1024.
        eval_examples: int. Synthetic held-out scenes. Defaults to 256.
        head_width: int. Width of the head's first layer. Defaults to 256.
        seed: int. Seed of shuffling and of random inputs. Defaults to 0.
        name: str or None. Defaults to the task's own name.
    """

    name = None
    required = ("image",)

    def __init__(
        self,
        source,
        eval_source=None,
        endpoint="block4",
        harmonizer="identity",
        num_examples=1024,
        eval_examples=256,
        head_width=256,
        seed=0,
        name=None,
    ):
        if not isinstance(source, (SceneSpec, str)):
            raise TypeError(
                f"{type(self).__name__}: `source` must be a SceneSpec or a TFRecord folder. "
                f"Received: {source!r}"
            )
        self.name = name or self.name
        self._check_source(source)
        if eval_source is None:
            if isinstance(source, str):
                raise ValueError(
                    f"{type(self).__name__}: a TFRecord source needs `eval_source` (the "
                    "held-out TFRecord folder)."
                )
            eval_source = dataclasses.replace(source, split="test")
        self.source, self.eval_source = source, eval_source
        self.endpoint = endpoint
        self.harmonize = harmonize.harmonizer(harmonizer)
        self.num_examples, self.eval_examples = num_examples, eval_examples
        self.head_width = head_width
        self.seed = seed
        self._check_source(eval_source)

    def _check_source(self, source):
        if isinstance(source, SceneSpec):
            missing = [k for k in self.required if k not in output_signature(source)]
            if missing:
                modes = [
                    m
                    for m in MODES
                    if set(self.required)
                    <= set(output_signature(dataclasses.replace(source, mode=m)))
                ]
                raise ValueError(
                    f"Task {self.name!r} needs {missing}, which synthetic mode "
                    f"{source.mode!r} does not give; use mode {modes}."
                )
        elif not os.path.exists(source):
            raise FileNotFoundError(f"Task {self.name!r}: data path {source!r} does not exist.")

    # -- data ----------------------------------------------------------------------

    def examples(self, split):
        """Raw examples (dicts) of the "train" or "eval" source."""
        source = self.source if split == "train" else self.eval_source
        if isinstance(source, SceneSpec):
            num = self.num_examples if split == "train" else self.eval_examples
            arrays = rendered(source, num)
            return tf.data.Dataset.from_tensor_slices({k: arrays[k] for k in self.required})
        return read_tfrecords(source, keys=list(self.required))

    @abc.abstractmethod
    def prepare(self, example, seed):
        """(inputs, targets) of one harmonized example; `seed` [2] for random choices."""

    def pipeline(self, split, batch_size, repeat=None):
        """Batches of (inputs, targets): shuffled and repeated for "train", in order for "eval"."""
        training = split == "train"
        ds = self.examples(split)
        seeds = tf.data.Dataset.random(seed=self.seed + (0 if training else 1)).batch(2)
        if training:
            ds = ds.shuffle(2048, seed=self.seed, reshuffle_each_iteration=True)
        if training if repeat is None else repeat:
            ds = ds.repeat()
        ds = tf.data.Dataset.zip(ds, seeds)

        # Plain graph code: AutoGraph has nothing to convert (and, for a closure named
        # like a method, fails to with a warning).
        @tf.autograph.experimental.do_not_convert
        def to_inputs_and_targets(example, seed):
            image_seed, task_seed = tf.unstack(tf.random.split(seed, 2))
            example = dict(example)
            example["rgb"] = example["image"]  # before harmonization (colour targets)
            example["image"] = self.harmonize(example["image"], image_seed)
            return self.prepare(example, task_seed)

        ds = ds.map(to_inputs_and_targets, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.batch(batch_size, drop_remainder=training)
        if type(self).prepare_batch is not Task.prepare_batch:
            ds = ds.map(self.prepare_batch, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.prefetch(tf.data.AUTOTUNE)

    def prepare_batch(self, inputs, targets):
        """(inputs, targets) of a whole batch, for tasks that combine examples (e.g. the
        exemplar task's negatives come from other images). Defaults to no change."""
        return inputs, targets

    # -- model ---------------------------------------------------------------------

    def input_shape(self, input_size):
        """Shape of one example's inputs. Defaults to an input_size x input_size RGB image;
        tasks on patches or on other image sizes override it."""
        return (input_size, input_size, 3)

    def build_outputs(self, inputs, features, input_size):
        """Head output from the task's symbolic `inputs`; `features(images)` runs the trunk
        on a batch of images and returns what the head reads (an endpoint or a lasso mix).
        Siamese tasks override it to pass all their patches through the trunk as one
        batch and rearrange the features afterwards."""
        return self.build_head(features(inputs), input_size)

    @abc.abstractmethod
    def build_head(self, features, input_size):
        """Head output (logits or a raw map) from the endpoint's features."""

    @abc.abstractmethod
    def loss(self, targets, outputs):
        """Per-example loss [B]."""

    @abc.abstractmethod
    def evaluate(self, targets, outputs):
        """Dataset-level metrics (numpy) from stacked targets and outputs."""

    @abc.abstractmethod
    def serving_outputs(self, outputs):
        """Named outputs of a served model."""

    def keras_metrics(self):
        """Keras metrics updated with (targets, outputs) during fit."""
        return []

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, source={self.source!r})"


def merge_patches(inputs):
    """[B, K, P, P, 3] patches -> [B * K, P, P, 3], example i's patches at rows K·i .. K·i + K − 1,
    so that a siamese task sends all its patches through the trunk as one batch."""
    return keras.ops.reshape(inputs, (-1, *inputs.shape[2:]))


def dense_decoder(features, input_size, out_channels, width, name):
    """Ren & Lee's task head: stride-2 deconvolutions, each followed by ReLU and BatchNorm.

    As many deconvolutions as halve the feature stride to 1 (the widths halve from
    `width`, down to 32), then a 3x3 convolution to `out_channels` at the input size.
    """
    stride = input_size // features.shape[1]
    if stride < 1 or stride & (stride - 1) or features.shape[1] * stride != input_size:
        raise ValueError(
            f"{name}: the endpoint's resolution {features.shape[1]} must divide the input "
            f"size {input_size} by a power of two."
        )
    x = features
    filters = width
    for i in range(int(np.log2(stride))):
        x = keras.layers.Conv2DTranspose(
            filters, 4, strides=2, padding="same", name=f"{name}_deconv{i + 1}"
        )(x)
        x = keras.layers.ReLU(name=f"{name}_relu{i + 1}")(x)
        x = keras.layers.BatchNormalization(name=f"{name}_bn{i + 1}")(x)
        filters = max(32, filters // 2)
    return keras.layers.Conv2D(out_channels, 3, padding="same", name=f"{name}_out")(x)


def global_head(features, classes, name):
    """Global average pooling and a dense layer to `classes` logits."""
    x = keras.layers.GlobalAveragePooling2D(name=f"{name}_pool")(features)
    return keras.layers.Dense(classes, name=f"{name}_logits")(x)
