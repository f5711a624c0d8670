"""A trunk per group of input channels (CMC, Tian et al. 2019; Newell & Deng 2020): the
L channel of a Lab image through one network, ab through another, each "half" as wide,
so that the pair has about the parameters of one full network."""

import gin
import keras
from keras import layers, ops

from zoo.errors import UserError


@keras.saving.register_keras_serializable(package="zoo")
class SelectChannels(layers.Layer):
    """The input's channels at `channels` (a list of indices), in that order."""

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = [int(c) for c in channels]

    def call(self, x):
        return ops.take(x, self.channels, axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], len(self.channels))

    def get_config(self):
        return {**super().get_config(), "channels": self.channels}


@gin.configurable(module="zoo.trunks")
def channel_split(
    builder=gin.REQUIRED,
    splits=((0,), (1, 2)),
    names=("l", "ab"),
    input_shape=(None, None, 3),
    name: str = "channel_split",
):
    """One trunk per group of channels, joined endpoint by endpoint.

    Args:
        builder: callable. A trunk builder called with `input_shape=` (the group's
            channels) and `name=` (e.g. gin's `@zoo.trunks.resnet9`, its widths halved).
        splits: sequence of sequences of ints. The channels of each trunk. Defaults to
            ((0,), (1, 2)): L and ab of a Lab image (harmonizer "lab").
        names: sequence of str. A name per trunk. Defaults to ("l", "ab").
        input_shape: tuple. (height, width, channels). Defaults to (None, None, 3).
        name: str. Model name.

    Returns:
        A functional keras.Model: images -> each trunk's own endpoints as
        "<name>/<endpoint>", then every endpoint the trunks share, their maps
        concatenated along channels in the order of `splits` (CMC's transfer
        representation: both halves; the last endpoint, which tasks read by default,
        is the joined last map).
    """
    splits = [tuple(s) for s in splits]
    channels = input_shape[-1]
    flat = [c for s in splits for c in s]
    if (
        not splits
        or not all(s for s in splits)
        or any(not (isinstance(c, int) and 0 <= c < channels) for c in flat)
    ):
        raise UserError(
            f"channel_split: `splits` must be non-empty groups of channel indices in "
            f"[0, {channels}). Received: {splits!r}"
        )
    if len(names) != len(splits) or len(set(names)) != len(names):
        raise UserError(
            f"channel_split: `names` must be {len(splits)} distinct names. Received: {names!r}"
        )
    if builder is gin.REQUIRED:
        raise UserError("channel_split needs a `builder` (e.g. zoo.trunks.resnet9).")
    images = keras.Input(input_shape, name="images")
    parts = {}
    for part, split in zip(names, splits):
        trunk = builder(input_shape=(*input_shape[:2], len(split)), name=f"{name}_{part}")
        parts[part] = trunk(SelectChannels(split, name=f"{part}_channels")(images))
    shared = [k for k in parts[names[0]] if all(k in p for p in parts.values())]
    endpoints = {}
    for part in names:
        for key, value in parts[part].items():
            endpoints[f"{part}/{key}"] = layers.Identity(name=f"{part}_{key.replace('/', '_')}")(
                value
            )
    # the joined maps last: a task's default endpoint (the trunk's last) reads both halves
    for key in shared:
        endpoints[key] = layers.Concatenate(name=f"{key.replace('/', '_')}_joined")(
            [parts[part][key] for part in names]
        )
    return keras.Model(images, endpoints, name=name)
