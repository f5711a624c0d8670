"""Transfer protocols: how a pretrained trunk is trained on a downstream task.

* `linear`: trunk frozen (BatchNorm in inference mode), features of one endpoint
  pooled globally or max-pooled to 3x3 (Doersch & Zisserman sec. 5), one linear layer;
* `lasso_linear`: trunk frozen, a new LassoMix row over the units of a block feeds the
  pooling and the linear layer (Doersch & Zisserman's "eval lasso");
* `finetune`: every weight trained, with a new head;
* `frozen_k`: the stem and the first k stages frozen, the rest finetuned (Newell &
  Deng Fig. 8).
"""

import math
import os

import gin
import keras

from zoo import experiment
from zoo.errors import MissingFile, UserError
from zoo.evaluation.exported import ExportedTrunk
from zoo.layers import LassoMix

PROTOCOLS = ("linear", "lasso_linear", "finetune", "frozen_k")
POOLINGS = ("global", "max3x3")


def _pool(features, pooling, name):
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
    """Sets the trunk's `trainable` flags for a protocol (frozen layers keep BN statistics)."""
    if protocol not in PROTOCOLS:
        raise UserError(f"`protocol` must be one of {PROTOCOLS}. Received: {protocol!r}")
    stages = ["stem"] + [f"block{i}_" for i in range(1, frozen_stages + 1)]
    for layer in trunk.layers:
        if protocol == "frozen_k":
            layer.trainable = not any(layer.name.startswith(s) for s in stages)
        else:
            layer.trainable = protocol == "finetune"
    if protocol == "frozen_k" and all(layer.trainable for layer in trunk.layers):
        raise UserError(
            "frozen_k froze nothing: the trunk has no stem/blockK layers (an exported "
            "trunk is one layer); use linear or finetune, or a zoo trunk."
        )


def recompute_batch_norm(model, images, batch_size=32):
    """Sets the moving statistics of the model's trained BatchNorm layers to their
    average over `images` with the final weights ("precise BN", Wu & Johnson 2021).

    The moving averages that training leaves lag behind weights that changed fast: after
    a few hundred steps of finetuning they can be far enough off that a model that fits
    its labels perfectly predicts chance in inference mode. Frozen BatchNorm layers
    (trainable=False) keep their statistics.

    Args:
        model: keras.Model. Called eagerly in training mode on each batch.
        images: array [N, H, W, 3]. Typically the labelled training images.
        batch_size: int. Defaults to 32.

    Returns:
        The number of BatchNorm layers recomputed.
    """
    layers = [
        layer
        for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
    ]
    if not layers:
        return 0
    momentum = [layer.momentum for layer in layers]
    try:
        for k, start in enumerate(range(0, len(images), batch_size)):
            for layer in layers:
                layer.momentum = k / (k + 1.0)  # running mean of the batch statistics
            model(images[start : start + batch_size], training=True)
    finally:
        for layer, value in zip(layers, momentum):
            layer.momentum = value
    return len(layers)


def dense_probe(
    trunk,
    protocol,
    out_channels,
    endpoint="block4",
    decoder="coarse",
    frozen_stages=1,
    name="dense",
):
    """A dense head for depth or segmentation on a trunk, for one transfer protocol.

    decoder "coarse": a 1x1 convolution on the endpoint, predicting at its resolution
    (Newell & Deng sec. 7 supervise at 16x16 from the features before pooling; bring
    the targets down with `coarse_targets`). decoder "up_projection": Laina et al.'s
    three up-projection blocks (Doersch & Zisserman sec. 5), 8x the endpoint's resolution.
    `lasso_linear` is not a dense protocol.
    """
    from zoo.layers import up_projection_decoder

    if protocol == "lasso_linear":
        raise UserError("dense_probe: use linear, finetune or frozen_k.")
    if decoder not in ("coarse", "up_projection"):
        raise UserError(f"`decoder` must be 'coarse' or 'up_projection'. Received: {decoder!r}")
    if endpoint not in trunk.output:
        raise UserError(f"endpoint {endpoint!r} is not in the trunk: {sorted(trunk.output)}")
    set_trainable(trunk, protocol, frozen_stages)
    features = trunk.output[endpoint]
    if decoder == "coarse":
        out = keras.layers.Conv2D(out_channels, 1, name=f"{name}_out")(features)
    else:
        out = up_projection_decoder(features, out_channels, name=f"{name}_upproj")
    return keras.Model(trunk.input, out, name=f"{name}_{protocol}_{decoder}")


def coarse_targets(targets, size, kind):
    """Targets [B, H, W(, C)] brought to size x size: "depth" by area averaging,
    "labels" by taking the pixel nearest to each cell's centre."""
    import tensorflow as tf

    targets = tf.convert_to_tensor(targets)
    squeeze = targets.shape.rank == 3
    x = targets[..., tf.newaxis] if squeeze else targets
    if kind == "depth":
        x = tf.image.resize(tf.cast(x, tf.float32), [size, size], method="area")
    elif kind == "labels":
        x = tf.image.resize(x, [size, size], method="nearest")
    else:
        raise UserError(f"`kind` must be 'depth' or 'labels'. Received: {kind!r}")
    return x[..., 0] if squeeze else x


