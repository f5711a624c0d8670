"""Contrastive losses (SimCLR, MoCo v2, DenseCL), BYOL's and the measurements that go
with them.

Every embedding is L2-normalised inside the function, so callers pass raw projections.
Each loss returns one value per anchor (per example); the caller averages over the
global batch.

* `info_nce` (MoCo; CompL eq. 2): for a query q with positive key k⁺ and a queue Q of
  negative keys, −log exp(q·k⁺/τ) / (exp(q·k⁺/τ) + Σ_{k∈Q} exp(q·k/τ)).
* `nt_xent` (SimCLR; MGM eq. 6): over 2N views of N images, for each view i with its
  partner j, −log exp(sim(i, j)/τ) / Σ_{k≠i} exp(sim(i, k)/τ), sim the cosine
  similarity; the two ordered pairs of an image are averaged, so the mean over images
  is the mean over all 2N ordered positive pairs.
* `dense_info_nce` (DenseCL): for each query cell, the positive is the key cell whose
  *backbone* feature is most similar (cosine) to the query cell's; negatives come from
  a queue of pooled dense keys; averaged over the cells of an example.
* `byol` (BYOL, Grill et al. 2020, eq. 2 and its symmetric sum): for an image's two
  views, the online predictions p₁, p₂ and the target projections z′₁, z′₂,
  (2 − 2·cos(p₁, z′₂)) + (2 − 2·cos(p₂, z′₁)), the squared distance of the normalised
  vectors over both view orders; no negatives.
"""

import tensorflow as tf


def _unit(x):
    return tf.math.l2_normalize(tf.cast(x, tf.float32), axis=-1)


def info_nce_logits(queries, keys, queue, temperature):
    """[B, 1 + K] logits of `info_nce`, the positive in column 0."""
    q, k = _unit(queries), _unit(keys)
    positive = tf.reduce_sum(q * k, axis=-1, keepdims=True)
    negative = tf.matmul(q, _unit(queue), transpose_b=True)
    return tf.concat([positive, negative], axis=-1) / temperature


def info_nce(queries, keys, queue, temperature=0.2, queue_mask=None):
    """InfoNCE of each query against its key and the queue's negatives.

    Args:
        queries: float [B, D]. Query projections.
        keys: float [B, D]. The positive key of each query.
        queue: float [K, D]. Negative keys (K may be 0: the loss is then 0).
        temperature: float. τ. Defaults to 0.2 (MoCo v2).
        queue_mask: bool [K], [B, K] or None. Which queue rows are negatives (of every
            query, or of each): rows without a key yet (a queue not full) or a memory
            bank's slot of the query's own image; masked rows are left out of the
            denominator. Defaults to all.

    Returns:
        float [B].
    """
    return masked_info_nce(info_nce_logits(queries, keys, queue, temperature), queue_mask)


def masked_info_nce(logits, queue_mask=None):
    """−log softmax of column 0 of [B, 1 + K] logits, the queue columns that
    `queue_mask` ([K], [B, K] or None; as `info_nce`) leaves out excluded."""
    logits = mask_negatives(logits, queue_mask)
    return tf.reduce_logsumexp(logits, axis=-1) - logits[:, 0]


def mask_negatives(logits, queue_mask):
    """[B, 1 + K] logits with the queue columns `queue_mask` leaves out at float32.min."""
    if queue_mask is None:
        return logits
    mask = tf.cast(queue_mask, tf.bool)
    if mask.shape.rank == 1:
        mask = mask[tf.newaxis]
    keep = tf.concat([tf.ones_like(mask[:, :1]), mask], axis=1)
    return tf.where(keep, logits, tf.float32.min)


def nt_xent(first, second, temperature=0.5, first_all=None, second_all=None, offset=0):
    """NT-Xent of N images seen twice.

    With `first_all` / `second_all` (the views of the *global* batch, e.g. gathered
    across replicas) the N local images are anchors against all 2M views; `offset` is
    where the local images start in the global batch.

    Args:
        first: float [N, D]. Projections of the first views.
        second: float [N, D]. Projections of the second views, row i of the same image.
        temperature: float. τ. Defaults to 0.5.
        first_all: float [M, D] or None. Defaults to `first`.
        second_all: float [M, D] or None. Defaults to `second`.
        offset: int or scalar tensor. Row of `first` in `first_all`. Defaults to 0.

    Returns:
        float [N]: the mean of the image's two ordered-pair losses.
    """
    return nt_xent_terms(first, second, temperature, first_all, second_all, offset)[0]


