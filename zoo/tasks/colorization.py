"""Colorization (Zhang, Isola & Efros 2016; Doersch & Zisserman 2017 sec. 2, 3.4).

Input: the Lab lightness L replicated to three channels (`harmonizer="lab_l3"`).
Target: the ab colour, brought down to the head's stride (8) by area averaging,
quantized into the ab bins of a grid of size 10 that hold sRGB colours and
soft-encoded over the 5 nearest bin centres with a Gaussian kernel (σ = 5).

The bins are computed here from the sRGB gamut: every colour of a 128-level RGB cube is
converted to Lab and the bins its ab falls in (centres on multiples of 10, as in Zhang
et al.'s published bin centres) are kept: `gamut_bins()` finds 262 of them (Zhang et
al. report 313 for their gamut, taken over a different sampling of colours and
lightness; the zoo uses the bins its own Lab conversion actually reaches).

Loss: per-pixel cross entropy with the soft targets, averaged over each image's pixels,
optionally with Zhang et al.'s class rebalancing (weights ∝ ((1 − λ) p + λ / Q)⁻¹ with
λ = 0.5 from the empirical bin prior p of the training images, normalised so that the
expected weight is 1). Head: 2x2 conv 4096 → ReLU → 1x1 conv 4096 → ReLU → 1x1 conv Q.
`annealed_mean` turns predictions into colours (temperature 0.38) for pictures.
"""

import functools

import gin
import keras
import numpy as np
import tensorflow as tf

from zoo.data.harmonize import lab_to_rgb, rgb_to_lab
from zoo.tasks.base import Task, check_stride

GRID = 10.0


@functools.lru_cache(maxsize=4)
def gamut_bins(grid=GRID, levels=128):
    """ab centres [Q, 2] of the grid bins that hold at least one sRGB colour."""
    axis = np.linspace(0.0, 1.0, levels, dtype=np.float32)
    rgb = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    ab = rgb_to_lab(tf.constant(rgb)).numpy()[:, 1:]
    cells = np.round(ab / grid).astype(np.int64)
    # each (a, b) cell as one int, ordered as the pairs are: a 1-D unique of 2M colours
    # (0.6 s instead of the 4 s of np.unique(cells, axis=0))
    offset = 1 << 20  # beyond any |b| cell
    keys = np.unique(cells[:, 0] * (2 * offset) + cells[:, 1] + offset)
    a, b = np.divmod(keys, 2 * offset)
    return (np.stack([a, b - offset], axis=1) * grid).astype(np.float32)


def soft_encode(ab, centres, neighbours=5, sigma=5.0):
    """Soft targets [..., Q]: Gaussian weights (σ) on the `neighbours` nearest centres,
    summing to 1."""
    ab = tf.convert_to_tensor(ab, tf.float32)
    centres = tf.convert_to_tensor(centres, tf.float32)
    flat = tf.reshape(ab, [-1, 2])
    d2 = tf.reduce_sum(tf.square(flat[:, None, :] - centres[None]), axis=-1)  # [P, Q]
    nearest_d2, nearest = tf.math.top_k(-d2, k=neighbours)
    weights = tf.nn.softmax(nearest_d2 / (2.0 * sigma**2), axis=-1)  # exp(-d²/2σ²), normalised
    rows = tf.repeat(tf.range(tf.shape(flat)[0]), neighbours)
    indices = tf.stack([rows, tf.reshape(nearest, [-1])], axis=1)
    encoded = tf.scatter_nd(
        indices, tf.reshape(weights, [-1]), [tf.shape(flat)[0], tf.shape(centres)[0]]
    )
    return tf.reshape(encoded, tf.concat([tf.shape(ab)[:-1], [tf.shape(centres)[0]]], 0))


def annealed_mean(logits, centres, temperature=0.38):
    """ab [..., 2] from logits [..., Q]: the mean of softmax(logits / T) over the centres
    (Zhang et al.'s annealed mean, between the mode (T → 0) and the mean (T = 1))."""
    probabilities = tf.nn.softmax(tf.convert_to_tensor(logits, tf.float32) / temperature)
    return tf.tensordot(probabilities, tf.constant(centres, tf.float32), axes=1)


def rebalancing_weights(prior, mix=0.5):
    """Zhang et al.'s class weights from a bin prior [Q]: ((1 − λ) p + λ / Q)⁻¹, scaled so
    that Σ p w = 1."""
    prior = np.asarray(prior, np.float64)
    prior = prior / prior.sum()
    weights = 1.0 / ((1.0 - mix) * prior + mix / len(prior))
    return (weights / np.sum(prior * weights)).astype(np.float32)


