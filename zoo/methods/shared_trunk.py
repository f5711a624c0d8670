"""The base of methods on one trunk with a head per task: `SharedTrunk`.

It composes the parts: the graph (`zoo.methods.graph`: task groups, one trunk pass per
group, endpoints, heads), the loss balancer (`zoo.methods.balance`), the key networks of
momentum tasks (`zoo.methods.momentum`), and owns what every such method shares: the
data of its groups, the task losses and metrics, one "main" player, held-out
evaluation and the serving harmonizer. `MultiTask` adds per-task players,
`DomainAdversarial` a discriminator, `Transfer` a protocol and heads of its own.

The graph runs one way: inputs -> `task.to_trunk` -> trunk -> endpoint (or the task's
LassoMix row) -> head (`_head`, by default `task.build_head`). Tasks that read the same
examples as they are share one batch, one input and **one trunk pass**.

Batch structure: `(inputs, targets)` with `inputs` {input name: tensor} (one entry per
group of tasks, see `input_names`) and `targets` {task: tensor}; `datasets()` builds
it. `self(inputs)` returns {task: head output}.

Players: "main" (one optimizer on Σ_t w_t L_t + the model's regularization losses;
subclasses add theirs through `_phases`). Losses are averaged over the *global* batch,
so replicas add up to the one-device update. `fit` reports `loss` (the weighted sum),
`<task>_loss` and the tasks' own metrics (e.g. `rotation_accuracy`).
"""

from collections.abc import Callable, Sequence

import gin
import keras
import tensorflow as tf

from zoo import checks
from zoo.data import harmonize
from zoo.errors import UserError, UserTypeError
from zoo.methods import graph, groups
from zoo.methods.balance import FeatureTap, LossBalancer
from zoo.methods.base import Method, Phase, _Untracked, serialize
from zoo.methods.momentum import encoders_for
from zoo.tasks.base import Task


