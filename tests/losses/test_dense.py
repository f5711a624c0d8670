import numpy as np
import pytest

from zoo import losses


def _rng(seed=0):
    return np.random.default_rng(seed)


def test_scale_invariant_log_depth_matches_numpy():
    rng = _rng()
    pred, true = rng.normal(size=(3, 5, 6, 1)), rng.normal(size=(3, 5, 6, 1))
    mask = rng.random((3, 5, 6)) > 0.3
    got = losses.scale_invariant_log_depth(pred, true, mask).numpy()
    for b in range(3):
        d = (pred[b, ..., 0] - true[b, ..., 0])[mask[b]]
        n = d.size
        expected = (d**2).sum() / n - (d.sum() ** 2) / (2 * n**2)
        assert got[b] == pytest.approx(expected, rel=1e-5)


def test_scale_invariant_ignores_a_global_scale():
    rng = _rng(1)
    true = rng.normal(size=(2, 4, 4))
    shifted = true + np.log(3.0)  # depth multiplied by 3
    loss = losses.scale_invariant_log_depth(shifted, true).numpy()
    np.testing.assert_allclose(loss, (np.log(3.0) ** 2) / 2, rtol=1e-5)


def test_negative_cosine_normals_matches_numpy():
    rng = _rng(2)
    pred = rng.normal(size=(2, 4, 5, 3)) * 3.0
    true = rng.normal(size=(2, 4, 5, 3))
    true /= np.linalg.norm(true, axis=-1, keepdims=True)
    mask = rng.random((2, 4, 5)) > 0.5
    got = losses.negative_cosine_normals(pred, true, mask).numpy()
    unit = pred / np.linalg.norm(pred, axis=-1, keepdims=True)
    for b in range(2):
        dots = (unit[b] * true[b]).sum(-1)[mask[b]]
        assert got[b] == pytest.approx(-dots.mean(), rel=1e-5)
    assert losses.negative_cosine_normals(true, true).numpy() == pytest.approx([-1, -1])


def test_class_balanced_sigmoid_ce_matches_numpy():
    rng = _rng(3)
    logits = rng.normal(size=(2, 6, 6, 1)) * 2
    labels = (rng.random((2, 6, 6, 1)) > 0.8).astype("float32")
    got = losses.class_balanced_sigmoid_ce(logits, labels).numpy()
    for b in range(2):
        x, y = logits[b].ravel(), labels[b].ravel()
        p = 1 / (1 + np.exp(-x))
        beta = (y == 0).sum() / y.size
        total = -beta * np.log(p[y == 1]).sum() - (1 - beta) * np.log(1 - p[y == 0]).sum()
        assert got[b] == pytest.approx(total / y.size, rel=1e-5)


def test_berhu_matches_numpy():
    rng = _rng(4)
    pred, true = rng.random((2, 5, 5)) * 4, rng.random((2, 5, 5)) * 4
    got = losses.berhu(pred, true).numpy()
    e = np.abs(pred - true)
    c = 0.2 * e.max()
    value = np.where(e <= c, e, (e**2 + c**2) / (2 * c))
    np.testing.assert_allclose(got, value.reshape(2, -1).mean(1), rtol=1e-5)


def test_masked_l1_matches_numpy_and_broadcasts_mask_over_channels():
    rng = _rng(5)
    pred, true = rng.normal(size=(2, 3, 3, 3)), rng.normal(size=(2, 3, 3, 3))
    mask = rng.random((2, 3, 3)) > 0.4
    got = losses.masked_l1(pred, true, mask).numpy()
    for b in range(2):
        assert got[b] == pytest.approx(np.abs(pred[b] - true[b])[mask[b]].mean(), rel=1e-5)
