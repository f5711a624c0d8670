"""Newell & Deng's two contrastive pretext tasks beside rotation and the VAE, built as the
authors' code builds them (`princeton-vl/selfstudy`); the losses are
`zoo.losses.infomax`'s.

* **CMC** (Tian et al. 2019): the L and ab channels of a Lab image (harmonizer "lab")
  go through two "half" networks (`zoo.trunks.channel_split`); each half's last map is
  pooled and projected to a 128-d L2-normalised embedding. Each image's L embedding is
  contrasted with the ab *memory bank* and its ab embedding with the L bank: a bank
  holds one entry per training image; the image's own entry is the positive (column 0)
  and K entries drawn uniformly with replacement the negatives, softmax cross entropy
  at τ (the negatives drawn with each example's data). After the step each image's
  entries become m·old + (1 − m)·new, L2-normalised.
  The banks are the method's (`zoo.methods.momentum`, a task without a key network:
  its own embeddings, detached, are what it stores), so checkpoints keep them.
* **AMDIM** (Bachman et al. 2019) on a zoo trunk: two views of each image that share
  one horizontal flip; the global features (the pooled last map through a dense layer:
  the code's 1x1 "fc" before pooling) of one view predict the other view's local
  features, two intermediate maps through 1x1 convolutions and average-pooled to 7x7
  and 5x5 — 1 -> 5, 1 -> 7 and, from one random 5x5 location, 5 -> 5, both directions —
  by NCE over the (global) batch, scores / √d, tanh-clipped, + 0.05 · mean(score²).

Augmentation, as the code does it, on the Lab image (both tasks harmonize first):
pad-and-crop (res / 8), horizontal flip, grayscale (channel mean, p 0.25), Cutout of a
res / 4 square; AMDIM adds the colour jitter (×2^N(0, .25²) + N(0, .25²) per channel,
p 0.8), CMC has none.
"""

import gin
import keras
import numpy as np
import tensorflow as tf

from zoo import checks
from zoo.data import augment
from zoo.errors import UserError
from zoo.losses import contrastive, infomax
from zoo.tasks.base import POSITION, Task, image_views, merge_patches
from zoo.tasks.contrastive import gather_replicas, training_images
from zoo.tasks.momentum import MomentumTask


def _views(value, count, default, who):
    """The task's `views` (None: `default()`), checked."""
    views = image_views(value, who, count, "views")
    return default() if views is None else views


def _code_views(second_step, count) -> augment.Views:
    """The code's augmentation of the Lab images: pad-and-crop, `second_step`,
    grayscale (the channels' mean, p 0.25), Cutout."""
    steps = [augment.PadCrop(), second_step, augment.Grayscale(p=0.25, mode="mean")]
    return augment.Views(crop=None, steps=[*steps, augment.Cutout()], count=count)


def cmc_views() -> augment.Views:
    """CMC's augmentation in the code: pad-and-crop, flip, grayscale, Cutout."""
    return _code_views(augment.HorizontalFlip(), 1)


def amdim_views() -> augment.Views:
    """AMDIM's augmentation in the code (each view's own; the flip is shared):
    pad-and-crop, colour jitter, grayscale, Cutout."""
    return _code_views(augment.ChannelJitter(), 2)


