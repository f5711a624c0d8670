"""Contrastive losses against numpy written from the formulas."""

import numpy as np
import pytest
import tensorflow as tf

from zoo.losses import contrastive


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _logsumexp(x, axis=-1):
    m = x.max(axis=axis, keepdims=True)
    return (m + np.log(np.exp(x - m).sum(axis=axis, keepdims=True))).squeeze(axis)


def _info_nce(q, k, queue, t):
    q, k, queue = _unit(q), _unit(k), _unit(queue)
    out = []
    for qi, ki in zip(q, k):
        logits = np.concatenate([[qi @ ki], queue @ qi]) / t
        out.append(_logsumexp(logits) - logits[0])
    return np.array(out)


@pytest.mark.parametrize("temperature", [0.07, 0.2, 1.0])
def test_info_nce_matches_numpy(temperature):
    rng = np.random.default_rng(0)
    q, k, queue = rng.normal(size=(5, 8)), rng.normal(size=(5, 8)), rng.normal(size=(11, 8))
    got = contrastive.info_nce(q, k, queue, temperature).numpy()
    np.testing.assert_allclose(got, _info_nce(q, k, queue, temperature), rtol=1e-5, atol=1e-5)


def test_info_nce_edge_cases_of_the_queue():
    rng = np.random.default_rng(1)
    q, k = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    # an empty queue: only the positive in the softmax
    empty = contrastive.info_nce(q, k, np.zeros((0, 6)), 0.2).numpy()
    np.testing.assert_allclose(empty, 0.0, atol=1e-6)
    # masked rows of a part-filled queue are left out, whatever they hold
    queue = rng.normal(size=(6, 6))
    mask = np.array([True, True, False, True, False, False])
    got = contrastive.info_nce(q, k, queue, 0.2, queue_mask=mask).numpy()
    np.testing.assert_allclose(got, _info_nce(q, k, queue[mask], 0.2), rtol=1e-5)
    # a query equal to its key against its opposite, at a tiny temperature (logits of
    # ±100): log(1 + e^-200), finite and 0 in float32
    x = _unit(rng.normal(size=(1, 6)))
    tight = contrastive.info_nce(x, x, -x, 0.01).numpy()
    np.testing.assert_allclose(tight, 0.0, atol=1e-6)
    np.testing.assert_allclose(contrastive.info_nce(x, -x, x, 0.01).numpy(), 200.0, rtol=1e-5)


def _nt_xent(a, b, t):
    """Mean over the two ordered pairs of each image, from the 2N x 2N similarity matrix."""
    z = _unit(np.concatenate([a, b]))
    n = len(a)
    sim = z @ z.T / t
    losses = np.zeros(2 * n)
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        others = np.array([sim[i, m] for m in range(2 * n) if m != i])
        losses[i] = _logsumexp(others) - sim[i, j]
    return (losses[:n] + losses[n:]) / 2


@pytest.mark.parametrize("temperature", [0.1, 0.5])
def test_nt_xent_matches_numpy(temperature):
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    got = contrastive.nt_xent(a, b, temperature).numpy()
    np.testing.assert_allclose(got, _nt_xent(a, b, temperature), rtol=1e-5, atol=1e-5)


def test_nt_xent_of_a_slice_of_the_global_batch_equals_those_rows():
    """Anchors of one replica (rows 3..5) against the gathered views give the global
    batch's losses of those rows: replicas add up to the one-device loss."""
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(6, 4)), rng.normal(size=(6, 4))
    whole = _nt_xent(a, b, 0.5)
    part = contrastive.nt_xent(a[3:], b[3:], 0.5, first_all=a, second_all=b, offset=3).numpy()
    np.testing.assert_allclose(part, whole[3:], rtol=1e-5)


def test_nt_xent_accuracy_counts_partners_ranked_first():
    x = _unit(np.eye(4)[:, :4] + 0.01)
    loss, hits = contrastive.nt_xent_terms(x, x + 0.001, 0.5)
    np.testing.assert_allclose(hits.numpy(), 1.0)
    # the second views shuffled: no partner is the most similar
    _, hits = contrastive.nt_xent_terms(x, x[[1, 2, 3, 0]], 0.5)
    np.testing.assert_allclose(hits.numpy(), 0.0)


def test_dense_info_nce_takes_the_most_similar_key_cell_as_positive():
    rng = np.random.default_rng(4)
    batch, cells, dim, channels = 2, 4, 5, 3
    q = rng.normal(size=(batch, cells, dim))
    k = rng.normal(size=(batch, cells, dim))
    fq = rng.normal(size=(batch, cells, channels))
    fk = rng.normal(size=(batch, cells, channels))
    queue = rng.normal(size=(7, dim))
    got = contrastive.dense_info_nce(q, k, fq, fk, queue, 0.2).numpy()
    expected = []
    for b in range(batch):
        match = np.argmax(_unit(fq[b]) @ _unit(fk[b]).T, axis=1)
        expected.append(_info_nce(q[b], k[b][match], queue, 0.2).mean())
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # the matches themselves
    np.testing.assert_array_equal(
        contrastive.dense_matches(fq, fk).numpy(),
        np.argmax(np.einsum("bsc,btc->bst", _unit(fq), _unit(fk)), axis=-1),
    )


def test_alignment_and_uniformity():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(10, 3))
    np.testing.assert_allclose(contrastive.alignment(a, 2 * a).numpy(), 0.0, atol=1e-6)
    np.testing.assert_allclose(contrastive.alignment(a, -a).numpy(), 4.0, rtol=1e-5)
    z = _unit(a)
    d2 = ((z[:, None] - z[None]) ** 2).sum(-1)
    off = ~np.eye(10, dtype=bool)
    expected = np.log(np.exp(-2 * d2[off]).mean())
    np.testing.assert_allclose(contrastive.uniformity(a).numpy(), expected, rtol=1e-5)
    # all points equal: log E exp(0) = 0, the least uniform
    np.testing.assert_allclose(contrastive.uniformity(np.ones((5, 3))).numpy(), 0.0, atol=1e-6)


def test_positive_first():
    logits = tf.constant([[3.0, 1.0, 2.0], [0.0, 1.0, -1.0]])
    np.testing.assert_array_equal(contrastive.positive_first(logits).numpy(), [1.0, 0.0])
