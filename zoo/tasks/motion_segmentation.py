"""Motion segmentation (Pathak et al. 2017; Doersch & Zisserman 2017 sec. 2, 3.4).

From a single frame, which pixels will move. Sources: the synthetic `motion` mode
(frame 1 in `image`, the moving-pixel mask in `motion`) or a user's TFRecords holding
`image` and `motion` (e.g. frames with masks from a dense tracker). The mask is brought
down by the head's stride (8; a cell is moving when at least half of it moves); the
head is two 1x1 convolutions of 4096 with ReLU and a 1x1 convolution to one logit,
trained with per-pixel sigmoid cross entropy.
"""

import gin
import keras
import numpy as np
import tensorflow as tf

from zoo import checks
from zoo.tasks.base import Task, check_stride


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.tasks")
class MotionSegmentation(Task):
    """Moving pixels of a frame, at stride 8.

    Args (besides Task's):
        stride: int. Stride of the predictions. Defaults to 8.
        head_width: int. Width of the two hidden 1x1 convolutions. Defaults to 4096.
        image_shape: (int, int) or None. (height, width) the frames are resized to, when
            they are not square input_size images (Doersch & Zisserman use 240 x 320).
            Defaults to None.
    """

    name = "motion_segmentation"
    required = ("image", "motion")
    metric_info = {
        "moving_iou": ("higher", "intersection over union of the moving pixels"),
        "pixel_accuracy": ("higher", "share of cells whose moving / static label is right"),
    }

    def __init__(self, source, stride=8, head_width=4096, image_shape=None, **kwargs):
        super().__init__(source, **kwargs)
        self.stride, self.head_width = stride, head_width
        self.image_shape = tuple(image_shape) if image_shape else None

    @property
    def shares_images(self):
        return self.image_shape is None  # frames of another shape are resized

    def check_geometry(self, endpoint, feature_shape, input_size):
        size = self.image_shape or input_size
        check_stride(self.name, self.stride, endpoint, feature_shape, size)

    def input_shape(self, input_size):
        height, width = self.image_shape or checks.image_size(input_size)
        return (height, width, 3)

    def prepare(self, example, seed):
        image = example["image"]
        mask = tf.cast(example["motion"], tf.float32)[..., None]
        if self.image_shape:  # frames of any size are brought to (height, width)
            image = tf.image.resize(image, self.image_shape)
            mask = tf.image.resize(mask, self.image_shape, method="nearest")
            image.set_shape([*self.image_shape, 3])
            mask.set_shape([*self.image_shape, 1])
        height, width = mask.shape[0] // self.stride, mask.shape[1] // self.stride
        coarse = tf.image.resize(mask, [height, width], method="area")
        return image, tf.cast(coarse >= 0.5, tf.float32)

    def build_head(self, features, input_size):
        x = features
        for i in (1, 2):
            x = keras.layers.Conv2D(self.head_width, 1, name=f"{self.name}_conv{i}")(x)
            x = keras.layers.ReLU(name=f"{self.name}_relu{i}")(x)
        return keras.layers.Conv2D(1, 1, name=f"{self.name}_logit")(x)

    def loss(self, targets, outputs):
        per_pixel = tf.nn.sigmoid_cross_entropy_with_logits(targets, outputs)
        return tf.reduce_mean(per_pixel, axis=[1, 2, 3])

    def evaluate(self, targets, outputs):
        truth = np.asarray(targets) > 0.5
        predicted = np.asarray(outputs) > 0.0
        union = np.sum(truth | predicted)
        return {
            "moving_iou": float(np.sum(truth & predicted) / union) if union else 1.0,
            "pixel_accuracy": float(np.mean(truth == predicted)),
        }

    def serving_outputs(self, outputs):
        return {"moving_probability": tf.sigmoid(outputs)}

    def keras_metrics(self):
        return [keras.metrics.BinaryAccuracy(name=f"{self.name}_accuracy", threshold=0.0)]