def _nearest_is_own(first, second):
    """Share of rows of `first` [N, d] whose most similar row of `second` is their own."""
    return float(np.mean(np.argmax(first @ second.T, axis=-1) == np.arange(len(first))))


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.tasks")
class CMC(MomentumTask):
    """Contrastive multiview coding of L and ab against memory banks (module docstring).

    Reads a `zoo.trunks.channel_split` trunk: the endpoints "<half>/<endpoint>" of each
    half (`endpoint` defaults to the trunk's last, whose joined map is the transfer
    representation).

    Args (besides Task's):
        views: zoo.data.augment.Views of count 1 or None. Defaults to `cmc_views()`.
        projection: int. Embedding size per half. Defaults to 128.
        temperature: float > 0. τ. Defaults to 0.1.
        negatives: int >= 1. K entries drawn per image. Defaults to 8192 (the code's
            ResNet-9 setting; 4086 (sic) for its synthetic ResNet-50, 16,384 dense).
        bank_momentum: float in [0, 1). m of the banks' update. Defaults to 0.2 (the
            code's ResNet-9 setting; 0.4 for ResNet-50).
        halves: pair of str. The channel_split trunk's names of the L and ab halves.
            Defaults to ("l", "ab").
        harmonizer: str. Defaults to "lab" (the halves read L and ab).
    """

    name = "cmc"
    required = ("image",)
    indexed_queues = True
    key_network = False
    prefilled_queues = True
    metric_info = {
        "accuracy": (
            "higher",
            "share of held-out images whose ab embedding is the nearest of all held-out "
            "ab embeddings to their L embedding (chance 1 / images)",
        ),
        "alignment": ("lower", "mean squared distance between an image's L and ab embeddings"),
    }

    def __init__(
        self,
        source,
        views=None,
        projection: int = 128,
        temperature: float = 0.1,
        negatives: int = 8192,
        bank_momentum: float = 0.2,
        halves=("l", "ab"),
        harmonizer: str = "lab",
        **kwargs,
    ):
        super().__init__(source, harmonizer=harmonizer, **kwargs)
        self.views = _views(views, 1, cmc_views, self.name)
        checks.int_at_least(projection, 1, "projection", self.name)
        checks.number_in(temperature, "temperature", 0, who=self.name, low_open=True)
        checks.int_at_least(negatives, 1, "negatives", self.name)
        checks.number_in(bank_momentum, "bank_momentum", 0, 1, self.name, high_open=True)
        halves = tuple(halves)
        if len(halves) != 2 or len(set(halves)) != 2 or not all(isinstance(h, str) for h in halves):
            raise UserError(
                f"{self.name}: `halves` must be two distinct names. Received: {halves!r}"
            )
        self.projection, self.temperature = projection, float(temperature)
        self.negatives, self.bank_momentum, self.halves = negatives, float(bank_momentum), halves
        self.queue_size = training_images(self, "give a source that counts its images")

    def get_config(self):
        config = super().get_config()
        config["views"] = keras.saving.serialize_keras_object(self.views)
        return config

    @property
    def shares_images(self):
        return False  # its input is an augmented image

    def prepare(self, example, seed):
        """The augmented image; its bank slot and its K negatives' slots, drawn here
        from the example's seed so that a resumed run, and every replica count, draws
        the same ones."""
        view_seed, draw_seed = tf.unstack(tf.random.split(seed, 2))
        negatives = tf.random.stateless_uniform(
            [self.negatives], draw_seed, 0, self.queue_size, dtype=tf.int64
        )
        targets = {"index": tf.cast(example[POSITION], tf.int64), "negatives": negatives}
        return self.views(example["image"], view_seed)[0], targets

    def endpoints_read(self, last):
        return tuple(f"{half}/{self.endpoint or last}" for half in self.halves)

    def build_head(self, features, input_size):
        embeddings = []
        for half, x in zip(self.halves, features.values()):  # `endpoints_read`'s order
            x = keras.layers.GlobalAveragePooling2D(name=f"{self.name}_{half}_pool")(x)
            x = keras.layers.Dense(self.projection, name=f"{self.name}_{half}_projection")(x)
            embeddings.append(keras.layers.UnitNormalization(name=f"{self.name}_{half}_unit")(x))
        return keras.ops.stack(embeddings, axis=1)  # [B, 2, projection]: L, ab

    # -- the banks (zoo.tasks.momentum) ----------------------------------------------

    def queue_depth(self):
        return {half: self.projection for half in self.halves}

    def queue_entries(self, key_outputs):
        return {half: key_outputs[:, i] for i, half in enumerate(self.halves)}

    def slot_update(self, old, new):
        return tf.math.l2_normalize(self.bank_momentum * old + (1.0 - self.bank_momentum) * new, -1)

    def queue_initializer(self, queue, depth):
        bound = 1.0 / np.sqrt(depth / 3.0)  # the code's uniform ±1/√(d/3)
        return keras.initializers.RandomUniform(-bound, bound)

    # -- loss and measures -----------------------------------------------------------

    def _logits(self, targets, outputs, negatives):
        l_half, ab_half = self.halves
        index = tf.cast(targets["index"], tf.int64)
        to_ab = infomax.bank_logits(
            outputs[:, 0], targets[ab_half], index, negatives, self.temperature
        )
        to_l = infomax.bank_logits(
            outputs[:, 1], targets[l_half], index, negatives, self.temperature
        )
        return to_ab, to_l

    def loss(self, targets, outputs):
        to_ab, to_l = self._logits(targets, outputs, targets["negatives"])
        return -tf.nn.log_softmax(to_ab)[:, 0] - tf.nn.log_softmax(to_l)[:, 0]

    def keras_metrics(self):
        def accuracy(targets, outputs):
            to_ab, to_l = self._logits(targets, outputs, targets["negatives"])
            first = contrastive.positive_first
            return 0.5 * (first(to_ab) + first(to_l))

        return [keras.metrics.MeanMetricWrapper(accuracy, name=f"{self.name}_accuracy")]

    def evaluate(self, targets, outputs):
        l_embeddings, ab_embeddings = outputs[:, 0], outputs[:, 1]
        return {
            "accuracy": _nearest_is_own(l_embeddings, ab_embeddings),
            "alignment": float(np.mean(np.sum((l_embeddings - ab_embeddings) ** 2, axis=-1))),
        }

    def serving_outputs(self, outputs):
        return {"embeddings": keras.ops.reshape(outputs, (-1, 2 * self.projection))}


