"""Instance contours (Ren & Lee 2018): edges of instance masks, class-balanced sigmoid CE."""

import gin
import keras
import numpy as np
import tensorflow as tf

from zoo import metrics
from zoo.losses import class_balanced_sigmoid_ce
from zoo.tasks.base import DenseTask


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.tasks")
class Contours(DenseTask):
    """Predicts one edge logit per pixel."""

    target_resize = "nearest"

    name = "contours"
    required = ("image", "contours")
    out_channels = 1
    metric_info = {
        "ods_f_score": ("higher", "contour F-score at the best single threshold"),
        "ods_threshold": ("neither", "the probability threshold of the ODS F-score"),
        "f_score": ("higher", "contour F-score at probability 0.5"),
    }

    def prepare(self, example, seed):
        return example["image"], tf.cast(example["contours"], tf.float32)[..., tf.newaxis]

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
