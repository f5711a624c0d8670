"""What every task has: an input spec, a data pipeline, a head, a loss, metrics, serving outputs.

A task turns a *source* (`zoo.data.sources`) into batches of `(inputs, targets)`:

* a `SceneSpec` (the embedded synthetic benchmark): `num_examples` scenes of the spec
  for training and `eval_examples` of the same spec with split "test" for held-out
  evaluation, rendered once into the data cache and streamed from it;
* a folder: TFRecords written by `zoo.data.write_tfrecords`, else image files;
* any `zoo.data` source (`Synthetic`, `TFRecords`, `ImageFolder`, `Photos`, `Holdout`).

The held-out data (`eval_source`) is another source, or a fraction of `source` split
off by a seeded hash. A task names the entries it needs (`required`); a source that
lacks one is refused with the entries it has.

Inputs are float RGB in [0, 1] passed through the task's harmonizer. A method builds
the graph one way: inputs -> `to_trunk` (a pure reshape, e.g. patches to a batch) ->
trunk -> endpoint (or a lasso mix) -> `build_head`. Tasks whose inputs are the
harmonized images themselves (`shares_images`) and that read the same source share one
batch and one trunk pass (`pipeline` of several tasks). Tasks never import methods.
"""

import abc
import dataclasses
import inspect
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from zoo import checks, internals
from zoo.data import augment, harmonize, sources
from zoo.data.synthetic import SceneSpec
from zoo.errors import UserError

DIRECTIONS = ("higher", "lower", "neither")
# the entry `prepare` finds an example's position in its source under (a memory bank's
# slot); a name no source gives
POSITION = "source_position"


def _source_config(source):
    if isinstance(source, (SceneSpec, sources.Source)):
        return sources.source_config(source)
    return source


def _source_from_config(value):
    return sources.source_from_config(value) if isinstance(value, dict) else value


