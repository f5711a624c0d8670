"""Class-conditional generators and discriminators: SAGAN's (Zhang et al. 2019), which
MGM 2022 uses, and the DCGAN variant of MGM's Table 12.

Each is a `keras.Model` on two inputs, the images or latent codes and int scene labels
[B], built from the layers of `zoo.layers.gan`:

* `sagan_generator`: spectrally normalised dense z -> (16·w)x4x4, then residual up-blocks
  (CBN -> ReLU -> nearest x2 -> conv 3x3 -> CBN -> ReLU -> conv 3x3, plus a 1x1 shortcut)
  halving the width from 16·w to w at the output size, self-attention at
  `attention_size`, then BN -> ReLU -> conv 3x3 -> tanh (MGM's code, g_conv_dim w = 64).
* `sagan_discriminator`: residual down-blocks (ReLU -> conv 3x3 -> ReLU -> conv 3x3 ->
  average-pool 2, a 1x1 shortcut; the first block without the leading ReLU) doubling the
  width from w to 16·w down to 4x4, one more block at 16·w without pooling,
  self-attention at `attention_size`, then ReLU, the sum over positions and
  `ProjectionOutput` (d_conv_dim w = 64).
* `dcgan_generator` / `dcgan_discriminator`: transposed 4x4 stride-2 convolutions with
  conditional BN and ReLU, and 4x4 stride-2 convolutions with LeakyReLU 0.2, spectral
  normalisation and the projection output.
"""

import math

import keras

from zoo import checks, internals
from zoo.errors import UserError
from zoo.layers.gan import ConditionalBatchNorm, ProjectionOutput, SelfAttention, spectral


def _blocks(size, who):
    """log2(size / 4): the number of x2 steps between 4x4 and size x size."""
    checks.int_at_least(size, 8, "size", who)
    steps = math.log2(size / 4)
    if steps != int(steps):
        raise UserError(
            f"{who}: the image size must be 4·2^k (8, 16, 32, 64, 128, ...). Received: {size}"
        )
    return int(steps)


def _sn_conv(filters, kernel, name, strides=1):
    return spectral(
        keras.layers.Conv2D(filters, kernel, strides=strides, padding="same", name=name)
    )


def _inputs(first_shape, first_name):
    return keras.Input(first_shape, name=first_name), keras.Input((), dtype="int32", name="labels")


def sagan_generator(
    num_classes, output_size=128, z_dim=128, base_width=64, attention_size=32, name="generator"
):
    """SAGAN's conditional generator (module docstring): [z [B, z_dim], labels [B]] ->
    images [B, output_size, output_size, 3] in (-1, 1).

    Args:
        num_classes: int >= 1. Scene classes it is conditioned on.
        output_size: int. 4·2^k. Defaults to 128 (MGM).
        z_dim: int. Defaults to 128.
        base_width: int. The last block's width (16x it at 4x4). Defaults to 64.
        attention_size: int or None. The resolution after whose block self-attention
            runs. Defaults to 32 (MGM's code); None: none.
    """
    steps = _blocks(output_size, "sagan_generator")
    z, labels = _inputs((z_dim,), "z")
    width = base_width * 2 ** (steps - 1)
    x = spectral(keras.layers.Dense(4 * 4 * width, name=f"{name}_dense"))(z)
    x = keras.layers.Reshape((4, 4, width))(x)
    for i in range(steps):
        out = base_width * 2 ** (steps - 1 - i)
        block = f"{name}_block{i + 1}"
        h = ConditionalBatchNorm(num_classes, name=f"{block}_cbn1")([x, labels])
        h = keras.layers.UpSampling2D(2, name=f"{block}_up")(keras.layers.ReLU()(h))
        h = _sn_conv(out, 3, f"{block}_conv1")(h)
        h = ConditionalBatchNorm(num_classes, name=f"{block}_cbn2")([h, labels])
        h = _sn_conv(out, 3, f"{block}_conv2")(keras.layers.ReLU()(h))
        shortcut = keras.layers.UpSampling2D(2, name=f"{block}_shortcut_up")(x)
        x = keras.layers.Add()([h, _sn_conv(out, 1, f"{block}_shortcut")(shortcut)])
        if attention_size is not None and x.shape[1] == attention_size:
            x = SelfAttention(name=f"{name}_attention")(x)
    norm = internals.SyncBatchNormalization(momentum=0.999, epsilon=1e-5)
    x = keras.layers.ReLU()(norm(x))
    x = _sn_conv(3, 3, f"{name}_to_rgb")(x)
    return keras.Model([z, labels], keras.layers.Activation("tanh")(x), name=name)


