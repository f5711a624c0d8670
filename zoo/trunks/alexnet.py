"""Ren & Lee's (2018) AlexNet-style trunk, with fc6 / fc7 as (dilated) convolutions.

The layers follow AlexNet (sec. 3.3: "the number of layers and filters ... follow the
standard AlexNet") with BatchNorm after every convolution and a dilated "bottleneck"
(footnote 2: fc6-7 turned into conv6-7), in the authors' code's order conv -> BN ->
ReLU (the paper's text says conv, ReLU, BN):

    conv1  96 11x11 / 4, pad 2   -> BN -> ReLU -> max-pool 3 / 2
    conv2 256  5x5,      pad 2   -> BN -> ReLU -> max-pool 3 / 2
    conv3 384  3x3,      pad 1   -> BN -> ReLU
    conv4 384  3x3,      pad 1   -> BN -> ReLU
    conv5 256  3x3,      pad 1   -> BN -> ReLU -> max-pool 3 / 1, pad 1
    conv6 4096 6x6, dilation 2, pad 5 (fc6) -> BN -> ReLU
    conv7 4096 1x1 (fc7)          -> BN -> ReLU

At 227 px the maps are 56 (conv1), 27 (conv2) and 13x13 from conv3 on: the 13x13 map
on which the paper's patch discriminator reads conv5. Each endpoint `convK` is the
layer's **normalised, not yet rectified** map, which is what the authors' code feeds the
discriminator; the next layer applies the ReLU (and the pooling).

The inputs are float RGB in [0, 1]; Ren & Lee's grayscale inputs (one random channel
copied to three, sec. 4.1) are the `replicate_channel` harmonizer of the tasks.
"""

import gin
import keras
from keras import layers

from zoo.errors import UserError
from zoo.trunks.resnet import NORMS, _check_choice, _images_input, _norm, _resolve_widths

ENDPOINTS = ("conv1", "conv2", "conv3", "conv4", "conv5", "conv6", "conv7")
WIDTHS = (96, 256, 384, 384, 256, 4096, 4096)
# (kernel, stride, padding, dilation) of each convolution
_CONVS = (
    (11, 4, 2, 1),
    (5, 1, 2, 1),
    (3, 1, 1, 1),
    (3, 1, 1, 1),
    (3, 1, 1, 1),
    (6, 1, 5, 2),
    (1, 1, 0, 1),
)
# max-pooling (size, stride, padding) after a layer's ReLU
_POOLS = {"conv1": (3, 2, 0), "conv2": (3, 2, 0), "conv5": (3, 1, 1)}

# The layer of a ResNet trunk (output_stride 8) that plays the part of each AlexNet
# layer when a method names AlexNet's layers (Ren & Lee's adaptation rows): conv1 the
# stem, conv2 the first stage, conv3-4 the second, conv5 the third, conv6-7 the last.
RESNET_ANALOGUES = {
    "conv1": "stem",
    "conv2": "block1",
    "conv3": "block2",
    "conv4": "block2",
    "conv5": "block3",
    "conv6": "block4",
    "conv7": "block4",
}


def analogue(endpoint: str, trunk_endpoints) -> str:
    """The endpoint of a trunk named by `endpoint`: itself if the trunk has it, else (an
    AlexNet layer "convK" on a ResNet trunk) its `RESNET_ANALOGUES` entry."""
    available = list(trunk_endpoints)
    if endpoint in available:
        return endpoint
    mapped = RESNET_ANALOGUES.get(endpoint)
    if mapped in available:
        return mapped
    raise UserError(
        f"endpoint {endpoint!r} is not one of this trunk's {sorted(available)[:12]}"
        f"{' ...' if len(available) > 12 else ''} nor an AlexNet layer "
        f"{list(RESNET_ANALOGUES)} (whose ResNet analogues are {RESNET_ANALOGUES})."
    )


@gin.configurable(module="zoo.trunks")
def alexnet(
    width_multiplier: float = 1.0,
    widths=None,
    norm: str = "batch",
    input_shape=(227, 227, 3),
    name: str = "alexnet",
):
    """Builds Ren & Lee's AlexNet-style trunk (see the module docstring).

    Args:
        width_multiplier: float. Scales the default widths (96, 256, 384, 384, 256,
            4096, 4096). Defaults to 1.0.
        widths: list of 7 ints or None. Widths of conv1 .. conv7. Defaults to the
            AlexNet widths times `width_multiplier`.
        norm: str. "batch", "group" or "sync_batch". Defaults to "batch".
        input_shape: tuple. (height, width, 3); at least 67 px (conv6 then still sees
            a 1x1 map). Defaults to (227, 227, 3), the paper's crops.
        name: str. Model name. Defaults to "alexnet".

    Returns:
        A functional `keras.Model` whose output is the dict of endpoints conv1 .. conv7.
    """
    _check_choice("norm", norm, NORMS)
    widths = _resolve_widths(widths, width_multiplier, WIDTHS, len(ENDPOINTS), "alexnet")
    size = input_shape[0]
    if size is not None and size < 67:
        raise UserError(
            f"alexnet: inputs must be at least 67 px (conv1 strides 4, two poolings stride "
            f"2). Received: input_shape={tuple(input_shape)}"
        )
    images = _images_input(input_shape)
    x = images
    endpoints = {}
    for endpoint, width, (kernel, stride, pad, rate) in zip(ENDPOINTS, widths, _CONVS):
        if pad:
            x = layers.ZeroPadding2D(pad, name=f"{endpoint}_pad")(x)
        x = layers.Conv2D(
            width, kernel, strides=stride, dilation_rate=rate, use_bias=False, name=endpoint
        )(x)
        x = _norm(norm, width, f"{endpoint}_bn")(x)
        endpoints[endpoint] = x
        x = layers.ReLU(name=f"{endpoint}_relu")(x)
        if endpoint in _POOLS:
            pool, pool_stride, pool_pad = _POOLS[endpoint]
            if pool_pad:
                # max-pooling pads with -inf; after a ReLU, zeros are the same
                x = layers.ZeroPadding2D(pool_pad, name=f"{endpoint}_pool_pad")(x)
            x = layers.MaxPooling2D(pool, strides=pool_stride, name=f"{endpoint}_pool")(x)
    return keras.Model(images, endpoints, name=name)
