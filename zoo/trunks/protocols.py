"""How a transfer protocol uses a trunk: which of its layers train (`set_trainable`),
how its features are pooled for a linear layer (`pool`), and the names of both."""

import math
import re

import keras

from zoo import internals
from zoo.errors import UserError

PROTOCOLS = ("linear", "lasso_linear", "finetune", "frozen_k")
POOLINGS = ("global", "max3x3")


def pool(features, pooling, name):
    """[B, h, w, C] features pooled for a linear layer: "global" (average) or "max3x3"
    (max-pooled to 3x3 cells and flattened, Doersch & Zisserman sec. 5)."""
    if pooling == "global":
        return keras.layers.GlobalAveragePooling2D(name=f"{name}_pool")(features)
    height, width = features.shape[1], features.shape[2]
    if height is None or width is None:
        raise UserError("max3x3 pooling needs a trunk built with a fixed input_shape.")
    size = (math.ceil(height / 3), math.ceil(width / 3))
    pooled = keras.layers.MaxPooling2D(size, strides=size, padding="same", name=f"{name}_pool")(
        features
    )
    if tuple(pooled.shape[1:3]) != (3, 3):
        raise UserError(
            f"max3x3 pooling: a {height}x{width} feature map does not pool to 3x3; use a "
            "larger input or pooling='global'."
        )
    return keras.layers.Flatten(name=f"{name}_flatten")(pooled)


def set_trainable(trunk, protocol, frozen_stages=1):
    """Sets the trunk's `trainable` flags for a protocol (frozen layers keep BN statistics).

    frozen_k freezes the layers named `stem*` and `block1_*` .. `block<k>_*` inside every
    trunk the model nests (channel_split's halves each have their own stem and blocks).
    """
    if protocol not in PROTOCOLS:
        raise UserError(f"`protocol` must be one of {PROTOCOLS}. Received: {protocol!r}")
    if protocol != "frozen_k":
        for layer in trunk.layers:
            layer.trainable = protocol == "finetune"
        return
    _check_frozen_stages(trunk, frozen_stages)
    stages = ("stem",) + tuple(f"block{i}_" for i in range(1, frozen_stages + 1))
    trunk.trainable = True
    for layer in _leaf_layers(trunk):
        layer.trainable = not layer.name.startswith(stages)
    if not any(layer.weights and not layer.trainable for layer in _leaf_layers(trunk)):
        raise UserError(
            "frozen_k froze nothing: the trunk has no stem/blockK layers with weights (an "
            "exported trunk is one layer); use linear or finetune, or a zoo trunk."
        )


def _leaf_layers(model):
    """The layers of `model` and of every model nested in it, the models left out (setting
    a model's `trainable` sets its layers')."""
    return [layer for layer in internals.all_layers(model) if not isinstance(layer, keras.Model)]


def _check_frozen_stages(trunk, frozen_stages):
    """frozen_k's k: an int from 0 (the stem alone) to the trunk's last block."""
    found = (re.match(r"block(\d+)_", layer.name) for layer in _leaf_layers(trunk))
    blocks = {int(match.group(1)) for match in found if match}
    if (
        isinstance(frozen_stages, bool)
        or not isinstance(frozen_stages, int)
        or frozen_stages < 0
        or (blocks and frozen_stages > max(blocks))
    ):
        allowed = f"0 to {max(blocks)}" if blocks else "an int >= 0"
        raise UserError(
            f"frozen_k: `frozen_stages` (k, the stem and blocks 1..k frozen) must be "
            f"{allowed} for this trunk (blocks {sorted(blocks)}). Received: {frozen_stages!r}"
        )
