"""Semantic segmentation (Newell & Deng 2020): a class per pixel, background included."""

import gin
import keras
import numpy as np
import tensorflow as tf

from zoo import checks, metrics
from zoo.errors import UserError
from zoo.tasks.base import DenseTask


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.tasks")
class SemanticSegmentation(DenseTask):
    """Per-pixel softmax over `classes` (11 for the synthetic benchmark: background + 10).

    Args:
        classes: int or None. Number of classes including background. Defaults to None:
            as many as the training source names (an image folder's masks: its
            `class_names`, `classes.txt` or the largest label found), else 11.
        ignore_label: int or None. Pixels with this label count in neither the loss nor
            the metrics: VOC's and CompL's 255 on object borders, or a class such as an
            "unlabelled" 0. Defaults to None.
        **kwargs: as `DenseTask`.
    """

    target_resize = "nearest"

    name = "semantic_segmentation"
    required = ("image", "semantics")
    label_key = "semantics"
    metric_info = {
        "miou": ("higher", "mean intersection over union of the classes present"),
        "pixel_accuracy": ("higher", "share of pixels with the true class"),
    }

    def __init__(
        self, source, classes: int | None = None, ignore_label: int | None = None, **kwargs
    ):
        super().__init__(source, **kwargs)
        names = self.label_names.get("semantics")
        checks.int_at_least(classes, 2, "classes", "SemanticSegmentation", none=True)
        if classes is not None and names and classes < len(names):
            raise UserError(
                f"SemanticSegmentation: classes={classes}, but the masks hold labels up to "
                f"{len(names) - 1} ({len(names)} classes: {list(names)})."
            )
        self.classes = classes or (max(2, len(names)) if names else 11)
        checks.int_at_least(ignore_label, 0, "ignore_label", "SemanticSegmentation", none=True)
        self.ignore_label = ignore_label
        pads = self.augment is not None and (
            min(getattr(self.augment, "scales", [1.0])) < 1.0 or getattr(self.augment, "pad", 0)
        )
        if pads and ignore_label != self.augment.pad_label:
            raise UserError(
                f"SemanticSegmentation: the augmentation pads label maps with "
                f"{self.augment.pad_label} (scales below 1, or a pad); set ignore_label = "
                f"{self.augment.pad_label} so that padded pixels count nowhere. "
                f"Received: ignore_label={ignore_label}"
            )

    def prepare(self, example, seed):
        return example["image"], tf.cast(example["semantics"], tf.int32)

    @property
    def out_channels(self):
        return self.classes

    def loss(self, targets, outputs):
        """Cross entropy averaged over each image's labelled pixels (0 without any)."""
        if self.ignore_label is None:
            per_pixel = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, outputs)
            return tf.reduce_mean(per_pixel, axis=[1, 2])
        valid = tf.not_equal(targets, self.ignore_label)
        safe = tf.where(valid, targets, 0)
        per_pixel = tf.nn.sparse_softmax_cross_entropy_with_logits(safe, outputs)
        valid = tf.cast(valid, per_pixel.dtype)
        return tf.math.divide_no_nan(
            tf.reduce_sum(per_pixel * valid, axis=[1, 2]), tf.reduce_sum(valid, axis=[1, 2])
        )

    def evaluate(self, targets, outputs):
        mask = None if self.ignore_label is None else np.asarray(targets) != self.ignore_label
        return metrics.segmentation_metrics(
            np.argmax(outputs, -1), targets, self.classes, mask=mask
        )

    def serving_outputs(self, outputs):
        return {"probabilities": tf.nn.softmax(outputs), "classes": tf.argmax(outputs, -1)}
