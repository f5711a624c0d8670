"""Depth from a single image (Ren & Lee 2018): log depth, scale-invariant loss."""

import gin
import keras
import numpy as np
import tensorflow as tf

from zoo import checks, metrics
from zoo.errors import UserError
from zoo.losses import berhu, masked_l1, scale_invariant_log_depth
from zoo.tasks.base import DenseTask

LOSSES = ("scale_invariant", "l1", "berhu")
OUTPUTS = ("log", "linear")
MIN_DEPTH = 1e-3  # metres: the least depth measured and served


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.tasks")
class Depth(DenseTask):
    """Predicts depth per pixel, as its logarithm or as it is; the target is the depth in
    metres (0: unknown).

    Args (besides DenseTask's):
        depth_loss: str. "scale_invariant" (Eigen et al.'s scale-invariant log loss, Ren & Lee),
            "l1" (Newell & Deng's transfer; CompL) or "berhu" (reverse Huber, Laina et al.;
            Doersch & Zisserman's depth evaluation), the last two on the predicted depth.
            Defaults to "scale_invariant".
        output: str. "log": the head predicts log depth (depth = exp(output)). "linear":
            it predicts the depth itself, as CompL's code does; an L1 loss then has the
            same gradient at any prediction, where through exp a prediction pushed far
            below the truth gets a vanishing one and can stay there. "linear" takes the
            "l1" or "berhu" loss. Defaults to "log".
        max_depth: float > 0 or None. The farthest depth, in metres, that the task
            measures and serves: predictions are clamped to at most this (and at least
            1 mm) before the metrics and in an export, as evaluations by Eigen et al.'s
            protocol cap them (10 m on NYUv2, 80 m on KITTI). The loss sees the head's
            output as it is. None: the farthest surface the sources declare (the
            synthetic scenes: `SceneSpec.max_depth`), else no cap. Defaults to None.
    """

    name = "depth"
    required = ("image", "depth")
    out_channels = 1
    metric_info = {
        "delta1": ("higher", "share of pixels with depth within 1.25x of the truth"),
        "delta2": ("higher", "share of pixels with depth within 1.25^2x of the truth"),
        "delta3": ("higher", "share of pixels with depth within 1.25^3x of the truth"),
        "abs_rel": ("lower", "mean |depth error| / true depth"),
        "rmse": ("lower", "root mean squared depth error (m)"),
        "mae": ("lower", "mean absolute depth error (m)"),
    }

    def __init__(
        self,
        source,
        depth_loss: str = "scale_invariant",
        output: str = "log",
        max_depth: float | None = None,
        **kwargs,
    ):
        super().__init__(source, **kwargs)
        if max_depth is not None:
            checks.number_in(max_depth, "max_depth", low=0, low_open=True, who="Depth")
        if depth_loss not in LOSSES:
            raise UserError(
                f"Depth: `depth_loss` must be one of {LOSSES}. Received: {depth_loss!r}"
            )
        if output not in OUTPUTS:
            raise UserError(f"Depth: `output` must be one of {OUTPUTS}. Received: {output!r}")
        if output == "linear" and depth_loss == "scale_invariant":
            raise UserError(
                "Depth: the scale-invariant loss compares log depths; output='linear' takes "
                "depth_loss='l1' or 'berhu'."
            )
        self.depth_loss, self.output, self.max_depth = depth_loss, output, max_depth

    def depth_cap(self) -> float | None:
        """The farthest depth measured and served (`max_depth`, else the sources')."""
        if self.max_depth is not None:
            return float(self.max_depth)
        declared = [self.data_source(split).max_depth for split in ("train", "eval")]
        return None if None in declared else float(max(declared))

    def depth(self, outputs):
        """The predicted depth in metres from the head's outputs."""
        return tf.exp(outputs) if self.output == "log" else outputs

    def prepare(self, example, seed):
        return example["image"], example["depth"][..., tf.newaxis]

    def loss(self, targets, outputs):
        valid = targets > 0
        if self.depth_loss == "l1":
            return masked_l1(self.depth(outputs), targets, valid)
        if self.depth_loss == "berhu":
            return berhu(self.depth(outputs), targets, valid)
        true_log = tf.math.log(tf.where(valid, targets, 1.0))
        return scale_invariant_log_depth(outputs, true_log, valid)

    def measured_depth(self, outputs):
        """The depth that is measured and served: `depth`, clamped to [1 mm, depth_cap]."""
        cap = self.depth_cap()
        return tf.clip_by_value(self.depth(outputs), MIN_DEPTH, np.inf if cap is None else cap)

    def evaluate(self, targets, outputs):
        depth = self.measured_depth(tf.constant(outputs))
        return metrics.depth_metrics(np.asarray(depth), targets)

    def serving_outputs(self, outputs):
        return {"depth": self.measured_depth(outputs)}
