"""Surface normals (Ren & Lee 2018): unit normals in the camera frame, negative cosine loss."""

import gin
import tensorflow as tf

from zoo.evaluation import metrics
from zoo.losses import negative_cosine_normals
from zoo.tasks.base import Task, dense_decoder


@gin.configurable(module="zoo.tasks")
class Normals(Task):
    """Predicts a 3-vector per pixel, normalised to unit length for the loss and outputs."""

    name = "normals"
    required = ("image", "normals")

    def prepare(self, example, seed):
        return example["image"], example["normals"]

    def build_head(self, features, input_size):
        return dense_decoder(features, input_size, 3, self.head_width, self.name)

    def loss(self, targets, outputs):
        return negative_cosine_normals(outputs, targets)

    def evaluate(self, targets, outputs):
        return metrics.normal_metrics(outputs, targets)

    def serving_outputs(self, outputs):
        return {"normals": tf.math.l2_normalize(outputs, axis=-1)}