def colorize(lightness, ab, size=None):
    """RGB [B, H, W, 3] from L [B, H, W] (0..100) and ab [B, h, w, 2] (resized to H x W)."""
    lightness = tf.convert_to_tensor(lightness, tf.float32)
    height, width = lightness.shape[1], lightness.shape[2]
    ab = tf.image.resize(tf.convert_to_tensor(ab, tf.float32), [height, width])
    return lab_to_rgb(tf.concat([lightness[..., None], ab], axis=-1))


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.tasks")
class Colorization(Task):
    """ab colour bins of every stride-8 cell from the lightness.

    Args (besides Task's; `harmonizer` defaults to "lab_l3"):
        stride: int. Stride of the predictions (the trunk endpoint's). Defaults to 8.
        head_width: int. Width of the two hidden convolutions. Defaults to 4096.
        neighbours, sigma: soft encoding. Defaults to 5 and 5.0.
        rebalance: bool. Zhang et al.'s class rebalancing. Defaults to False.
        rebalance_images: int. Training images that estimate the bin prior. Defaults to 256.
    """

    name = "colorization"
    required = ("image",)
    metric_info = {
        "bin_accuracy": ("higher", "share of cells whose most likely colour bin is the truth's"),
        "ab_rmse": ("lower", "colour error of the annealed-mean prediction (Lab ab units)"),
    }

    def __init__(
        self,
        source,
        stride=8,
        head_width=4096,
        neighbours=5,
        sigma=5.0,
        rebalance=False,
        rebalance_images=256,
        harmonizer="lab_l3",
        **kwargs,
    ):
        super().__init__(source, harmonizer=harmonizer, **kwargs)
        self.head_width = head_width
        self.stride, self.neighbours, self.sigma = stride, neighbours, sigma
        self.centres = gamut_bins()
        self.rebalance, self.rebalance_images = rebalance, rebalance_images
        self._weights = None

    @property
    def bins(self):
        return len(self.centres)

    def _coarse_ab(self, rgb):
        lab = rgb_to_lab(rgb)
        size = rgb.shape[0] // self.stride
        return tf.image.resize(lab[..., 1:], [size, size], method="area")

    def prepare(self, example, seed):
        ab = self._coarse_ab(example["rgb"])
        return example["image"], soft_encode(ab, self.centres, self.neighbours, self.sigma)

    def class_weights(self):
        """Rebalancing weights [Q] from the bin prior of training images (cached)."""
        if self._weights is None:
            counts = np.zeros(self.bins)
            batches = self.examples("train").take(self.rebalance_images).batch(64)
            for batch in batches:
                ab = tf.map_fn(self._coarse_ab, tf.cast(batch["image"], tf.float32))
                targets = soft_encode(ab, self.centres, self.neighbours, self.sigma)
                counts += tf.reduce_sum(targets, axis=[0, 1, 2]).numpy()
            self._weights = rebalancing_weights(counts + 1e-6)
        return self._weights

    def check_geometry(self, endpoint, feature_shape, input_size):
        check_stride(self.name, self.stride, endpoint, feature_shape, input_size)

    def build_head(self, features, input_size):
        if self.rebalance:
            self.class_weights()  # estimated now, eagerly, from the training images
        x = keras.layers.Conv2D(self.head_width, 2, padding="same", name=f"{self.name}_conv1")(
            features
        )
        x = keras.layers.ReLU(name=f"{self.name}_relu1")(x)
        x = keras.layers.Conv2D(self.head_width, 1, name=f"{self.name}_conv2")(x)
        x = keras.layers.ReLU(name=f"{self.name}_relu2")(x)
        return keras.layers.Conv2D(self.bins, 1, name=f"{self.name}_logits")(x)

    def loss(self, targets, outputs):
        per_pixel = tf.nn.softmax_cross_entropy_with_logits(targets, outputs)
        if self.rebalance:
            weights = tf.gather(tf.constant(self.class_weights()), tf.argmax(targets, -1))
            per_pixel = per_pixel * weights
        return tf.reduce_mean(per_pixel, axis=[1, 2])

    def evaluate(self, targets, outputs):
        targets, outputs = np.asarray(targets), np.asarray(outputs)
        true_ab = np.tensordot(targets, self.centres, axes=1)  # the soft target's mean colour
        predicted = annealed_mean(outputs, self.centres).numpy()
        return {
            "bin_accuracy": float(np.mean(targets.argmax(-1) == outputs.argmax(-1))),
            "ab_rmse": float(np.sqrt(np.mean(np.sum((predicted - true_ab) ** 2, axis=-1)))),
        }

    def serving_outputs(self, outputs):
        return {"ab": annealed_mean(outputs, self.centres)}

    def keras_metrics(self):
        return [keras.metrics.CategoricalAccuracy(name=f"{self.name}_bin_accuracy")]
