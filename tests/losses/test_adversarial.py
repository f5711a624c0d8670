"""Domain-adversarial losses against numpy."""

import numpy as np
import pytest
import tensorflow as tf

from zoo.losses import (
    bi_fool_loss,
    discriminator_loss,
    domain_cross_entropy,
    fool_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
)


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


LOGITS_SYN = np.array([[[[2.0], [-1.0]], [[0.5], [0.0]]], [[[-3.0], [1.0]], [[4.0], [-0.5]]]])
LOGITS_REAL = np.array([[[[-2.0], [0.3]], [[1.5], [-4.0]]]])


def test_discriminator_loss_is_bce_synthetic_one_real_zero():
    syn, real = discriminator_loss(tf.constant(LOGITS_SYN), tf.constant(LOGITS_REAL))
    p_syn, p_real = _sigmoid(LOGITS_SYN), _sigmoid(LOGITS_REAL)
    np.testing.assert_allclose(syn.numpy(), -np.log(p_syn).mean(axis=(1, 2, 3)), rtol=1e-6)
    np.testing.assert_allclose(real.numpy(), -np.log(1 - p_real).mean(axis=(1, 2, 3)), rtol=1e-6)
    assert syn.shape == (2,) and real.shape == (1,)


def test_fool_losses_flip_the_labels():
    p_syn, p_real = _sigmoid(LOGITS_SYN), _sigmoid(LOGITS_REAL)
    # the trunk wants D(z_x) -> 0 ("real"): -log(1 - D(z_x))
    np.testing.assert_allclose(
        fool_loss(tf.constant(LOGITS_SYN)).numpy(),
        -np.log(1 - p_syn).mean(axis=(1, 2, 3)),
        rtol=1e-6,
    )
    # bi-fool: real features should look synthetic, -log D(z_y)
    np.testing.assert_allclose(
        bi_fool_loss(tf.constant(LOGITS_REAL)).numpy(),
        -np.log(p_real).mean(axis=(1, 2, 3)),
        rtol=1e-6,
    )
    # a discriminator sure of the truth: D's loss ~0, the fooling loss large
    sure = tf.constant([[[[20.0]]]])
    assert float(domain_cross_entropy(sure, True)[0]) == pytest.approx(0.0, abs=1e-6)
    assert float(fool_loss(sure)[0]) == pytest.approx(20.0, rel=1e-4)


def test_hinge_losses_against_numpy():
    real = np.array([[1.7], [0.2], [-0.4], [1.0]], np.float32)
    fake = np.array([-2.0, -0.3, 0.8], np.float32)
    d_real, d_fake = hinge_discriminator_loss(tf.constant(real), tf.constant(fake))
    np.testing.assert_allclose(d_real.numpy(), np.maximum(0, 1 - real[:, 0]))  # 0, .8, 1.4, 0
    np.testing.assert_allclose(d_fake.numpy(), np.maximum(0, 1 + fake))  # 0, .7, 1.8
    assert d_real.numpy().tolist() == pytest.approx([0.0, 0.8, 1.4, 0.0])
    np.testing.assert_allclose(hinge_generator_loss(tf.constant(fake)).numpy(), -fake)
    # the generator's gradient is -1 per example whatever the score: hinge only clips D's
    with tf.GradientTape() as tape:
        scores = tf.constant(fake)
        tape.watch(scores)
        loss = tf.reduce_sum(hinge_generator_loss(scores))
    np.testing.assert_array_equal(tape.gradient(loss, scores).numpy(), [-1.0, -1.0, -1.0])