class SharedTrunk(Method):
    """One trunk, one head per task, the task losses weighed by a loss balancer: the base
    of MultiTask, DomainAdversarial and Transfer, which store its arguments in their
    configs as their own (it stores none). Graph, batches, players: the module docstring.

    Args:
        trunk: keras.Model or callable. A zoo trunk (dict of endpoints), or a builder
            called with `input_shape=` (e.g. gin's `@zoo.trunks.resnet`): it is built
            for `input_size` images, or for any size when a task reads patches.
        tasks: list of zoo.tasks.Task with distinct names.
        input_size: int, (height, width) or None. Size of whole-image inputs (an int:
            square). Defaults to the trunk's fixed input size.
        loss_weights: dict. `zoo.methods.balance.LossBalancer`'s weights.
        loss_balance: str. Its mode, "static" or "grad_norm".
        balance_steps: int. The steps it measures over (grad_norm).
        lasso_block: str or None. A LassoMix of this block's units, a row per task that
            its head reads instead of its endpoint (None: no lasso).
        lasso_l1: float. The LassoMix's L1 weight.
        one_pass: bool. Training passes the groups' images of one size through the trunk
            as one batch (`zoo.methods.graph.one_pass_outputs`).
    """

    def __init__(
        self,
        trunk: keras.Model | Callable = gin.REQUIRED,
        tasks: Sequence[Task] = gin.REQUIRED,
        input_size: int | None = None,
        loss_weights: dict | None = None,
        loss_balance: str = "static",
        balance_steps: int = 50,
        lasso_block: str | None = None,
        lasso_l1: float = 1e-3,
        one_pass: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        who = type(self).__name__
        if trunk is gin.REQUIRED or tasks is gin.REQUIRED:
            raise UserTypeError(f"{who} needs a `trunk` (or trunk builder) and `tasks`.")
        tasks = graph.resolve_tasks(tasks, who)
        names = [t.name for t in tasks]
        trunk, input_size = graph.resolve_trunk(trunk, tasks, input_size, who)
        self.trunk, self.tasks, self.input_size = trunk, {t.name: t for t in tasks}, input_size
        self.balancer = LossBalancer(names, loss_balance, loss_weights, balance_steps)
        self._taps = _Untracked({})  # task -> FeatureTap output (grad_norm)
        self.lasso_block = lasso_block
        self.lasso_l1 = checks.number_in(lasso_l1, "lasso_l1", 0, who=who)
        self.lasso, units = graph.lasso_part(trunk, names, lasso_block, self.lasso_l1)
        built = graph.build_graph(trunk, tasks, input_size, self._head, self.lasso, units)
        self.network, self.groups, self.endpoints = built.network, built.groups, built.endpoints
        # {input name: {endpoint: symbolic tensor}}, for subclasses' own graphs
        self._trunk_features = _Untracked(built.trunk_features)
        # what training reads: the heads' outputs (with one_pass, from one trunk pass per
        # image size) and the FeatureTap of each task (grad_norm; else empty)
        taps, self.one_pass = dict(self._taps.value), bool(one_pass)
        outputs = graph.one_pass_outputs(built, trunk, tasks, taps) if one_pass else built.outputs
        self.train_network = keras.Model(
            built.inputs, {"tasks": outputs, "taps": taps}, name="train_network"
        )
        self.input_names = built.input_names
        self.momentum = encoders_for(tasks, self.trunk, self.network, self.endpoints, self.lasso)
        self.task_losses = groups.TaskLosses(self.tasks, self.momentum, self.input_names)
        self._heldout_counts = {}  # task -> examples its last held-out evaluation counted
        # Every variable exists now; marking the model built keeps fit, save_weights and
        # tf.distribute from calling it to build it.
        self.built = True

    # -- graph ---------------------------------------------------------------------

    def _head(self, task, endpoint, features, input_size):
        """The head output of `task` on the features of `endpoint` (subclasses choose
        other heads). Defaults to the task's own head."""
        if self.balancer.measures:
            if isinstance(features, dict):
                raise UserError(
                    f"{task.name} reads several trunk endpoints; loss_balance='grad_norm' "
                    "measures the gradient at one map per task. Use loss_balance='static'."
                )
            features = FeatureTap(name=f"{task.name}_features")(features)
            self._taps.value[task.name] = features
        task.check_geometry(endpoint, graph.shapes_of(features), input_size)
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
        whole = graph.image_shape(self.input_size)
        return [n for n, t in self.tasks.items() if tuple(t.input_shape(self.input_size)) == whole]

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
        """({input name: batch}, {task: targets}) batches, each group streaming its own
        examples ("train": shuffled, repeated; "eval": in order, once, to the shortest)."""
        for task in self.tasks.values():  # tasks on one source: its entries read together
            task.data_source(split).prepare(task.required)
        return groups.merged(
            {name: self._group_stream(name, split, batch_size) for name in self.groups}
        )

    def _group_stream(self, name, split, batch_size):
        return groups.group_stream(
            self.network, self.tasks, self.groups[name], name, split, batch_size, self.input_size
        )

    # -- training ------------------------------------------------------------------

    @property
    def metrics(self):
        return self.task_losses.metrics

    def statistics_passes(self, data):
        """One training-mode pass of each input group through trunk and heads."""
        self._check_batch(data)
        self.network(data[0], training=True)

    def _check_batch(self, data):
        groups.check_batch(data, self.groups, self.tasks, type(self).__name__)

    def after_step(self):
        """Momentum tasks: the key networks' moving average, then the step's keys
        enqueued (`zoo.methods.momentum`)."""
        if self.momentum is not None:
            self.momentum.update()

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
    def lambdas(self) -> dict:
        """{task: w_t} now (grad_norm: fixed after `balance_steps` steps)."""
        return self.balancer.lambdas()

    def _update_main(self, tape, total, taps):
        """The "main" player's step, through the balancer (grad_norm measures the
        gradients at the taps on the same backward pass)."""
        variables = self._player_variables.value["main"]
        self.balancer.minimize(self.player_optimizers["main"], tape, total, variables, taps)

    def _logs(self):
        return {**{m.name: m.result() for m in self.metrics}, **self.balancer.logs()}

    def train_step(self, data):
        """One shared pass (`_shared_pass`), then the players' phases on it (`_phases`).
        The logged `loss` is the "main" player's, else the pass's weighted total."""
        self._check_batch(data)
        passed = {}  # the pass's outputs, kept for the total's tracker

        def shared(batch, tape):
            passed.update(self._shared_pass(batch, tape))
            return passed

        last = self.alternate(data, self._phases(), shared=shared)
        self.after_step()
        self.task_losses.track_total(last["main"] if "main" in last else passed["total"])
        return self._logs()

    def _phases(self):
        """The players' phases on the shared pass: "main" on the weighted total, its
        backward pass also giving grad_norm's measurements."""
        return [
            Phase(
                "main",
                lambda d, p: p["total"],
                through_shared=True,
                update=lambda tape, total, p: self._update_main(tape, total, p["taps"]),
            )
        ]

    def _shared_pass(self, data, tape):
        """The training pass: the heads' outputs, the task losses, the weighted total
        and each task's objective (its loss plus the regularization), the taps."""
        out = self.train_network(data[0], training=True)
        losses = self.task_losses(data[0], data[1], out["tasks"])
        regularization = self._regularization()
        return {
            "total": self.balancer.total(losses) + regularization,
            "objectives": {n: v + regularization for n, v in losses.items()},
            "taps": out["taps"],
        }

    def test_step(self, data):
        self._check_batch(data)
        losses = self.task_losses(data[0], data[1], self.network(data[0], training=False))
        self.task_losses.track_total(self.balancer.total(losses))
        return {m.name: m.result() for m in self.metrics}

    # -- evaluation and export -----------------------------------------------------

    def heldout_metrics(self, batch_size: int) -> dict:
        """{task: metrics} over each task's whole held-out split (inference mode)."""
        results, self._heldout_counts = {}, {}
        for name, group in self.groups.items():
            data = self._group_stream(name, "eval", batch_size)
            metrics, counts = groups.heldout(self.network, self.tasks, group, name, data)
            results.update(metrics)
            self._heldout_counts.update(counts)
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
        chosen = [self.tasks[task]] if task is not None else self.tasks.values()
        return harmonize.served(t.harmonizer for t in chosen)


def graph_config(method: SharedTrunk) -> dict:
    """A SharedTrunk's own arguments, for the config of a subclass that takes them as
    its own (a base of several methods stores none itself: Transfer takes one task)."""
    return {
        "trunk": serialize(method.trunk),
        "tasks": [serialize(t) for t in method.tasks.values()],
        "input_size": method.input_size,
        "loss_weights": method.loss_weights,
        "loss_balance": method.loss_balance,
        "balance_steps": method.balancer.steps,
    }
