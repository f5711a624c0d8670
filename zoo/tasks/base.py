"""What every task has: an input spec, a data pipeline, a head, a loss, metrics, serving outputs.

A task turns a *source* into batches of `(inputs, targets)`:

* a `SceneSpec` (the embedded synthetic benchmark): the task renders `num_examples`
  scenes of the spec for training (split "train" models) and `eval_examples` of the
  same spec with split "test" for held-out evaluation; rendered scenes are kept in
  memory and shared by every task that uses the same spec;
* a folder of TFRecords written by `zoo.data.write_tfrecords` (`eval_source` then
  names the held-out folder).

Inputs are float RGB in [0, 1] passed through the task's harmonizer. A method builds
the graph one way: inputs -> `to_trunk` (a pure reshape, e.g. patches to a batch) ->
trunk -> endpoint (or a lasso mix) -> `build_head`. Tasks whose inputs are the
harmonized images themselves (`shares_images`) and that read the same source share one
batch and one trunk pass (`pipeline` of several tasks). Tasks never import methods.
"""

import abc
import dataclasses
import functools
import inspect
import os
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from zoo.data import harmonize
from zoo.data.synthetic import SceneSpec
from zoo.data.synthetic.io import output_signature, render_arrays
from zoo.data.synthetic.scene import MODES
from zoo.data.tfrecord import read_tfrecords
from zoo.errors import MissingFile, UserError, UserTypeError

DIRECTIONS = ("higher", "lower", "neither")


@functools.lru_cache(maxsize=8)
def rendered(spec, num):
    """`num` scenes of `spec` rendered once per process (all cores), as numpy arrays."""
    return render_arrays(spec, num)


def _source_config(source):
    if isinstance(source, SceneSpec):
        return {"scene_spec": dataclasses.asdict(source)}
    return source


def _source_from_config(value):
    if isinstance(value, dict) and "scene_spec" in value:
        return SceneSpec(**value["scene_spec"])
    return value


