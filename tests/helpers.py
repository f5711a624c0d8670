"""Shared tiny models and contract checks for the tests."""

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf
from two_players import TwoPlayers  # noqa: F401  (examples/: the example of the guide "Methods, and adding one")

from zoo import internals
from zoo.tasks.base import DIRECTIONS, Task
from zoo.tasks.momentum import MomentumTask
from zoo.trunks import resnet


def tiny_trunk(input_shape=(32, 32, 3), seed=0, **kwargs):
    """A seeded ResNet-18 v2 cut at block 2, 1/8 width, at stride 8 (8 and 16 channels)."""
    keras.utils.set_random_seed(seed)
    kwargs.setdefault("output_stride", 8)
    return resnet(
        18, version=2, width_multiplier=0.125, stop_at="block2", input_shape=input_shape, **kwargs
    )


def tiny_mgm_settings(**kwargs) -> dict:
    """MGM's arguments at 32 px (`zoo.methods.MGM(**settings)`): a 1/8-width ResNet-18 to
    block 2, depth and normals of 8 multi-object scenes, a DCGAN of width 4, z of 8, a
    projection of 8 and an R of one unit per stage; `kwargs` override them."""
    from zoo.data.synthetic import SceneSpec
    from zoo.tasks import Depth, Normals

    scenes = SceneSpec(variant="----", mode="multi", resolution=32)
    small = {"head_width": 8, "num_examples": 8, "eval_examples": 4}
    return {
        "trunk": tiny_trunk,
        "input_size": 32,
        "tasks": [Depth(scenes, **small), Normals(scenes, **small)],
        "generator": "dcgan",
        "generator_width": 4,
        "z_dim": 8,
        "projection": 8,
        "refinement_widths": (8, 8, 8),
        "refinement_units": (1, 1, 1),
        "refinement_stem": 8,
        **kwargs,
    }


def check_task_contract(task: Task, input_size: int, endpoint_shape, batch_size: int = 2):
    """What every task promises: pipeline shapes equal its input spec, the head builds on
    features of `endpoint_shape` ([h, w, C]), the loss is one value per example, every
    metric `evaluate` returns is described, and `from_config(get_config())` gives a
    task of the same configuration."""
    inputs, targets = next(iter(task.pipeline("eval", batch_size)))
    assert tuple(inputs.shape) == (batch_size, *task.input_shape(input_size)), task.name
    merged = task.to_trunk(keras.Input(task.input_shape(input_size)))
    read = task.endpoints_read("last")  # several endpoints: each of `endpoint_shape`
    names = read if isinstance(read, tuple) else ("test",)
    features = {e: keras.Input(tuple(endpoint_shape), name=e.replace("/", "_")) for e in names}
    shapes = {e: (None, *endpoint_shape) for e in names}
    if isinstance(read, tuple):
        task.check_geometry(read, shapes, input_size)
    else:
        task.check_geometry("test", shapes["test"], input_size)
        features = features["test"]
    # the maps as a list (a dict's keys would have to be the inputs' names)
    head = keras.Model(tf.nest.flatten(features), task.build_head(features, input_size))
    trunk_batch = task.to_trunk(inputs)
    assert tuple(trunk_batch.shape[1:]) == tuple(merged.shape[1:])
    rows = trunk_batch.shape[0]
    rng = np.random.default_rng(0)
    endpoint = [rng.normal(size=(rows, *endpoint_shape)).astype("float32") for _ in head.inputs]
    outputs = head(endpoint)
    held_out = targets
    if isinstance(task, MomentumTask):
        keys = task.key_head(head)(endpoint) if task.key_network else outputs
        targets = momentum_targets(task, keys, given=held_out)
    loss = task.loss(targets, outputs)
    assert tuple(loss.shape) == (batch_size,), (task.name, loss.shape)
    assert np.all(np.isfinite(keras.ops.convert_to_numpy(loss))), task.name
    # held out (MoCo: the query network's outputs for the views in the other order)
    targets = task.heldout_targets(inputs, held_out, lambda x: outputs)
    numpy = lambda t: tf.nest.map_structure(keras.ops.convert_to_numpy, t)  # noqa: E731
    metrics = task.evaluate(numpy(targets), numpy(outputs))
    assert metrics and set(metrics) <= set(task.metric_info), (task.name, sorted(metrics))
    for name, (direction, meaning) in task.metric_info.items():
        assert direction in DIRECTIONS and meaning, (task.name, name)
    config = task.get_config()
    rebuilt = type(task).from_config(config)
    assert rebuilt.get_config() == config, task.name
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(task))
    assert type(again) is type(task) and again.get_config() == config, task.name
    return metrics


