"""Optimizers and schedules of the papers that Keras does not ship.

* `LARS` (You, Gitman & Ginsburg 2017), as SimCLR's and BYOL's code apply it: each
  weight tensor's step is scaled by a trust ratio η·‖w‖ / ‖g + λw‖ before momentum.
* `WarmupLinear`: a linear warm-up from 0 and a linear decay to an end value (Newell &
  Deng's code: its `target_lrs` [0, peak, end] at `milestones` [warm-up, end]).
"""

import gin
import keras
from keras import ops

from zoo import checks, internals


@keras.saving.register_keras_serializable(package="zoo")
class LARS(keras.optimizers.Optimizer):
    """SGD with momentum and layer-wise adaptive rate scaling (LARS).

    For a weight w with gradient g (biases and normalization parameters, i.e. tensors
    of rank <= 1, are excluded from both weight decay and adaptation, as in BYOL):

        g ← g + λ·w
        r = η·‖w‖ / ‖g‖   (1 when either norm is 0)
        v ← μ·v + lr·r·g
        w ← w − v

    (BYOL, Grill et al. 2020, appendix C: η = 1e-3, μ = 0.9, λ = 1.5e-6, lr = 0.2 ·
    batch / 256 with a cosine schedule and 10 warm-up epochs; SimCLR's LARS likewise.)

    Args:
        learning_rate: float or a schedule. Defaults to 0.1.
        momentum: float in [0, 1). μ. Defaults to 0.9.
        weight_decay: float >= 0. λ, added to the gradient. Defaults to 0.
        trust_coefficient: float > 0. η. Defaults to 1e-3.
        **kwargs: Keras' optimizer arguments (clipnorm, name, ...); Keras' own decoupled
            `weight_decay` is not used.
    """

    def __init__(
        self,
        learning_rate=0.1,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        trust_coefficient: float = 1e-3,
        name: str = "lars",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        checks.number_in(momentum, "momentum", 0, 1, "LARS", high_open=True)
        checks.number_in(weight_decay, "weight_decay", 0, who="LARS")
        checks.number_in(trust_coefficient, "trust_coefficient", 0, who="LARS", low_open=True)
        self.momentum = float(momentum)
        self.lars_weight_decay = float(weight_decay)
        self.trust_coefficient = float(trust_coefficient)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.velocities = self.add_optimizer_variables(variables, "velocity")

    def update_step(self, gradient, variable, learning_rate):
        lr = ops.cast(learning_rate, variable.dtype)
        g = ops.cast(gradient, variable.dtype)
        if len(variable.shape) > 1:  # weights; biases and norm parameters are plain SGD
            g = g + self.lars_weight_decay * variable
            w_norm, g_norm = ops.norm(ops.reshape(variable, [-1])), ops.norm(ops.reshape(g, [-1]))
            ratio = ops.where(
                (w_norm > 0) & (g_norm > 0),
                self.trust_coefficient * w_norm / ops.maximum(g_norm, 1e-30),
                1.0,
            )
            lr = lr * ops.cast(ratio, variable.dtype)
        velocity = internals.slot_of(self, self.velocities, variable)
        self.assign(velocity, self.momentum * velocity + lr * g)
        self.assign_sub(variable, velocity)

    def get_config(self):
        config = super().get_config()
        config.update(
            momentum=self.momentum,
            weight_decay=self.lars_weight_decay,
            trust_coefficient=self.trust_coefficient,
        )
        return config


gin.external_configurable(LARS, module="zoo.optimizers")


@keras.saving.register_keras_serializable(package="zoo")
class WarmupLinear(keras.optimizers.schedules.LearningRateSchedule):
    """0 -> `peak` linearly over `warmup_steps`, then `peak` -> `end` linearly until
    `total_steps`, then `end`.

    Args:
        peak: float > 0. The learning rate at the end of the warm-up.
        warmup_steps: int >= 0.
        total_steps: int > warmup_steps. The step at which `end` is reached.
        end: float >= 0. Defaults to 0.0.
    """

    def __init__(
        self, peak=gin.REQUIRED, warmup_steps=gin.REQUIRED, total_steps=gin.REQUIRED, end=0.0
    ):
        self.peak = checks.number_in(peak, "peak", 0, who="WarmupLinear", low_open=True)
        self.warmup_steps = checks.int_at_least(warmup_steps, 0, "warmup_steps", "WarmupLinear")
        checks.int_at_least(total_steps, warmup_steps + 1, "total_steps", "WarmupLinear")
        self.total_steps = total_steps
        self.end = checks.number_in(end, "end", 0, who="WarmupLinear")

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warm = self.peak * step / max(self.warmup_steps, 1)
        progress = ops.clip(
            (step - self.warmup_steps) / float(self.total_steps - self.warmup_steps), 0.0, 1.0
        )
        decay = self.peak + (self.end - self.peak) * progress
        return ops.where(step < self.warmup_steps, warm, decay)

    def get_config(self):
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "end": self.end,
        }


gin.external_configurable(WarmupLinear, module="zoo.optimizers")
