"""Adversarial losses: domain-adversarial ones (Ren & Lee 2018, sec. 3.2) on a patch
discriminator's logits, and the hinge losses of a GAN (SAGAN; MGM 2022) on its scores.

The discriminator D outputs, for every patch of a feature map, the logit of P(the
features come from a synthetic image); labels are 1 for synthetic, 0 for real. Each
function returns one value per example: the binary cross entropy averaged over the
example's patches (the paper sums over images; the zoo averages over the global batch).
"""

import tensorflow as tf


def _patch_mean(per_patch):
    rank = per_patch.shape.rank
    return tf.reduce_mean(per_patch, axis=list(range(1, rank))) if rank > 1 else per_patch


def domain_cross_entropy(logits, synthetic: bool):
    """−log D(z) for `synthetic` (label 1), −log(1 − D(z)) for real (label 0), per example.

    Args:
        logits: [B, ...] patch logits of D.
        synthetic: bool. The label every patch is scored against.

    Returns:
        [B] float32.
    """
    logits = tf.cast(logits, tf.float32)
    labels = tf.ones_like(logits) if synthetic else tf.zeros_like(logits)
    return _patch_mean(tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))


def discriminator_loss(synthetic_logits, real_logits):
    """L_D per example pair: −log D(z_x) − log(1 − D(z_y)) (synthetic 1, real 0).

    Returns:
        ([B_x], [B_y]): the synthetic and the real terms; L_D is the sum of their means.
    """
    return domain_cross_entropy(synthetic_logits, True), domain_cross_entropy(real_logits, False)


def fool_loss(synthetic_logits):
    """The trunk's adversarial term with flipped labels, −log(1 − D(z_x)): synthetic
    features should look real (the non-saturating form of sec. 3.2). [B]."""
    return domain_cross_entropy(synthetic_logits, False)


def bi_fool_loss(real_logits):
    """The bi-fool term −log D(z_y): real features should look synthetic (Tab. 3 row 9). [B]."""
    return domain_cross_entropy(real_logits, True)


def _per_example(scores):
    scores = tf.cast(scores, tf.float32)
    return tf.reshape(scores, [tf.shape(scores)[0]])


def hinge_discriminator_loss(real_scores, fake_scores):
    """The GAN discriminator's hinge loss (SAGAN; MGM eq. of sec. 3.2), per example:
    max(0, 1 − D(x, c)) on real images and max(0, 1 + D(x̃, c)) on generated ones.

    Args:
        real_scores: [B_x] or [B_x, 1]. D's scores of real images.
        fake_scores: [B_g] or [B_g, 1]. D's scores of generated images.

    Returns:
        ([B_x], [B_g]): the two terms; L_D is the sum of their means.
    """
    real, fake = _per_example(real_scores), _per_example(fake_scores)
    return tf.nn.relu(1.0 - real), tf.nn.relu(1.0 + fake)


def hinge_generator_loss(fake_scores):
    """The generator's hinge loss −D(x̃, c), per example. [B]."""
    return -_per_example(fake_scores)