def nt_xent_terms(first, second, temperature=0.5, first_all=None, second_all=None, offset=0):
    """(`nt_xent` [N], the share of an image's two anchors whose partner is their most
    similar other view [N]); arguments as `nt_xent`."""
    if first_all is None:
        first_all, second_all = first, second
    a, b = _unit(first), _unit(second)
    candidates = _unit(tf.concat([first_all, second_all], axis=0))  # [2M, D]
    total = tf.shape(first_all)[0]
    rows = tf.range(tf.shape(a)[0]) + offset
    losses, hits = [], []
    # each anchor: itself left out, its partner the positive
    for anchor, own, partner in ((a, rows, rows + total), (b, rows + total, rows)):
        logits = tf.matmul(anchor, candidates, transpose_b=True) / temperature
        logits = tf.where(tf.one_hot(own, 2 * total, True, False), tf.float32.min, logits)
        positive = tf.gather(logits, partner, axis=1, batch_dims=1)
        losses.append(tf.reduce_logsumexp(logits, axis=-1) - positive)
        best = tf.argmax(logits, axis=-1, output_type=tf.int32)
        hits.append(tf.cast(tf.equal(best, partner), tf.float32))
    return (losses[0] + losses[1]) / 2.0, (hits[0] + hits[1]) / 2.0


def dense_matches(query_features, key_features):
    """For each query cell, the key cell of highest cosine similarity.

    Args:
        query_features: float [B, S, C]. Backbone features of the query view's cells.
        key_features: float [B, S, C]. Backbone features of the key view's cells.

    Returns:
        int32 [B, S].
    """
    similarity = tf.matmul(_unit(query_features), _unit(key_features), transpose_b=True)
    return tf.argmax(similarity, axis=-1, output_type=tf.int32)


def dense_info_nce(
    queries,
    keys,
    query_features,
    key_features,
    queue,
    temperature=0.2,
    queue_mask=None,
):
    """DenseCL's dense term: InfoNCE per query cell with its best-matching key cell.

    Args:
        queries: float [B, S, D]. Dense query projections (S cells).
        keys: float [B, S, D]. Dense key projections.
        query_features: float [B, S, C]. Backbone features of the query cells (matching).
        key_features: float [B, S, C]. Backbone features of the key cells.
        queue: float [K, D]. Negative dense keys (pooled over cells of past keys).
        temperature: float. Defaults to 0.2.
        queue_mask: bool [K], [B, K] or None. As `info_nce` (a row per example:
            every cell of the example uses it).

    Returns:
        float [B]: the mean over the cells of each example.
    """
    match = dense_matches(query_features, key_features)
    positive_keys = tf.gather(keys, match, axis=1, batch_dims=1)  # [B, S, D]
    batch, cells = tf.shape(queries)[0], tf.shape(queries)[1]
    depth = queries.shape[-1]
    flat_q = tf.reshape(queries, [-1, depth])
    flat_k = tf.reshape(positive_keys, [-1, depth])
    if queue_mask is not None:
        queue_mask = tf.cast(queue_mask, tf.bool)
        if queue_mask.shape.rank == 2:
            queue_mask = tf.repeat(queue_mask, cells, axis=0)  # example i's cells: rows S·i ..
    per_cell = info_nce(flat_q, flat_k, queue, temperature, queue_mask)
    return tf.reduce_mean(tf.reshape(per_cell, [batch, cells]), axis=-1)


# -- measurements ---------------------------------------------------------------------


def byol(predictions, targets):
    """BYOL's symmetric loss (module docstring), one value per image.

    Args:
        predictions: [B, 2, D]. The online network's predictions of both views.
        targets: [B, 2, D]. The target network's projections of both views (the caller
            stops their gradient).
    """
    p, z = _unit(predictions), _unit(targets)
    cosines = tf.reduce_sum(p[:, 0] * z[:, 1], -1) + tf.reduce_sum(p[:, 1] * z[:, 0], -1)
    return 4.0 - 2.0 * cosines


def positive_first(logits):
    """1.0 where column 0 (the positive) has the highest logit of its row, else 0.0 [B]."""
    return tf.cast(tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), 0), tf.float32)


def alignment(first, second, alpha=2.0):
    """Wang & Isola (2020) alignment: ‖f(x) − f(y)‖^α of normalised positive pairs [N]."""
    return tf.pow(tf.norm(_unit(first) - _unit(second), axis=-1), alpha)


def uniformity(embeddings, t=2.0):
    """Wang & Isola (2020) uniformity: log E_{i≠j} exp(−t ‖f_i − f_j‖²) (scalar; lower is
    more uniform, −4 for t = 2 is the limit of points spread on a high-dimensional sphere)."""
    z = _unit(embeddings)
    count = tf.shape(z)[0]
    squared = tf.maximum(2.0 - 2.0 * tf.matmul(z, z, transpose_b=True), 0.0)
    off = tf.logical_not(tf.eye(count, dtype=tf.bool))
    values = tf.boolean_mask(-t * squared, off)
    pairs = tf.cast(tf.size(values), tf.float32)
    return tf.reduce_logsumexp(values) - tf.math.log(pairs)
