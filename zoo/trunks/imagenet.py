"""ImageNet-initialised trunks: the weights of keras.applications ResNets in zoo trunks.

`resnet(depth, version, weights=...)` builds the zoo trunk in the keras.applications
layout and copies, layer by layer, the weights of `ResNet{50,101,152}` (version 1) or
`ResNet{50,101,152}V2` (version 2): a Keras model, its weights file, or "imagenet" for
the file Keras keeps in its cache (`$KERAS_HOME/models`, default `~/.keras/models`;
this module never downloads). The trunk starts with the Keras model's own input
preprocessing (`Preprocessing`), so it takes RGB in [0, 1] like every zoo trunk and its
`block4` endpoint equals the Keras model's output (`include_top=False`).

Layer names map as `conv1_conv` -> `stem_conv`, `conv1_bn` -> `stem_norm`,
`conv{s}_block{j}_{k}_{conv|bn}` -> `block{s-1}_unit_{j}_{k}_{conv|norm}`,
`conv{s}_block{j}_preact_bn` -> `block{s-1}_unit_{j}_preact_norm`, `post_bn` -> `postnorm`.
"""

import os
import re

import keras

from zoo.errors import ConfigError, MissingFile, UserError, UserTypeError

DEPTHS = (50, 101, 152)
# ImageNet statistics of keras.applications' "caffe" preprocessing (version 1), in BGR
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


def application(depth, version):
    """The keras.applications constructor of a depth and version, and its cache name."""
    suffix = "V2" if version == 2 else ""
    return getattr(keras.applications, f"ResNet{depth}{suffix}"), f"resnet{depth}{suffix.lower()}"


def check_trunk(depth, version, widths, width_multiplier, norm, layout):
    """Raises when a trunk of these settings cannot take keras.applications weights."""
    if depth not in DEPTHS:
        raise ConfigError(
            f"ImageNet weights exist for ResNet depths {DEPTHS} (keras.applications). "
            f"Received: depth={depth}"
        )
    if widths is not None or width_multiplier != 1.0 or norm == "group":
        raise ConfigError(
            "ImageNet weights need the standard widths and BatchNorm (widths=None, "
            f"width_multiplier=1.0, norm 'batch' or 'sync_batch'). Received: widths={widths}, "
            f"width_multiplier={width_multiplier}, norm={norm!r}"
        )
    if layout != "keras":
        raise ConfigError(
            "ImageNet weights of keras.applications need layout='keras' (the default "
            f"with weights). Received: layout={layout!r}"
        )


def cached_file(depth, version) -> str:
    """The path where Keras keeps the ImageNet weights (no top) of this ResNet."""
    _, cache_name = application(depth, version)
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models", f"{cache_name}_weights_tf_dim_ordering_tf_kernels_notop.h5")


def source_model(weights, depth, version):
    """The keras.applications model holding `weights` (a model, a file or "imagenet")."""
    constructor, _ = application(depth, version)
    if isinstance(weights, keras.Model):
        return weights
    if weights == "imagenet":
        path = cached_file(depth, version)
        if not os.path.exists(path):
            raise MissingFile(
                f"weights='imagenet' reads {path}, which does not exist; nothing is "
                f"downloaded. Put the file there (keras.applications.{constructor.__name__}"
                "(weights='imagenet', include_top=False) saves it on a machine with "
                "internet access), or pass the path of a weights file."
            )
        weights = path
    if not isinstance(weights, (str, os.PathLike)):
        raise UserTypeError(
            "`weights` must be None, 'imagenet', a keras.applications model or a weights "
            f"file. Received: {type(weights).__name__}"
        )
    if not os.path.isfile(weights):
        raise MissingFile(f"weights file {os.fspath(weights)!r} does not exist.")
    model = constructor(weights=None, include_top=False)
    try:
        model.load_weights(os.fspath(weights))
    except (ValueError, KeyError, OSError) as error:
        raise UserError(
            f"{os.fspath(weights)} does not hold the weights of keras.applications."
            f"{constructor.__name__} (include_top=False): {error}"
        ) from None
    return model


def zoo_name(keras_name: str) -> str | None:
    """The zoo layer a keras.applications ResNet layer maps to (None: no weights there)."""
    fixed = {"conv1_conv": "stem_conv", "conv1_bn": "stem_norm", "post_bn": "postnorm"}
    if keras_name in fixed:
        return fixed[keras_name]
    match = re.fullmatch(r"conv(\d)_block(\d+)_(\w+)_(conv|bn)", keras_name)
    if not match:
        return None
    stage, unit, part, kind = match.groups()
    return f"block{int(stage) - 1}_unit_{unit}_{part}_{'norm' if kind == 'bn' else 'conv'}"


def load_weights(trunk, weights, depth, version):
    """Copies the weights of a keras.applications ResNet into a zoo trunk built with
    `layout="keras"`; layers of stages the trunk does not build (`stop_at`) are skipped."""
    model = source_model(weights, depth, version)
    ours = {layer.name: layer for layer in trunk.layers}
    built = {name.split("_")[0] for name in ours}
    filled = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        target = zoo_name(layer.name)
        if target is None:
            raise UserError(
                f"weights: layer {layer.name!r} of {model.name} is not a layer of a "
                f"keras.applications ResNet{depth}{'V2' if version == 2 else ''} without top."
            )
        if target not in ours:
            if target.split("_")[0] not in built and target != "postnorm":
                continue  # a stage after stop_at
            if target == "postnorm" and "block4" not in built:
                continue
            raise UserError(
                f"weights: {model.name} has layer {layer.name!r}, which the trunk (ResNet-"
                f"{depth} v{version}) has not ({target!r}); give the model of that depth."
            )
        values = layer.get_weights()
        shapes = [tuple(w.shape) for w in ours[target].weights]
        if [v.shape for v in values] != shapes:
            raise UserError(
                f"weights: {layer.name} of {model.name} has shapes {[v.shape for v in values]}, "
                f"the trunk's {target} {shapes}; give the model of depth {depth}, "
                f"version {version}."
            )
        ours[target].set_weights(values)
        filled.add(target)
    empty = [name for name, layer in ours.items() if layer.weights and name not in filled]
    if empty:
        raise UserError(f"weights: {model.name} left trunk layers {empty[:4]} without weights.")


@keras.saving.register_keras_serializable(package="zoo")
class Preprocessing(keras.layers.Layer):
    """RGB in [0, 1] -> the input keras.applications ResNets expect: version 1 "caffe"
    (BGR, 0-255, ImageNet mean subtracted), version 2 "tf" (scaled to [-1, 1])."""

    def __init__(self, version, **kwargs):
        super().__init__(**kwargs)
        if version not in (1, 2):
            raise UserError(f"Preprocessing: `version` must be 1 or 2. Received: {version!r}")
        self.version = version

    def call(self, images):
        if self.version == 2:
            return images * 2.0 - 1.0
        bgr = keras.ops.flip(images, axis=-1) * 255.0
        return bgr - keras.ops.convert_to_tensor(CAFFE_MEAN_BGR, dtype=images.dtype)

    def get_config(self):
        return {**super().get_config(), "version": self.version}
