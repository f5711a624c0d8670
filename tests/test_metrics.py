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
