"""Newell & Deng's two contrastive objectives beside SimCLR / MoCo: AMDIM's global-to-local
NCE (Bachman et al. 2019) and CMC's two-way contrast against a memory bank (Tian et al.
2019), as the authors' code computes them (`princeton-vl/selfstudy`).

Each returns one value per example; a batch-level regulariser is added to every
example's value, so the batch mean is the code's total.
"""

import tensorflow as tf

AMDIM_CLIP = 10.0  # the code's default; its synthetic configs use 30
AMDIM_REGULARISER = 0.05


def tanh_clip(scores, clip):
    """clip · tanh(scores / clip): a soft limit to [−clip, clip] (None: unchanged)."""
    if clip is None:
        return scores
    return clip * tf.tanh(scores / clip)


def global_to_local_nce(sources, targets, clip=AMDIM_CLIP, offset=0):
    """AMDIM's NCE of source vectors predicting the other view's local features.

    Image i's source predicts each location of image i's target map among the
    locations of every other image's map: score(i, j, l) = ⟨s_i, t_{j,l}⟩ / √d, softly
    clipped; each positive (j = i) is contrasted with all (B − 1)·L negatives of its
    source, shared by its L positives.

    Args:
        sources: [B, d] source vectors (global features, or one local vector per image).
        targets: [B, L, d] target features at L locations (a pooled map, flattened).
        clip: float or None. `tanh_clip` of the scores. Defaults to 10.
        offset: int or scalar tensor. The row of `targets` of source 0's image: the
            targets may be a larger batch holding the sources' images at rows offset …
            offset + B − 1 (every replica's, gathered). Defaults to 0.

    Returns:
        ([B] loss: the mean over locations of −log softmax of the positive, [] the mean
        squared raw score, before clipping, that AMDIM regularises).
    """
    sources, targets = tf.convert_to_tensor(sources), tf.convert_to_tensor(targets)
    depth = tf.cast(tf.shape(sources)[-1], sources.dtype)
    raw = tf.einsum("id,jld->ijl", sources, targets) / tf.sqrt(depth)  # [B, B, L]
    squared = tf.reduce_mean(tf.square(raw))
    scores = tanh_clip(raw, clip)
    batch = tf.shape(scores)[0]
    mine = tf.range(batch) + tf.cast(offset, tf.int32)
    own = tf.one_hot(mine, tf.shape(scores)[1], on_value=True, off_value=False)  # [B, N]
    positives = tf.gather(scores, mine, axis=1, batch_dims=1)  # [B, L]
    negatives = tf.where(own[:, :, tf.newaxis], tf.cast(-1e9, scores.dtype), scores)
    negatives = tf.reshape(negatives, [batch, -1])  # [B, N·L]
    negative_mass = tf.reduce_logsumexp(negatives, axis=-1, keepdims=True)  # [B, 1]
    log_softmax = positives - tf.reduce_logsumexp(
        tf.stack([positives, tf.broadcast_to(negative_mass, tf.shape(positives))]), axis=0
    )
    return -tf.reduce_mean(log_softmax, axis=-1), squared


def amdim_loss(views, locations, clip=AMDIM_CLIP, regulariser=AMDIM_REGULARISER, gather=None):
    """AMDIM's objective on two views (the code's `LossMultiNCE`), per example.

    Args:
        views: a pair of dicts, one per view, each with "global" [B, d] (the global
            features), "local_5" [B, 5, 5, d] and "local_7" [B, 7, 7, d] (the two
            intermediate maps after their 1x1 convolutions and average pooling).
        locations: [B, 2] ints: the 5x5 location of each image whose vector is the
            source of the 5 -> 5 prediction (one random place per image in the code).
        clip: float. Defaults to 10.
        regulariser: float. Weight of the mean squared raw score. Defaults to 0.05.
        gather: callable or None. `gather(maps)` -> (the target maps [N, L, d] of a
            larger batch that holds these images, the row of this batch's first):
            under `tf.distribute`, every replica's maps gathered, so that each image is
            contrasted with the whole global batch as on one device. Defaults to None
            (this batch only).

    Returns:
        [B]: ½ Σ over both directions of the 1 -> 5, 1 -> 7 and 5 -> 5 NCE losses, plus
        the regulariser (½ Σ of the six mean squared scores) added to every example.
    """
    first, second = views
    index = tf.cast(locations, tf.int32)

    def flat(maps):
        return tf.reshape(maps, [tf.shape(maps)[0], -1, maps.shape[-1]])

    def at_location(maps):
        return tf.gather_nd(maps, index, batch_dims=1)  # [B, d]

    gather = gather or (lambda maps: (maps, 0))
    total, squares = 0.0, 0.0
    for source, target in ((first, second), (second, first)):
        pairs = (
            (source["global"], gather(flat(target["local_5"]))),
            (source["global"], gather(flat(target["local_7"]))),
            (at_location(source["local_5"]), gather(flat(target["local_5"]))),
        )
        for vectors, (maps, offset) in pairs:
            loss, squared = global_to_local_nce(vectors, maps, clip, offset)
            total += 0.5 * loss
            squares += 0.5 * squared
    return total + regulariser * squares


def bank_logits(embeddings, bank, indices, negatives, temperature):
    """CMC's scores of each embedding against its own bank entry and K others.

    Args:
        embeddings: [B, d] L2-normalised embeddings of one view.
        bank: [N, d] the memory bank of the other view (one entry per training image).
        indices: [B] each image's entry in the bank (its positive).
        negatives: [B, K] entries drawn as negatives (uniformly with replacement).
        temperature: float.

    Returns:
        [B, 1 + K] logits: the positive in column 0 (the code's layout).
    """
    rows = tf.concat([tf.reshape(indices, [-1, 1]), negatives], axis=1)
    entries = tf.gather(bank, tf.cast(rows, tf.int32))  # [B, 1 + K, d]
    return tf.einsum("bd,bkd->bk", embeddings, entries) / temperature


def cmc_loss(l_embeddings, ab_embeddings, l_bank, ab_bank, indices, negatives, temperature=0.1):
    """CMC's two-way loss per example: L's embedding against ab's bank plus ab's against
    L's, each a softmax cross entropy with the positive at column 0 (K negatives drawn
    once per image, shared by both directions as in the code)."""
    to_ab = bank_logits(l_embeddings, ab_bank, indices, negatives, temperature)
    to_l = bank_logits(ab_embeddings, l_bank, indices, negatives, temperature)
    return -tf.nn.log_softmax(to_ab)[:, 0] - tf.nn.log_softmax(to_l)[:, 0]


def bank_update(bank, indices, embeddings, momentum):
    """The bank's new entries at `indices`: m · old + (1 − m) · new, L2-normalised (the
    code's update). Returns the [B, d] rows to write."""
    old = tf.gather(bank, tf.cast(indices, tf.int32))
    return tf.math.l2_normalize(momentum * old + (1.0 - momentum) * embeddings, axis=-1)
