"""BYOL (Grill et al. 2020, "Bootstrap your own latent"): an online network predicts the
target network's projection of the other view; the target network is a moving average
of the online one, τ rising from 0.996 to 1 by a cosine over the run.

* Online network: trunk → projector (GAP, Dense 4096, BatchNorm, ReLU, Dense 256) →
  predictor (Dense 4096, BatchNorm, ReLU, Dense 256), on both views of each image
  (one batch of 2B: image i's views at rows 2i and 2i + 1).
* Target network: the method's key network (`zoo.methods.momentum`) over the trunk and
  the projector only (`key_head`), on both views, normalised with its own batch's
  statistics as the online network is.
* Loss: (2 − 2·cos(p₁, z′₂)) + (2 − 2·cos(p₂, z′₁)) per image (`zoo.losses.byol`), no
  negatives and no queue.
* Views: BYOL's asymmetric augmentation (`zoo.data.augment.byol_views`).

Differences from the paper, by construction of the zoo: the two views share one batch,
so the BatchNorm statistics of the trunk and heads are over both views (BYOL's code runs
each view through the network alone); the colour jitter applies its four changes in a
fixed order (BYOL draws the order). The paper's optimizer (LARS, learning rate
0.2·batch/256, weight decay 1.5e-6, batch 4096) is the gin file's business
(`gin_configs/contrastive/byol.gin`).
"""

import gin
import keras
import tensorflow as tf

from zoo import checks
from zoo.data import augment
from zoo.errors import UserError
from zoo.layers import batch_norm
from zoo.losses import contrastive
from zoo.tasks.base import merge_patches
from zoo.tasks.contrastive import TwoViewTask, _uniformity_metric
from zoo.tasks.momentum import MomentumSchedule, MomentumTask


def _mlp(x, hidden, out, name):
    """Dense(hidden) → BatchNorm → ReLU → Dense(out) of `x` (BYOL's projector and predictor)."""
    x = keras.layers.Dense(hidden, name=f"{name}_hidden")(x)
    x = batch_norm(f"{name}_norm")(x)
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
    return keras.layers.Dense(out, name=f"{name}_out")(x)


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.tasks")
class BYOL(TwoViewTask, MomentumTask):
    """BYOL (module docstring).

    Args (besides TwoViewTask's):
        hidden: int. Hidden width of the projector and the predictor. Defaults to 4096.
        projection: int. Output width of both. Defaults to 256.
        momentum: float in [0, 1). τ_base, the target network's first τ. Defaults to 0.996.
        momentum_steps: int >= 1. K, the run's number of steps: τ_k = 1 − (1 −
            τ_base)·(cos(πk/K) + 1)/2. Required (epochs × steps_per_epoch of the run).
    """

    name = "byol"

    def __init__(
        self,
        source,
        hidden: int = 4096,
        projection: int = 256,
        momentum: float = 0.996,
        momentum_steps: int | None = None,
        **kwargs,
    ):
        checks.int_at_least(hidden, 1, "hidden", "BYOL")  # (its MLPs need a hidden layer)
        super().__init__(source, hidden=hidden, projection=projection, **kwargs)
        if momentum_steps is None:
            raise UserError(
                f"{self.name}: τ rises to 1 over the run, so `momentum_steps` must be the "
                "run's number of steps (epochs × steps_per_epoch), e.g. "
                "zoo.tasks.BYOL.momentum_steps = 600."
            )
        self._schedule = MomentumSchedule(momentum, momentum_steps)
        self.momentum, self.momentum_steps = float(momentum), momentum_steps

    def default_views(self):
        return augment.byol_views()

    def momentum_schedule(self):
        return self._schedule

    # -- networks ------------------------------------------------------------------

    def to_trunk(self, inputs):
        return merge_patches(inputs)  # image i's views at rows 2i, 2i + 1

    def key_view(self, inputs):
        return merge_patches(inputs)

    def build_head(self, features, input_size):
        inputs = keras.Input(tuple(features.shape[1:]), name=f"{self.name}_features")
        pooled = keras.layers.GlobalAveragePooling2D(name=f"{self.name}_pool")(inputs)
        projector = keras.Model(
            inputs,
            _mlp(pooled, self.hidden, self.projection, f"{self.name}_projector"),
            name=f"{self.name}_projector",
        )
        projected = keras.Input((self.projection,), name=f"{self.name}_projection")
        predictor = keras.Model(
            projected,
            _mlp(projected, self.hidden, self.projection, f"{self.name}_predictor"),
            name=f"{self.name}_predictor",
        )
        projections = projector(features)
        pairs = lambda x: keras.ops.reshape(x, (-1, 2, self.projection))  # noqa: E731
        return {"prediction": pairs(predictor(projections)), "projection": pairs(projections)}

    def key_head(self, network):
        """The projector (with its pooling): the target network has no predictor."""
        return network.get_layer(f"{self.name}_projector")

    # -- loss and measures ---------------------------------------------------------

    def _pairs(self, targets, outputs):
        key = keras.ops.reshape(targets["key"], (-1, 2, self.projection))
        return outputs["prediction"], tf.stop_gradient(key)

    def loss(self, targets, outputs):
        return contrastive.byol(*self._pairs(targets, outputs))

    def keras_metrics(self):
        def cosine(targets, outputs):  # the mean of the two cosines of each image
            return 1.0 - contrastive.byol(*self._pairs(targets, outputs)) / 4.0

        return [
            keras.metrics.MeanMetricWrapper(cosine, name=f"{self.name}_cosine"),
            _uniformity_metric(self.name, lambda out: out["projection"][:, 0]),
        ]

    def serving_outputs(self, outputs):
        return {"embeddings": tf.math.l2_normalize(outputs["projection"][:, 0], axis=-1)}

    def heldout_pairs(self, targets, outputs):
        # the online projections (the embedding BYOL's target network also gives) of
        # the first views and of the second ones
        return outputs["projection"][:, 0], outputs["projection"][:, 1]
