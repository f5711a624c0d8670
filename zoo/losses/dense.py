"""Losses of dense prediction tasks (depth, surface normals, contours).

Shapes: predictions and targets are [B, H, W] or [B, H, W, C]; an optional `mask`
[B, H, W] (or [B, H, W, 1]) marks the valid pixels. Each function returns a tensor [B]
with one value per image.
"""

import tensorflow as tf


def _flat(x):
    x = tf.convert_to_tensor(x, tf.float32)
    return tf.reshape(x, [tf.shape(x)[0], -1])


def _prepare(value, mask):
    """Flattens `value` [B, ...] and its mask (broadcast over trailing channels) to [B, N]."""
    value = tf.convert_to_tensor(value, tf.float32)
    if mask is None:
        m = tf.ones_like(value)
    else:
        m = tf.cast(mask, tf.float32)
        while m.shape.rank < value.shape.rank:
            m = m[..., tf.newaxis]
        m = tf.broadcast_to(m, tf.shape(value))
    return _flat(value), _flat(m)


def scale_invariant_log_depth(pred_log_depth, true_log_depth, mask=None):
    """Scale-invariant log-depth loss of Eigen et al., used by Ren & Lee (2018, sec. 3.1).

    L = (1/n) Σᵢ dᵢ² − (1/(2n²)) (Σᵢ dᵢ)²,  d = Q − Q′ (predicted minus true log depth),

    over the n valid pixels of each image.

    Args:
        pred_log_depth: float [B, H, W] or [B, H, W, 1]. Predicted log depth.
        true_log_depth: float, same shape. Log of the true depth.
        mask: bool or float [B, H, W(, 1)] or None. Valid pixels. Defaults to all.

    Returns:
        float [B].
    """
    d, m = _prepare(
        tf.convert_to_tensor(pred_log_depth, tf.float32)
        - tf.convert_to_tensor(true_log_depth, tf.float32),
        mask,
    )
    d = d * m
    n = tf.maximum(tf.reduce_sum(m, axis=1), 1.0)
    return tf.reduce_sum(d * d, axis=1) / n - 0.5 * tf.square(tf.reduce_sum(d, axis=1)) / (n * n)


def negative_cosine_normals(pred, true, mask=None):
    """Negative mean dot product of unit normals (Ren & Lee 2018, sec. 3.1; Eigen & Fergus).

    L = −(1/n) Σᵢ Sᵢ · S′ᵢ, with the predictions S normalised to unit length.

    Args:
        pred: float [B, H, W, 3]. Predicted normals (any length).
        true: float [B, H, W, 3]. Unit ground-truth normals.
        mask: bool or float [B, H, W] or None. Valid pixels. Defaults to all.

    Returns:
        float [B] in [-1, 1].
    """
    pred = tf.math.l2_normalize(tf.convert_to_tensor(pred, tf.float32), axis=-1, epsilon=1e-12)
    dot, m = _prepare(tf.reduce_sum(pred * tf.convert_to_tensor(true, tf.float32), axis=-1), mask)
    return -tf.reduce_sum(dot * m, axis=1) / tf.maximum(tf.reduce_sum(m, axis=1), 1.0)


def class_balanced_sigmoid_ce(logits, labels):
    """Class-balanced sigmoid cross entropy of HED (Xie & Tu 2015), used for contours.

    L = −(1/n) [β Σ_{i ∈ E₊} log σ(xᵢ) + (1 − β) Σ_{j ∈ E₋} log(1 − σ(xⱼ))],
    β = |E₋| / (|E₋| + |E₊|),

    with E₊ the edge and E₋ the non-edge pixels of the image, so the rare edges get the
    large weight β. The sum is divided by the n pixels of the image so that the value
    does not grow with resolution (HED sums; the gradient direction is the same).

    Args:
        logits: float [B, H, W] or [B, H, W, 1].
        labels: {0, 1} tensor of the same shape.

    Returns:
        float [B].
    """
    x = _flat(logits)
    y = _flat(labels)
    n = tf.cast(tf.shape(x)[1], tf.float32)
    positives = tf.reduce_sum(y, axis=1, keepdims=True)
    beta = (n - positives) / n
    # log σ(x) = −softplus(−x); log(1 − σ(x)) = −softplus(x)
    per_pixel = beta * y * tf.nn.softplus(-x) + (1.0 - beta) * (1.0 - y) * tf.nn.softplus(x)
    return tf.reduce_sum(per_pixel, axis=1) / n


def weighted_sigmoid_ce(logits, labels, positive_weight):
    """Sigmoid cross entropy with fixed class weights (CompL's boundaries, w = 0.95):

    L = −(1/n) [w Σ_{i ∈ E₊} log σ(xᵢ) + (1 − w) Σ_{j ∈ E₋} log(1 − σ(xⱼ))],

    averaged over the n pixels of each image (as `class_balanced_sigmoid_ce`, whose β
    is computed per image instead).

    Args:
        logits: float [B, H, W] or [B, H, W, 1].
        labels: {0, 1} tensor of the same shape.
        positive_weight: float in (0, 1). w.

    Returns:
        float [B].
    """
    x, y = _flat(logits), _flat(labels)
    w = float(positive_weight)
    per_pixel = w * y * tf.nn.softplus(-x) + (1.0 - w) * (1.0 - y) * tf.nn.softplus(x)
    return tf.reduce_mean(per_pixel, axis=1)


def berhu(pred, true, mask=None):
    """Reverse Huber loss of Laina et al. (2016), used by Doersch & Zisserman for depth.

    B(e) = |e| if |e| <= c, else (e² + c²) / (2c),  c = 0.2 · max |e| over the batch
    (the valid pixels of all images in it); averaged over each image's valid pixels.

    Args:
        pred: float [B, H, W(, 1)]. Predicted depth.
        true: float, same shape.
        mask: bool or float or None. Valid pixels. Defaults to all.

    Returns:
        float [B].
    """
    e, m = _prepare(
        tf.abs(tf.convert_to_tensor(pred, tf.float32) - tf.cast(true, tf.float32)), mask
    )
    c = tf.maximum(0.2 * tf.reduce_max(e * m), 1e-12)
    value = tf.where(e <= c, e, (e * e + c * c) / (2.0 * c))
    return tf.reduce_sum(value * m, axis=1) / tf.maximum(tf.reduce_sum(m, axis=1), 1.0)


def masked_l1(pred, true, mask=None):
    """Mean absolute error over each image's valid pixels: (1/n) Σᵢ |pᵢ − tᵢ|.

    Args:
        pred: float [B, ...].
        true: float, same shape.
        mask: bool or float [B, ...] or None. Valid pixels, broadcast over channels.

    Returns:
        float [B].
    """
    e, m = _prepare(
        tf.abs(tf.convert_to_tensor(pred, tf.float32) - tf.cast(true, tf.float32)), mask
    )
    return tf.reduce_sum(e * m, axis=1) / tf.maximum(tf.reduce_sum(m, axis=1), 1.0)
