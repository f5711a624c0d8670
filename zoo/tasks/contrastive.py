"""Contrastive objectives: SimCLR (Chen et al. 2020), MoCo v2 (Chen et al. 2020) and
DenseCL (Wang et al. 2021), as tasks that any MultiTask method trains alone or beside
supervised tasks (CompL's auxiliary losses).

Each reads images and makes two augmented views per image (`zoo.data.augment.Views`);
its inputs are [B, 2, h, w, 3].

* **SimCLR**: both views go through the trunk (one batch of 2B) and a projection MLP;
  NT-Xent with τ over the *global* batch: under `tf.distribute` every replica's
  projections are gathered (differentiably), each replica's images are the anchors.
* **MoCo v2**: the first view is the query (trunk + MLP head, trained); the second
  goes through the *key network*, an exponential moving average (m = 0.999) of the
  query network that the method owns (`zoo.methods.momentum`), and is compared with a
  FIFO queue of past keys (65,536 by default), or with CompL's bank of one key per
  training image (`negatives="bank"`). The method fills the task's targets
  with the keys and the queue before the loss; after each optimizer step it updates
  the key network and enqueues the keys gathered from every replica.
* **DenseCL**: MoCo v2 plus a dense branch on the backbone map, average-pooled to a
  `grid` x `grid` map: 1x1 convolutions to `projection` units; each query cell's
  positive is the key cell whose backbone feature is most similar; a second queue
  holds the pooled dense keys; loss (1 − w)·global + w·dense.

The head reads the task's endpoint: a trunk endpoint, or a decoder's output where the
trunk exposes one (CompL's heads branch from the decoder).
"""

import abc

import gin
import keras
import numpy as np
import tensorflow as tf

from zoo import checks
from zoo.data import augment
from zoo.errors import UserError
from zoo.losses import contrastive
from zoo.tasks.base import POSITION, Task, merge_patches
from zoo.tasks.momentum import MomentumTask

NEGATIVES = ("queue", "bank")
DEFAULT_QUEUE = 65536


def training_images(task, instead: str = "use negatives='queue'") -> int:
    """The number of training images of `task` (a bank's slots), refused (with what to
    do `instead`) for a source that does not know it."""
    source = task.data_source("train")
    try:
        return len(source)
    except TypeError:
        raise UserError(
            f"{task.name}: a bank has a slot per training image, but {source} does not "
            f"know how many images it has; {instead}."
        ) from None


# -- the global batch --------------------------------------------------------------------


