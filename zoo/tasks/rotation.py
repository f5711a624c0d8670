"""Rotation prediction (Gidaris et al. 2018): which of 0/90/180/270° an image was turned by."""

import gin
import keras
import tensorflow as tf

from zoo.tasks.classification import GlobalTask


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.tasks")
class Rotation(GlobalTask):
    """Self-supervised: any square image, rotated by k·90° with k drawn per example."""

    name = "rotation"
    required = ("image",)
    classes = 4

    @property
    def shares_images(self):
        return False  # its inputs are rotated copies

    def prepare(self, example, seed):
        k = tf.random.stateless_uniform([], seed, maxval=4, dtype=tf.int32)
        return tf.image.rot90(example["image"], k), k