def sagan_discriminator(
    num_classes, input_size=128, base_width=64, attention_size=32, name="discriminator"
):
    """SAGAN's projection discriminator (module docstring): [images [B, S, S, 3],
    labels [B]] -> scores [B, 1].

    Args:
        num_classes: int >= 1.
        input_size: int. 4·2^k. Defaults to 128.
        base_width: int. The first block's width. Defaults to 64.
        attention_size: int or None. The resolution after whose block self-attention
            runs. Defaults to 32; None: none.
    """
    steps = _blocks(input_size, "sagan_discriminator")
    images, labels = _inputs((input_size, input_size, 3), "images")
    x = images
    widths = [base_width * 2**i for i in range(steps)] + [base_width * 2 ** (steps - 1)]
    for i, out in enumerate(widths):
        block, down = f"{name}_block{i + 1}", i < steps
        h = x if i == 0 else keras.layers.ReLU()(x)
        h = _sn_conv(out, 3, f"{block}_conv1")(h)
        h = _sn_conv(out, 3, f"{block}_conv2")(keras.layers.ReLU()(h))
        shortcut = x
        if i == 0:  # the optimised first block: pool, then the 1x1 shortcut
            shortcut = keras.layers.AveragePooling2D(2)(shortcut)
            shortcut = _sn_conv(out, 1, f"{block}_shortcut")(shortcut)
        elif x.shape[-1] != out or down:
            shortcut = _sn_conv(out, 1, f"{block}_shortcut")(shortcut)
            if down:
                shortcut = keras.layers.AveragePooling2D(2)(shortcut)
        if down:
            h = keras.layers.AveragePooling2D(2)(h)
        x = keras.layers.Add()([h, shortcut])
        if attention_size is not None and down and x.shape[1] == attention_size:
            x = SelfAttention(name=f"{name}_attention")(x)
    x = keras.layers.ReLU()(x)
    pooled = keras.ops.sum(x, axis=(1, 2))
    scores = ProjectionOutput(num_classes, name=f"{name}_projection")([pooled, labels])
    return keras.Model([images, labels], scores, name=name)


def dcgan_generator(num_classes, output_size=64, z_dim=128, base_width=64, name="generator"):
    """A conditional DCGAN generator (MGM Table 12): dense z -> (2^(k-1)·w)x4x4 with
    conditional BN and ReLU, then transposed 4x4 stride-2 convolutions halving the width
    to w, each followed by conditional BN and ReLU, the last one to 3 channels and tanh.
    [z, labels] -> images [B, 4·2^k, 4·2^k, 3] in (-1, 1).

    Args:
        num_classes: int >= 1.
        output_size: int. 4·2^k. Defaults to 64.
        z_dim: int. Defaults to 128.
        base_width: int. The width before the last transposed convolution. Defaults to 64.
    """
    steps = _blocks(output_size, "dcgan_generator")
    z, labels = _inputs((z_dim,), "z")
    width = base_width * 2 ** (steps - 1)
    x = keras.layers.Reshape((4, 4, width))(keras.layers.Dense(16 * width, name=f"{name}_dense")(z))
    x = keras.layers.ReLU()(ConditionalBatchNorm(num_classes, name=f"{name}_cbn0")([x, labels]))
    for i in range(steps - 1):
        out = width // 2 ** (i + 1)
        x = keras.layers.Conv2DTranspose(out, 4, 2, "same", name=f"{name}_deconv{i + 1}")(x)
        x = ConditionalBatchNorm(num_classes, name=f"{name}_cbn{i + 1}")([x, labels])
        x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2DTranspose(3, 4, 2, "same", name=f"{name}_to_rgb")(x)
    return keras.Model([z, labels], keras.layers.Activation("tanh")(x), name=name)


def dcgan_discriminator(num_classes, input_size=64, base_width=64, name="discriminator"):
    """A conditional DCGAN discriminator (MGM Table 12): spectrally normalised 4x4
    stride-2 convolutions doubling the width from `base_width` down to 4x4, LeakyReLU
    0.2, the sum over positions and `ProjectionOutput`. [images, labels] -> [B, 1].

    Args:
        num_classes: int >= 1.
        input_size: int. 4·2^k. Defaults to 64.
        base_width: int. Defaults to 64.
    """
    steps = _blocks(input_size, "dcgan_discriminator")
    images, labels = _inputs((input_size, input_size, 3), "images")
    x = images
    for i in range(steps):
        x = _sn_conv(base_width * 2**i, 4, f"{name}_conv{i + 1}", strides=2)(x)
        x = keras.layers.LeakyReLU(0.2)(x)
    pooled = keras.ops.sum(x, axis=(1, 2))
    scores = ProjectionOutput(num_classes, name=f"{name}_projection")([pooled, labels])
    return keras.Model([images, labels], scores, name=name)


def latent_embedding(feature_shape, z_dim=128, name="embedding"):
    """MGM's Emb: an encoder's map [B, h, w, C] -> global average pool -> spectrally
    normalised Dense(`z_dim`) -> BatchNorm, the mean of the generator's code
    z = Emb(E(x)) + N(0, I) (the method adds the noise).

    Args:
        feature_shape: (h, w, C). The encoder's last map.
        z_dim: int. Defaults to 128 (the code's and SAGAN's).
    """
    checks.int_at_least(z_dim, 1, "z_dim", "latent_embedding")
    features = keras.Input(tuple(feature_shape), name="features")
    x = keras.layers.GlobalAveragePooling2D(name=f"{name}_pool")(features)
    x = spectral(keras.layers.Dense(z_dim, name=f"{name}_dense"))(x)
    x = internals.SyncBatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
    return keras.Model(features, x, name=name)
