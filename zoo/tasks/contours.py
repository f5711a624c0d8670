"""Instance contours (Ren & Lee 2018): edges of instance masks, class-balanced sigmoid CE."""

import gin
import keras
import numpy as np
import tensorflow as tf

from zoo import checks, metrics
from zoo.losses import class_balanced_sigmoid_ce, weighted_sigmoid_ce
from zoo.tasks.base import DenseTask


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.tasks")
class Contours(DenseTask):
    """Predicts one edge logit per pixel.

    Args (besides DenseTask's):
        positive_weight: float in (0, 1) or None. None: HED's class-balanced weights,
            computed per image (Ren & Lee). A number w: fixed weights, w for edge pixels
            and 1 − w for the others (CompL's boundaries: 0.95). Defaults to None.
    """

    target_resize = "nearest"

    name = "contours"
    required = ("image", "contours")
    out_channels = 1
    metric_info = {
        "ods_f_score": ("higher", "contour F-score at the best single threshold"),
        "ods_threshold": ("neither", "the probability threshold of the ODS F-score"),
        "f_score": ("higher", "contour F-score at probability 0.5"),
    }

    def __init__(self, source, positive_weight: float | None = None, **kwargs):
        super().__init__(source, **kwargs)
        if positive_weight is not None:
            checks.number_in(
                positive_weight, "positive_weight", 0, 1, self.name, low_open=True, high_open=True
            )
        self.positive_weight = positive_weight

    def prepare(self, example, seed):
        return example["image"], tf.cast(example["contours"], tf.float32)[..., tf.newaxis]

    def loss(self, targets, outputs):
        if self.positive_weight is None:
            return class_balanced_sigmoid_ce(outputs, targets)
        return weighted_sigmoid_ce(outputs, targets, self.positive_weight)

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
