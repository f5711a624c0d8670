"""Key networks and queues of momentum tasks (MoCo v2, DenseCL, BYOL; CMC's bank without
a key network).

A `MomentumEncoders` layer is what a method owns for its `zoo.tasks.MomentumTask`s
(the interface they declare: `zoo.tasks.momentum`): a copy of the trunk and of each
task's key head (the key network), per task FIFO queues of past keys, and the step
count of a momentum schedule. Being a layer of the method, all of it is saved in every
checkpoint and restored on resume.

* `targets(task, inputs)`: the key network's outputs for the task's key view, and the
  queues with the mask of their filled rows: what the task's loss compares with.
* `update(keys)`: after the optimizer step, k ← τ·k + (1 − τ)·q for every parameter of
  the key network (BatchNorm's moving statistics excluded: see below), τ from the
  tasks' schedule at this step, then the keys of the step, gathered from every replica
  in replica order, are written at each queue's pointer (oldest first out), or for a
  memory bank (`MomentumTask.indexed_queues`) at their images' indices, gathered alike.

BatchNorm: the key network normalises each key batch with that batch's own statistics,
as MoCo's key encoder does (it runs in training mode); its moving statistics follow its
own batches and are not part of the moving average, which covers the parameters
(MoCo's `parameters()`). With more than one replica the key batch is shuffled across
the replicas first (MoCo's shuffle-BN), so that the images whose statistics normalise a
key are not the ones that normalised its query. GroupNorm trunks (CompL's) compute the
same either way.

Why not inference mode on moving statistics: the statistics then lag the weights, and
the lag is a shift shared by every key of a step and different from the shift of the
keys stored in earlier steps. Queries learn that shift instead of the images' content;
the positive is the only key of the current step among the queue's, so the objective
is won without telling images apart (docs/diagnoses.md, section 1).
"""

import threading

import keras
import tensorflow as tf

from zoo import internals
from zoo.errors import UserError
from zoo.methods.base import _Untracked
from zoo.methods.graph import read
from zoo.tasks.momentum import MomentumTask


def momentum_tasks(tasks) -> list:
    """The tasks that need a key network (`zoo.tasks.MomentumTask`s)."""
    return [t for t in tasks if isinstance(t, MomentumTask)]


