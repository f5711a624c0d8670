"""Image classification and the other global tasks: pooled features, a dense layer, softmax."""

import gin
import keras
import tensorflow as tf

from zoo import checks, metrics
from zoo.errors import UserError
from zoo.tasks.base import Task, global_head, image_views


class GlobalTask(Task):
    """A task with one label per image: `classes` logits, softmax cross entropy.

    Args (besides Task's):
        augment: zoo.data.augment.Views of count 1 or None. Steps applied to the
            harmonized training images (Newell & Deng's finetuning: pad-and-crop, flip,
            colour jitter on the Lab channels, Cutout). Defaults to None.
    """

    classes = None
    label_key = None
    metric_info = {"accuracy": ("higher", "share of correct labels")}

    def __init__(self, source, augment=None, **kwargs):
        super().__init__(source, **kwargs)
        self.augment = image_views(augment, self.name)

    def get_config(self):
        config = super().get_config()
        config["augment"] = keras.saving.serialize_keras_object(self.augment)
        return config

    def image_augmentation(self):
        return self.augment

    def _class_count(self, classes, default):
        return class_count(self, self.label_key, classes, default)

    def prepare(self, example, seed):
        return example["image"], tf.cast(example[self.label_key], tf.int32)

    def build_head(self, features, input_size):
        return global_head(features, self.classes, self.name)

    def loss(self, targets, outputs):
        return tf.nn.sparse_softmax_cross_entropy_with_logits(targets, outputs)

    def evaluate(self, targets, outputs):
        return {"accuracy": metrics.accuracy(outputs, targets)}

    def serving_outputs(self, outputs):
        return {"probabilities": tf.nn.softmax(outputs), "classes": tf.argmax(outputs, -1)}

    def keras_metrics(self):
        return [keras.metrics.SparseCategoricalAccuracy(name=f"{self.name}_accuracy")]


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.tasks")
class Classification(GlobalTask):
    """The class of an image: the object of synthetic `single` scenes (Newell & Deng 2020,
    10 classes), or the class folder of an image folder.

    Args (besides Task's):
        classes: int or None. Number of classes. Defaults to None: as many as the
            training source names (`label_names`), else 10 (the synthetic objects).
    """

    name = "classification"
    required = ("image", "label")
    label_key = "label"

    def __init__(self, source, classes: int | None = None, **kwargs):
        super().__init__(source, **kwargs)
        self.classes = self._class_count(classes, default=10)


def class_count(task, key, classes, default, name="classes", who=None):
    """The number of classes of a task's label entry `key`: `classes`, else as many as
    the training source names, else `default`; a count the names contradict is refused
    (`name` and `who` in the message)."""
    who = who or type(task).__name__
    names = task.label_names.get(key)
    checks.int_at_least(classes, 2, name, who, none=True)
    if classes is not None and names and classes != len(names):
        raise UserError(
            f"{who}: {name}={classes}, but the source names {len(names)} classes {list(names)}."
        )
    return classes or (len(names) if names else default)