def momentum_targets(task, key_outputs, seed=1, given=None):
    """What a method gives a momentum task (MoCo, DenseCL, BYOL; CMC) as targets: key
    outputs (here the key head's outputs of the batch rolled by one; none without a key
    network) and full queues of random keys; a bank's indices from `given` (the task's
    targets from its data), else the rows modulo the bank's size."""
    targets = {}
    if task.key_network:
        targets["key"] = tf.nest.map_structure(lambda t: tf.roll(t, 1, axis=0), key_outputs)
    rng = np.random.default_rng(seed)
    for queue, depth in task.queue_depth().items():
        targets[queue] = tf.constant(rng.normal(size=(task.queue_size, depth)), tf.float32)
        targets[f"{queue}_filled"] = tf.ones([task.queue_size], tf.bool)
    if task.indexed_queues and given is not None:  # a bank: the images' slots (and more)
        given = dict(given) if isinstance(given, dict) else {"index": given}
        targets.update(given, index=tf.cast(given["index"], tf.int64))
    elif task.indexed_queues:
        rows = tf.shape(tf.nest.flatten(key_outputs)[0])[0]
        targets["index"] = tf.range(tf.cast(rows, tf.int64)) % task.queue_size
    return targets


def relative_difference(a, b) -> float:
    """|a - b| / |a| over lists of arrays `a` and `b`, all their elements as one vector:
    how far apart two runs' updates (or statistics) are, where single elements can be
    rounding noise (e.g. the zero gradient of a bias before a BatchNorm)."""
    a, b = (np.concatenate([np.ravel(x) for x in xs]) for xs in (a, b))
    return float(np.linalg.norm(a - b) / np.linalg.norm(a))


# Bindings that shrink a compl22 row's network (DeepLabv3+ on a ResNet) for a test: the
# first two stages of a ResNet-18 at 1/16 width, ASPP on block 2 at stride 8, a third of
# ResNet-26's layers to trace.
TWO_STAGE_DEEPLAB = [
    "zoo.trunks.resnet.depth = 18",
    "zoo.trunks.resnet.width_multiplier = 0.0625",
    'zoo.trunks.resnet.stop_at = "block2"',
    'zoo.trunks.deeplab_v3_plus.aspp_endpoint = "block2"',
    "zoo.trunks.deeplab_v3_plus.output_stride = 8",
    "zoo.trunks.deeplab_v3_plus.filters = 8",
    "zoo.trunks.deeplab_v3_plus.skip_filters = 8",
]


# A run of a few seconds: ResNet-18 at 1/16 width cut after block 2 (half the graph to
# trace: 11 s for this run instead of 19 s) on 32 px scenes, depth and rotation, 2 epochs
# of 3 steps of 4 images.
TINY_CONFIG = """
import zoo.data.synthetic
import zoo.experiment
import zoo.methods
import zoo.tasks
import zoo.trunks
SCENES = @scenes/zoo.data.synthetic.SceneSpec()
scenes/zoo.data.synthetic.SceneSpec.variant = "----"
scenes/zoo.data.synthetic.SceneSpec.mode = "multi"
scenes/zoo.data.synthetic.SceneSpec.resolution = 32
zoo.trunks.resnet.depth = 18
zoo.trunks.resnet.width_multiplier = 0.0625
zoo.trunks.resnet.output_stride = 8
zoo.trunks.resnet.stop_at = "block2"
zoo.tasks.Depth.source = %SCENES
zoo.tasks.Depth.num_examples = 16
zoo.tasks.Depth.eval_examples = 8
zoo.tasks.Depth.head_width = 8
zoo.tasks.Rotation.source = %SCENES
zoo.tasks.Rotation.num_examples = 16
zoo.tasks.Rotation.eval_examples = 8
zoo.methods.MultiTask.trunk = @zoo.trunks.resnet
zoo.methods.MultiTask.tasks = [@zoo.tasks.Depth(), @zoo.tasks.Rotation()]
zoo.methods.MultiTask.input_size = 32
zoo.experiment.train.method = @zoo.methods.MultiTask
zoo.experiment.train.optimizer = @keras.optimizers.Adam()
keras.optimizers.Adam.learning_rate = 1e-3
zoo.experiment.train.batch_size = 4
zoo.experiment.train.epochs = 2
zoo.experiment.train.steps_per_epoch = 3
zoo.experiment.train.verbose = 0
"""


