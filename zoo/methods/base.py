"""The Method layer: a `keras.Model` that owns a training algorithm.

A method owns its networks (trunk, heads, discriminators, momentum copies ...), names
its *players* (each updated by its own optimizer on its own variables), and implements
`train_step` / `test_step` over a batch structure of its own. Because the whole
algorithm lives in `train_step`, Keras' `fit`, callbacks, progress bars,
`BackupAndRestore`, TensorBoard and `tf.distribute` work unchanged, and the same
`train_step` runs in the zoo's multi-worker loop (`zoo.experiment.loop`: `strategy.run`
where `fit` does not work). Under a mixed-precision policy `compile` wraps every
player's optimizer for loss scaling (float16) and `apply` seeds the backward pass with
the scale (`scaled_gradients`).

Writing a method (see docs/guides/methods.md, "Adding a method"):

* build every network in `__init__` (inside the strategy scope), set `self.built`;
* `players` and `variables_of(player)`;
* `train_step(data)`: one `tf.GradientTape` per phase and `self.apply(player, tape,
  loss)`, or `self.alternate(data, [Phase(...), ...])` for "update A on loss a, then B
  on loss b" (Ren & Lee's Algorithm 1, GANs); losses averaged over the *global* batch
  (`tf.nn.compute_average_loss`), so replicas add up to the one-device update;
* `after_step()` for state that follows the optimizer steps (EMA copies, queues);
* `get_config` returning every constructor argument (Keras objects serialized), so a
  run is rebuilt from its `method.json` without gin.
"""

import contextlib
import contextvars
import dataclasses
from collections.abc import Callable, Sequence

import keras
import tensorflow as tf

from zoo import checks
from zoo.errors import UserError
from zoo.methods.batch_norm import PreciseStatistics


class MissingMember(NotImplementedError, AttributeError):
    """A member of the Method contract that a method does not define (an AttributeError
    too, so that `hasattr` answers False)."""


@dataclasses.dataclass(frozen=True)
class Phase:
    """One phase of an alternating step: `steps` updates of `player` on its `loss`.

    Args:
        player: str. The player updated (its optimizer and variables).
        loss: callable. `loss(data) -> scalar` averaged over the global batch, or
            `loss(data, passed)` when `alternate` is given a shared pass; computed
            afresh for each of the phase's steps, after the previous phases' updates.
        steps: int. Updates per train step (k of "k D-steps per G-step"). Defaults to 1.
        through_shared: bool. The loss reads the shared pass and its gradient flows back
            through it (the pass's tape records the loss too); one step only, since the
            pass is not run again. Otherwise the loss is recorded on a tape of its own
            and the shared pass's outputs are constants to it (a discriminator's phase on
            detached features). Defaults to False.
        update: callable or None. `update(tape, loss, passed)` in place of
            `Method.apply(player, tape, loss)` (e.g. a player that also reads gradients
            at taps of the shared pass; `passed` is None without one). Defaults to None.
    """

    player: str
    loss: Callable
    steps: int = 1
    through_shared: bool = False
    update: Callable | None = None


