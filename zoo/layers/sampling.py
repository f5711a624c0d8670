"""The reparameterised Gaussian sample of a variational autoencoder (Kingma & Welling 2014)."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="zoo")
class GaussianSample(keras.layers.Layer):
    """z = μ + σ·ε with σ = exp(½·log σ²) and ε ~ N(0, I) when training (gradients reach
    μ and log σ² through the sample); μ itself in inference, so held-out
    reconstructions and features are deterministic.

    Args:
        seed: int or None. Seed of ε. Defaults to None.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs, training=False):
        mean, log_variance = inputs
        if not training:
            return mean
        noise = keras.random.normal(ops.shape(mean), seed=self.seed_generator, dtype=mean.dtype)
        return mean + ops.exp(0.5 * log_variance) * noise

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}
