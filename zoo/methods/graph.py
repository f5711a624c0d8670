"""The shared-trunk graph: a part that methods on one trunk and several heads compose.

`build_graph` groups the tasks by the examples they read, makes one input and one trunk
pass per group, and gives each task's head its features (its endpoint, or its row of a
LassoMix of one block's units):

    inputs -> task.to_trunk -> trunk -> endpoint (or the task's LassoMix row) -> head

Tasks that read the same examples as they are (`Task.shares_images`, same source,
harmonizer and seed: e.g. Ren & Lee's depth, normals and contours of one scene) share
one input and one trunk pass; tasks with inputs of their own (rotated images, patch
pairs, triplets, views) get theirs. `one_pass_outputs` gives the same heads' outputs
from one trunk pass per image size: the groups' batches concatenated, each group's
features sliced back out (CompL's composite step: target and auxiliary images in one
batch; exact with a trunk whose normalisation is per example, GroupNorm). The head is
the method's choice (`head(task,
endpoint, features, input_size)`), so that a transfer protocol's heads or a balancer's
feature taps go in without another graph.
"""

import dataclasses
from collections.abc import Callable, Sequence

import keras
import tensorflow as tf

from zoo import checks, internals
from zoo.errors import UserError
from zoo.layers import LassoMix
from zoo.methods.base import deserialize
from zoo.tasks.base import Task


@dataclasses.dataclass
class Graph:
    """What `build_graph` returns.

    Attributes:
        network: keras.Model from {input name: batch} to {task: head output}.
        inputs: {input name: keras.Input}.
        outputs: {task: symbolic head output}.
        groups: {input name: [task names]} in input order.
        input_names: {task: the input it reads}.
        endpoints: {task: the trunk endpoint its head reads}.
        trunk_features: {input name: {endpoint: symbolic tensor}} (a method's own heads
            or discriminators read them).
        head_features: {task: the symbolic features its head reads}.
    """

    network: keras.Model
    inputs: dict
    outputs: dict
    groups: dict
    input_names: dict
    endpoints: dict
    trunk_features: dict
    head_features: dict


def resolve_trunk(trunk, tasks: Sequence[Task], input_size, who: str):
    """(trunk model, input size) from a trunk, its config or a builder called with
    `input_shape=` (the images' when every task reads whole images, any size otherwise).
    The input size is an int (square images) or (height, width)."""
    if isinstance(trunk, dict):
        trunk = deserialize(trunk)
    if not isinstance(trunk, keras.Model):
        if input_size is None:
            raise UserError(f"{who}: a trunk builder needs `input_size`.")
        whole = image_shape(input_size)
        same = all(tuple(t.input_shape(input_size)) == whole for t in tasks)
        trunk = trunk(input_shape=whole if same else (None, None, 3))
    shape = trunk.input.shape
    if input_size is None and (shape[1] is None or shape[2] is None):
        raise UserError(
            f"{who} needs `input_size` or a trunk built with a fixed input_shape, "
            f"e.g. resnet(..., input_shape=(64, 64, 3)). Received input shape {shape}."
        )
    height, width = checks.image_size(input_size or tuple(shape[1:3]), "input_size", who)
    return trunk, height if height == width else (height, width)


def image_shape(input_size) -> tuple:
    """(height, width, 3) of the whole images of `input_size` (an int or a pair)."""
    return (*checks.image_size(input_size), 3)


def resolve_tasks(tasks, who: str) -> list:
    """The tasks (configs deserialized), refused unless there are some, with distinct
    names."""
    tasks = [deserialize(t) if isinstance(t, dict) else t for t in tasks]
    names = [t.name for t in tasks]
    if not tasks or len(set(names)) != len(names):
        raise UserError(f"{who} needs tasks with distinct names. Received: {names}")
    return tasks


def lasso_part(trunk: keras.Model, names: Sequence[str], block: str | None, l1: float):
    """(a LassoMix with a row per task name, the endpoints of `block`'s residual units
    that it mixes), or (None, ()) when `block` is None."""
    if block is None:
        return None, ()
    units = [k for k in trunk.output if k.startswith(f"{block}/unit_")]
    if not units:
        raise UserError(
            f"lasso_block={block!r} has no units in this trunk; endpoints: {sorted(trunk.output)}"
        )
    return LassoMix(names, l1=l1, name="lasso"), units


