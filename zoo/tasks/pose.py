"""Object pose in 5 bins (Newell & Deng 2020): where the object's top faces."""

import gin
import keras

from zoo.tasks.classification import GlobalTask


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.tasks")
class Pose(GlobalTask):
    """Top faces up, forward, backward, left or right (synthetic `single` scenes)."""

    name = "pose"
    required = ("image", "pose")
    classes = 5
    label_key = "pose"
