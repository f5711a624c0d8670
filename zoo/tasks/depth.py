"""Depth from a single image (Ren & Lee 2018): log depth, scale-invariant loss."""

import gin
import tensorflow as tf

from zoo.evaluation import metrics
from zoo.losses import scale_invariant_log_depth
from zoo.tasks.base import Task, dense_decoder


@gin.configurable(module="zoo.tasks")
class Depth(Task):
    """Predicts log depth per pixel; the target is the rendered depth in metres."""

    name = "depth"
    required = ("image", "depth")

    def prepare(self, example, seed):
        return example["image"], example["depth"][..., tf.newaxis]

    def build_head(self, features, input_size):
        return dense_decoder(features, input_size, 1, self.head_width, self.name)

    def loss(self, targets, outputs):
        valid = targets > 0
        true_log = tf.math.log(tf.where(valid, targets, 1.0))
        return scale_invariant_log_depth(outputs, true_log, valid)

    def evaluate(self, targets, outputs):
        return metrics.depth_metrics(tf.exp(outputs).numpy(), targets)

    def serving_outputs(self, outputs):
        return {"depth": tf.exp(outputs)}