def input_groups(tasks: Sequence[Task], input_size) -> dict:
    """{input name: [task names]}: tasks that read the same whole images as they are
    share one input ("images", "images_2", ...); every other task has its own."""
    groups, keys = {}, {}
    whole = image_shape(input_size)
    for t in tasks:
        if t.shares_images and tuple(t.input_shape(input_size)) == whole:
            key = t.stream_key()
            if key not in keys:
                keys[key] = "images" if not keys else f"images_{len(keys) + 1}"
                groups[keys[key]] = []
            groups[keys[key]].append(t.name)
        else:
            groups[t.name] = [t.name]
    return groups


def build_graph(
    trunk: keras.Model,
    tasks: Sequence[Task],
    input_size: int,
    head: Callable,
    lasso=None,
    units: Sequence[str] = (),
) -> Graph:
    """The network of `tasks` on `trunk` (module docstring).

    Args:
        trunk: keras.Model. A zoo trunk (dict of endpoints).
        tasks: the tasks, with distinct names.
        input_size: int or (height, width). Size of whole-image inputs.
        head: callable. `head(task, endpoint, features, input_size)` -> head output.
        lasso: a zoo.layers.LassoMix or None. If set, each head reads its task's row of
            the mix of `units` (the penalty added once) instead of its endpoint.
        units: the unit endpoints the lasso mixes (`lasso_part`).
    """
    by_name = {t.name: t for t in tasks}
    last = list(trunk.output)[-1]
    endpoints = {t.name: t.endpoints_read(last) for t in tasks}
    wrong = {n: e for n, e in endpoints.items() if any(x not in trunk.output for x in _names(e))}
    if lasso is None and wrong:
        raise UserError(
            f"Tasks read endpoints the trunk does not have: {wrong}; endpoints: "
            f"{sorted(trunk.output)}"
        )
    several = sorted(n for n, e in endpoints.items() if isinstance(e, tuple))
    if lasso is not None and several:
        raise UserError(
            f"{several} read several trunk endpoints; a lasso mix gives each head one map "
            "(set lasso_block = None)."
        )
    groups = input_groups(tasks, input_size)
    inputs, outputs, trunk_features, head_features = {}, {}, {}, {}
    for input_name, group in groups.items():
        first = by_name[group[0]]
        x = keras.Input(tuple(first.input_shape(input_size)), name=input_name)
        inputs[input_name] = x
        features = trunk(first.to_trunk(x))
        trunk_features[input_name] = features
        for name in group:
            if lasso is None:
                feature, endpoint = read(features, endpoints[name]), endpoints[name]
            else:
                # the L1 penalty with the first row only: it covers the whole matrix
                feature = lasso([features[k] for k in units], task=name, penalty=not outputs)
                endpoint = f"lasso mix of {units[0].split('/')[0]}"
            head_features[name] = feature
            outputs[name] = _float32(head(by_name[name], endpoint, feature, input_size), name)
    return Graph(
        network=keras.Model(inputs, outputs, name="network"),
        inputs=inputs,
        outputs=outputs,
        groups=groups,
        input_names={n: i for i, group in groups.items() for n in group},
        endpoints=endpoints,
        trunk_features=trunk_features,
        head_features=head_features,
    )


def read(features: dict, endpoint):
    """What a head reads of a trunk's {endpoint: features}: one endpoint's features, or
    {endpoint: features} of a tuple of endpoints (`Task.endpoints_read`)."""
    if isinstance(endpoint, tuple):
        return {e: features[e] for e in endpoint}
    return features[endpoint]


def shapes_of(features):
    """The shape of a head's features, or {endpoint: shape} of several (what
    `Task.check_geometry` is given)."""
    if isinstance(features, dict):
        return {e: tuple(f.shape) for e, f in features.items()}
    return tuple(features.shape)


