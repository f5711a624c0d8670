import numpy as np
import pytest

from zoo import metrics


def test_depth_metrics_by_hand():
    true = np.array([1.0, 2.0, 4.0, 8.0])
    pred = np.array([1.2, 3.0, 7.6, 20.0])  # ratios 1.2, 1.5, 1.9, 2.5
    m = metrics.depth_metrics(pred, true)
    assert m["delta1"] == 0.25  # below 1.25: 1.2
    assert m["delta2"] == 0.5  # below 1.5625: 1.2, 1.5
    assert m["delta3"] == 0.75  # below 1.953: 1.2, 1.5, 1.9
    errors = pred - true
    assert m["abs_rel"] == pytest.approx(np.mean(np.abs(errors) / true))
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean(errors**2)))
    assert m["mae"] == pytest.approx(np.mean(np.abs(errors)))
    masked = metrics.depth_metrics(pred, true, mask=[True, False, True, False])
    assert masked["delta1"] == 0.5 and masked["mae"] == pytest.approx(1.9)


def test_normal_metrics_by_hand():
    true = np.array([[0, 0, 1.0]] * 4)
    angles = np.radians([0.0, 10.0, 20.0, 45.0])
    pred = np.stack([np.sin(angles), np.zeros(4), np.cos(angles)], axis=-1) * 5.0
    m = metrics.normal_metrics(pred, true)
    assert m["mean_angle"] == pytest.approx(18.75)
    assert m["median_angle"] == pytest.approx(15.0)
    assert m["within_11_25"] == 0.5 and m["within_22_5"] == 0.75 and m["within_30"] == 0.75


def test_segmentation_metrics_by_hand():
    true = np.array([0, 0, 1, 1, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0])
    m = metrics.segmentation_metrics(pred, true, num_classes=4)
    # IoU: class 0: 1/3, class 1: 2/3, class 2: 1/2; class 3 absent
    assert m["miou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)
    assert m["pixel_accuracy"] == pytest.approx(4 / 6)


def test_contour_fscores_by_hand():
    true = np.array([1, 1, 0, 0, 0, 1])
    prob = np.array([0.9, 0.4, 0.6, 0.1, 0.2, 0.3])
    # at 0.5: predicted {0, 2}: tp 1, precision 1/2, recall 1/3 -> F = 0.4
    assert metrics.contour_fscore(prob, true) == pytest.approx(0.4)
    best, threshold = metrics.ods_fscore(prob, true, thresholds=[0.25, 0.5, 0.95])
    # at 0.25: predicted {0, 1, 2, 5}: tp 3, P 3/4, R 1 -> F = 6/7
    assert best == pytest.approx(6 / 7) and threshold == 0.25


def test_accuracy():
    assert metrics.accuracy(np.array([[0.1, 0.9], [2.0, 1.0], [0.0, 1.0]]), [1, 0, 0]) == (
        pytest.approx(2 / 3)
    )
    assert metrics.accuracy([1, 2, 3], [1, 2, 0]) == pytest.approx(2 / 3)


def test_frechet_distance_against_scipy_and_closed_forms():
    import scipy.linalg

    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 6)) @ rng.normal(size=(6, 6))
    b = rng.normal(1.0, 2.0, size=(300, 6)) @ rng.normal(size=(6, 6))
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    want = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(cov_a + cov_b - 2 * root)
    assert metrics.frechet_distance(a, b) == pytest.approx(want, rel=1e-6)
    assert metrics.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    # a shift by d moves only the mean term: |d|^2
    assert metrics.frechet_distance(a, a + 3.0) == pytest.approx(6 * 9.0, rel=1e-6)
    # N(0, I) against N(0, 4 I) in D dimensions: D (1 + 4 - 2 * 2) = D, up to sampling
    wide = rng.normal(size=(20000, 3))
    assert metrics.frechet_distance(wide, 2 * wide) == pytest.approx(3.0, rel=0.05)
    with pytest.raises(
        ValueError, match=r"one width D and N >= 2. Received shapes \(4, 6\) and \(4, 5\)"
    ):
        metrics.frechet_distance(a[:4], a[:4, :5])
