"""Rotation prediction (Gidaris et al. 2018): which of 0/90/180/270° an image was turned by."""

import gin
import keras
import tensorflow as tf

from zoo import checks
from zoo.data.sources import resize_and_center_crop
from zoo.tasks.classification import GlobalTask


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.tasks")
class Rotation(GlobalTask):
    """Self-supervised: a square image, rotated by k·90° with k drawn per example (a
    turned H x W image would not batch with an unturned one).

    Args (besides Task's):
        size: int or None. Side of the square: images are resized to cover it and
            cropped at the centre. Defaults to None: the input's side, or for
            (height, width) inputs min(height, width), of images already that size.
    """

    name = "rotation"
    required = ("image",)
    classes = 4

    def __init__(self, source, size: int | None = None, **kwargs):
        super().__init__(source, **kwargs)
        self.size = checks.int_at_least(size, 1, "size", "Rotation", none=True)

    @property
    def shares_images(self):
        return False  # its inputs are rotated copies

    def input_shape(self, input_size):
        side = self.size or min(checks.image_size(input_size))
        return (side, side, 3)

    def prepare(self, example, seed):
        k = tf.random.stateless_uniform([], seed, maxval=4, dtype=tf.int32)
        image = example["image"]
        if self.size is not None:
            image = resize_and_center_crop(image, self.size)
        return tf.image.rot90(image, k), k
