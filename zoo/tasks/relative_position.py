"""Relative position (Doersch, Gupta & Efros 2015; Doersch & Zisserman 2017 sec. 2, 3.4).

Two patches of an image, taken from adjacent cells of a 3x3 grid (the centre cell and
one of its eight neighbours, diagonals included), go through the trunk without context;
the head says where the second patch was relative to the first: an 8-way softmax.

Geometry: the image is resized to `image_size`; the grid of 3x3 patches of `patch_size`
with `gap` pixels between them is centred in it, and every patch is moved by up to
`jitter` pixels in each direction. Doersch et al. 2015 use 96 px patches, a 48 px gap
and 7 px of jitter, which needs an image of at least 3·96 + 2·48 + 2·7 = 398 px: the
default image size (a 256 px image cannot hold nine 96 px patches without overlap).

Preprocessing: colour dropping by default (2 of the 3 channels of each patch replaced by
noise, as in 2015, against chromatic aberration); the harmonized variant uses Lab lightness like
colorization (`harmonizer="lab_l3"`).

Head: the patch head (two stride-2 residual units, 1024/128 and 512/128) gives 3x3x512
per patch; the pair's two flattened maps are concatenated, projected to `fc_width`
(4608 = 3·3·512), go through three fully-connected residual units (bottleneck 512) and a
final layer of 8 logits. All patches pass through the trunk as one batch of 2B and are
put back into pairs afterwards (a siamese network without duplicated weights).
"""

import gin
import keras
import tensorflow as tf

from zoo.data import harmonize
from zoo.errors import UserError
from zoo.layers import batch_norm, fc_residual_unit, patch_head
from zoo.tasks.base import merge_patches
from zoo.tasks.classification import GlobalTask

# (row, column) of the second patch for each label; the first patch is the centre (1, 1).
NEIGHBOURS = ((0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2))


def grid_origin(image_size, patch_size, gap, jitter):
    """Top-left pixel of the grid's first cell; raises if the grid does not fit."""
    span = 3 * patch_size + 2 * gap
    needed = span + 2 * jitter
    if needed > image_size:
        raise UserError(
            f"relative position: a 3x3 grid of {patch_size} px patches with gap {gap} and "
            f"jitter {jitter} needs an image of at least {needed} px; image_size is "
            f"{image_size}. Raise image_size or lower patch_size, gap or jitter."
        )
    return (image_size - span) // 2


def patch_pair(image, label, seed, patch_size, gap, jitter):
    """The centre patch and its neighbour `label` of a square image, each jittered.

    Returns:
        [2, patch_size, patch_size, C].
    """
    origin = grid_origin(image.shape[0], patch_size, gap, jitter)
    step = patch_size + gap
    offsets = tf.random.stateless_uniform([2, 2], seed, -jitter, jitter + 1, dtype=tf.int32)
    cells = tf.constant([(1, 1)] + list(NEIGHBOURS), tf.int32)
    where = tf.stack([cells[0], cells[label + 1]]) * step + origin + offsets
    return tf.stack(
        [
            tf.slice(image, [where[i, 0], where[i, 1], 0], [patch_size, patch_size, -1])
            for i in range(2)
        ]
    )


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.tasks")
class RelativePosition(GlobalTask):
    """Where the second patch of a pair lies relative to the first: 8 classes.

    Args (besides Task's; `harmonizer` defaults to "drop_color"):
        image_size: int. Images are resized to this size. Defaults to 398.
        patch_size: int. Defaults to 96.
        gap: int. Pixels between grid cells. Defaults to 48.
        jitter: int. Largest shift of a patch, in pixels. Defaults to 7.
        head_widths: (int, int). Outputs of the two residual units. Defaults to (1024, 512).
        head_bottleneck: int. Their bottleneck. Defaults to 128.
        fc_width: int. Width of the fully-connected residual units. Defaults to 4608.
        fc_bottleneck: int. Their bottleneck. Defaults to 512.
        fc_units: int. Defaults to 3.
    """

    name = "relative_position"
    required = ("image",)
    classes = 8

    def __init__(
        self,
        source,
        image_size=398,
        patch_size=96,
        gap=48,
        jitter=7,
        head_widths=(1024, 512),
        head_bottleneck=128,
        fc_width=4608,
        fc_bottleneck=512,
        fc_units=3,
        harmonizer="drop_color",
        **kwargs,
    ):
        # colour dropping draws its channel per patch (Doersch et al. 2015); other
        # harmonizers apply to the whole image
        self.drop_per_patch = harmonizer == "drop_color"
        super().__init__(
            source, harmonizer="identity" if self.drop_per_patch else harmonizer, **kwargs
        )
        self.harmonizer = harmonizer
        grid_origin(image_size, patch_size, gap, jitter)  # a clear error now, not in tf.data
        self.image_size, self.patch_size, self.gap, self.jitter = (
            image_size,
            patch_size,
            gap,
            jitter,
        )
        self.head_widths, self.head_bottleneck = tuple(head_widths), head_bottleneck
        self.fc_width, self.fc_bottleneck, self.fc_units = fc_width, fc_bottleneck, fc_units

    @property
    def shares_images(self):
        return False  # patch pairs

    def input_shape(self, input_size):
        return (2, self.patch_size, self.patch_size, 3)

    def to_trunk(self, inputs):
        return merge_patches(inputs)

    def prepare(self, example, seed):
        label_seed, jitter_seed, drop_seed = tf.unstack(tf.random.split(seed, 3))
        label = tf.random.stateless_uniform([], label_seed, 0, 8, dtype=tf.int32)
        size = self.image_size
        image = tf.image.resize(example["image"], [size, size])
        image.set_shape([size, size, 3])
        pair = patch_pair(image, label, jitter_seed, self.patch_size, self.gap, self.jitter)
        if self.drop_per_patch:
            seeds = tf.unstack(tf.random.split(drop_seed, 2))
            pair = tf.stack([harmonize.drop_color(pair[i], seeds[i]) for i in range(2)])
        return pair, label

    def build_head(self, features, input_size):
        """8 logits per pair from the trunk features of its two patches (rows 2i, 2i + 1)."""
        maps = patch_head(features, self.head_widths, self.head_bottleneck, self.name)
        per_patch = maps.shape[1] * maps.shape[2] * maps.shape[3]
        pairs = keras.ops.reshape(maps, (-1, 2 * per_patch))  # the two patches side by side
        x = keras.layers.Dense(self.fc_width, name=f"{self.name}_fc_in")(pairs)
        for i in range(self.fc_units):
            x = fc_residual_unit(x, self.fc_bottleneck, name=f"{self.name}_fc{i + 1}")
        x = keras.layers.ReLU(name=f"{self.name}_fc_relu")(batch_norm(f"{self.name}_fc_bn")(x))
        return keras.layers.Dense(self.classes, name=f"{self.name}_logits")(x)