@gin.configurable(module="zoo.evaluation", allowlist=["lasso_block", "lasso_l1"])
def probe(
    trunk,
    protocol,
    classes,
    endpoint="block4",
    pooling="global",
    frozen_stages=1,
    lasso_block="block3",
    lasso_l1=1e-3,
    name="probe",
):
    """A classifier on `trunk` for one transfer protocol; it outputs logits.

    Args:
        trunk: keras.Model. A zoo trunk (dict of endpoints). Its layers' `trainable`
            flags are set by the protocol.
        protocol: str. "linear", "lasso_linear", "finetune" or "frozen_k".
        classes: int. Number of classes.
        endpoint: str. Endpoint the head reads (not for lasso_linear). Defaults to
            "block4".
        pooling: str. "global" (average) or "max3x3". Defaults to "global".
        frozen_stages: int. k of "frozen_k": the stem and block1..blockk are frozen.
            Defaults to 1.
        lasso_block: str. Block whose units "lasso_linear" mixes. Defaults to "block3".
        lasso_l1: float. Lasso penalty of "lasso_linear". Defaults to 1e-3.
        name: str. Prefix of the new layers. Defaults to "probe".

    Returns:
        keras.Model from images to logits.
    """
    if protocol not in PROTOCOLS:
        raise UserError(f"`protocol` must be one of {PROTOCOLS}. Received: {protocol!r}")
    if pooling not in POOLINGS:
        raise UserError(f"`pooling` must be one of {POOLINGS}. Received: {pooling!r}")
    outputs = trunk.output
    images = trunk.input
    set_trainable(trunk, protocol, frozen_stages)
    if protocol == "lasso_linear":
        keys = [k for k in outputs if k.startswith(f"{lasso_block}/unit_")]
        if not keys:
            raise UserError(
                f"lasso_block={lasso_block!r} has no units; endpoints: {sorted(outputs)}"
            )
        features = LassoMix([name], l1=lasso_l1, name=f"{name}_lasso")([outputs[k] for k in keys])[
            name
        ]
    else:
        if endpoint not in outputs:
            raise UserError(f"endpoint {endpoint!r} is not in the trunk: {sorted(outputs)}")
        features = outputs[endpoint]
    logits = keras.layers.Dense(classes, name=f"{name}_logits")(_pool(features, pooling, name))
    return keras.Model(images, logits, name=f"{name}_{protocol}")


def with_input_shape(trunk, input_shape):
    """A copy of a functional trunk (same layers' weights) that takes `input_shape`."""
    images = keras.Input(tuple(input_shape), name="images")
    copy = keras.models.clone_model(trunk, input_tensors=images)
    copy.set_weights(trunk.get_weights())
    return copy


def load_trunk(source, builder=None, input_shape=(None, None, 3)):
    """The trunk a protocol starts from, as a functional model with named endpoints.

    Args:
        source: str. One of
            * "random": a new trunk from `builder` (the scratch baseline);
            * a zoo-train model_dir: the trunk rebuilt from the run's `method.json`
              with the weights of its last checkpoint, at `input_shape` (a zoo trunk:
              every protocol, `frozen_k` included, works on it);
            * a checkpoint file of such a run (`<model_dir>/checkpoints/epoch_002.weights.h5`);
            * a folder holding a trunk exported by `export.export_trunk` (or a run's
              `export/trunk`), loaded with `ExportedTrunk`: endpoints keep the zoo's
              names (e.g. "block3/unit_5"); the trunk trains as one layer, so
              `frozen_k` needs one of the sources above.
        builder: callable or None. Builds a trunk from `input_shape=`; needed for "random".
        input_shape: tuple. (height, width, 3). Defaults to (None, None, 3).

    Returns:
        keras.Model mapping images to a dict of endpoints.
    """
    if source == "random":
        if builder is None:
            raise UserError("load_trunk('random') needs `builder` (e.g. zoo.trunks.resnet).")
        return builder(input_shape=input_shape)
    checkpoint = None
    if os.path.isfile(source) and source.endswith(".weights.h5"):
        checkpoint = source
        source = os.path.dirname(os.path.dirname(os.path.abspath(source)))
    if os.path.exists(os.path.join(source, "method.json")):
        if not experiment.checkpoints(source):
            raise MissingFile(
                f"load_trunk: the run in {source!r} has no checkpoint yet (one is written "
                "after each epoch)."
            )
        method, _ = experiment.restore(source, checkpoint)
        return with_input_shape(method.trunk, input_shape)
    if os.path.exists(os.path.join(source, "saved_model.pb")):
        images = keras.Input(input_shape, name="images")
        outputs = ExportedTrunk(source, name="exported_trunk")(images)
        named = {key.replace("_unit_", "/unit_"): value for key, value in outputs.items()}
        return keras.Model(images, named, name="exported_trunk_model")
    raise MissingFile(
        f"load_trunk: {source!r} is neither 'random', a zoo-train model_dir, a checkpoint "
        "file of one, nor an exported trunk (a folder with saved_model.pb)."
    )