def _every_replica(maps):
    """([N, L, d] every replica's maps, in replica order; this replica's first row):
    differentiable (`gather_replicas`), so each replica's loss trains the others' maps."""
    rows, locations, depth = tf.shape(maps)[0], maps.shape[1], maps.shape[2]
    flat, offset = gather_replicas(tf.reshape(maps, [rows, locations * depth]))
    return tf.reshape(flat, [-1, locations, depth]), offset


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.tasks")
class AMDIM(Task):
    """Augmented multiscale deep infomax on a zoo trunk (module docstring).

    Args (besides Task's):
        views: zoo.data.augment.Views of count 2 or None. Each view's own steps.
            Defaults to `amdim_views()`.
        flip: float in [0, 1]. Probability that both views are flipped (one flip
            shared). Defaults to 0.5.
        features: int. d: the width of the global and local features. Defaults to 256
            (the code's ResNet-9 `out_feats`; 512 dense).
        local_endpoints: pair of str. The trunk endpoints pooled to 7x7 and to 5x5
            (adaptive average pooling: a smaller map is spread over overlapping bins,
            as PyTorch's is in the code's ResNet-50 at 64 px, 4x4 -> 5x5). Defaults to
            ("block2", "block3"): ResNet-9's; the code reads block 3's convolution
            before its residual unit, the zoo's "block3" is after it. For a ResNet-50,
            ("block3", "block4").
        clip: float > 0 or None. tanh clip of the scores. Defaults to 10 (AMDIM's code;
            Newell & Deng's synthetic configs use 30).
        regulariser: float >= 0. Weight of the mean squared raw score. Defaults to 0.05.
        harmonizer: str. Defaults to "lab" (Newell & Deng's inputs).
    """

    name = "amdim"
    required = ("image",)
    grids = (7, 5)
    metric_info = {
        "loss": ("lower", "the AMDIM objective over the held-out images as one batch"),
        "accuracy": (
            "higher",
            "share of held-out images whose global features score highest (mean over "
            "locations) on their own other view's 5x5 map among all held-out images' "
            "(chance 1 / images)",
        ),
    }

    def __init__(
        self,
        source,
        views=None,
        flip: float = 0.5,
        features: int = 256,
        local_endpoints=("block2", "block3"),
        clip: float | None = infomax.AMDIM_CLIP,
        regulariser: float = infomax.AMDIM_REGULARISER,
        harmonizer: str = "lab",
        **kwargs,
    ):
        super().__init__(source, harmonizer=harmonizer, **kwargs)
        self.views = _views(views, 2, amdim_views, self.name)
        self.flip = checks.number_in(flip, "flip", 0, 1, self.name)
        checks.int_at_least(features, 1, "features", self.name)
        local_endpoints = tuple(local_endpoints)
        if len(local_endpoints) != 2 or not all(isinstance(e, str) for e in local_endpoints):
            raise UserError(
                f"{self.name}: `local_endpoints` must be two endpoint names (pooled to 7x7 "
                f"and 5x5). Received: {local_endpoints!r}"
            )
        if clip is not None:
            checks.number_in(clip, "clip", 0, who=self.name, low_open=True)
        self.features, self.local_endpoints = features, local_endpoints
        self.clip = None if clip is None else float(clip)
        self.regulariser = checks.number_in(regulariser, "regulariser", 0, who=self.name)

    def get_config(self):
        config = super().get_config()
        config["views"] = keras.saving.serialize_keras_object(self.views)
        return config

    @property
    def shares_images(self):
        return False  # its inputs are two views

    def input_shape(self, input_size):
        return (2, *checks.image_size(input_size), 3)

    def prepare(self, example, seed):
        flip_seed, view_seed, place_seed = tf.unstack(tf.random.split(seed, 3))
        image = augment.HorizontalFlip(self.flip)(example["image"], flip_seed)
        location = tf.random.stateless_uniform([2], place_seed, 0, self.grids[1], tf.int32)
        return self.views(image, view_seed), location

    def to_trunk(self, inputs):
        return merge_patches(inputs)  # image i's views at rows 2i, 2i + 1

    def endpoints_read(self, last):
        # the global endpoint first (a local one may be the same map)
        return tuple(dict.fromkeys((self.endpoint or last, *self.local_endpoints)))

    def build_head(self, features, input_size):
        global_map = next(iter(features.values()))  # `endpoints_read`'s first
        local_maps = [features[e] for e in self.local_endpoints]
        d = self.features
        x = keras.layers.GlobalAveragePooling2D(name=f"{self.name}_pool")(global_map)
        x = keras.layers.Dense(d, name=f"{self.name}_global")(x)
        # rows 2i, 2i + 1 (image i's views) -> [B, 2, ...]
        out = {"global": keras.ops.reshape(x, (-1, 2, d))}
        for local, grid in zip(local_maps, self.grids):
            y = keras.layers.AdaptiveAveragePooling2D(grid, name=f"{self.name}_pool_{grid}")(local)
            # the code's 1x1 convolution before the pooling: the same, both being linear
            y = keras.layers.Conv2D(d, 1, name=f"{self.name}_rkhs_{grid}")(y)
            out[f"local_{grid}"] = keras.ops.reshape(y, (-1, 2, grid, grid, d))
        return out

    def _views_of(self, outputs):
        return tuple({k: v[:, i] for k, v in outputs.items()} for i in range(2))

    def loss(self, targets, outputs):
        return infomax.amdim_loss(
            self._views_of(outputs), targets, self.clip, self.regulariser, _every_replica
        )

    def evaluate(self, targets, outputs):
        loss = infomax.amdim_loss(
            self._views_of(tf.nest.map_structure(tf.constant, outputs)),
            targets,
            self.clip,
            self.regulariser,
        )
        first, second = outputs["global"][:, 0], outputs["local_5"][:, 1]
        scores = np.einsum("id,jxyd->ij", first, second)
        return {
            "loss": float(np.mean(loss)),
            "accuracy": float(np.mean(np.argmax(scores, -1) == np.arange(len(first)))),
        }

    def serving_outputs(self, outputs):
        return {"embeddings": outputs["global"][:, 0]}