class Task(abc.ABC):
    """Base class; subclasses set `name`, `required` (source entries), `metric_info` and
    the methods below.

    Args:
        source: SceneSpec or str. Training data (see the module docstring).
        eval_source: SceneSpec, str or None. Held-out data. Defaults to the spec with
            split "test" for a SceneSpec; required for TFRecords.
        endpoint: str or None. Trunk endpoint the head reads. Defaults to None: the
            trunk's last endpoint.
        harmonizer: str. Harmonization of the inputs (`zoo.data.harmonize`): the one
            name that chooses it. Defaults to "identity".
        num_examples: int. Synthetic training scenes. Defaults to 1024.
        eval_examples: int. Synthetic held-out scenes. Defaults to 256.
        seed: int. Seed of shuffling and of random inputs. Defaults to 0.
        name: str or None. Defaults to the task's own name.
    """

    name: str = None
    required: tuple = ("image",)
    # metric name -> (direction: "higher" | "lower" | "neither", meaning), for every
    # metric `evaluate` returns
    metric_info: dict = {}

    def __init__(
        self,
        source: SceneSpec | str,
        eval_source: SceneSpec | str | None = None,
        endpoint: str | None = None,
        harmonizer: str = "identity",
        num_examples: int = 1024,
        eval_examples: int = 256,
        seed: int = 0,
        name: str | None = None,
    ):
        source, eval_source = _source_from_config(source), _source_from_config(eval_source)
        if not isinstance(source, (SceneSpec, str)):
            raise UserTypeError(
                f"{type(self).__name__}: `source` must be a SceneSpec or a TFRecord folder. "
                f"Received: {source!r}"
            )
        self.name = name or self.name
        self._check_source(source)
        self.source, self.eval_source = source, eval_source
        if eval_source is None:
            if isinstance(source, str):
                raise UserError(
                    f"{type(self).__name__}: a TFRecord source needs `eval_source` (the "
                    "held-out TFRecord folder)."
                )
            eval_source = dataclasses.replace(source, split="test")
        self._eval_source = eval_source
        self.endpoint = endpoint
        self.harmonizer = harmonizer
        self.harmonize = harmonize.harmonizer(harmonizer)
        for key, value in (("num_examples", num_examples), ("eval_examples", eval_examples)):
            if not (isinstance(value, int) and value >= 1):
                raise UserError(
                    f"{type(self).__name__}: `{key}` must be an int >= 1. Received: {value!r}"
                )
        self.num_examples, self.eval_examples = num_examples, eval_examples
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
                raise UserError(
                    f"Task {self.name!r} needs {missing}, which synthetic mode "
                    f"{source.mode!r} does not give; use mode {modes}."
                )
        elif not os.path.exists(source):
            raise MissingFile(f"Task {self.name!r}: data path {source!r} does not exist.")

    # -- configuration -------------------------------------------------------------

    def get_config(self) -> dict:
        """The constructor arguments (every class of the MRO), so `from_config` rebuilds it."""
        config = {}
        for cls in reversed(type(self).__mro__):
            init = cls.__dict__.get("__init__")
            if init is None or cls is object:
                continue
            for param in inspect.signature(init).parameters.values():
                if param.name == "self" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                    continue
                value = getattr(self, param.name)
                if param.name in ("source", "eval_source"):
                    value = _source_config(value)
                elif isinstance(value, tuple):
                    value = list(value)
                config[param.name] = value
        return config

    @classmethod
    def from_config(cls, config: dict) -> "Task":
        return cls(**config)

    # -- data ----------------------------------------------------------------------

    @property
    def shares_images(self) -> bool:
        """True when `prepare` returns the harmonized image itself as the inputs: such
        tasks on one source share a batch and a trunk pass. Defaults to True."""
        return True

    def examples(self, split: str, keys: Sequence[str] | None = None) -> tf.data.Dataset:
        """Raw examples (dicts with `keys`, default `required`) of "train" or "eval"."""
        keys = list(keys or self.required)
        source = self.source if split == "train" else self._eval_source
        if isinstance(source, SceneSpec):
            num = self.num_examples if split == "train" else self.eval_examples
            arrays = rendered(source, num)
            return tf.data.Dataset.from_tensor_slices({k: arrays[k] for k in keys})
        return read_tfrecords(source, keys=keys)

    def stream_key(self) -> tuple:
        """What identifies the examples a task reads: tasks with equal keys read the same."""
        return (
            repr(self.source),
            repr(self._eval_source),
            self.num_examples,
            self.eval_examples,
            self.harmonizer,
            self.seed,
        )

    @abc.abstractmethod
    def prepare(self, example: dict, seed) -> tuple:
        """(inputs, targets) of one harmonized example; `seed` [2] for random choices."""

    def pipeline(self, split: str, batch_size: int, repeat: bool | None = None) -> tf.data.Dataset:
        """Batches of (inputs, targets): shuffled and repeated for "train", in order for "eval"."""
        return pipeline([self], split, batch_size, repeat).map(
            lambda inputs, targets: (inputs, targets[self.name])
        )

    def prepare_batch(self, inputs, targets):
        """(inputs, targets) of a whole batch, for tasks that combine examples (e.g. the
        exemplar task's negatives come from other images). Defaults to no change."""
        return inputs, targets

    # -- model ---------------------------------------------------------------------

    def input_shape(self, input_size: int) -> tuple:
        """Shape of one example's inputs. Defaults to an input_size x input_size RGB image;
        tasks on patches or on other image sizes override it."""
        return (input_size, input_size, 3)

    def to_trunk(self, inputs):
        """The batch of images the trunk sees, from a batch of the task's inputs (a pure
        reshape; siamese tasks put all their patches in one batch). Defaults to `inputs`."""
        return inputs

    def check_geometry(self, endpoint: str, feature_shape: tuple, input_size: int) -> None:  # noqa: B027
        """Raises ValueError when the features of `endpoint` (shape [B, h, w, C]) do not
        fit what the head and targets need. Defaults to no constraint."""

    @abc.abstractmethod
    def build_head(self, features, input_size: int):
        """Head output (logits or a raw map) from the endpoint's features."""

    @abc.abstractmethod
    def loss(self, targets, outputs):
        """Per-example loss [B]."""

    @abc.abstractmethod
    def evaluate(self, targets: np.ndarray, outputs: np.ndarray) -> dict:
        """Dataset-level metrics (numpy) from stacked targets and outputs."""

    @abc.abstractmethod
    def serving_outputs(self, outputs) -> dict:
        """Named outputs of a served model."""

    def keras_metrics(self) -> list:
        """Keras metrics updated with (targets, outputs) during fit."""
        return []

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, source={self.source!r})"


