"""Domain-adversarial losses against numpy."""

import numpy as np
import pytest
import tensorflow as tf

from zoo.losses import bi_fool_loss, discriminator_loss, domain_cross_entropy, fool_loss


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