def gather_replicas(x):
    """(x of every replica stacked in replica order, row of this replica's first example).

    Differentiable: each replica places its rows in a zero tensor and the tensors are
    summed across replicas; the sum's gradient is summed back, so a loss on the
    gathered rows trains every replica's network as one device would.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return x, 0
    replicas = context.num_replicas_in_sync
    index = context.replica_id_in_sync_group
    slots = tf.one_hot(index, replicas, dtype=x.dtype)  # [R]
    placed = slots[:, tf.newaxis, tf.newaxis] * x[tf.newaxis]  # [R, n, D]
    total = context.all_reduce("sum", placed)
    return tf.reshape(total, [-1, x.shape[-1]]), index * tf.shape(x)[0]


def _projection_head(features, hidden, out, name, dense_grid=None):
    """GAP → Dense(hidden) → ReLU → Dense(out) (GAP → Dense(out) without `hidden`) as a
    model of its own named `<name>_head` (the key network clones it); DenseCL adds the
    dense branch."""
    inputs = keras.Input(tuple(features.shape[1:]), name=f"{name}_features")
    x = keras.layers.GlobalAveragePooling2D(name=f"{name}_pool")(inputs)
    if hidden is not None:
        x = keras.layers.Dense(hidden, activation="relu", name=f"{name}_hidden")(x)
    outputs = keras.layers.Dense(out, name=f"{name}_projection")(x)
    if dense_grid is not None:
        size = features.shape[1]
        if not size or size < dense_grid:
            raise UserError(
                f"{name}: the dense grid ({dense_grid}x{dense_grid}) is larger than the "
                f"endpoint's map ({size}x{size})."
            )
        grid = keras.layers.AdaptiveAveragePooling2D(dense_grid, name=f"{name}_grid")(inputs)
        d = grid
        if hidden is not None:
            d = keras.layers.Conv2D(hidden, 1, activation="relu", name=f"{name}_dense_hidden")(d)
        d = keras.layers.Conv2D(out, 1, name=f"{name}_dense_projection")(d)
        cells = dense_grid * dense_grid
        outputs = {
            "global": outputs,
            "dense": keras.layers.Reshape((cells, out), name=f"{name}_dense_cells")(d),
            "backbone": keras.layers.Reshape(
                (cells, features.shape[-1]), name=f"{name}_backbone_cells"
            )(grid),
        }
    return keras.Model(inputs, outputs, name=f"{name}_head")(features)


class TwoViewTask(Task):
    """Two augmented views of each image and a projection head (SimCLR, MoCo v2,
    DenseCL, BYOL): the views, the head's widths and the held-out measures.

    Args (besides Task's):
        views: zoo.data.augment.Views or None. Defaults to the subclass's augmentation.
        hidden: int or None. Width of the projection MLP's hidden layer; None: one
            linear layer (MGM's code's SimCLR head, to 64). Defaults to 2048.
        projection: int. Embedding size. Defaults to 128.
    """

    required = ("image",)
    metric_info = {
        "accuracy": (
            "higher",
            "share of held-out images whose second view is the nearest of all held-out "
            "images' second views to their first (chance 1 / images)",
        ),
        "alignment": ("lower", "mean squared distance between a held-out image's two embeddings"),
        "uniformity": ("lower", "log E exp(-2 squared distance) over pairs of held-out embeddings"),
    }

    def __init__(
        self, source, views=None, hidden: int | None = 2048, projection: int = 128, **kwargs
    ):
        super().__init__(source, **kwargs)
        if isinstance(views, dict):
            views = keras.saving.deserialize_keras_object(views)
        views = views if views is not None else self.default_views()
        if not isinstance(views, augment.Views):
            raise UserError(
                f"{self.name}: `views` must be a zoo.data.augment.Views. Received: {views!r}"
            )
        if views.count != 2:
            raise UserError(f"{self.name} compares two views; `views.count` is {views.count}.")
        checks.int_at_least(hidden, 1, "hidden", self.name, none=True)
        checks.int_at_least(projection, 1, "projection", self.name)
        self.views, self.hidden, self.projection = views, hidden, projection

    def default_views(self) -> augment.Views:
        return augment.moco_v2_views()

    def get_config(self):
        config = super().get_config()
        config["views"] = keras.saving.serialize_keras_object(self.views)
        return config

    @property
    def shares_images(self):
        return False  # its inputs are augmented views

    def input_shape(self, input_size):
        return (self.views.count, *self.views.output_size(input_size), 3)

    def prepare(self, example, seed):
        return self.views(example["image"], seed), tf.zeros([], tf.float32)

    def serving_outputs(self, outputs):
        return {"embeddings": tf.math.l2_normalize(_global(outputs), axis=-1)}

    def evaluate(self, targets, outputs):
        """Held-out measures of (first-view embeddings, second-view embeddings)."""
        first, second = self.heldout_pairs(targets, outputs)
        a = first / np.linalg.norm(first, axis=-1, keepdims=True)
        b = second / np.linalg.norm(second, axis=-1, keepdims=True)
        nearest = np.argmax(a @ b.T, axis=-1)
        return {
            "accuracy": float(np.mean(nearest == np.arange(len(a)))),
            "alignment": float(np.mean(np.sum((a - b) ** 2, axis=-1))),
            "uniformity": float(contrastive.uniformity(tf.constant(a)).numpy()),
        }

    @abc.abstractmethod
    def heldout_pairs(self, targets, outputs):
        """(first, second) embeddings [N, D] of the held-out images."""


class ContrastiveTask(TwoViewTask):
    """Two views compared against negatives with a temperature (SimCLR, MoCo v2, DenseCL).

    Args (besides TwoViewTask's):
        temperature: float > 0. τ. Defaults to the subclass's.
    """

    default_temperature = 0.2

    def __init__(self, source, temperature: float | None = None, **kwargs):
        super().__init__(source, **kwargs)
        temperature = self.default_temperature if temperature is None else temperature
        checks.number_in(temperature, "temperature", 0, who=self.name, low_open=True)
        self.temperature = float(temperature)


def _global(outputs):
    return outputs["global"] if isinstance(outputs, dict) else outputs


def _uniformity_metric(name, embeddings):
    """A Mean of the uniformity of the global batch's embeddings (`embeddings(outputs)`),
    one value per example so that Keras averages it over the epoch's steps."""

    def per_example(targets, outputs):
        z = embeddings(outputs)
        value = contrastive.uniformity(gather_replicas(tf.stop_gradient(z))[0])
        return tf.fill(tf.shape(z)[:1], value)

    return keras.metrics.MeanMetricWrapper(per_example, name=f"{name}_uniformity")


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.tasks")
class SimCLR(ContrastiveTask):
    """SimCLR: NT-Xent between the projections of two views of each image (module
    docstring). τ defaults to 0.5 (MGM's choice; SimCLR tunes 0.1-1.0)."""

    name = "simclr"
    default_temperature = 0.5

    def default_views(self):
        return augment.simclr_views()

    def to_trunk(self, inputs):
        return merge_patches(inputs)  # image i's views at rows 2i, 2i + 1

    def build_head(self, features, input_size):
        embeddings = _projection_head(features, self.hidden, self.projection, self.name)
        return keras.ops.reshape(embeddings, (-1, 2, self.projection))

    def _terms(self, outputs):
        first, second = outputs[:, 0], outputs[:, 1]
        first_all, offset = gather_replicas(first)
        second_all, _ = gather_replicas(second)
        return contrastive.nt_xent_terms(
            first, second, self.temperature, first_all, second_all, offset
        )

    def loss(self, targets, outputs):
        return self._terms(outputs)[0]

    def keras_metrics(self):
        return [
            keras.metrics.MeanMetricWrapper(
                lambda y, out: self._terms(out)[1], name=f"{self.name}_accuracy"
            ),
            keras.metrics.MeanMetricWrapper(
                lambda y, out: contrastive.alignment(out[:, 0], out[:, 1]),
                name=f"{self.name}_alignment",
            ),
            _uniformity_metric(self.name, lambda out: out[:, 0]),
        ]

    def heldout_pairs(self, targets, outputs):
        return outputs[:, 0], outputs[:, 1]


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.tasks")
class MoCo(ContrastiveTask, MomentumTask):
    """MoCo v2: InfoNCE of the query view against its key (the momentum network's
    embedding of the other view) and a queue of past keys (module docstring).

    Args (besides ContrastiveTask's):
        queue_size: int >= 1 or None. Keys kept as negatives. Defaults to 65,536 for a
            queue, the number of training images for a bank.
        momentum: float in [0, 1). m of the key network's update
            k ← m·k + (1 − m)·q. Defaults to 0.999.
        negatives: str. "queue": MoCo's FIFO queue of the last `queue_size` keys.
            "bank": CompL's code — one slot per training image holding its latest key,
            written at the image's index, the image's own slot left out of its
            negatives (a queue as long as the data would keep each image's own older
            key as a negative). Defaults to "queue" (MoCo; CompL's paper says "queue",
            sized to the training set, Supp. D.2).
    """

    name = "moco"

    def __init__(
        self,
        source,
        queue_size: int | None = None,
        momentum: float = 0.999,
        negatives: str = "queue",
        **kwargs,
    ):
        super().__init__(source, **kwargs)
        if negatives not in NEGATIVES:
            raise UserError(
                f"{self.name}: `negatives` must be one of {NEGATIVES}. Received: {negatives!r}"
            )
        if negatives == "bank":
            images = training_images(self)
            if queue_size is not None and queue_size != images:
                raise UserError(
                    f"{self.name}: a bank has one slot per training image ({images}); "
                    f"queue_size={queue_size} differs. Leave queue_size unset (None)."
                )
            queue_size = images
        queue_size = DEFAULT_QUEUE if queue_size is None else queue_size
        checks.int_at_least(queue_size, 1, "queue_size", self.name)
        checks.number_in(momentum, "momentum", 0, 1, self.name, high_open=True)
        self.queue_size, self.momentum = queue_size, float(momentum)
        self.negatives = negatives

    @property
    def indexed_queues(self):
        return self.negatives == "bank"

    def prepare(self, example, seed):
        views, target = super().prepare(example, seed)
        return views, (example[POSITION] if self.indexed_queues else target)

    def to_trunk(self, inputs):
        return inputs[:, 0]  # the query view; the key network reads `key_view`

    def key_view(self, inputs):
        """The images the key network embeds, from a batch of the task's inputs."""
        return inputs[:, 1]

    def build_head(self, features, input_size):
        return _projection_head(features, self.hidden, self.projection, self.name)

    def queue_entries(self, key_outputs) -> dict:
        """{queue: [B, D]} what a step's keys add to each queue."""
        return {"keys": tf.math.l2_normalize(_global(key_outputs), axis=-1)}

    def queue_depth(self) -> dict:
        return {"keys": self.projection}

    def negatives_mask(self, targets, queue="keys"):
        """bool [K] (a queue: its filled rows) or [B, K] (a bank: its filled slots but
        each image's own) of the negatives of `queue`."""
        filled = targets[f"{queue}_filled"]
        if not self.indexed_queues:
            return filled
        slots = tf.range(tf.shape(filled, out_type=tf.int64)[0])
        own = tf.equal(slots[tf.newaxis], tf.reshape(targets["index"], [-1, 1]))
        return tf.logical_and(filled[tf.newaxis], tf.logical_not(own))

    def _logits(self, targets, outputs):
        logits = contrastive.info_nce_logits(
            _global(outputs), _global(targets["key"]), targets["keys"], self.temperature
        )
        return contrastive.mask_negatives(logits, self.negatives_mask(targets))

    def loss(self, targets, outputs):
        return contrastive.masked_info_nce(self._logits(targets, outputs))

    def keras_metrics(self):
        return [
            keras.metrics.MeanMetricWrapper(
                lambda y, out: contrastive.positive_first(self._logits(y, out)),
                name=f"{self.name}_accuracy",
            ),
            keras.metrics.MeanMetricWrapper(
                lambda y, out: contrastive.alignment(_global(out), _global(y["key"])),
                name=f"{self.name}_alignment",
            ),
            _uniformity_metric(self.name, _global),
            keras.metrics.MeanMetricWrapper(
                lambda y, out: tf.fill(
                    tf.shape(_global(out))[:1],
                    tf.reduce_mean(tf.cast(y["keys_filled"], tf.float32)),
                ),
                name=f"{self.name}_queue_fill",
            ),
        ]

    def heldout_targets(self, inputs, targets, predict):
        """The query network's embeddings of the views in the other order (the key
        network is a training device: held-out pairs are the query network's)."""
        return predict(tf.reverse(inputs, axis=[1]))

    def heldout_pairs(self, targets, outputs):
        # the query network's embeddings of the first views and of the second ones
        return _global(outputs), _global(targets)


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.tasks")
class DenseCL(MoCo):
    """DenseCL: MoCo v2 plus the dense term (module docstring).

    Args (besides MoCo's):
        grid: int. The backbone map is average-pooled to grid x grid cells. Defaults to 7.
        dense_weight: float in [0, 1]. w of (1 − w)·global + w·dense. Defaults to 0.5
            (DenseCL; CompL uses 0.7).
    """

    name = "densecl"

    def __init__(self, source, grid: int = 7, dense_weight: float = 0.5, **kwargs):
        super().__init__(source, **kwargs)
        checks.int_at_least(grid, 1, "grid", self.name)
        checks.number_in(dense_weight, "dense_weight", 0, 1, self.name)
        self.grid, self.dense_weight = grid, float(dense_weight)

    def build_head(self, features, input_size):
        return _projection_head(features, self.hidden, self.projection, self.name, self.grid)

    def queue_entries(self, key_outputs):
        dense = tf.math.l2_normalize(key_outputs["dense"], axis=-1)
        return {
            "keys": tf.math.l2_normalize(key_outputs["global"], axis=-1),
            "dense_keys": tf.math.l2_normalize(tf.reduce_mean(dense, axis=1), axis=-1),
        }

    def queue_depth(self):
        return {"keys": self.projection, "dense_keys": self.projection}

    def dense_loss(self, targets, outputs):
        key = targets["key"]
        return contrastive.dense_info_nce(
            outputs["dense"],
            key["dense"],
            outputs["backbone"],
            key["backbone"],
            targets["dense_keys"],
            self.temperature,
            self.negatives_mask(targets, "dense_keys"),
        )

    def loss(self, targets, outputs):
        w = self.dense_weight
        return (1.0 - w) * super().loss(targets, outputs) + w * self.dense_loss(targets, outputs)

    def keras_metrics(self):
        return [
            *super().keras_metrics(),
            keras.metrics.MeanMetricWrapper(self.dense_loss, name=f"{self.name}_dense_loss"),
        ]
