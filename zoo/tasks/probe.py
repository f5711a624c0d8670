"""Online probes: a supervised task's head trained on the trunk's features with no
gradient into the trunk, beside a self-supervised objective, to follow what the trunk
learns as it learns it (Newell & Deng's code trains one linear and one MLP probe per
downstream output in every pretraining run, as solo-learn and Model Garden's SimCLR do).

`Probe(task, kind)` is the task `task` (its data, targets, loss, metrics and held-out
evaluation, under the probe's own name) with a head of its own on *detached* features:

* "linear": a dense layer on the pooled features (a global task), or a 1x1 convolution
  with bias on the map, resized bilinearly to the target size (a dense task);
* "mlp": the code's Linear (no bias) -> BatchNorm -> ReLU -> Linear, as wide as the
  features (per pixel, as 1x1 convolutions, for a dense task).

The probes' losses join the method's total (the code adds their mean to the
self-supervised loss); being detached, they train their heads and nothing else.
Probes of tasks on one source share one input and one trunk pass.
"""

import gin
import keras

from zoo import checks
from zoo.errors import UserError
from zoo.tasks.base import DenseTask, Task
from zoo.tasks.classification import GlobalTask

KINDS = ("linear", "mlp")


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.tasks")
class Probe(Task):
    """A probe of `task` on detached features (module docstring).

    Args:
        task: zoo.tasks.Task. A task of one label per image (Classification, Pose) or a
            dense task with the standard heads (Depth, Normals, SemanticSegmentation,
            Contours), reading whole images.
        kind: str. "linear" or "mlp". Defaults to "linear".
        name: str or None. Defaults to "<task name>_<kind>".
    """

    def __init__(self, task=gin.REQUIRED, kind: str = "linear", name: str | None = None):
        if isinstance(task, dict):
            task = keras.saving.deserialize_keras_object(task)
        if task is gin.REQUIRED or not isinstance(task, Task):
            raise UserError(f"Probe needs a `task` (a zoo.tasks.Task). Received: {task!r}")
        checks.one_of(kind, KINDS, "kind", "Probe")
        probed = isinstance(task, GlobalTask) or (
            isinstance(task, DenseTask) and type(task).build_head is DenseTask.build_head
        )
        if not probed or not task.shares_images:
            raise UserError(
                f"Probe: {type(task).__name__} {task.name!r} cannot be probed; a probe reads "
                "whole images with a head of one label per image (e.g. Classification, "
                "Pose) or a dense task's standard head (Depth, Normals, "
                "SemanticSegmentation, Contours)."
            )
        self.task, self.kind = task, kind
        self.name = name or f"{task.name}_{kind}"
        # the task under the probe's name: its metrics and outputs are named after it
        self.probed = type(task).from_config({**task.get_config(), "name": self.name})

    def get_config(self):
        return {
            "task": keras.saving.serialize_keras_object(self.task),
            "kind": self.kind,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __getattr__(self, attribute):
        # data, sources and settings are the probed task's (called only for attributes
        # the probe does not have)
        if attribute == "probed":
            raise AttributeError(attribute)
        return getattr(self.probed, attribute)

    def __repr__(self):
        return f"Probe(task={self.task!r}, kind={self.kind!r}, name={self.name!r})"

    # -- what the probed task does -----------------------------------------------------

    @property
    def required(self):
        return self.probed.required

    @property
    def metric_info(self):
        return self.probed.metric_info

    @property
    def shares_images(self):
        return self.probed.shares_images

    def stream_key(self):
        return self.probed.stream_key()

    def prepare(self, example, seed):
        return self.probed.prepare(example, seed)

    def example_augmentation(self):
        return self.probed.example_augmentation()

    def image_augmentation(self):
        return self.probed.image_augmentation()

    def resize_targets(self, targets):
        return self.probed.resize_targets(targets)

    def input_shape(self, input_size):
        return self.probed.input_shape(input_size)

    def check_geometry(self, endpoint, feature_shape, input_size):
        self.probed.check_geometry(endpoint, feature_shape, input_size)

    def loss(self, targets, outputs):
        return self.probed.loss(targets, outputs)

    def evaluate(self, targets, outputs):
        return self.probed.evaluate(targets, outputs)

    def serving_outputs(self, outputs):
        return self.probed.serving_outputs(outputs)

    def keras_metrics(self):
        return self.probed.keras_metrics()

    # -- the probe's own head ----------------------------------------------------------

    def build_head(self, features, input_size):
        name = self.name
        x = keras.ops.stop_gradient(features)  # nothing flows back into the trunk
        width = features.shape[-1]
        dense = isinstance(self.probed, DenseTask)
        if not dense:
            x = keras.layers.GlobalAveragePooling2D(name=f"{name}_pool")(x)
        if self.kind == "mlp":
            layer = (
                keras.layers.Conv2D(width, 1, use_bias=False, name=f"{name}_hidden")
                if dense
                else keras.layers.Dense(width, use_bias=False, name=f"{name}_hidden")
            )
            x = layer(x)
            x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
            x = keras.layers.ReLU(name=f"{name}_relu")(x)
        if not dense:
            return keras.layers.Dense(self.probed.classes, name=f"{name}_logits")(x)
        x = keras.layers.Conv2D(self.probed.out_channels, 1, name=f"{name}_out")(x)
        height, width_px = self.probed.target_size(input_size)
        if tuple(x.shape[1:3]) != (height, width_px):
            x = keras.layers.Resizing(height, width_px, name=f"{name}_resize")(x)
        return x
