"""Exemplar with a triplet loss (Dosovitskiy et al. 2014; Doersch & Zisserman 2017 sec. 2, 3.4).

Two augmented patches of one image (x1, x2: a pseudo-class) and an augmented patch of
another image (x3) go through the trunk as one batch and the patch head; with D the
cosine distance between the flattened 3x3x512 features, the loss is
max(D(f(x1), f(x2)) − D(f(x1), f(x3)) + M, 0) with M = 0.5.

Augmentation (Dosovitskiy et al.): translation (where the patch is cut), scaling (the
cut is `scale_range` times the patch size before resizing), rotation (up to
`max_rotation` degrees) and colour shifts (brightness, contrast, saturation, hue). x3 of
image i is the third augmented patch of image i + 1 of the same batch (`prepare_batch`).
"""

import math

import gin
import keras
import numpy as np
import tensorflow as tf

from zoo.errors import UserError
from zoo.layers import patch_head
from zoo.tasks.base import Task, merge_patches


def cosine_distance(a, b):
    """1 − cos(a, b) over the last axis."""
    a = tf.math.l2_normalize(a, axis=-1)
    b = tf.math.l2_normalize(b, axis=-1)
    return 1.0 - tf.reduce_sum(a * b, axis=-1)


def triplet_loss(embeddings, margin=0.5):
    """max(D(e1, e2) − D(e1, e3) + margin, 0) per triplet, from embeddings [B, 3, D]."""
    e1, e2, e3 = (embeddings[:, i] for i in range(3))
    return tf.nn.relu(cosine_distance(e1, e2) - cosine_distance(e1, e3) + margin)


def _rotate(image, angle):
    """Rotates [H, W, C] by `angle` radians about its centre (bilinear, edges reflected)."""
    size = tf.cast(tf.shape(image)[0], tf.float32)
    c, s = tf.cos(angle), tf.sin(angle)
    centre = (size - 1.0) / 2.0
    # output (x, y) samples input (c x − s y + tx, s x + c y + ty): a rotation about the centre
    transform = [c, -s, centre - c * centre + s * centre, s, c, centre - s * centre - c * centre]
    transform = tf.stack(transform + [0.0, 0.0])[None]
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None],
        transforms=transform,
        output_shape=tf.shape(image)[:2],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode="REFLECT",
    )[0]


def augmented_patch(image, seed, patch_size, scale_range, max_rotation, color):
    """One randomly translated, scaled, rotated and colour-shifted patch of `image`."""
    seeds = tf.unstack(tf.random.split(seed, 8))
    size = image.shape[0]
    scale = tf.random.stateless_uniform([], seeds[0], *scale_range)
    cut = tf.cast(tf.minimum(tf.round(patch_size * scale), size), tf.int32)
    top, left = (
        tf.random.stateless_uniform([], seeds[i], 0, size - cut + 1, dtype=tf.int32) for i in (1, 2)
    )
    patch = tf.image.resize(tf.slice(image, [top, left, 0], [cut, cut, -1]), [patch_size] * 2)
    angle = tf.random.stateless_uniform([], seeds[3], -1.0, 1.0) * max_rotation * math.pi / 180
    patch = _rotate(patch, angle)
    if color:
        patch = tf.image.stateless_random_brightness(patch, 0.2, seeds[4])
        patch = tf.image.stateless_random_contrast(patch, 0.7, 1.3, seeds[5])
        patch = tf.image.stateless_random_saturation(patch, 0.7, 1.4, seeds[6])
        patch = tf.image.stateless_random_hue(patch, 0.1, seeds[7])
    patch = tf.clip_by_value(patch, 0.0, 1.0)
    patch.set_shape([patch_size, patch_size, 3])
    return patch


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.tasks")
class Exemplar(Task):
    """Triplets of patches: two of one image, one of another; cosine triplet loss.

    Args (besides Task's):
        image_size: int. Images are resized to this size. Defaults to 256.
        patch_size: int. Defaults to 96.
        scale_range: (float, float). Cut size / patch size. Defaults to (0.7, 1.4).
        max_rotation: float. Degrees. Defaults to 20.
        color: bool. Colour shifts. Defaults to True.
        margin: float. M of the loss. Defaults to 0.5.
        head_widths, head_bottleneck: the patch head. Defaults to (1024, 512) and 128.
    """

    name = "exemplar"
    required = ("image",)
    metric_info = {
        "triplet_accuracy": ("higher", "share of triplets with the positive patch nearer"),
        "triplet_loss": ("lower", "mean triplet loss (cosine distances, margin M)"),
    }

    def __init__(
        self,
        source,
        image_size=256,
        patch_size=96,
        scale_range=(0.7, 1.4),
        max_rotation=20.0,
        color=True,
        margin=0.5,
        head_widths=(1024, 512),
        head_bottleneck=128,
        **kwargs,
    ):
        super().__init__(source, **kwargs)
        if patch_size > image_size:
            raise UserError(
                f"exemplar: patch_size {patch_size} is larger than image_size {image_size}."
            )
        self.image_size, self.patch_size = image_size, patch_size
        self.scale_range, self.max_rotation, self.color = tuple(scale_range), max_rotation, color
        self.margin = margin
        self.head_widths, self.head_bottleneck = tuple(head_widths), head_bottleneck

    @property
    def shares_images(self):
        return False  # patch triplets

    def input_shape(self, input_size):
        return (3, self.patch_size, self.patch_size, 3)

    def to_trunk(self, inputs):
        return merge_patches(inputs)

    def prepare(self, example, seed):
        size = self.image_size
        image = tf.image.resize(example["image"], [size, size])
        image.set_shape([size, size, 3])
        patches = [
            augmented_patch(
                image, s, self.patch_size, self.scale_range, self.max_rotation, self.color
            )
            for s in tf.unstack(tf.random.split(seed, 3))
        ]
        return tf.stack(patches), tf.zeros([], tf.float32)

    def prepare_batch(self, inputs, targets):
        # x3 of image i: the third patch of image i + 1 (another image of the batch)
        negatives = tf.roll(inputs[:, 2], shift=-1, axis=0)
        return tf.concat([inputs[:, :2], negatives[:, None]], axis=1), targets

    def build_head(self, features, input_size):
        """Embeddings [B, 3, D] from the trunk features of each triplet (rows 3i .. 3i + 2)."""
        maps = patch_head(features, self.head_widths, self.head_bottleneck, self.name)
        per_patch = maps.shape[1] * maps.shape[2] * maps.shape[3]
        return keras.ops.reshape(maps, (-1, 3, per_patch))

    def loss(self, targets, outputs):
        return triplet_loss(outputs, self.margin)

    def evaluate(self, targets, outputs):
        outputs = tf.convert_to_tensor(outputs)
        d12 = cosine_distance(outputs[:, 0], outputs[:, 1]).numpy()
        d13 = cosine_distance(outputs[:, 0], outputs[:, 2]).numpy()
        return {
            "triplet_accuracy": float(np.mean(d12 < d13)),  # positive closer than negative
            "triplet_loss": float(np.mean(np.maximum(d12 - d13 + self.margin, 0.0))),
        }

    def serving_outputs(self, outputs):
        return {"embeddings": outputs}
