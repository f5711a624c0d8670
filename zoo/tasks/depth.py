"""Depth from a single image (Ren & Lee 2018): log depth, scale-invariant loss."""

import gin
import keras
import tensorflow as tf

from zoo.evaluation import metrics
from zoo.losses import scale_invariant_log_depth
from zoo.tasks.base import DenseTask


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.tasks")
class Depth(DenseTask):
    """Predicts log depth per pixel; the target is the rendered depth in metres."""

    name = "depth"
    required = ("image", "depth")
    out_channels = 1
    metric_info = {
        "delta1": ("higher", "share of pixels with depth within 1.25x of the truth"),
        "delta2": ("higher", "share of pixels with depth within 1.25^2x of the truth"),
        "delta3": ("higher", "share of pixels with depth within 1.25^3x of the truth"),
        "abs_rel": ("lower", "mean |depth error| / true depth"),
        "rmse": ("lower", "root mean squared depth error (m)"),
        "mae": ("lower", "mean absolute depth error (m)"),
    }

    def prepare(self, example, seed):
        return example["image"], example["depth"][..., tf.newaxis]

    def loss(self, targets, outputs):
        valid = targets > 0
        true_log = tf.math.log(tf.where(valid, targets, 1.0))
        return scale_invariant_log_depth(outputs, true_log, valid)

    def evaluate(self, targets, outputs):
        return metrics.depth_metrics(tf.exp(outputs).numpy(), targets)

    def serving_outputs(self, outputs):
        return {"depth": tf.exp(outputs)}
