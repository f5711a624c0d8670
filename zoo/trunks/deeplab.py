"""DeepLabv3+ (Chen et al. 2018) on any trunk with named endpoints: CompL's network.

`deeplab_v3_plus(trunk)` returns a trunk: the same images in, the trunk's endpoints out
plus two more,

* `aspp`: atrous spatial pyramid pooling of the last block's map — a 1x1 convolution,
  three 3x3 convolutions at growing rates and an image-pooling branch (global average
  pool, 1x1 convolution, brought back to the map's size), each `filters` channels with
  GroupNorm and ReLU, concatenated and projected by a 1x1 convolution to `filters`;
* `decoder`: the ASPP output upsampled bilinearly to the resolution of a low-level
  endpoint (block 1, stride 4), concatenated with that endpoint projected to
  `skip_filters` channels (GroupNorm with `skip_groups` groups), then two 3x3
  convolutions of `filters` channels. Every CompL head reads this map (sec. 3.3).

The layout is the authors' released code (a DeepLab ResNet-26 with GroupNorm): ASPP
rates 6 / 12 / 18 at output stride 16, doubled at output stride 8; GroupNorm with 32
groups, 24 for the 48-channel projection; convolutions initialised N(0, 0.01). Narrow
(test-size) decoders use the largest group count that divides their channels. The
normalisation is per example, so a batch of target images and a batch of auxiliary
images give each the same features alone or concatenated (CompL runs them as one batch).
"""

import math

import gin
import keras
import tensorflow as tf
from keras import layers

from zoo.errors import UserError

DEFAULT_RATES = (6, 12, 18)  # at output stride 16


@keras.saving.register_keras_serializable(package="zoo")
class ResizeLike(keras.layers.Layer):
    """Bilinear resize of a map [B, h, w, C] to the height and width of a reference map
    (known statically or only at run time)."""

    def call(self, x, reference):
        size = tf.shape(reference)[1:3]
        return tf.cast(tf.image.resize(x, size, method="bilinear"), x.dtype)

    def compute_output_shape(self, x_shape, reference_shape):
        return (x_shape[0], reference_shape[1], reference_shape[2], x_shape[3])


def _groups(wanted, channels):
    return math.gcd(wanted, channels)


def _conv_gn_relu(x, filters, kernel, rate, groups, name):
    x = layers.Conv2D(
        filters,
        kernel,
        padding="same",
        dilation_rate=rate,
        use_bias=False,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
        name=f"{name}_conv",
    )(x)
    x = layers.GroupNormalization(_groups(groups, filters), epsilon=1e-5, name=f"{name}_gn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


@gin.configurable(module="zoo.trunks")
def deeplab_v3_plus(
    trunk=gin.REQUIRED,
    input_shape=None,
    aspp_endpoint: str = "block4",
    skip_endpoint: str = "block1",
    output_stride: int = 16,
    rates=None,
    filters: int = 256,
    skip_filters: int = 48,
    groups: int = 32,
    skip_groups: int = 24,
    name: str = "deeplab_v3_plus",
):
    """A DeepLabv3+ decoder on `trunk` (module docstring).

    Args:
        trunk: keras.Model or callable. A zoo trunk (dict of endpoints), or a builder
            called with `input_shape=` and `output_stride=` (gin: `@zoo.trunks.resnet`).
        input_shape: tuple or None. (height, width, 3) for a builder. Defaults to any
            size.
        aspp_endpoint: str. The map ASPP reads. Defaults to "block4".
        skip_endpoint: str. The low-level map the decoder joins (stride 4). Defaults to
            "block1".
        output_stride: int. 8 or 16: the stride of `aspp_endpoint` (a builder is given
            it); scales the default rates. Defaults to 16.
        rates: three ints or None. Dilation rates of the 3x3 ASPP branches. Defaults to
            (6, 12, 18) x 16 / output_stride. Small images need small rates: a rate
            beyond the map's size reads only padding outside the centre tap.
        filters: int. Channels of the ASPP branches and the decoder. Defaults to 256.
        skip_filters: int. Channels of the low-level projection. Defaults to 48.
        groups: int. GroupNorm groups. Defaults to 32.
        skip_groups: int. GroupNorm groups of the low-level projection. Defaults to 24.
        name: str. Model name.

    Returns:
        A functional keras.Model: images -> the trunk's endpoints plus "aspp" and
        "decoder" ([B, H/4, W/4, filters] for a ResNet's block 1 at stride 4).
    """
    if output_stride not in (8, 16):
        raise UserError(
            f"deeplab_v3_plus: `output_stride` must be 8 or 16. Received: {output_stride!r}"
        )
    rates = tuple(r * 16 // output_stride for r in DEFAULT_RATES) if rates is None else tuple(rates)
    if len(rates) != 3 or not all(isinstance(r, int) and r >= 1 for r in rates):
        raise UserError(
            f"deeplab_v3_plus: `rates` must be three positive ints. Received: {rates!r}"
        )
    for key, value in (("filters", filters), ("skip_filters", skip_filters)):
        if not (isinstance(value, int) and value >= 1):
            raise UserError(f"deeplab_v3_plus: `{key}` must be a positive int. Received: {value!r}")
    if trunk is gin.REQUIRED:
        raise UserError("deeplab_v3_plus needs a `trunk` (a zoo trunk or a trunk builder).")
    if not isinstance(trunk, keras.Model):
        trunk = trunk(input_shape=input_shape or (None, None, 3), output_stride=output_stride)
    missing = [e for e in (aspp_endpoint, skip_endpoint) if e not in trunk.output]
    if missing:
        raise UserError(
            f"deeplab_v3_plus: the trunk has no endpoint {missing}; endpoints: "
            f"{sorted(trunk.output)}"
        )

    images = keras.Input(trunk.input.shape[1:], name="images")
    endpoints = dict(trunk(images))
    top, skip = endpoints[aspp_endpoint], endpoints[skip_endpoint]
    branches = [_conv_gn_relu(top, filters, 1, 1, groups, "aspp_1x1")]
    for i, rate in enumerate(rates):
        branches.append(_conv_gn_relu(top, filters, 3, rate, groups, f"aspp_rate{i + 1}"))
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name="aspp_pool")(top)
    pooled = _conv_gn_relu(pooled, filters, 1, 1, groups, "aspp_pool")
    branches.append(ResizeLike(name="aspp_pool_resize")(pooled, top))
    x = layers.Concatenate(name="aspp_concat")(branches)
    aspp = _conv_gn_relu(x, filters, 1, 1, groups, "aspp_projection")
    x = ResizeLike(name="decoder_upsample")(aspp, skip)
    low = _conv_gn_relu(skip, skip_filters, 1, 1, skip_groups, "decoder_skip")
    x = layers.Concatenate(name="decoder_concat")([x, low])
    x = _conv_gn_relu(x, filters, 3, 1, groups, "decoder_conv1")
    x = _conv_gn_relu(x, filters, 3, 1, groups, "decoder_conv2")
    endpoints["aspp"] = aspp
    endpoints["decoder"] = x
    return keras.Model(images, endpoints, name=name)
