"""The VAE task (Newell & Deng 2020, the authors' code): the decoder's shapes, the loss
against numpy, the sample's gradients, and learning a repeated batch."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_trunk
from PIL import Image

from zoo.data.harmonize import lab
from zoo.data.synthetic import SceneSpec
from zoo.errors import UserError
from zoo.evaluation.plots import as_rgb, plot_run_pretext
from zoo.layers import GaussianSample
from zoo.methods import MultiTask
from zoo.tasks import VAE
from zoo.tasks.vae import decoder_widths

SINGLE = SceneSpec(variant="----", mode="single", resolution=32)


def _head(task, width=8):
    features = keras.Input((4, 4, width))
    return keras.Model(features, task.build_head(features, 32))


def test_decoder_is_the_codes_and_reconstructs_at_its_own_size():
    assert decoder_widths(64) == [256, 256, 256, 128, 64]
    task = VAE(SINGLE, num_examples=4, eval_examples=4)  # 64 px output of 32 px inputs
    outputs = _head(task)(np.zeros((2, 4, 4, 8), "float32"))
    assert tuple(outputs["reconstruction"].shape) == (2, 64, 64, 3)
    assert tuple(outputs["mean"].shape) == tuple(outputs["log_variance"].shape) == (2, 8)
    image, target = task.prepare({"image": tf.random.uniform((32, 32, 3))}, tf.constant([0, 1]))
    np.testing.assert_array_equal(target.numpy()[::2, ::2], image.numpy())  # nearest x2
    with pytest.raises(UserError, match="power of two"):
        VAE(SINGLE, output_size=48)


def test_loss_is_mean_squared_error_plus_beta_kl_summed_as_the_code_does():
    rng = np.random.default_rng(0)
    target = rng.random((3, 8, 8, 3)).astype("float32")
    outputs = {
        "reconstruction": rng.random((3, 8, 8, 3)).astype("float32"),
        "mean": rng.normal(size=(3, 5)).astype("float32"),
        "log_variance": rng.normal(size=(3, 5)).astype("float32"),
    }
    mu, log_var = outputs["mean"].astype("float64"), outputs["log_variance"].astype("float64")
    mse = ((outputs["reconstruction"] - target) ** 2).mean(axis=(1, 2, 3))
    kl = -0.5 * (1 + log_var - mu**2 - np.exp(log_var)).sum(axis=1)
    beta = 0.01
    per_image = VAE(SINGLE, beta=beta, kl_over_batch=False).loss(target, outputs).numpy()
    np.testing.assert_allclose(per_image, mse + beta * kl, rtol=1e-5)
    code = VAE(SINGLE, beta=beta).loss(target, outputs).numpy()
    # the code's batch loss: MSE over everything + β · KL summed over the batch
    np.testing.assert_allclose(code.mean(), mse.mean() + beta * kl.sum(), rtol=1e-5)
    metrics = VAE(SINGLE).evaluate(target, outputs)
    assert metrics["mse"] == pytest.approx(mse.mean(), rel=1e-5)
    assert metrics["kl"] == pytest.approx(kl.mean(), rel=1e-5)


def test_the_sample_is_the_mean_in_inference_and_reparameterised_in_training():
    layer = GaussianSample(seed=0)
    mean = tf.fill([4096, 2], 3.0)
    log_variance = tf.math.log(tf.fill([4096, 2], 0.25))  # σ = 0.5
    np.testing.assert_array_equal(layer([mean, log_variance], training=False), mean)
    with tf.GradientTape() as tape:
        tape.watch([mean, log_variance])
        z = layer([mean, log_variance], training=True)
        total = tf.reduce_sum(z)
    assert abs(float(tf.reduce_mean(z)) - 3.0) < 0.03
    assert abs(float(tf.math.reduce_std(z)) - 0.5) < 0.02
    d_mean, d_log_variance = tape.gradient(total, [mean, log_variance])
    np.testing.assert_allclose(d_mean, 1.0)
    np.testing.assert_allclose(d_log_variance, 0.5 * (z - mean), rtol=1e-5, atol=1e-6)
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert again.seed == 0


def test_a_repeated_batch_is_learnt_and_drawn(tmp_path):
    task = VAE(SINGLE, harmonizer="lab", output_size=32, num_examples=8, eval_examples=8)
    keras.utils.set_random_seed(0)
    model = MultiTask(tiny_trunk(), [task], input_size=32)
    model.compile(keras.optimizers.Adam(3e-3))
    batch = tf.data.Dataset.from_tensors(next(iter(model.datasets(8))))
    before = model.evaluate(batch, verbose=0, return_dict=True)["vae_mse"]
    model.fit(batch.repeat(), steps_per_epoch=60, epochs=1, verbose=0)
    after = model.evaluate(batch, verbose=0, return_dict=True)["vae_mse"]
    assert after < 0.5 * before  # measured: 0.078 -> 0.023 (Lab inputs)
    # zoo-visualize pretext: held-out images next to their reconstructions, in RGB
    (path,) = plot_run_pretext(model, str(tmp_path), num=3)
    assert path.endswith("vae.png") and Image.open(path).size[1] > 300
    images = np.random.default_rng(0).random((2, 4, 4, 3)).astype("float32")
    np.testing.assert_allclose(as_rgb(lab(images), "lab"), images, atol=1e-4)
