"""Domain-adversarial losses (Ren & Lee 2018, sec. 3.2) on a patch discriminator's logits.

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
