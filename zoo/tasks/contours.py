"""Instance contours (Ren & Lee 2018): edges of instance masks, class-balanced sigmoid CE."""

import gin
import numpy as np
import tensorflow as tf

from zoo.evaluation import metrics
from zoo.losses import class_balanced_sigmoid_ce
from zoo.tasks.base import Task, dense_decoder


@gin.configurable(module="zoo.tasks")
class Contours(Task):
    """Predicts one edge logit per pixel."""

    name = "contours"
    required = ("image", "contours")

    def prepare(self, example, seed):
        return example["image"], tf.cast(example["contours"], tf.float32)[..., tf.newaxis]

    def build_head(self, features, input_size):
        return dense_decoder(features, input_size, 1, self.head_width, self.name)

    def loss(self, targets, outputs):
        return class_balanced_sigmoid_ce(outputs, targets)

    def evaluate(self, targets, outputs):
        probabilities = 1.0 / (1.0 + np.exp(-np.asarray(outputs)))
        ods, threshold = metrics.ods_fscore(probabilities, targets)
        return {
            "f_score": metrics.contour_fscore(probabilities, targets),
            "ods_f_score": ods,
            "ods_threshold": threshold,
        }

    def serving_outputs(self, outputs):
        return {"contour_probability": tf.sigmoid(outputs)}