class Method(keras.Model):
    """Base class of training algorithms; see the module docstring.

    Subclasses define `players`, `variables_of`, `train_step`, `test_step`,
    `datasets`, `get_config` and, where they have state beyond variables that
    optimizers update, `after_step`. What the driver, export and evaluation read is
    declared here and fails with one message naming it when a method lacks it: `trunk`
    (set it: `self.trunk = ...`), `heldout_metrics`, `metric_info`,
    `statistics_passes`, `task_model` and `image_tasks`.
    """

    # True for methods whose players deliberately share variables (one optimizer per task
    # on a shared trunk, Doersch & Zisserman); else compile() requires disjoint players.
    players_share_variables = False

    def _missing(self, name, needed_by):
        return MissingMember(
            f"{type(self).__name__} does not define `{name}`, which {needed_by} needs "
            '(see zoo.methods.base and docs/guides/methods.md, "Adding a method").'
        )

    @property
    def trunk(self) -> keras.Model:
        """The trunk (images -> {endpoint: features}) to export and evaluate (set it)."""
        trunk = self.__dict__.get("_method_trunk")
        if trunk is None:
            raise self._missing("trunk", "the export and the transfer evaluation")
        return trunk

    @trunk.setter
    def trunk(self, value):
        # the model is tracked (and saved) under the public name `trunk`: Keras visits
        # attributes with a leading underscore last and each object once
        self._method_trunk = value

    def task_model(self, task: str) -> keras.Model:
        """A model from `task`'s input to its head's output (what a served task runs)."""
        raise self._missing("task_model", "the export of a task")

    def image_tasks(self) -> list:
        """The tasks whose input is a whole image (those a served model can run)."""
        raise self._missing("image_tasks", "the export of a task")

    @property
    def players(self) -> tuple:
        """Names of the players, in the order they update within a step."""
        raise self._missing("players", "compile()")

    def variables_of(self, player: str) -> list:
        """The variables `player`'s optimizer updates."""
        raise self._missing("variables_of", "compile()")

    def compile(
        self,
        optimizer: keras.optimizers.Optimizer | dict | None = None,
        **kwargs,
    ):
        """Gives every player an optimizer and builds it on the player's variables.

        Call it inside the strategy scope. Each optimizer is re-created from its config
        here (its counter and slots live in the current scope) and built at once (extra
        optimizers built later fail under MirroredStrategy; unbuilt state is skipped
        when a checkpoint is restored before the first step).

        Args:
            optimizer: a keras Optimizer (every player gets its own copy) or a dict
                {player: Optimizer} naming every player.
            **kwargs: passed to `keras.Model.compile` (e.g. `run_eagerly`,
                `steps_per_execution`); `jit_compile` defaults to False.
        """
        players = tuple(self.players)
        given, variables = _given_optimizers(self, optimizer)
        optimizers = {}
        for p in players:
            fresh = type(given[p]).from_config(given[p].get_config())
            if self.dtype_policy.name == "mixed_float16":  # bfloat16 needs no scaling
                fresh = keras.optimizers.LossScaleOptimizer(fresh, name=f"{p}_loss_scale")
            fresh.build(variables[p])
            optimizers[p] = fresh
        self.player_optimizers = optimizers
        # a plain holder: Keras would track a dict of variables as the model's own
        self._player_variables = _Untracked(variables)
        kwargs.setdefault("jit_compile", False)
        super().compile(optimizer=None, **kwargs)

    def get_compile_config(self):
        return None  # optimizers are given by the driver, not rebuilt from a saved file

    def apply(self, player: str, tape: tf.GradientTape, loss) -> None:
        """Applies the gradients of `loss` (recorded by `tape`) to `player`'s variables."""
        optimizer = self.player_optimizers[player]
        variables = self._player_variables.value[player]
        grads = scaled_gradients(optimizer, tape, loss, variables)
        optimizer.apply_gradients([(g, v) for g, v in zip(grads, variables) if g is not None])

    def alternate(self, data, phases: Sequence[Phase], shared: Callable | None = None) -> dict:
        """Runs the phases in order: each computes its loss afresh and updates its player.

        Args:
            data: the step's batch.
            phases: the phases, in order.
            shared: callable or None. `shared(data, tape)`: a forward pass that several
                phases read (the trunk pass over both domains of Ren & Lee's Algorithm
                1), run once, before the phases, on `tape`, which phases with
                `through_shared` resume (parts no phase differentiates can run under
                `tape.stop_recording()`); every phase's loss is then called as
                `loss(data, passed)` with its outputs.

        Returns:
            {player: the loss of its last update}.
        """
        tape, passed = None, None
        if shared is not None:
            tape = tf.GradientTape(persistent=True)
            with tape:
                passed = shared(data, tape)
        last = {}
        for phase in phases:
            self._check_phase(phase, shared)
            update = phase.update or (lambda t, loss, _, p=phase.player: self.apply(p, t, loss))
            for _ in range(phase.steps):
                if phase.through_shared:
                    with tape:  # resumes the shared pass's recording
                        loss = phase.loss(data, passed)
                    update(tape, loss, passed)
                else:
                    with tf.GradientTape() as own:
                        loss = phase.loss(data) if shared is None else phase.loss(data, passed)
                    update(own, loss, passed)
                last[phase.player] = loss
        del tape
        return last

    def _check_phase(self, phase, shared):
        if phase.player not in self.player_optimizers:
            raise UserError(
                f"{type(self).__name__}: phase player {phase.player!r} is not one of "
                f"{list(self.player_optimizers)}."
            )
        if phase.through_shared and (shared is None or phase.steps != 1):
            raise UserError(
                f"{type(self).__name__}: a phase `through_shared` ({phase.player!r}) needs "
                "`alternate(..., shared=...)` and steps = 1 (the shared pass runs once)."
            )

    def after_step(self) -> None:
        """Updates state that follows the optimizer steps (EMA copies, queues). No-op here."""

    def method_callbacks(self) -> list:
        """Keras callbacks every run of the method needs (MGM's stages). None here."""
        return []

    def rolled_back(self, attempt: int) -> None:
        """Called when a run that diverged went back to its last good checkpoint for the
        `attempt`-th time (`zoo.experiment.train(recoveries=...)`): a method whose random
        draws a resumed run repeats changes them here, or the retry diverges the same
        way. No-op here (the data order stays that of the run)."""

    def datasets(self, batch_size: int, split: str = "train") -> tf.data.Dataset:
        """Batches in this method's structure (see the subclass)."""
        raise self._missing("datasets", "zoo.experiment.train")

    def statistics_passes(self, data) -> None:
        """Runs the forward passes of a training step on one batch of `datasets()`, in
        training mode and without updates: the passes whose BatchNorm statistics the
        moving averages follow (`precise_batch_norm`)."""
        raise self._missing("statistics_passes", "precise_batch_norm")

    def precise_batch_norm(self, batches, steps: int | None = None, progress: bool = True) -> int:
        """Sets BatchNorm's moving statistics to what the moving averages estimate, the
        mean batch mean and mean batch variance, measured on training batches with the
        current weights (precise BatchNorm, Wu & Johnson 2021, "Rethinking 'Batch' in
        BatchNorm"). A moving average lags behind weights that still move: after a short
        run at a constant learning rate its statistics belong to earlier weights, and
        inference-mode outputs drift from training-mode ones (a model that fits its
        labels can predict chance in inference mode).

        Every call of a BatchNorm layer that normalizes with its batch's statistics
        (training mode, trainable) is one sample, as it is one update of the moving
        average: a layer that `statistics_passes` calls twice per batch (a trunk shared
        by two input groups) averages both. Frozen layers and layers the passes do not
        call keep their statistics.

        Trainable layers with a `batch_norm_statistics()` method (an exported trunk,
        whose BatchNorm layers live inside its SavedModel and update their moving
        averages there) are measured through those updates: before each batch their
        moving statistics are set to 0, so that one pass leaves (1 - momentum) times the
        batch's moments in them; the momentum is read once, from a second pass of the
        first batch started at 1. Such a layer must be called once per pass.

        Args:
            batches: iterable of batches in the structure of `datasets()`.
            steps: int >= 1 or None. Batches to measure; None: all of `batches`.
            progress: bool. A progress line on stderr for long work. Defaults to True.

        Returns:
            The number of BatchNorm layers whose statistics were set.
        """
        checks.int_at_least(steps, 1, "steps", none=True)
        return PreciseStatistics(self).run(batches, steps, progress)

    def heldout_metrics(self, batch_size: int) -> dict:
        """{objective: {metric: value}} on held-out data."""
        raise self._missing("heldout_metrics", "zoo.experiment.train")

    def heldout_examples(self) -> dict:
        """{objective: number of held-out examples} its last `heldout_metrics` call
        computed every metric on ({} where not counted)."""
        return {}

    def metric_info(self) -> dict:
        """{objective: {metric: (direction, meaning)}} for reports."""
        raise self._missing("metric_info", "zoo.experiment.train")

    def serving_harmonizer(self, task: str | None = None) -> str:
        """The deterministic harmonizer an exported graph applies. Defaults to "identity"."""
        return "identity"

    def get_config(self):
        """{"name": ...}: a method's own config chains to it and adds each of its
        constructor's arguments under its own name (keras-hub's rule)."""
        return {"name": self.name}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def scaled_gradients(optimizer, tape, loss, sources) -> list:
    """`tape`'s gradients of `optimizer.scale_loss(loss)` with respect to `sources`: the
    loss scale of a float16 LossScaleOptimizer (1 for any other) enters as the seed of
    the backward pass, so the tape need not have recorded the scaling (a loss computed
    inside the tape's block and differentiated after it)."""
    return tape.gradient(loss, sources, output_gradients=optimizer.scale_loss(tf.ones_like(loss)))