def _names(endpoint) -> tuple:
    return endpoint if isinstance(endpoint, tuple) else (endpoint,)


def one_pass_outputs(built: Graph, trunk: keras.Model, tasks: Sequence[Task], taps: dict) -> dict:
    """{task: head output} of `built`'s inputs through one trunk pass per image size:
    the groups' trunk images of one size concatenated along the batch, each group's
    endpoints sliced back out and read by the same heads (layers shared with
    `built.network`, which keeps a pass per group for inference and export).

    Refused for a trunk with BatchNormalization, whose statistics would mix the groups,
    and for heads that read more than their endpoint: a lasso mix, or feature taps
    (`taps`, a balancer's measurements on the pass per group).
    """
    mixed = [
        t
        for t, features in built.head_features.items()
        if any(
            a is not b
            for a, b in zip(
                tf.nest.flatten(features),
                tf.nest.flatten(
                    read(built.trunk_features[built.input_names[t]], built.endpoints[t])
                ),
            )
        )
    ]
    if taps or mixed:
        raise UserError(
            "one_pass slices each task's endpoint out of one trunk pass; a lasso mix or "
            "loss_balance='grad_norm' reads more than that. Use one_pass=False with them."
        )
    if any(isinstance(x, keras.layers.BatchNormalization) for x in internals.all_layers(trunk)):
        raise UserError(
            "one_pass concatenates the inputs' batches into one trunk pass; the trunk "
            f"{trunk.name!r} has BatchNormalization, whose statistics would mix them. Use "
            "a trunk with per-example normalisation (e.g. resnet(..., norm='group')) or "
            "one_pass=False."
        )
    by_name = {t.name: t for t in tasks}
    images = {
        name: by_name[group[0]].to_trunk(built.inputs[name]) for name, group in built.groups.items()
    }
    by_size = {}
    for name, x in images.items():
        by_size.setdefault(tuple(x.shape[1:]), []).append(name)
    outputs = {}
    for names in by_size.values():
        parts = [images[n] for n in names]
        joined = trunk(keras.ops.concatenate(parts, axis=0) if len(parts) > 1 else parts[0])
        for task in (t for n in names for t in built.groups[n]):
            endpoint = built.endpoints[task]
            pieces = read(joined, endpoint)
            if len(parts) > 1:
                label, row = "_".join(names), names.index(built.input_names[task])
                pieces = {e: joined[e] for e in _names(endpoint)}
                for i, e in enumerate(pieces):
                    suffix = f"_{i}" if i else ""  # the first named as before several existed
                    split = SliceRows(name=f"{task}_slice_{label}{suffix}")(pieces[e], parts)
                    pieces[e] = split[row]
                pieces = pieces if isinstance(endpoint, tuple) else pieces[endpoint]
            # a list of the maps, in the head's order (a dict's keys would have to be
            # the symbolic tensors' names)
            head = keras.Model(
                tf.nest.flatten(built.head_features[task]), built.outputs[task], name=f"{task}_on"
            )
            outputs[task] = head(tf.nest.flatten(pieces))
    return outputs


@keras.saving.register_keras_serializable(package="zoo")
class SliceRows(keras.layers.Layer):
    """The rows of a concatenated batch, split back into the batches it was made of
    (`references`: the parts, whose row counts are known at run time)."""

    def call(self, x, references):
        counts = [tf.shape(r)[0] for r in references]
        return tf.split(x, tf.stack(counts), axis=0, num=len(references))

    def compute_output_shape(self, x_shape, references_shape):
        return [(r[0], *x_shape[1:]) for r in references_shape]


def _float32(output, task):
    """A head's output, cast to float32 when a mixed-precision policy computed it in
    float16 / bfloat16: losses and metrics read float32 (Keras' mixed-precision rule)."""
    leaves = tf.nest.flatten(output)
    if all(leaf.dtype == "float32" for leaf in leaves):
        return output
    cast = [
        keras.layers.Activation("linear", dtype="float32", name=f"{task}_float32_{i}")(leaf)
        for i, leaf in enumerate(leaves)
    ]
    return tf.nest.pack_sequence_as(output, cast)
