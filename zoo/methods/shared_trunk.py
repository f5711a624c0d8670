"""The base of methods on one trunk with a head per task: `SharedTrunk`.

It composes the parts: the graph (`zoo.methods.graph`: task groups, one trunk pass per
group, endpoints, heads), the loss balancer (`zoo.methods.balance`), the key networks of
momentum tasks (`zoo.methods.momentum`), and owns what every such method shares: the
data of its groups, the task losses and metrics, one "main" player, held-out
evaluation and the serving harmonizer. `MultiTask` adds lasso rows and per-task players;
`DomainAdversarial` adds a discriminator.
"""

import threading
from collections.abc import Callable, Sequence

import gin
import keras
import numpy as np
import tensorflow as tf

from zoo.data.harmonize import SERVING_HARMONIZERS
from zoo.errors import UserError, UserTypeError
from zoo.methods import graph
from zoo.methods.balance import FeatureTap, LossBalancer
from zoo.methods.base import Method, Phase, _Untracked, deserialize, serialize
from zoo.methods.momentum import MomentumEncoders, momentum_tasks
from zoo.tasks.base import Task, pipeline


def _deterministic(harmonizer):
    return harmonizer if harmonizer in SERVING_HARMONIZERS else "identity"


class SharedTrunk(Method):
    """One trunk, one head per task, the task losses weighed by a loss balancer.

    The graph runs one way: inputs -> `task.to_trunk` -> trunk -> endpoint (or a
    subclass's LassoMix row) -> head (`_head`, by default `task.build_head`). Tasks that
    read the same examples as they are share one batch, one input and **one trunk pass**
    (`zoo.methods.graph`).

    Batch structure: `(inputs, targets)` with `inputs` {input name: tensor} (one entry
    per group of tasks, see `input_names`) and `targets` {task: tensor}; `datasets()`
    builds it. `self(inputs)` returns {task: head output}.

    Players: "main" (one optimizer on Σ_t w_t L_t + the model's regularization losses;
    subclasses add theirs through `_phases`). Losses are averaged over the *global*
    batch, so replicas add up to the one-device update. `fit` reports `loss` (the
    weighted sum), `<task>_loss` and the tasks' own metrics (e.g. `rotation_accuracy`).

    Args:
        trunk: keras.Model or callable. A zoo trunk (dict of endpoints), or a builder
            called with `input_shape=` (e.g. gin's `@zoo.trunks.resnet`): it is built
            for `input_size` images, or for any size when a task reads patches.
        tasks: list of zoo.tasks.Task with distinct names.
        input_size: int or None. Square size of whole-image inputs. Defaults to the
            trunk's fixed input size.
        loss_weights: dict or None. Task name -> w_t. Defaults to 1.
        loss_balance: str. "static": the weights are `loss_weights`. "grad_norm": train
            the first `balance_steps` steps with `loss_weights` while measuring each
            task's gradient norm ‖∂L_t/∂F_t‖ at the features its head reads, then fix
            w_t = ḡ_1 / ḡ_t (the first task's weight is 1): Ren & Lee's "weights to
            scale their gradients to have similar magnitude" (sec. 3.2; the paper gives
            no procedure). The weights live in the checkpoints and are logged
            (`lambda_<task>`) every epoch. Defaults to "static".
        balance_steps: int. K of grad_norm. Defaults to 50.
    """

    def __init__(
        self,
        trunk: keras.Model | Callable = gin.REQUIRED,
        tasks: Sequence[Task] = gin.REQUIRED,
        input_size: int | None = None,
        loss_weights: dict | None = None,
        loss_balance: str = "static",
        balance_steps: int = 50,
        **kwargs,
    ):
        super().__init__(**kwargs)
        who = type(self).__name__
        if trunk is gin.REQUIRED or tasks is gin.REQUIRED:
            raise UserTypeError(f"{who} needs a `trunk` (or trunk builder) and `tasks`.")
        tasks = [deserialize(t) if isinstance(t, dict) else t for t in tasks]
        names = [t.name for t in tasks]
        if not tasks or len(set(names)) != len(names):
            raise UserError(f"{who} needs tasks with distinct names. Received: {names}")
        trunk, input_size = graph.resolve_trunk(trunk, tasks, input_size, who)
        self.trunk = trunk
        self.tasks = {t.name: t for t in tasks}
        self.input_size = input_size
        self.balancer = LossBalancer(names, loss_balance, loss_weights, balance_steps)
        self._taps = _Untracked({})  # task -> FeatureTap output (grad_norm)
        self.lasso, units = self._lasso_part(trunk, names)
        built = graph.build_graph(trunk, tasks, input_size, self._head, self.lasso, units)
        self.network = built.network
        self.groups, self.endpoints = built.groups, built.endpoints
        # {input name: {endpoint: symbolic tensor}}, for subclasses' own graphs
        self._trunk_features = _Untracked(built.trunk_features)
        # the network with what training reads besides the heads' outputs
        self.train_network = self._build_train_network(built.inputs, built.outputs)
        self.input_names = built.input_names
        self.momentum = self._momentum_encoders(tasks)
        # {task: key outputs} of the step being traced, per thread: MirroredStrategy
        # traces each replica's step in a thread of its own, at the same time
        self._step_keys = _Untracked(threading.local())
        self._loss_trackers = {n: keras.metrics.Mean(name=f"{n}_loss") for n in names}
        self._total_tracker = keras.metrics.Mean(name="loss")
        self._task_metrics = {t.name: t.keras_metrics() for t in tasks}
        # Every variable exists now; marking the model built keeps fit, save_weights and
        # tf.distribute from calling it to build it.
        self.built = True

    # -- graph ---------------------------------------------------------------------

    def _lasso_part(self, trunk, names):
        """(LassoMix or None, the unit endpoints it mixes). Defaults to no lasso."""
        return None, ()

    def _build_train_network(self, inputs, outputs):
        """The model `train_step` calls: {"tasks": head outputs, "taps": the FeatureTap
        of each task (grad_norm; else empty)}."""
        taps = {n: self._taps.value[n] for n in self._taps.value}
        return keras.Model(inputs, {"tasks": outputs, "taps": taps}, name="train_network")

    def _momentum_encoders(self, tasks):
        """The key networks and queues of the `MomentumTask`s (MoCo, DenseCL, BYOL;
        `zoo.methods.momentum`), or None."""
        moving = momentum_tasks(tasks)
        if not moving:
            return None
        if self.lasso is not None:
            raise UserError(
                f"{[t.name for t in moving]} compare a query with the keys of a copy of the "
                "trunk and head; they cannot read a lasso mix (set lasso_block = None)."
            )
        heads = {t.name: (self.endpoints[t.name], t.key_head(self.network)) for t in moving}
        return MomentumEncoders(self.trunk, heads, {t.name: t for t in moving})

    def _head(self, task, endpoint, features, input_size):
        """The head output of `task` on the features of `endpoint` (subclasses choose
        other heads). Defaults to the task's own head."""
        if self.balancer.measures:
            features = FeatureTap(name=f"{task.name}_features")(features)
            self._taps.value[task.name] = features
        task.check_geometry(endpoint, tuple(features.shape), input_size)
        return task.build_head(features, input_size)

    def call(self, inputs, training=False):
        """{task: head output} from {input name: batch} (see `input_names`)."""
        return self.network(inputs, training=training)

    def task_model(self, task: str) -> keras.Model:
        """A model from one task's input to its head output (layers shared)."""
        self._check_task(task)
        x = self.network.input[self.input_names[task]]
        return keras.Model(x, self.network.output[task], name=f"{task}_model")

    def _check_task(self, task):
        if task not in self.tasks:
            raise UserError(f"unknown task {task!r}; this run's tasks: {sorted(self.tasks)}")

    def image_tasks(self) -> list:
        """Tasks whose input is a whole input_size image (what a served model takes)."""
        square = (self.input_size, self.input_size, 3)
        return [n for n, t in self.tasks.items() if tuple(t.input_shape(self.input_size)) == square]

    # -- players -------------------------------------------------------------------

    @property
    def players(self):
        return ("main",)

    def variables_of(self, player):
        if player == "main":
            return self.trainable_variables
        raise UserError(f"unknown player {player!r}; players: {list(self.players)}")

    # -- data ----------------------------------------------------------------------

    def datasets(self, batch_size: int, split: str = "train") -> tf.data.Dataset:
        """(inputs, targets) batches: {input name: batch}, {task: targets}.

        Every group streams its own examples ("train": shuffled, repeated; "eval": in
        order, once, ending with the shortest group).
        """
        for task in self.tasks.values():  # tasks on one source: its entries read together
            task.data_source(split).prepare(task.required)
        streams = {name: self._group_stream(name, split, batch_size) for name in self.groups}

        def merge(*batches):
            inputs, targets = {}, {}
            for name, (x, y) in zip(streams, batches):
                inputs[name] = x
                targets.update(y)
            return inputs, targets

        return tf.data.Dataset.zip(tuple(streams.values())).map(merge)

    def _group_stream(self, name, split, batch_size):
        """One input group's (inputs, targets) batches, refused in one line when their
        examples are not the shape the network's input `name` takes."""
        stream = pipeline([self.tasks[t] for t in self.groups[name]], split, batch_size)
        given = tuple(stream.element_spec[0].shape[1:])
        wanted = tuple(self.network.input[name].shape[1:])
        if None in given:  # decoded files (TFRecords): the first batch tells
            given = tuple(next(iter(stream.take(1)))[0].shape[1:])
            stream = stream.map(lambda x, y: (tf.ensure_shape(x, (None, *wanted)), y))
        if given != wanted:
            raise UserError(
                f"the {split} data of {self.groups[name]} are {given} per example but the "
                f"method takes {wanted} (input_size={self.input_size}); set input_size to "
                "the data's size, or render or resize the source to the input size (e.g. "
                "SceneSpec.resolution)."
            )
        return stream

    # -- training ------------------------------------------------------------------

    @property
    def metrics(self):
        out = [self._total_tracker, *self._loss_trackers.values()]
        for metrics in self._task_metrics.values():
            out += metrics
        return out

    def statistics_passes(self, data):
        """One training-mode pass of each input group through trunk and heads."""
        self._check_batch(data)
        self.network(data[0], training=True)

    def _check_batch(self, data):
        ok = (
            isinstance(data, (tuple, list))
            and len(data) == 2
            and isinstance(data[0], dict)
            and set(data[0]) == set(self.groups)
            and isinstance(data[1], dict)
            and set(data[1]) == set(self.tasks)
        )
        if not ok:
            raise UserError(
                f"MultiTask expects batches (inputs, targets) with inputs {sorted(self.groups)} "
                f"and targets {sorted(self.tasks)} (see `datasets()`). Received: "
                f"{type(data).__name__} {_describe(data)}"
            )

    def _task_losses(self, data, training, outputs=None):
        """{task: loss averaged over the global batch}, updating trackers and metrics
        (`outputs`: the heads' outputs if already computed)."""
        inputs, targets = data
        if outputs is None:
            outputs = self.network(inputs, training=training)
        if self.momentum is not None:  # the keys and queues are these tasks' targets
            targets = dict(targets)
            self._step_keys.value.keys = {}
            for name in self.momentum.tasks:
                targets[name] = self.momentum.targets(name, inputs[self.input_names[name]])
                self._step_keys.value.keys[name] = targets[name]["key"]
        losses = {}
        for name, task in self.tasks.items():
            per_example = task.loss(targets[name], outputs[name])
            losses[name] = tf.nn.compute_average_loss(per_example)
            self._loss_trackers[name].update_state(tf.reduce_mean(per_example))
            for metric in self._task_metrics[name]:
                metric.update_state(targets[name], outputs[name])
        return losses

    def after_step(self):
        """Momentum tasks: the key networks' moving average, then the step's keys
        enqueued (`zoo.methods.momentum`)."""
        if self.momentum is not None:
            self.momentum.update(self._step_keys.value.keys)

    def _regularization(self):
        if not self.losses:
            return tf.constant(0.0)
        return tf.nn.scale_regularization_loss(tf.add_n(self.losses))

    @property
    def loss_weights(self) -> dict:
        return dict(self.balancer.static)

    @property
    def loss_balance(self) -> str:
        return self.balancer.mode

    @property
    def balance_steps(self) -> int:
        return self.balancer.steps

    @property
    def lambdas(self) -> dict:
        """{task: w_t} now (grad_norm: fixed after `balance_steps` steps)."""
        return self.balancer.lambdas()

    def _update_main(self, tape, total, taps):
        """The "main" player's update; with grad_norm, the same backward pass gives each
        task's gradient at its FeatureTap (`taps`: {task: tap output}), measured while
        fewer than `balance_steps` steps were."""
        optimizer = self.player_optimizers["main"]
        variables = self._player_variables.value["main"]
        tapped = [taps[n] for n in self.tasks] if self.balancer.measures else []
        grads = tape.gradient(optimizer.scale_loss(total), variables + tapped)
        optimizer.apply_gradients(
            [(g, v) for g, v in zip(grads[: len(variables)], variables) if g is not None]
        )
        if tapped:
            self.balancer.measure(grads[len(variables) :])

    def _logs(self):
        return {**{m.name: m.result() for m in self.metrics}, **self.balancer.logs()}

    def train_step(self, data):
        """One pass of the network, then the players' phases on it (`_phases`)."""
        self._check_batch(data)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        passed = {}  # the pass's outputs, kept for the total's tracker

        def shared(batch, tape):
            passed.update(self._pass(batch))
            return passed

        self.alternate(data, self._phases(), shared=shared)
        self.after_step()
        self._total_tracker.update_state(passed["total"] * replicas)
        return self._logs()

    def _phases(self):
        """The players' phases on the training pass: "main" on the weighted total, its
        backward pass also giving grad_norm's measurements."""
        return [
            Phase(
                "main",
                lambda d, p: p["total"],
                through_shared=True,
                update=lambda tape, total, p: self._update_main(tape, total, p["taps"]),
            )
        ]

    def _pass(self, data):
        """The training pass: the heads' outputs, the task losses, the weighted total
        and each task's objective (its loss plus the regularization), the taps."""
        out = self.train_network(data[0], training=True)
        losses = self._task_losses(data, training=True, outputs=out["tasks"])
        regularization = self._regularization()
        return {
            "total": self.balancer.total(losses) + regularization,
            "objectives": {n: v + regularization for n, v in losses.items()},
            "taps": out["taps"],
        }

    def test_step(self, data):
        self._check_batch(data)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        losses = self._task_losses(data, training=False)
        total = self.balancer.total(losses)
        self._total_tracker.update_state(total * replicas)
        return {m.name: m.result() for m in self.metrics}

    # -- evaluation and export -----------------------------------------------------

    def heldout_metrics(self, batch_size: int) -> dict:
        """{task: metrics} over each task's whole held-out split (inference mode)."""
        results = {}
        if not hasattr(self, "_heldout_counts"):
            self._heldout_counts = {}
        for input_name, group in self.groups.items():
            names = list(group)
            model = keras.Model(
                self.network.input[input_name], {n: self.network.output[n] for n in names}
            )
            targets = {n: [] for n in names}
            outputs = {n: [] for n in names}
            data = self._group_stream(input_name, "eval", batch_size)
            for x, y in data:
                out = model(x, training=False)
                for n in names:
                    predict = lambda inputs, n=n, m=model: m(inputs, training=False)[n]  # noqa: E731
                    target = self.tasks[n].heldout_targets(x, y[n], predict)
                    outputs[n].append(tf.nest.map_structure(keras.ops.convert_to_numpy, out[n]))
                    targets[n].append(tf.nest.map_structure(keras.ops.convert_to_numpy, target))
            for n in names:
                stacked = _stacked(targets[n])
                results[n] = self.tasks[n].evaluate(stacked, _stacked(outputs[n]))
                self._heldout_counts[n] = int(len(tf.nest.flatten(stacked)[0]))
        return {n: results[n] for n in self.tasks}

    def heldout_examples(self):
        return {n: self._heldout_counts[n] for n in self.tasks if n in self._heldout_counts}

    def metric_info(self):
        return {n: dict(t.metric_info) for n, t in self.tasks.items()}

    def serving_harmonizer(self, task=None):
        """The task's harmonizer when deterministic; for the trunk, the one every task
        shares if deterministic. Otherwise "identity" (random harmonizers are training
        augmentations)."""
        if task is not None:
            self._check_task(task)
            return _deterministic(self.tasks[task].harmonizer)
        used = {t.harmonizer for t in self.tasks.values()}
        return _deterministic(used.pop()) if len(used) == 1 else "identity"

    def get_config(self):
        return {
            "name": self.name,
            "trunk": serialize(self.trunk),
            "tasks": [serialize(t) for t in self.tasks.values()],
            "input_size": self.input_size,
            "loss_weights": self.loss_weights,
            "loss_balance": self.loss_balance,
            "balance_steps": self.balance_steps,
        }


def _stacked(batches):
    """The batches (arrays, or dicts of arrays) concatenated along the batch."""
    return tf.nest.map_structure(lambda *parts: np.concatenate(parts), *batches)


def _describe(data):
    if isinstance(data, (tuple, list)):
        return [sorted(d) if isinstance(d, dict) else type(d).__name__ for d in data]
    return sorted(data) if isinstance(data, dict) else ""
