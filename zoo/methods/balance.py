"""Weights of a sum of task losses: fixed, or balanced by the tasks' gradient norms.

A method that trains one network on several losses composes a `LossBalancer`: it gives
the weighted total (`total`), and in "grad_norm" mode reads each task's gradient at the
features its head reads (a `FeatureTap` per task, whose gradient the backward pass that
trains the network computes anyway) and, after `steps` steps, fixes the weights so that
those gradients have equal mean norms (Ren & Lee 2018, sec. 3.2: "weights to scale their
gradients to have similar magnitude"; the paper gives no procedure).
"""

from collections.abc import Sequence

import keras
import tensorflow as tf

from zoo import checks
from zoo.errors import UserError
from zoo.methods.base import scaled_gradients

LOSS_BALANCES = ("static", "grad_norm")


class FeatureTap(keras.layers.Layer):
    """An identity op (a tensor of its own) between the trunk and one head: the gradient
    of the total loss at its output is w_t ∂L_t/∂F, task t's alone, computed by the
    backward pass that trains the trunk (grad_norm balancing costs no extra pass)."""

    def call(self, inputs):
        return tf.identity(inputs)


keras.saving.register_keras_serializable(package="zoo")(FeatureTap)


class LossBalancer(keras.layers.Layer):
    """λ_t of Σ_t λ_t L_t.

    Args:
        tasks: the task names, in the order of every list this layer takes and gives.
        mode: str. "static": λ_t = `weights`. "grad_norm": train the first `steps`
            steps with `weights` while measuring each task's gradient norm ‖∂L_t/∂F_t‖
            at its tap (`measure`), then fix λ_t = ḡ_1 / ḡ_t (the first task's weight
            is 1). The weights live in checkpoints. Defaults to "static".
        weights: dict or None. Task name -> λ_t (static; the first `steps` of
            grad_norm). Defaults to 1 each.
        steps: int >= 1. K of grad_norm. Defaults to 50.
    """

    def __init__(
        self,
        tasks: Sequence[str],
        mode: str = "static",
        weights: dict | None = None,
        steps: int = 50,
        **kwargs,
    ):
        kwargs.setdefault("name", "loss_balancer")
        super().__init__(**kwargs)
        tasks = list(tasks)
        unknown = sorted(set(weights or {}) - set(tasks))
        if unknown:
            raise UserError(f"loss_weights name unknown tasks {unknown}; tasks: {tasks}")
        if mode not in LOSS_BALANCES:
            raise UserError(f"`loss_balance` must be one of {LOSS_BALANCES}. Received: {mode!r}")
        checks.int_at_least(steps, 1, "balance_steps")
        self.tasks = tasks
        self.mode = mode
        self.static = {n: float((weights or {}).get(n, 1.0)) for n in tasks}
        self.steps = steps
        if mode == "grad_norm":
            if min(self.static.values()) <= 0:
                raise UserError(
                    "grad_norm measures each task through its weight: `loss_weights` must be "
                    f"> 0. Received: {self.static}"
                )
            count = len(tasks)
            initial = keras.initializers.Constant([self.static[n] for n in tasks])
            self.task_weights = self.add_weight(
                shape=(count,),
                initializer=initial,
                trainable=False,
                aggregation="mean",
                name="task_weights",
            )
            self._grad_sums = self.add_weight(
                shape=(count,),
                initializer="zeros",
                trainable=False,
                aggregation="mean",
                name="grad_norm_sums",
            )
            self._seen = self.add_weight(
                shape=(),
                initializer="zeros",
                trainable=False,
                aggregation="mean",
                name="grad_norm_steps",
            )
        self.built = True

    @property
    def measures(self) -> bool:
        """True when `measure` must be given the taps' gradients (grad_norm)."""
        return self.mode == "grad_norm"

    def current(self) -> list:
        """[λ_t] in task order, as tensors (grad_norm) or floats (static)."""
        if self.measures:
            return tf.unstack(tf.convert_to_tensor(self.task_weights))
        return [self.static[n] for n in self.tasks]

    def total(self, losses: dict):
        """Σ_t λ_t losses[t]."""
        return tf.add_n([w * losses[n] for w, n in zip(self.current(), self.tasks)])

    def measure(self, tap_grads: Sequence) -> None:
        """Adds one step's gradient norms (the gradients of `total` at the taps, in task
        order, None for a task whose tap the loss does not reach), while fewer than
        `steps` steps were measured; the step that completes them fixes the weights."""
        weights = self.current()
        # the tap gradients are λ_t ∂L_t/∂F_t (times a loss scale, which the ratio cancels)
        squares = tf.stack(
            [
                tf.reduce_sum(tf.square(g)) / tf.square(w) if g is not None else tf.zeros(())
                for g, w in zip(tap_grads, weights)
            ]
        )
        # replicas hold parts of the batch: their squared norms add up to the whole's
        norms = tf.sqrt(tf.distribute.get_replica_context().all_reduce("sum", squares))
        active = self._seen < self.steps
        on = tf.cast(active, tf.float32)
        self._grad_sums.assign_add(norms * on)
        self._seen.assign_add(on)
        sums = tf.convert_to_tensor(self._grad_sums)
        fixed = tf.logical_and(active, self._seen >= self.steps)
        balanced = sums[0] / tf.maximum(sums, 1e-12)
        self.task_weights.assign(tf.where(fixed, balanced, tf.convert_to_tensor(self.task_weights)))

    def minimize(self, optimizer, tape, total, variables, taps: dict) -> None:
        """One `optimizer` step on `total` (recorded on `tape`) over `variables`; while
        measuring, the same backward pass gives each task's gradient at its tap
        (`taps`: {task: FeatureTap output}) to `measure`."""
        tapped = [taps[n] for n in self.tasks] if self.measures else []
        grads = scaled_gradients(optimizer, tape, total, list(variables) + tapped)
        optimizer.apply_gradients(
            [(g, v) for g, v in zip(grads[: len(variables)], variables) if g is not None]
        )
        if tapped:
            measured = grads[len(variables) :]
            if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
                # the loss was scaled for float16: the taps' gradients are too
                measured = [g / tf.cast(optimizer.dynamic_scale, g.dtype) for g in measured]
            self.measure(measured)

    def lambdas(self) -> dict:
        """{task: λ_t} now, as floats."""
        if not self.measures:
            return dict(self.static)
        values = keras.ops.convert_to_numpy(self.task_weights).tolist()
        return dict(zip(self.tasks, values))

    def logs(self) -> dict:
        """{"lambda_<task>": λ_t} for `fit`'s logs (grad_norm; static weights are not logged)."""
        if not self.measures:
            return {}
        return {f"lambda_{n}": w for n, w in zip(self.tasks, self.current())}
