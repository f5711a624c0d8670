"""Transfer protocols: the trunk a transfer starts from and the trainability policy.

`load_trunk(source)` / `source_trunk` give a trunk (random, a zoo-train run, a
checkpoint, an exported trunk, or a Keras ImageNet model through
`zoo.trunks.resnet(weights=...)`), `source_harmonizer` the harmonizer its pretraining
used. A protocol's trainability (`set_trainable`) and the global tasks' pooling
(`pool`) are `zoo.trunks.protocols`' (see `zoo.methods.transfer` for the protocols and
heads).
"""

import json
import math
import os
import re

import gin
import keras

from zoo import checks, experiment
from zoo.errors import MissingFile, UserError
from zoo.evaluation.exported import ExportedTrunk, signature_input_size
from zoo.trunks import resnet


def with_input_shape(trunk, input_shape):
    """A copy of a functional trunk (same layers' weights) that takes `input_shape`."""
    images = keras.Input(tuple(input_shape), name="images")
    copy = keras.models.clone_model(trunk, input_tensors=images)
    copy.set_weights(trunk.get_weights())
    return copy


def source_harmonizer(source) -> str:
    """The deterministic harmonizer a transfer source was pretrained with: a zoo-train
    run's (or its checkpoint's), else "identity" (random trunks, ImageNet models, and
    exported trunks, which apply theirs inside the graph)."""
    if source is None or source == "random" or source.startswith("imagenet:"):
        return "identity"
    run = source
    if os.path.isfile(source):
        run = os.path.dirname(os.path.dirname(os.path.abspath(source)))
    if os.path.exists(os.path.join(run, "method.json")):
        return experiment.method_harmonizer(run)
    return "identity"


IMAGENET_MODELS = tuple(f"resnet{d}{v}" for d in (50, 101, 152) for v in ("", "v2"))


def imagenet_trunk(source, input_shape=(None, None, 3)):
    """The zoo trunk of "imagenet:resnet50" .. "imagenet:resnet152v2" with the ImageNet
    weights in the user's Keras cache (`zoo.trunks.imagenet`; nothing is downloaded)."""

    name = source.split(":", 1)[1].lower()
    if name not in IMAGENET_MODELS:
        raise UserError(
            f"{source!r}: the ImageNet trunks are {['imagenet:' + m for m in IMAGENET_MODELS]}."
        )
    depth, version = int(name[6:].removesuffix("v2")), 2 if name.endswith("v2") else 1
    return resnet(depth, version, weights="imagenet", input_shape=input_shape)


# The architecture of a "random" source without `like`: ImageNet's ResNet-50 (v1).
RANDOM_TRUNK = "ResNet-50 v1 (zoo.trunks.resnet(50, version=1))"


@gin.configurable(module="zoo.evaluation")
def source_trunk(source: str = gin.REQUIRED, input_size: int = gin.REQUIRED, like=None):
    """The trunk of a transfer source at input_size x input_size (`load_trunk`); for
    "random", the architecture of `like` with new weights, or without `like` a new
    ResNet-50 v1 (`RANDOM_TRUNK`, the architecture of the ImageNet baselines)."""
    shape = (input_size, input_size, 3)
    if source == "random":
        if like is None:
            return resnet(50, version=1, input_shape=shape)
        template = load_trunk(like, None, shape)
        if len(template.layers) <= 2:
            raise UserError(
                f"{like!r} is an exported trunk, whose architecture cannot be rebuilt; give a "
                "zoo-train run or an ImageNet model as `like`."
            )
        return keras.models.clone_model(template)  # the same layers, new weights
    return load_trunk(source, None, shape)


def _endpoint_order(name):
    """Sort key of an endpoint name, shallow to deep: "stem", then each block's units
    before the block ("block1/unit_1" < "block1/unit_2" < "block1" < "block2/unit_1"),
    numbers compared as numbers ("conv2" < "conv10")."""
    group, _, unit = name.partition("/")
    parts = tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", group) if p)
    index = int(unit.rsplit("_", 1)[-1]) if unit.rsplit("_", 1)[-1].isdigit() else math.inf
    return (group != "stem", parts, index if unit else math.inf)


def exported_endpoints(source, named) -> list:
    """An exported trunk's endpoints, shallow to deep (the last is the deepest, which
    heads read by default): the order its `zoo_export.json` records, else (exports
    written before it did) by name (`_endpoint_order`); `embedding` (the pooled last
    endpoint) is no endpoint."""
    path = os.path.join(source, "zoo_export.json")
    if os.path.exists(path):
        with open(path) as f:
            order = json.load(f).get("endpoints")
        if order:
            return list(order)
    return sorted((key for key in named if key != "embedding"), key=_endpoint_order)


def load_trunk(source, builder=None, input_shape=(None, None, 3)):
    """The trunk a protocol starts from, as a functional model with named endpoints.

    Args:
        source: str. One of
            * "random": a new trunk from `builder` (the scratch baseline);
            * a zoo-train model_dir: the trunk rebuilt from the run's `method.json`
              with the weights of its last checkpoint, at `input_shape` (a zoo trunk:
              every protocol, `frozen_k` included, works on it);
            * a checkpoint file of such a run (`<model_dir>/checkpoints/epoch_002.weights.h5`);
            * "imagenet:resnet50" .. "imagenet:resnet152v2": a zoo trunk with the
              ImageNet weights of keras.applications (`imagenet_trunk`);
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
    if source.startswith("imagenet:"):
        return imagenet_trunk(source, input_shape)
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
        size = signature_input_size(source)
        fixed = None if size is None else checks.image_size(size)
        if fixed is not None and tuple(input_shape[:2]) != fixed:
            advice = (
                f"use input_size={size} (zoo-finetune reads it from the export when "
                "--input_size is not given)"
                if isinstance(size, int)
                else "its images are not square, and zoo-finetune's are: export the trunk "
                "of a run trained on square images"
            )
            raise UserError(
                f"the exported trunk {source} takes {fixed[0]}x{fixed[1]} images (its "
                f"signature); {input_shape[0]}x{input_shape[1]} was asked for: {advice}."
            )
        images = keras.Input(input_shape, name="images")
        outputs = ExportedTrunk(source, name="exported_trunk")(images)
        named = {key.replace("_unit_", "/unit_"): value for key, value in outputs.items()}
        order = [key for key in exported_endpoints(source, named) if key in named]
        return keras.Model(images, {key: named[key] for key in order}, name="exported_trunk_model")
    raise MissingFile(
        f"load_trunk: {source!r} is neither 'random', a zoo-train model_dir, a checkpoint "
        "file of one, nor an exported trunk (a folder with saved_model.pb)."
    )