class Task(abc.ABC):
    """Base class; subclasses set `name`, `required` (source entries), `metric_info` and
    the methods below.

    Args:
        source: SceneSpec, str or a zoo.data source. Training data (see the module
            docstring).
        eval_source: SceneSpec, str, a zoo.data source, a float or None. Held-out data;
            a float in (0, 1) splits that share of `source` off (seeded by `seed`).
            Defaults to None: the spec with split "test" for a SceneSpec (required for
            other sources).
        endpoint: str or None. Trunk endpoint the head reads. Defaults to None: the
            trunk's last endpoint.
        harmonizer: str. Harmonization of the inputs (`zoo.data.harmonize`): the one
            name that chooses it. Defaults to "identity".
        num_examples: int. Synthetic training scenes (a SceneSpec source). Defaults to 1024.
        eval_examples: int. Synthetic held-out scenes. Defaults to 256.
        seed: int. Seed of shuffling and of random inputs. Defaults to 0.
        name: str or None. Defaults to the task's own name.
        labelled_fraction: float in (0, 1]. The share of the training examples the task
            reads (`zoo.data.LabelledFraction`, in one fixed order whatever the seed, so
            a smaller share is part of a larger one: CompL's label fractions).
            Defaults to 1.0 (all).
    """

    name: str = None
    required: tuple = ("image",)
    # metric name -> (direction: "higher" | "lower" | "neither", meaning), for every
    # metric `evaluate` returns
    metric_info: dict = {}

    def __init__(
        self,
        source,
        eval_source=None,
        endpoint: str | None = None,
        harmonizer: str = "identity",
        num_examples: int = 1024,
        eval_examples: int = 256,
        seed: int = 0,
        name: str | None = None,
        labelled_fraction: float = 1.0,
    ):
        self.name = name or self.name
        for key, value in (("num_examples", num_examples), ("eval_examples", eval_examples)):
            checks.int_at_least(value, 1, key, type(self).__name__)
        self.num_examples, self.eval_examples = num_examples, eval_examples
        self.seed = seed
        source, eval_source = _source_from_config(source), _source_from_config(eval_source)
        self.source, self.eval_source = source, eval_source
        who = f"{type(self).__name__} {self.name!r}"
        train = sources.as_source(source, num_examples, who)
        if eval_source is None:
            if not isinstance(source, SceneSpec):
                raise UserError(
                    f"{who}: a source other than a SceneSpec needs `eval_source` (a held-out "
                    "source, or a fraction such as 0.1 of this one)."
                )
            held = sources.Synthetic(dataclasses.replace(source, split="test"), eval_examples)
        elif isinstance(eval_source, float):
            train, held = sources.split(train, eval_source, seed)
        else:
            if isinstance(eval_source, SceneSpec):
                held = sources.Synthetic(eval_source, eval_examples)
            else:
                held = sources.as_source(eval_source, eval_examples, who)
        checks.number_in(labelled_fraction, "labelled_fraction", 0, 1, who, low_open=True)
        self.labelled_fraction = float(labelled_fraction)
        if self.labelled_fraction < 1.0:
            train = sources.LabelledFraction(train, self.labelled_fraction)
        train.check(self.required, f"Task {self.name!r}")
        held.check(self.required, f"Task {self.name!r} (held-out data)")
        self._sources = {"train": train, "eval": held}
        self.endpoint = endpoint
        self.harmonizer = harmonizer
        self.harmonize = harmonize.harmonizer(harmonizer)

    def data_source(self, split: str) -> sources.Source:
        """The source of "train" or "eval" examples."""
        return self._sources[split]

    @property
    def label_names(self) -> dict:
        """Class names of the training source's label entries ({} when it has none)."""
        return self._sources["train"].label_names

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
        return self._sources[split].examples(list(keys or self.required))

    def stream_key(self) -> tuple:
        """What identifies the examples a task reads: tasks with equal keys read the same."""
        return (
            self._sources["train"].identity(),
            self._sources["eval"].identity(),
            self.harmonizer,
            self.seed,
            repr(self.example_augmentation()),
            repr(self.image_augmentation()),
        )

    @abc.abstractmethod
    def prepare(self, example: dict, seed) -> tuple:
        """(inputs, targets) of one harmonized example; `seed` [2] for random choices."""

    def pipeline(self, split: str, batch_size: int, repeat: bool | None = None) -> tf.data.Dataset:
        """Batches of (inputs, targets): shuffled and repeated for "train", in order for "eval"."""
        return pipeline([self], split, batch_size, repeat).map(
            lambda inputs, targets: (inputs, targets[self.name])
        )

    def example_augmentation(self):
        """A callable (example dict, seed) -> example applied to training examples
        before harmonization and `prepare` (the first task's, for tasks sharing a
        pipeline), or None; held-out examples go through its `heldout(example)` where it
        has one (a crop to the training size). Defaults to None."""
        return None

    def image_augmentation(self):
        """A zoo.data.augment.Views of count 1 applied to the *harmonized* image of
        training examples before `prepare` (steps that act on the harmonizer's channels:
        Newell & Deng's colour jitter and grayscale on Lab), or None. Defaults to None."""
        return None

    def resize_targets(self, targets):
        """One example's targets as the head predicts them. Defaults to no change."""
        return targets

    def prepare_batch(self, inputs, targets):
        """(inputs, targets) of a whole batch, for tasks that combine examples (e.g. the
        exemplar task's negatives come from other images). Defaults to no change."""
        return inputs, targets

    # -- model ---------------------------------------------------------------------

    def input_shape(self, input_size) -> tuple:
        """Shape of one example's inputs. Defaults to an RGB image of `input_size` (an int:
        square; or (height, width)); tasks on patches or on other image sizes override it."""
        return (*checks.image_size(input_size), 3)

    def endpoints_read(self, last: str):
        """The trunk endpoint the head reads (a str: its features are the head's input),
        or several (a tuple: the head gets {endpoint: features}), given the trunk's
        `last` endpoint. Defaults to `endpoint`, else `last`."""
        return self.endpoint or last

    def to_trunk(self, inputs):
        """The batch of images the trunk sees, from a batch of the task's inputs (a pure
        reshape; siamese tasks put all their patches in one batch). Defaults to `inputs`."""
        return inputs

    def check_geometry(self, endpoint: str, feature_shape: tuple, input_size: int) -> None:  # noqa: B027
        """Raises ValueError when the features of `endpoint` (shape [B, h, w, C]) do not
        fit what the head and targets need (for a head of several endpoints,
        `endpoints_read`: the tuple of them and {endpoint: shape}). Defaults to no
        constraint."""

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

    def heldout_targets(self, inputs, targets, predict):
        """What `evaluate` compares a held-out batch's outputs with, from its `inputs`,
        its `targets` and `predict` (the task's outputs in inference mode for other
        inputs). Defaults to `targets`."""
        return targets

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, source={self.source!r})"


HEADS = ("deconvolution", "linear", "taskonomy")
# the widths of the Taskonomy decoder's stages, from stride 32 up to the input (MGM's code)
TASKONOMY_WIDTHS = (256, 128, 64, 48, 32)