def check_method_contract(method_class, kwargs, batch, strategy=None, optimizer=None):
    """What every method promises (zoo.methods.base), on one `batch` of its structure:

    * every player has variables, each a trainable variable of the method, and together
      they cover every trainable variable;
    * one `fit` step gives finite logs and moves every player's variables;
    * `from_config(get_config())` rebuilds it: with the same weights, the same outputs;
    * with `strategy` (MirroredStrategy on two logical CPUs), one step equals one device
      to 1e-5 (build the method with synchronised BatchNorm for this);
    * a run checkpointed after one step and resumed in a new instance takes the same
      second step as an uninterrupted run (optimizer state and method state included);
    * precise BatchNorm measures its BatchNorm layers on the batch (if it has any).

    `kwargs` must build the same weights each time (seeded trunk builders, not trunk
    models). Returns the method after its two steps.
    """

    def build(scope=None):
        with (scope or tf.distribute.get_strategy()).scope():
            keras.utils.set_random_seed(0)
            method = method_class(**kwargs)
            method.compile(optimizer or keras.optimizers.SGD(0.01))
        return method

    def fitted(method, steps):
        data = tf.data.Dataset.from_tensors(batch).repeat()
        return method.fit(data, epochs=1, steps_per_epoch=steps, verbose=0).history

    method = build()
    trainable = {id(v) for v in method.trainable_variables}
    owned = set()
    for player in method.players:
        variables = method.variables_of(player)
        assert variables and all(id(v) in trainable for v in variables), player
        owned |= {id(v) for v in variables}
    assert owned == trainable, "some trainable variables belong to no player"
    start = [v.numpy().copy() for v in method.trainable_variables]
    history = fitted(method, 1)
    assert all(np.isfinite(v[0]) for v in history.values()), history
    for player in method.players:
        moved = [
            not np.array_equal(v.numpy(), s)
            for v, s in zip(method.trainable_variables, start)
            if any(v is w for w in method.variables_of(player))
        ]
        assert any(moved), f"player {player!r} did not move"
    after_one = [v.numpy().copy() for v in method.weights]
    path = os.path.join(tempfile.mkdtemp(dir="."), "step_1.weights.h5")
    method.save_weights(path)

    rebuilt = type(method).from_config(method.get_config())
    rebuilt.set_weights(method.get_weights())
    inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
    for a, b in zip(
        tf.nest.flatten(method(inputs, training=False)),
        tf.nest.flatten(rebuilt(inputs, training=False)),
    ):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)

    if strategy is not None:  # the method's first step, on two replicas
        many = build(strategy)
        fitted(many, 1)
        for a, b in zip(after_one, many.weights):
            np.testing.assert_allclose(a, b.numpy(), atol=1e-5, err_msg=b.path)

    fitted(method, 1)  # uninterrupted: a second step
    resumed = build()
    resumed.load_weights(path)
    fitted(resumed, 1)
    for a, b in zip(method.weights, resumed.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5, err_msg=a.path)

    norms = [
        layer
        for layer in internals.all_layers(method)
        if isinstance(layer, keras.layers.BatchNormalization) and layer.trainable
    ]
    if norms:  # every method with BatchNorm measures some of it
        assert method.precise_batch_norm([batch], progress=False) >= 1
    return method


def two_view_runs(kind, steps, seeds=3, **kwargs):
    """The contrastive tests' toy problem: a two-view task `kind` (SimCLR, MoCo, BYOL)
    on 256 single objects whose scene is the hidden factor, crops of 50-100 % and flips,
    trained `steps` steps at batch 32 per seed. Returns [(held-out two-view accuracy
    before, after)] per seed (64 held-out images: chance 1/64)."""
    from zoo.data import augment
    from zoo.data.synthetic import SceneSpec
    from zoo.methods import MultiTask

    views = augment.Views(
        augment.RandomResizedCrop(scale=(0.5, 1.0)), [augment.HorizontalFlip()], count=2
    )
    runs = []
    for seed in range(seeds):
        task = kind(
            SceneSpec(variant="-C--", mode="single", resolution=32),
            num_examples=256,
            eval_examples=64,
            views=views,
            hidden=64,
            projection=32,
            seed=seed,
            **kwargs,
        )
        model = MultiTask(tiny_trunk(seed=seed), [task])
        model.compile(keras.optimizers.Adam(3e-3))
        before = model.heldout_metrics(64)[task.name]["accuracy"]
        model.fit(model.datasets(32), epochs=1, steps_per_epoch=steps, verbose=0)
        runs.append((before, model.heldout_metrics(64)[task.name]["accuracy"]))
    return runs