class DenseTask(Task):
    """A task predicting a map at the input resolution with Ren & Lee's deconvolution head.

    Args (besides Task's):
        head_width: int. Width of the head's first deconvolution. Defaults to 256.
    """

    out_channels: int = None

    def __init__(self, source, head_width: int = 256, **kwargs):
        super().__init__(source, **kwargs)
        self.head_width = head_width

    def check_geometry(self, endpoint, feature_shape, input_size):
        size = feature_shape[1]
        stride = input_size // size if size else 0
        if not size or stride < 1 or stride & (stride - 1) or size * stride != input_size:
            raise UserError(
                f"{self.name}: the head upsamples by powers of two to the {input_size} px "
                f"input; endpoint {endpoint!r} is {size}x{size}, not {input_size} px divided "
                "by a power of two."
            )

    def build_head(self, features, input_size):
        return dense_decoder(features, input_size, self.out_channels, self.head_width, self.name)


def pipeline(tasks: Sequence[Task], split: str, batch_size: int, repeat: bool | None = None):
    """Batches of (inputs, {task name: targets}) of tasks that read the same examples.

    Each example is read and harmonized once; every task's `prepare` gives its targets
    (with its own seed), and the inputs are the first task's (for several tasks they
    must all `share_images`). Shuffled and repeated for "train", in order for "eval".

    Args:
        tasks: list of Task with equal `stream_key()`.
        split: str. "train" or "eval".
        batch_size: int.
        repeat: bool or None. Defaults to repeating the "train" split only.
    """
    tasks = list(tasks)
    first = tasks[0]
    if len(tasks) > 1:
        keys = {t.stream_key() for t in tasks}
        if len(keys) > 1 or not all(t.shares_images for t in tasks):
            raise UserError(
                f"pipeline: tasks {[t.name for t in tasks]} do not read the same examples "
                "as they are; give them one pipeline each."
            )
    if split not in ("train", "eval"):
        raise UserError(f"`split` must be 'train' or 'eval'. Received: {split!r}")
    if not (isinstance(batch_size, int) and batch_size >= 1):
        raise UserError(f"`batch_size` must be an int >= 1. Received: {batch_size!r}")
    training = split == "train"
    required = list(dict.fromkeys(k for t in tasks for k in t.required))
    ds = first.examples(split, required)
    seeds = tf.data.Dataset.random(seed=first.seed + (0 if training else 1)).batch(2)
    if training:
        ds = ds.shuffle(2048, seed=first.seed, reshuffle_each_iteration=True)
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
        example["image"] = first.harmonize(example["image"], image_seed)
        task_seeds = (
            [task_seed] if len(tasks) == 1 else tf.unstack(tf.random.split(task_seed, len(tasks)))
        )
        inputs, targets = None, {}
        for task, task_seed in zip(tasks, task_seeds):
            task_inputs, targets[task.name] = task.prepare(example, task_seed)
            inputs = task_inputs if inputs is None else inputs
        return inputs, targets

    ds = ds.map(to_inputs_and_targets, num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=training)
    if len(tasks) == 1 and type(first).prepare_batch is not Task.prepare_batch:

        @tf.autograph.experimental.do_not_convert
        def whole_batch(inputs, targets):
            inputs, target = first.prepare_batch(inputs, targets[first.name])
            return inputs, {first.name: target}

        ds = ds.map(whole_batch, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def check_stride(name, stride, endpoint, feature_shape, input_size):
    """Raises ValueError when an endpoint's [B, h, w, C] features are not at `stride`."""
    size = feature_shape[1]
    if size is None or size * stride != input_size:
        actual = f"stride {input_size / size:g}" if size else "an unknown stride"
        raise UserError(
            f"{name} targets are at stride {stride}; endpoint {endpoint!r} is at {actual} "
            f"({size}x{size} features of {input_size} px inputs). Choose an endpoint at stride "
            f"{stride} (e.g. a trunk with output_stride={stride}) or set the task's stride."
        )


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
        raise UserError(
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