class DenseTask(Task):
    """A task predicting a map with Ren & Lee's deconvolution head (at the input
    resolution), or at a coarser stride (`target_stride`: Newell & Deng supervise dense
    transfer at the resolution of the trunk's last map).

    Args (besides Task's):
        head_width: int. Width of the head's first deconvolution. Defaults to 256.
        target_stride: int. A power of two: targets are brought down to input_size /
            target_stride (`target_resize`: area averages for continuous maps, the
            nearest pixel for labels) and the head predicts at that size. Defaults to 1.
        head: str. "deconvolution" (`dense_decoder`), "linear": a 1x1 convolution with
            bias, resized bilinearly to the target size (DeepLab's classifier on a
            decoder map: CompL's target heads), or "taskonomy" (`taskonomy_decoder`,
            MGM's decoders; `head_width` unused). Defaults to "deconvolution".
        augment: zoo.data.augment.ScaleCropFlip or None. Training examples' image and
            maps scaled, cropped and flipped alike (CompL's target images). Tasks that
            share a pipeline share it. Defaults to None.
        image_augment: zoo.data.augment.Views of count 1 or None. Steps on the
            harmonized training image alone, after `augment` (Newell & Deng's colour
            jitter and Cutout of dense finetuning). Defaults to None.
    """

    out_channels: int = None
    # how a target map is brought down to a coarser stride: "area" or "nearest"
    target_resize: str = "area"

    def __init__(
        self,
        source,
        head_width: int = 256,
        target_stride: int = 1,
        head: str = "deconvolution",
        augment=None,
        image_augment=None,
        **kwargs,
    ):
        super().__init__(source, **kwargs)
        if isinstance(augment, dict):
            augment = keras.saving.deserialize_keras_object(augment)
        if augment is not None and not callable(augment):
            raise UserError(
                f"{self.name}: `augment` must be a zoo.data.augment.ScaleCropFlip or None. "
                f"Received: {augment!r}"
            )
        self.augment = augment
        self.image_augment = image_views(image_augment, self.name, name="image_augment")
        checks.int_at_least(target_stride, 1, "target_stride")
        if target_stride & (target_stride - 1):
            raise UserError(f"`target_stride` must be a power of two. Received: {target_stride}")
        if head not in HEADS:
            raise UserError(f"{self.name}: `head` must be one of {HEADS}. Received: {head!r}")
        self.head_width = head_width
        self.target_stride = target_stride
        self.head = head

    def get_config(self):
        config = super().get_config()
        config["augment"] = keras.saving.serialize_keras_object(self.augment)
        config["image_augment"] = keras.saving.serialize_keras_object(self.image_augment)
        return config

    def example_augmentation(self):
        return self.augment

    def image_augmentation(self):
        return self.image_augment

    def resize_targets(self, targets):
        if self.target_stride == 1:
            return targets
        targets = tf.convert_to_tensor(targets)
        squeeze = targets.shape.rank == 2
        x = targets[..., tf.newaxis] if squeeze else targets
        size = [x.shape[0] // self.target_stride, x.shape[1] // self.target_stride]
        if self.target_resize == "area":
            x = tf.cast(tf.image.resize(tf.cast(x, tf.float32), size, method="area"), x.dtype)
        else:
            x = tf.image.resize(x, size, method="nearest")
        return x[..., 0] if squeeze else x

    def target_size(self, input_size) -> tuple:
        """(height, width) of the predicted map: the input's / target_stride."""
        return tuple(s // self.target_stride for s in checks.image_size(input_size))

    def check_geometry(self, endpoint, feature_shape, input_size):
        size, wanted = tuple(feature_shape[1:3]), self.target_size(input_size)
        if None in size or size[0] > wanted[0] or size[1] > wanted[1]:
            raise UserError(
                f"{self.name}: the head upsamples the endpoint's map to {_px(wanted)} (input "
                f"{_px(input_size)} / target_stride {self.target_stride}); endpoint "
                f"{endpoint!r} is {size[0]}x{size[1]}, larger than that."
            )

    def build_head(self, features, input_size):
        size = self.target_size(input_size)
        if self.head == "linear":
            return linear_dense_head(features, size, self.out_channels, self.name)
        if self.head == "taskonomy":
            return taskonomy_decoder(features, size, self.out_channels, self.name)
        return dense_decoder(features, size, self.out_channels, self.head_width, self.name)


def pipeline(
    tasks: Sequence[Task],
    split: str,
    batch_size: int,
    repeat: bool | None = None,
    labels: Sequence[str] = (),
    source=None,
):
    """Batches of (inputs, {task name: targets}) of tasks that read the same examples.

    Each example is read and harmonized once; every task's `prepare` gives its targets
    (with its own seed), and the inputs are the first task's (for several tasks they
    must all `share_images`). Shuffled and repeated for "train", in order for "eval".

    Args:
        tasks: list of Task with equal `stream_key()`.
        split: str. "train" or "eval".
        batch_size: int.
        repeat: bool or None. Defaults to repeating the "train" split only.
        labels: entries of the examples that join the targets as int32 under their own
            name, unchanged by augmentation (weak labels that no task predicts, e.g. the
            scene category MGM's refinement network reads). Defaults to none.
        source: zoo.data.Source or None. Examples to read in place of the first task's
            `split` (MGMr's weakly labelled scenes). Defaults to None.
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
    checks.int_at_least(batch_size, 1, "batch_size")
    training = split == "train"
    required = list(dict.fromkeys([*(k for t in tasks for k in t.required), *labels]))
    source = first.data_source(split) if source is None else source
    # (position in the source, example): a task may read the position (a memory bank)
    if training:
        ds = source.shuffled(required, first.seed)
    else:
        ds = source.examples(required).enumerate()
    augmentation = first.example_augmentation()
    heldout = getattr(augmentation, "heldout", None)  # its deterministic part, if any
    image_steps = first.image_augmentation() if training else None
    seeds = tf.data.Dataset.random(seed=first.seed + (0 if training else 1)).batch(2)
    if training if repeat is None else repeat:
        ds = ds.repeat()
    ds = tf.data.Dataset.zip(ds, seeds)

    # Plain graph code: AutoGraph has nothing to convert (and, for a closure named
    # like a method, fails to with a warning).
    @tf.autograph.experimental.do_not_convert
    def to_inputs_and_targets(indexed, seed):
        position, example = indexed
        image_seed, task_seed = tf.unstack(tf.random.split(seed, 2))
        example = dict(example)
        if training and augmentation is not None:
            example = augmentation(example, tf.random.experimental.stateless_fold_in(seed, 1))
        elif not training and heldout is not None:
            example = heldout(example)
        example[POSITION] = position  # the example's place in its source
        example["rgb"] = example["image"]  # before harmonization (colour targets)
        example["image"] = first.harmonize(example["image"], image_seed)
        if image_steps is not None:
            steps_seed = tf.random.experimental.stateless_fold_in(seed, 2)
            example["image"] = image_steps(example["image"], steps_seed)[0]
        task_seeds = (
            [task_seed] if len(tasks) == 1 else tf.unstack(tf.random.split(task_seed, len(tasks)))
        )
        inputs, targets = None, {}
        for task, task_seed in zip(tasks, task_seeds):
            task_inputs, target = task.prepare(example, task_seed)
            targets[task.name] = task.resize_targets(target)
            inputs = task_inputs if inputs is None else inputs
        for key in labels:
            targets[key] = tf.cast(example[key], tf.int32)
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


def image_views(value, who: str, count: int = 1, name: str = "augment"):
    """`value` (a zoo.data.augment.Views of `count` views, its config, or None) checked:
    a task's `augment` of its harmonized training images, or its `views`."""
    if isinstance(value, dict):
        value = keras.saving.deserialize_keras_object(value)
    if value is not None and not (isinstance(value, augment.Views) and value.count == count):
        raise UserError(
            f"{who}: `{name}` must be a zoo.data.augment.Views of count {count} (steps on "
            f"the harmonized image) or None. Received: {value!r}"
        )
    return value


def _px(input_size) -> str:
    """ "64 px" for a square size, "425x560 px" for (height, width)."""
    height, width = checks.image_size(input_size)
    return f"{height} px" if height == width else f"{height}x{width} px"


def check_stride(name, stride, endpoint, feature_shape, input_size):
    """Raises ValueError when an endpoint's [B, h, w, C] features are not at `stride`."""
    height, width = checks.image_size(input_size)
    size = feature_shape[1]
    if size is None or size * stride != height or feature_shape[2] * stride != width:
        actual = f"stride {height / size:g}" if size else "an unknown stride"
        raise UserError(
            f"{name} targets are at stride {stride}; endpoint {endpoint!r} is at {actual} "
            f"({size}x{feature_shape[2]} features of {_px(input_size)} inputs). Choose an "
            f"endpoint at stride {stride} (e.g. a trunk with output_stride={stride}) or set "
            "the task's stride."
        )


def merge_patches(inputs):
    """[B, K, P, P, 3] patches -> [B * K, P, P, 3], example i's patches at rows K·i .. K·i + K − 1,
    so that a siamese task sends all its patches through the trunk as one batch."""
    return keras.ops.reshape(inputs, (-1, *inputs.shape[2:]))


def dense_decoder(features, input_size, out_channels, width, name):
    """Ren & Lee's task head: stride-2 deconvolutions, each followed by ReLU and BatchNorm.

    As many deconvolutions as bring the map's height closest to `input_size`'s (an int or
    (height, width); log2 of the ratio, rounded; the widths halve from `width`, down to
    32), a bilinear resize to exactly `input_size` when the ratio is not a power of two
    (AlexNet's 13x13 at 227 px: 13 -> 26 -> 52 -> 104 -> 208 -> 227; the authors' code
    reaches 227 with unpadded deconvolutions of kernels 3, 3, 5, 3 from 4096 channels),
    then a 3x3 convolution to `out_channels`.
    """
    height, width_px = checks.image_size(input_size)
    size = features.shape[1]
    if not size or size > height or not features.shape[2] or features.shape[2] > width_px:
        raise UserError(
            f"{name}: the endpoint's resolution {size}x{features.shape[2]} must be at most "
            f"the input size {_px(input_size)}."
        )
    x = features
    filters = width
    for i in range(int(round(np.log2(height / size)))):
        x = keras.layers.Conv2DTranspose(
            filters, 4, strides=2, padding="same", name=f"{name}_deconv{i + 1}"
        )(x)
        x = keras.layers.ReLU(name=f"{name}_relu{i + 1}")(x)
        # statistics of the global batch under tf.distribute, as on one device
        x = internals.SyncBatchNormalization(name=f"{name}_bn{i + 1}")(x)
        filters = max(32, filters // 2)
    if tuple(x.shape[1:3]) != (height, width_px):
        x = keras.layers.Resizing(height, width_px, name=f"{name}_resize")(x)
    return keras.layers.Conv2D(out_channels, 3, padding="same", name=f"{name}_out")(x)


def taskonomy_decoder(features, input_size, out_channels, name):
    """The Taskonomy decoder of MGM's code: stages of a 2x2 stride-2 transposed
    convolution -> BN -> ReLU -> 3x3 convolution -> BN -> ReLU, as many as double the
    map to `input_size` (an int or (height, width); log2 of the ratio, at most 5), at
    the widths 256, 128, 64, 48, 32 that the code has at each resolution (the last n of
    them, so a stride-16 map starts at 128), then a 3x3 convolution to `out_channels`
    with neither normalisation nor activation.
    """
    height, width_px = checks.image_size(input_size)
    size = features.shape[1]
    steps = np.log2(height / size) if size else -1
    if steps != int(steps) or not 0 <= steps <= len(TASKONOMY_WIDTHS):
        raise UserError(
            f"{name}: the Taskonomy decoder doubles the endpoint's {size}x{features.shape[2]} "
            f"map up to {len(TASKONOMY_WIDTHS)} times; it cannot reach {_px(input_size)}."
        )
    x = features
    for i, filters in enumerate(TASKONOMY_WIDTHS[len(TASKONOMY_WIDTHS) - int(steps) :]):
        stage = f"{name}_stage{i + 1}"
        x = keras.layers.Conv2DTranspose(filters, 2, strides=2, name=f"{stage}_deconv")(x)
        x = internals.SyncBatchNormalization(name=f"{stage}_bn1")(x)
        x = keras.layers.ReLU(name=f"{stage}_relu1")(x)
        x = keras.layers.Conv2D(filters, 3, padding="same", name=f"{stage}_conv")(x)
        x = internals.SyncBatchNormalization(name=f"{stage}_bn2")(x)
        x = keras.layers.ReLU(name=f"{stage}_relu2")(x)
    if tuple(x.shape[1:3]) != (height, width_px):
        x = keras.layers.Resizing(height, width_px, name=f"{name}_resize")(x)
    return keras.layers.Conv2D(out_channels, 3, padding="same", name=f"{name}_out")(x)


def linear_dense_head(features, size, out_channels, name):
    """A 1x1 convolution with bias to `out_channels`, resized bilinearly to `size` (an
    int or (height, width)) (DeepLab's classifier; CompL computes the loss at the input
    resolution)."""
    height, width = checks.image_size(size)
    x = keras.layers.Conv2D(out_channels, 1, name=f"{name}_out")(features)
    if tuple(x.shape[1:3]) != (height, width):
        x = keras.layers.Resizing(height, width, interpolation="bilinear", name=f"{name}_resize")(x)
    return x


def global_head(features, classes, name):
    """Global average pooling and a dense layer to `classes` logits."""
    x = keras.layers.GlobalAveragePooling2D(name=f"{name}_pool")(features)
    return keras.layers.Dense(classes, name=f"{name}_logits")(x)