class MomentumEncoders(keras.layers.Layer):
    """Key trunk, key heads and queues (module docstring).

    Args:
        trunk: keras.Model. The query trunk.
        heads: dict {task name: (endpoint, key head)}: what each task's head reads and
            the part of its head the key network copies (a keras.Model from the
            endpoint's features: `task.key_head(network)`).
        tasks: dict {task name: zoo.tasks.MomentumTask}.
    """

    def __init__(self, trunk, heads, tasks, **kwargs):
        super().__init__(name="momentum_encoders", **kwargs)
        keyed = {n: t for n, t in tasks.items() if t.key_network}
        schedules = {t.momentum_schedule() for t in keyed.values()}
        if len(schedules) > 1:
            raise UserError(
                "Momentum tasks of one method share one key trunk and so one `momentum` "
                f"(and schedule); received {sorted(schedules, key=repr)} for {sorted(keyed)}."
            )
        # None: no key network (every task stores its own outputs)
        self.schedule = schedules.pop() if schedules else None
        self.momentum = None if self.schedule is None else self.schedule.base
        self.tasks = dict(tasks)
        self.endpoints = {name: endpoint for name, (endpoint, _) in heads.items()}
        # the query network is the method's own: held untracked, so this layer's weights
        # (and its part of a checkpoint) are the key network's and the queues
        query_heads = {name: head for name, (_, head) in heads.items()}
        self._query = _Untracked((trunk, query_heads))
        # the keys of the step being traced, per thread: MirroredStrategy traces each
        # replica's step in a thread of its own, at the same time
        self._step = _Untracked(threading.local())
        self.key_trunk = _copy(trunk, "key_trunk") if keyed else None
        self.key_heads = {
            name: _copy(head, f"key_{head.name}") for name, head in query_heads.items()
        }
        self.queues, self.filled, self.pointers = {}, {}, {}
        for name, task in self.tasks.items():
            for queue, depth in task.queue_depth().items():
                key = f"{name}/{queue}"
                # written alike on every replica (from gathered keys): the first one's kept
                full = task.prefilled_queues
                for store, shape, dtype, suffix, initializer in (
                    (
                        self.queues,
                        (task.queue_size, depth),
                        "float32",
                        "queue",
                        task.queue_initializer(queue, depth) if full else "zeros",
                    ),
                    (
                        self.filled,
                        (task.queue_size,),
                        "float32",
                        "filled",
                        "ones" if full else "zeros",
                    ),
                    (self.pointers, (), "int64", "pointer", "zeros"),
                ):
                    store[key] = self.add_weight(
                        shape=shape,
                        initializer=initializer,
                        dtype=dtype,
                        trainable=False,
                        aggregation="only_first_replica",
                        name=f"{name}_{queue}_{suffix}",
                    )
        # steps taken, for a schedule (a constant τ keeps no count, as before schedules)
        self.steps = None
        if self.schedule is not None and not self.schedule.constant:
            self.steps = self.add_weight(
                shape=(),
                initializer="zeros",
                dtype="int64",
                trainable=False,
                aggregation="only_first_replica",
                name="momentum_steps",
            )
        self.built = True

    def tau(self):
        """τ of the coming update (a scalar tensor)."""
        return self.schedule(0 if self.steps is None else tf.convert_to_tensor(self.steps))

    def _pairs(self):
        """(key weight, query weight) of the key network's parameters: every weight
        but BatchNorm's moving statistics (none without a key network)."""
        if self.key_trunk is None:
            return []
        query_trunk, query_heads = self._query.value
        pairs = list(zip(self.key_trunk.weights, query_trunk.weights))
        for name, head in self.key_heads.items():
            pairs += list(zip(head.weights, query_heads[name].weights))
        statistics = {id(v) for v in _moving_statistics(self.key_trunk, *self.key_heads.values())}
        return [(key, query) for key, query in pairs if id(key) not in statistics]

    def keys(self, name, inputs):
        """The key network's outputs (no gradient) for task `name`'s batch of inputs,
        each key batch normalised with its own statistics (shuffled across replicas)."""
        task = self.tasks[name]

        def embed(images):
            features = self.key_trunk(images, training=True)
            return self.key_heads[name](read(features, self.endpoints[name]), training=True)

        out = _shuffled_across_replicas(embed, task.key_view(inputs))
        # float32 under a mixed-precision policy: the similarities and the queues are
        return tf.nest.map_structure(lambda t: tf.stop_gradient(tf.cast(t, tf.float32)), out)

    def targets(self, name, inputs, given=None):
        """{"key": key outputs, <queue>: [K, D], <queue>_filled: bool [K]} of task `name`,
        and for a memory bank "index": `given`, the task's targets from its data (the
        images' indices, or a dict of them under "index" and other entries, which are
        passed on)."""
        task = self.tasks[name]
        out = {"key": self.keys(name, inputs)} if task.key_network else {}
        for queue in task.queue_depth():
            key = f"{name}/{queue}"
            out[queue] = tf.convert_to_tensor(self.queues[key])
            out[f"{queue}_filled"] = tf.convert_to_tensor(self.filled[key]) > 0.5
        if task.indexed_queues:
            if given is None:
                raise UserError(f"{name}: a memory bank needs the images' indices as targets.")
            if isinstance(given, dict):  # the indices and what else the data give (CMC)
                out.update(given)
                given = given["index"]
            out["index"] = tf.cast(given, tf.int64)
        return out

    def step_targets(self, inputs: dict, given: dict | None = None, outputs=None) -> dict:
        """{task: `targets`} of every task for the step being traced ({task: its input
        batch}, {task: its targets from the data}, {task: its head's outputs}); their
        keys (a task without a key network: its outputs, detached), and a bank's
        indices, are what `update` stores at the step's end."""
        given = given or {}
        out = {name: self.targets(name, inputs[name], given.get(name)) for name in self.tasks}
        keys = {}
        for name, targets in out.items():
            if self.tasks[name].key_network:
                key = targets["key"]
            else:
                key = tf.nest.map_structure(
                    lambda t: tf.stop_gradient(tf.cast(t, tf.float32)), outputs[name]
                )
            keys[name] = (key, targets.get("index"))
        self._step.value.keys = keys
        return out

    def update(self):
        """The step's end: momentum update of the key network, then every task's keys
        of this replica's batch (`step_targets`) enqueued."""
        keys = self._step.value.keys
        pairs = [(k.value, q.value) for k, q in self._pairs()]
        m = self.tau() if pairs else None

        def moving_average(strategy):
            if self.steps is not None:
                strategy.extended.update(self.steps.value, lambda s: s.assign_add(1))
            for key, query in pairs:
                strategy.extended.update(
                    key,
                    lambda k, q: k.assign(m * k + (1.0 - m) * tf.cast(q, k.dtype)),
                    args=(query,),
                )

        context = tf.distribute.get_replica_context()
        if pairs and context is None:  # (no pairs: no key network, the banks only)
            moving_average(tf.distribute.get_strategy())
        elif pairs:
            context.merge_call(moving_average)
        for name, (outputs, index) in keys.items():
            for queue, entries in self.tasks[name].queue_entries(outputs).items():
                if index is None:
                    self._enqueue(f"{name}/{queue}", _gathered(entries))
                else:
                    self._write_slots(
                        self.tasks[name], f"{name}/{queue}", _gathered(entries), _gathered(index)
                    )

    def _write_slots(self, task, key, entries, index):
        """A memory bank's update: each image's slot becomes `task.slot_update` of its
        old entry and its key."""
        queue, filled = self.queues[key], self.filled[key]
        rows = tf.cast(index, tf.int64)[:, tf.newaxis]
        current = tf.convert_to_tensor(queue)
        entries = task.slot_update(tf.gather_nd(current, rows), entries)
        queue.assign(tf.tensor_scatter_nd_update(current, rows, entries))
        filled.assign(
            tf.tensor_scatter_nd_update(
                tf.convert_to_tensor(filled), rows, tf.ones(tf.shape(rows)[:1], filled.dtype)
            )
        )

    def _enqueue(self, key, entries):
        queue, filled, pointer = self.queues[key], self.filled[key], self.pointers[key]
        size = queue.shape[0]
        entries = entries[-size:]  # a batch larger than the queue keeps its last keys
        count = tf.shape(entries, out_type=tf.int64)[0]
        rows = (tf.convert_to_tensor(pointer) + tf.range(count)) % size
        rows = rows[:, tf.newaxis]
        queue.assign(tf.tensor_scatter_nd_update(tf.convert_to_tensor(queue), rows, entries))
        filled.assign(
            tf.tensor_scatter_nd_update(
                tf.convert_to_tensor(filled), rows, tf.ones([count], filled.dtype)
            )
        )
        pointer.assign((tf.convert_to_tensor(pointer) + count) % size)