def _given_optimizers(method, optimizer) -> tuple:
    """({player: the optimizer given for it}, {player: its variables}) for
    `Method.compile`; refuses a dict that does not name every player, a player without
    variables, and (unless `players_share_variables`) a variable of two players."""
    players = tuple(method.players)
    if isinstance(optimizer, dict):
        missing = sorted(set(players) - set(optimizer))
        extra = sorted(set(optimizer) - set(players))
        if missing or extra:
            raise UserError(
                f"{type(method).__name__}.compile: give one optimizer per player "
                f"{list(players)}; missing {missing}, unknown {extra}."
            )
        given = {p: optimizer[p] for p in players}
    elif isinstance(optimizer, keras.optimizers.Optimizer):
        given = {p: optimizer for p in players}
    else:
        raise UserError(
            f"{type(method).__name__}.compile: `optimizer` must be a keras Optimizer or a "
            f"dict {{player: Optimizer}} for players {list(players)}. Received: "
            f"{optimizer!r}"
        )
    variables = {p: list(method.variables_of(p)) for p in players}
    for p, vs in variables.items():
        if not vs:
            raise UserError(f"{type(method).__name__}: player {p!r} has no variables.")
    if not method.players_share_variables:
        owner = {}
        for p, vs in variables.items():
            for v in vs:
                if id(v) in owner:
                    raise UserError(
                        f"{type(method).__name__}: variable {v.path} belongs to players "
                        f"{owner[id(v)]!r} and {p!r}; players must own disjoint variables."
                    )
                owner[id(v)] = p
    return given, variables


class _Untracked:
    def __init__(self, value):
        self.value = value


def serialize(obj):
    return keras.saving.serialize_keras_object(obj)


def deserialize(config):
    return keras.saving.deserialize_keras_object(config)


_TRUSTED_EXPORTS = contextvars.ContextVar("zoo_trusted_exports", default=False)


@contextlib.contextmanager
def trusted_exports():
    """Within it, exported trunks (`zoo.evaluation.ExportedTrunk`) deserialize in Keras'
    safe mode.

    Keras refuses to deserialize a TFSMLayer in safe mode, since it loads an external
    SavedModel. A zoo run finetuned from an export names that export (the `--source`
    its user gave) in its own `method.json`; `experiment.restore` rebuilds runs inside
    this context. Nothing else is unlocked (Lambda layers stay refused).
    """
    token = _TRUSTED_EXPORTS.set(True)
    try:
        yield
    finally:
        _TRUSTED_EXPORTS.reset(token)


def exports_trusted() -> bool:
    """Whether the caller is inside `trusted_exports()`."""
    return _TRUSTED_EXPORTS.get()
