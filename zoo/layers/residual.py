"""Residual units of task heads (Doersch & Zisserman sec. 3.4), pre-activation as in the
ResNet-v2 trunk: BN -> ReLU -> 1x1 (bottleneck) -> BN -> ReLU -> 3x3 (stride) -> BN ->
ReLU -> 1x1 (out), plus a shortcut (a 1x1 projection when the shape changes)."""

import keras

from zoo.layers.normalization import batch_norm


def bottleneck_unit(x, out, bottleneck, stride=1, name="unit"):
    """A pre-activation bottleneck unit: [B, H, W, C] -> [B, H / stride, W / stride, out]."""
    layers = keras.layers
    preact = layers.ReLU(name=f"{name}_preact_relu")(batch_norm(f"{name}_preact_bn")(x))
    if x.shape[-1] != out or stride != 1:
        shortcut = layers.Conv2D(out, 1, strides=stride, name=f"{name}_shortcut")(preact)
    else:
        shortcut = x
    y = layers.Conv2D(bottleneck, 1, use_bias=False, name=f"{name}_conv1")(preact)
    y = layers.ReLU(name=f"{name}_relu1")(batch_norm(f"{name}_bn1")(y))
    y = layers.Conv2D(
        bottleneck, 3, strides=stride, padding="same", use_bias=False, name=f"{name}_conv2"
    )(y)
    y = layers.ReLU(name=f"{name}_relu2")(batch_norm(f"{name}_bn2")(y))
    y = layers.Conv2D(out, 1, name=f"{name}_conv3")(y)
    return layers.Add(name=f"{name}_add")([shortcut, y])


def fc_residual_unit(x, bottleneck, name="fc_unit"):
    """A "fully-connected" residual unit ([B, D] -> [B, D]): the convolutional unit on a
    1x1 map, i.e. BN -> ReLU -> dense (bottleneck) -> BN -> ReLU -> dense (D), plus x."""
    layers = keras.layers
    y = layers.ReLU(name=f"{name}_preact_relu")(batch_norm(f"{name}_bn0")(x))
    y = layers.Dense(bottleneck, use_bias=False, name=f"{name}_dense1")(y)
    y = layers.ReLU(name=f"{name}_relu1")(batch_norm(f"{name}_bn1")(y))
    y = layers.Dense(x.shape[-1], name=f"{name}_dense2")(y)
    return layers.Add(name=f"{name}_add")([x, y])


def patch_head(features, widths=(1024, 512), bottleneck=128, name="patch"):
    """Doersch & Zisserman's head for relative position and exemplar: two stride-2
    bottleneck units (1024 / 128 and 512 / 128 by default), 12x12 -> 3x3 for 96 px
    patches at stride 8."""
    x = features
    for i, width in enumerate(widths):
        x = bottleneck_unit(x, width, bottleneck, stride=2, name=f"{name}_unit{i + 1}")
    return keras.layers.ReLU(name=f"{name}_out_relu")(batch_norm(f"{name}_out_bn")(x))
