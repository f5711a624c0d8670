"""Depth from a single image (Ren & Lee 2018): log depth, scale-invariant loss."""

import gin
import keras
import tensorflow as tf

from zoo import metrics
from zoo.errors import UserError
from zoo.losses import berhu, masked_l1, scale_invariant_log_depth
from zoo.tasks.base import DenseTask

LOSSES = ("scale_invariant", "l1", "berhu")


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.tasks")
class Depth(DenseTask):
    """Predicts log depth per pixel; the target is the depth in metres (0: unknown).

    Args (besides DenseTask's):
        depth_loss: str. "scale_invariant" (Eigen et al.'s scale-invariant log loss, Ren & Lee),
            "l1" (Newell & Deng's transfer) or "berhu" (reverse Huber, Laina et al.; Doersch
            & Zisserman's depth evaluation), the last two on the predicted depth.
            Defaults to "scale_invariant".
    """

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

    def __init__(self, source, depth_loss: str = "scale_invariant", **kwargs):
        super().__init__(source, **kwargs)
        if depth_loss not in LOSSES:
            raise UserError(
                f"Depth: `depth_loss` must be one of {LOSSES}. Received: {depth_loss!r}"
            )
        self.depth_loss = depth_loss

    def prepare(self, example, seed):
        return example["image"], example["depth"][..., tf.newaxis]

    def loss(self, targets, outputs):
        valid = targets > 0
        if self.depth_loss == "l1":
            return masked_l1(tf.exp(outputs), targets, valid)
        if self.depth_loss == "berhu":
            return berhu(tf.exp(outputs), targets, valid)
        true_log = tf.math.log(tf.where(valid, targets, 1.0))
        return scale_invariant_log_depth(outputs, true_log, valid)

    def evaluate(self, targets, outputs):
        return metrics.depth_metrics(tf.exp(outputs).numpy(), targets)

    def serving_outputs(self, outputs):
        return {"depth": tf.exp(outputs)}
