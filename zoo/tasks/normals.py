"""Surface normals (Ren & Lee 2018): unit normals in the camera frame, negative cosine loss."""

import gin
import keras
import tensorflow as tf

from zoo import metrics
from zoo.losses import negative_cosine_normals
from zoo.tasks.base import DenseTask


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.tasks")
class Normals(DenseTask):
    """Predicts a 3-vector per pixel, normalised to unit length for the loss and outputs."""

    name = "normals"
    required = ("image", "normals")
    out_channels = 3
    metric_info = {
        "mean_angle": ("lower", "mean angle between predicted and true normals (deg)"),
        "median_angle": ("lower", "median angle between predicted and true normals (deg)"),
        "within_11_25": ("higher", "share of pixels with normal error below 11.25 deg"),
        "within_22_5": ("higher", "share of pixels with normal error below 22.5 deg"),
        "within_30": ("higher", "share of pixels with normal error below 30 deg"),
    }

    def prepare(self, example, seed):
        return example["image"], example["normals"]

    def loss(self, targets, outputs):
        return negative_cosine_normals(outputs, targets)

    def evaluate(self, targets, outputs):
        return metrics.normal_metrics(outputs, targets)

    def serving_outputs(self, outputs):
        return {"normals": tf.math.l2_normalize(outputs, axis=-1)}