def encoders_for(tasks, trunk, network, endpoints, lasso) -> "MomentumEncoders | None":
    """The key networks and queues of the `MomentumTask`s among `tasks` (MoCo, DenseCL,
    BYOL) on a shared-trunk graph (`network`, its {task: endpoint}), or None."""
    moving = momentum_tasks(tasks)
    if not moving:
        return None
    if lasso is not None:
        raise UserError(
            f"{[t.name for t in moving]} compare a query with the keys of a copy of the "
            "trunk and head; they cannot read a lasso mix (set lasso_block = None)."
        )
    heads = {t.name: (endpoints[t.name], t.key_head(network)) for t in moving if t.key_network}
    return MomentumEncoders(trunk, heads, {t.name: t for t in moving})


def _gathered(x):
    """`x` of every replica, in replica order (no gradient)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return x
    return context.all_gather(x, axis=0)


def _shuffled_across_replicas(function, x):
    """`function(x)`, with the rows of every replica's `x` shuffled across the replicas
    before and put back after (MoCo's shuffle-BN); `function(x)` on one replica."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return function(x)
    rows = tf.shape(x)[0]
    start = tf.cast(context.replica_id_in_sync_group, rows.dtype) * rows
    everything = context.all_gather(x, axis=0)
    everything = tf.ensure_shape(everything, [None, *x.shape[1:]])  # for static-shape layers
    # every replica draws an order; the first replica's is the one all of them use
    order = tf.random.shuffle(tf.range(tf.shape(everything)[0]))
    order = context.all_gather(order[tf.newaxis], axis=0)[0]
    mine = function(tf.gather(everything, order[start : start + rows]))
    back = tf.math.invert_permutation(order)[start : start + rows]
    return tf.nest.map_structure(lambda y: tf.gather(context.all_gather(y, axis=0), back), mine)


def _moving_statistics(*models):
    """BatchNorm's moving means and variances in `models`."""
    return [
        v
        for model in models
        for layer in internals.all_layers(model)
        if isinstance(layer, keras.layers.BatchNormalization)
        for v in (layer.moving_mean, layer.moving_variance)
    ]


def _copy(model, name):
    """A model of the same architecture as `model`, with its weights' values, that no
    optimizer trains and whose BatchNorm layers normalise with batch statistics when
    called in training mode (a layer set non-trainable would use its moving ones)."""
    copy = keras.models.clone_model(model)
    copy.name = name
    copy.set_weights(model.get_weights())
    for weight in copy.weights:
        weight.trainable = False
    return copy
