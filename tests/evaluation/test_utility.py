import numpy as np
import pytest

from zoo.evaluation.utility import utility

SCRATCH_N = [100, 500, 1000, 5000]
SCRATCH_ACC = [0.5, 0.7, 0.8, 0.85]


def test_paper_worked_example():
    # reached at 100 labels by finetuning, at 500 from scratch: U(100) = 500/100 - 1 = 4
    assert utility(SCRATCH_N, SCRATCH_ACC, 100, 0.7) == (pytest.approx(4.0), "")


def test_interpolation_is_linear_in_log_n():
    value, _ = utility(SCRATCH_N, SCRATCH_ACC, 100, 0.6)  # halfway from 0.5 to 0.7
    assert value == pytest.approx(np.sqrt(100 * 500) / 100 - 1)
    values, reasons = utility(SCRATCH_N, SCRATCH_ACC, [500, 1000], [0.8, 0.85])
    np.testing.assert_allclose(values, [1000 / 500 - 1, 5000 / 1000 - 1])
    assert reasons == ["", ""]


def test_better_than_best_scratch_is_undefined_with_a_reason():
    values, reasons = utility(SCRATCH_N, SCRATCH_ACC, [1000, 5000], [0.9, 0.85])
    assert np.isnan(values[0]) and values[1] == pytest.approx(0.0)
    assert "better than the best scratch value 0.85" in reasons[0] and reasons[1] == ""


def test_worse_than_scratch_at_the_fewest_labels():
    value, reason = utility(SCRATCH_N, SCRATCH_ACC, 100, 0.4)
    assert np.isnan(value) and "below the curve's range" in reason


def test_lower_is_better_metrics():
    rmse = [2.0, 1.5, 1.0, 0.9]
    assert utility(SCRATCH_N, rmse, 100, 1.5, higher_is_better=False)[0] == pytest.approx(4.0)
    value, reason = utility(SCRATCH_N, rmse, 100, 0.5, higher_is_better=False)
    assert np.isnan(value) and "better than the best scratch value 0.9" in reason


def test_curve_is_made_monotone_and_order_does_not_matter():
    n = [1000, 100, 500, 250]
    acc = [0.8, 0.5, 0.7, 0.72]  # 500 labels did worse than 250: running best is 0.72
    value, _ = utility(n, acc, 100, 0.72)
    assert value == pytest.approx(250 / 100 - 1)  # the first count that reaches 0.72
    value, _ = utility(n, acc, 100, 0.76)  # between the running best 0.72 (500) and 0.8 (1000)
    assert value == pytest.approx(np.exp(np.log(500) + 0.5 * np.log(2)) / 100 - 1)


def test_bad_curves():
    with pytest.raises(ValueError, match="at least two"):
        utility([100], [0.5], 100, 0.5)
    with pytest.raises(ValueError, match="> 0"):
        utility(SCRATCH_N, SCRATCH_ACC, 0, 0.5)
