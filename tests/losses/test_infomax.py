"""AMDIM's global-to-local NCE and CMC's bank contrast against numpy written from the
authors' code (princeton-vl/selfstudy, tasks/amdim.py and models/cmc.py)."""

import numpy as np
import pytest

from zoo.losses.infomax import (
    amdim_loss,
    bank_logits,
    bank_update,
    cmc_loss,
    global_to_local_nce,
    tanh_clip,
)


def _nce_numpy(src, trg, clip):
    """The code's _model_scores: masked sums, the negatives' max shift, log-sum-exp."""
    b, locations, d = trg.shape
    raw = np.einsum("id,jld->ijl", src, trg) / np.sqrt(d)
    squared = (raw**2).mean()
    raw = clip * np.tanh(raw / clip)
    mask_pos = np.eye(b)[:, :, None] * np.ones((1, 1, locations))
    mask_neg = 1 - mask_pos
    pos = (mask_pos * raw).sum(1)  # [B, L]
    neg = (mask_neg * raw - clip * mask_pos).reshape(b, -1)
    neg_max = neg.max(1, keepdims=True)
    neg_sumexp = (mask_neg.reshape(b, -1) * np.exp(neg - neg_max)).sum(1, keepdims=True)
    nce = pos - neg_max - np.log(np.exp(pos - neg_max) + neg_sumexp)
    return -nce.mean(1), squared


def test_global_to_local_nce_and_its_clipping_match_the_code():
    rng = np.random.default_rng(0)
    src, trg = rng.normal(size=(4, 6)) * 3, rng.normal(size=(4, 5, 6)) * 3
    for clip in (10.0, 2.0):  # 2: the clipping matters
        loss, squared = global_to_local_nce(src.astype("float32"), trg.astype("float32"), clip)
        want, want_squared = _nce_numpy(src, trg, clip)
        np.testing.assert_allclose(loss.numpy(), want, rtol=1e-4)
        assert float(squared) == pytest.approx(want_squared, rel=1e-5)
    np.testing.assert_allclose(
        tanh_clip(np.float32([100.0, 0.5]), 10.0), [9.99909, 0.49958], rtol=1e-4
    )


def test_amdim_loss_is_half_the_six_directions_plus_the_regulariser():
    rng = np.random.default_rng(1)
    b, d = 3, 4
    views = [
        {
            "global": rng.normal(size=(b, d)).astype("float32"),
            "local_5": rng.normal(size=(b, 5, 5, d)).astype("float32"),
            "local_7": rng.normal(size=(b, 7, 7, d)).astype("float32"),
        }
        for _ in range(2)
    ]
    where = np.array([[0, 4], [2, 2], [4, 1]])
    got = amdim_loss(views, where, clip=30.0).numpy()
    total, regulariser = np.zeros(b), 0.0
    for s, t in ((views[0], views[1]), (views[1], views[0])):
        local = s["local_5"][np.arange(b), where[:, 0], where[:, 1]]
        for src, trg in (
            (s["global"], t["local_5"].reshape(b, 25, d)),
            (s["global"], t["local_7"].reshape(b, 49, d)),
            (local, t["local_5"].reshape(b, 25, d)),
        ):
            loss, squared = _nce_numpy(src.astype("float64"), trg.astype("float64"), 30.0)
            total += 0.5 * loss
            regulariser += 0.5 * squared
    np.testing.assert_allclose(got, total + 0.05 * regulariser, rtol=1e-4)


def test_cmc_contrasts_each_view_with_the_other_views_bank_both_ways():
    rng = np.random.default_rng(2)

    def unit(x):
        return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype("float32")

    l_emb, ab_emb = unit(rng.normal(size=(3, 5))), unit(rng.normal(size=(3, 5)))
    l_bank, ab_bank = unit(rng.normal(size=(10, 5))), unit(rng.normal(size=(10, 5)))
    indices = np.array([7, 0, 3])
    negatives = rng.integers(0, 10, (3, 4))  # with replacement
    t = 0.1

    def ce(emb, bank):
        rows = np.concatenate([indices[:, None], negatives], 1)
        logits = np.einsum("bd,bkd->bk", emb, bank[rows]) / t
        assert logits.shape == (3, 5)
        logits = logits - logits.max(1, keepdims=True)
        return -(logits[:, 0] - np.log(np.exp(logits).sum(1)))

    got = cmc_loss(l_emb, ab_emb, l_bank, ab_bank, indices, negatives, t).numpy()
    np.testing.assert_allclose(got, ce(l_emb, ab_bank) + ce(ab_emb, l_bank), rtol=1e-5)
    logits = bank_logits(l_emb, ab_bank, indices, negatives, t).numpy()
    np.testing.assert_allclose(logits[:, 0], (l_emb * ab_bank[indices]).sum(1) / t, rtol=1e-5)

    rows = bank_update(l_bank, indices, l_emb, momentum=0.2).numpy()
    mixed = 0.2 * l_bank[indices] + 0.8 * l_emb
    np.testing.assert_allclose(rows, unit(mixed), rtol=1e-5)
