"""A variational autoencoder as a pretext task (Newell & Deng 2020, sec. 6: "a standard
VAE"), built as the authors' code builds it.

The trunk's endpoint is average-pooled to f features; two dense layers of f units give
the posterior's mean μ and log-variance log σ²; a sample z = μ + σ·ε (μ in inference,
`zoo.layers.GaussianSample`) seen as a 1x1 map is decoded by transposed convolutions
(4x4, stride 2: 1 -> 4 unpadded, then 8, 16, 32, 64; widths 256, 256, 256, 128, 64 for a
64 px output), each followed by BatchNorm and ReLU, and a 1x1 convolution to 3 channels.
The target is the task's input image (harmonized: Newell & Deng's inputs are Lab)
brought to the output size with the nearest pixel, as the code's `F.interpolate` does.

Loss per image: the mean squared error over the reconstruction's pixels and channels,
plus β times the KL divergence of the posterior from N(0, I) summed over the latent
units. The code sums the KL over the batch as well, which multiplies its weight by the
batch size (`kl_over_batch`, the default: the paper leaves the weighting to the code).
"""

import gin
import keras
import numpy as np
import tensorflow as tf

from zoo import checks
from zoo.errors import UserError, UserTypeError
from zoo.layers import GaussianSample
from zoo.layers.normalization import batch_norm
from zoo.tasks.base import Task, image_views


def kl_divergence(mean, log_variance):
    """KL(N(μ, σ²) ‖ N(0, I)) per example, summed over the last axis."""
    return -0.5 * tf.reduce_sum(1.0 + log_variance - mean**2 - tf.exp(log_variance), axis=-1)


def decoder_widths(output_size: int) -> list:
    """The code's widths of the transposed convolutions to an `output_size` image:
    log2(output_size) − 1 of them, 2^min(8, 10 − i)."""
    return [2 ** min(8, 10 - i) for i in range(int(np.log2(output_size)) - 1)]


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.tasks")
class VAE(Task):
    """Self-supervised: reconstruct the image through a Gaussian bottleneck (module
    docstring).

    Args (besides Task's):
        beta: float >= 0. Weight of the KL term. Defaults to 1e-5 (the code's configs).
        output_size: int. A power of two >= 4: the reconstruction's side. Defaults to 64
            (the code's, whatever the input size).
        kl_over_batch: bool. The KL term of each image is multiplied by the batch size
            (per replica), so that the batch's mean loss is the code's mean MSE + β · KL
            summed over the batch. Defaults to True.
        augment: zoo.data.augment.Views of count 1 or None. Steps applied to the
            harmonized training images (what is encoded and reconstructed). Defaults to
            None.
    """

    name = "vae"
    required = ("image",)
    metric_info = {
        "mse": ("lower", "reconstruction mean squared error, in the input's (harmonized) units"),
        "kl": ("neither", "KL divergence of the posterior from N(0, I) per image (nats)"),
    }

    def __init__(
        self,
        source,
        beta: float = 1e-5,
        output_size: int = 64,
        kl_over_batch: bool = True,
        augment=None,
        **kwargs,
    ):
        super().__init__(source, **kwargs)
        self.augment = image_views(augment, self.name)
        self.beta = checks.number_in(beta, "beta", low=0, who="VAE")
        checks.int_at_least(output_size, 4, "output_size", "VAE")
        if output_size & (output_size - 1):
            raise UserError(
                f"VAE: `output_size` must be a power of two >= 4. Received: {output_size}"
            )
        self.output_size = output_size
        if not isinstance(kl_over_batch, bool):
            raise UserTypeError(
                f"VAE: `kl_over_batch` must be True or False. Received: {kl_over_batch!r}"
            )
        self.kl_over_batch = kl_over_batch

    def get_config(self):
        config = super().get_config()
        config["augment"] = keras.saving.serialize_keras_object(self.augment)
        return config

    def image_augmentation(self):
        return self.augment

    def prepare(self, example, seed):
        image = example["image"]
        target = tf.image.resize(image, [self.output_size] * 2, method="nearest")
        return image, target

    def build_head(self, features, input_size):
        name = self.name
        width = features.shape[-1]
        pooled = keras.layers.GlobalAveragePooling2D(name=f"{name}_pool")(features)
        mean = keras.layers.Dense(width, name=f"{name}_mean")(pooled)
        log_variance = keras.layers.Dense(width, name=f"{name}_log_variance")(pooled)
        z = GaussianSample(seed=self.seed, name=f"{name}_sample")([mean, log_variance])
        x = keras.layers.Reshape((1, 1, width), name=f"{name}_to_map")(z)
        for i, filters in enumerate(decoder_widths(self.output_size)):
            x = keras.layers.Conv2DTranspose(
                filters,
                4,
                strides=2,
                padding="valid" if i == 0 else "same",  # 1 -> 4, then doubling
                name=f"{name}_deconv{i + 1}",
            )(x)
            x = batch_norm(f"{name}_bn{i + 1}")(x)
            x = keras.layers.ReLU(name=f"{name}_relu{i + 1}")(x)
        reconstruction = keras.layers.Conv2D(3, 1, name=f"{name}_out")(x)
        return {"reconstruction": reconstruction, "mean": mean, "log_variance": log_variance}

    def _terms(self, targets, outputs):
        error = tf.square(outputs["reconstruction"] - tf.cast(targets, tf.float32))
        mse = tf.reduce_mean(error, axis=[1, 2, 3])
        return mse, kl_divergence(outputs["mean"], outputs["log_variance"])

    def loss(self, targets, outputs):
        mse, kl = self._terms(targets, outputs)
        weight = self.beta
        if self.kl_over_batch:
            weight *= tf.cast(tf.shape(kl)[0], tf.float32)
        return mse + weight * kl

    def evaluate(self, targets, outputs):
        mse, kl = self._terms(targets, outputs)
        return {"mse": float(tf.reduce_mean(mse)), "kl": float(tf.reduce_mean(kl))}

    def serving_outputs(self, outputs):
        return {"reconstruction": outputs["reconstruction"], "mean": outputs["mean"]}

    def keras_metrics(self):
        return [
            keras.metrics.MeanMetricWrapper(
                lambda y, out: self._terms(y, out)[0], name=f"{self.name}_mse"
            ),
            keras.metrics.MeanMetricWrapper(
                lambda y, out: self._terms(y, out)[1], name=f"{self.name}_kl"
            ),
        ]
