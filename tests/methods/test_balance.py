"""LossBalancer against hand computation."""

import numpy as np
import pytest
import tensorflow as tf

from zoo.methods.balance import LossBalancer


def test_static_weights_give_the_weighted_sum_and_log_nothing():
    balancer = LossBalancer(["a", "b"], "static", {"b": 3.0})
    total = balancer.total({"a": tf.constant(2.0), "b": tf.constant(0.5)})
    assert float(total) == pytest.approx(2.0 + 1.5)
    assert balancer.lambdas() == {"a": 1.0, "b": 3.0} and balancer.logs() == {}


def test_grad_norm_fixes_the_weights_from_the_mean_norms_after_its_steps():
    balancer = LossBalancer(["a", "b", "c"], "grad_norm", {"a": 1.0, "b": 2.0, "c": 0.5}, steps=2)
    # the taps' gradients are w_t dL_t/dF: norms of dL_t/dF per step a: 3, 6; b: 1, 1; c: 4, 8
    steps = [
        [tf.constant([3.0, 0.0]), 2.0 * tf.constant([0.0, 1.0]), 0.5 * tf.constant([4.0, 0.0])],
        [tf.constant([0.0, 6.0]), 2.0 * tf.constant([1.0, 0.0]), 0.5 * tf.constant([0.0, 8.0])],
    ]
    balancer.measure(steps[0])
    assert balancer.lambdas() == {"a": 1.0, "b": 2.0, "c": 0.5}  # still measuring
    balancer.measure(steps[1])
    np.testing.assert_allclose(list(balancer.lambdas().values()), [1.0, 9.0 / 2.0, 9.0 / 12.0])
    balancer.measure([g * 10 for g in steps[0]])  # fixed: later steps change nothing
    np.testing.assert_allclose(list(balancer.lambdas().values()), [1.0, 4.5, 0.75])
    total = balancer.total({"a": tf.constant(1.0), "b": tf.constant(2.0), "c": tf.constant(4.0)})
    assert float(total) == pytest.approx(1.0 + 9.0 + 3.0)
    assert sorted(balancer.logs()) == ["lambda_a", "lambda_b", "lambda_c"]


@pytest.mark.parametrize(
    "args, message",
    [
        ((["a"], "equal"), "loss_balance"),
        ((["a"], "static", {"z": 1.0}), "unknown tasks"),
        ((["a"], "static", None, 0), "balance_steps"),
        ((["a"], "static", None, True), "balance_steps"),
        ((["a", "b"], "grad_norm", {"a": 0.0}), "> 0"),
    ],
)
def test_bad_arguments_are_refused_by_name(args, message):
    with pytest.raises(ValueError, match=message):
        LossBalancer(*args)
