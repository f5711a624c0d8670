"""Up-projection decoder blocks of Laina et al. (2016), used by Doersch & Zisserman for depth."""

import keras
from keras import ops

from zoo.layers.normalization import batch_norm


@keras.saving.register_keras_serializable(package="zoo")
class Unpool2D(keras.layers.Layer):
    """2x "unpooling": each value goes to the top-left of a 2x2 block, the rest are zeros."""

    def call(self, x):
        shape = ops.shape(x)
        batch, height, width, channels = shape[0], shape[1], shape[2], shape[3]
        x = ops.stack([x, ops.zeros_like(x)], axis=3)  # [B, H, W, 2, C]
        x = ops.reshape(x, (batch, height, 2 * width, channels))
        x = ops.stack([x, ops.zeros_like(x)], axis=2)  # [B, H, 2, 2W, C]
        return ops.reshape(x, (batch, 2 * height, 2 * width, channels))

    def compute_output_shape(self, input_shape):
        b, h, w, c = input_shape
        return (b, None if h is None else 2 * h, None if w is None else 2 * w, c)


def up_projection(x, filters, name):
    """One up-projection block: unpool 2x, then 5x5 conv-BN-ReLU-3x3 conv-BN added to a
    5x5 conv-BN projection of the unpooled input, and a ReLU (Laina et al. 2016, Fig. 2c).
    """
    x = Unpool2D(name=f"{name}_unpool")(x)
    branch = keras.layers.Conv2D(filters, 5, padding="same", name=f"{name}_conv1")(x)
    branch = batch_norm(f"{name}_bn1")(branch)
    branch = keras.layers.ReLU(name=f"{name}_relu1")(branch)
    branch = keras.layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv2")(branch)
    branch = batch_norm(f"{name}_bn2")(branch)
    projection = keras.layers.Conv2D(filters, 5, padding="same", name=f"{name}_proj")(x)
    projection = batch_norm(f"{name}_bn_proj")(projection)
    return keras.layers.ReLU(name=f"{name}_out")(
        keras.layers.Add(name=f"{name}_add")([branch, projection])
    )


def up_projection_decoder(features, out_channels, filters=(512, 256, 128), name="upproj"):
    """Up-projection blocks (Doersch & Zisserman sec. 5: three, 512/256/128) then a 3x3
    convolution to `out_channels`; each block doubles the resolution."""
    x = features
    for i, width in enumerate(filters):
        x = up_projection(x, width, f"{name}{i + 1}")
    return keras.layers.Conv2D(out_channels, 3, padding="same", name=f"{name}_out")(x)
