"""The scene category of an image: MGM 2022's weak label (Tiny-Taskonomy's and NYUv2's
scene classes; the synthetic multi-object scenes' 7 categories)."""

import gin
import keras

from zoo.data.synthetic import SCENE_NAMES
from zoo.tasks.classification import GlobalTask


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.tasks")
class SceneClassification(GlobalTask):
    """The scene category of an image (`scene` of synthetic multi-object and motion
    scenes, or a source's "scene" labels), one softmax over the categories.

    Args (besides Task's):
        classes: int or None. Number of categories. Defaults to None: as many as the
            training source names, else the 7 of the synthetic scenes.
    """

    name = "scene"
    required = ("image", "scene")
    label_key = "scene"

    def __init__(self, source, classes: int | None = None, **kwargs):
        super().__init__(source, **kwargs)
        self.classes = self._class_count(classes, default=len(SCENE_NAMES))
