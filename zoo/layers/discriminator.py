"""Ren & Lee's (2018) patch discriminator on a trunk's feature map (pix2pix-style)."""

import keras
from keras import layers

from zoo import internals
from zoo.errors import UserError

# Widths of the authors' code: 3x3 convolutions to 64 (stride 1), 128 and 256 (stride 2).
WIDTHS = (64, 128, 256)


def patch_discriminator(feature_shape, widths=WIDTHS, name="discriminator"):
    """A fully convolutional discriminator: one logit of P(synthetic) per patch.

    Three 3x3 convolutions (`widths`), each followed by BatchNorm and LeakyReLU(0.2),
    then a 1x1 convolution to one logit. The second and third convolutions have stride
    2 while the map is at least 6 wide, so the map shrinks 13 -> 13 -> 7 -> 4 on the
    paper's 13x13 conv5 map (each of the 4x4 patches sees 15x15 features: the whole
    map, the paper's "13x13 patch discriminator"), and small maps (4x4 or 8x8 at CPU
    scale) keep a few patches. The authors' code ends with a strided 1x1 convolution
    to a single patch; the zoo scores every patch and averages their cross entropies.

    Args:
        feature_shape: (h, w, C) of the features D reads.
        widths: three ints. Defaults to (64, 128, 256).
        name: str. Defaults to "discriminator".

    Returns:
        A functional keras.Model [B, h, w, C] -> [B, h', w', 1] logits.
    """
    if len(feature_shape) != 3 or not all(isinstance(d, int) and d >= 1 for d in feature_shape):
        raise UserError(
            f"patch_discriminator: `feature_shape` must be (h, w, channels) of known sizes. "
            f"Received: {feature_shape!r}"
        )
    widths = tuple(widths)
    if len(widths) != 3 or not all(isinstance(w, int) and w >= 1 for w in widths):
        raise UserError(f"patch_discriminator: `widths` must be 3 ints >= 1. Received: {widths!r}")
    features = keras.Input(tuple(feature_shape), name="features")
    x = features
    size = min(feature_shape[:2])
    for i, width in enumerate(widths):
        stride = 2 if i > 0 and size >= 6 else 1
        size = -(-size // stride)
        x = layers.Conv2D(width, 3, strides=stride, padding="same", name=f"{name}_conv{i + 1}")(x)
        # statistics of the global batch under tf.distribute, as on one device
        x = internals.SyncBatchNormalization(name=f"{name}_bn{i + 1}")(x)
        x = layers.LeakyReLU(0.2, name=f"{name}_lrelu{i + 1}")(x)
    # float32 logits under a mixed-precision policy: the adversarial losses read them
    logits = layers.Conv2D(1, 1, dtype="float32", name=f"{name}_logits")(x)
    return keras.Model(features, logits, name=name)
