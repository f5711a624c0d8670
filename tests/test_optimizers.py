"""LARS against a numpy transcription of its update."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.optimizers import LARS, WarmupLinear


def _numpy_lars(weights, grads_per_step, lr, momentum, wd, eta):
    weights = [w.copy() for w in weights]
    velocities = [np.zeros_like(w) for w in weights]
    for grads in grads_per_step:
        for i, (w, g) in enumerate(zip(weights, grads)):
            rate = lr
            if w.ndim > 1:
                g = g + wd * w
                wn, gn = np.linalg.norm(w), np.linalg.norm(g)
                rate = lr * (eta * wn / gn if wn > 0 and gn > 0 else 1.0)
            velocities[i] = momentum * velocities[i] + rate * g
            weights[i] = w - velocities[i]
    return weights


def test_lars_steps_equal_the_numpy_update():
    rng = np.random.default_rng(0)
    start = [rng.normal(size=(3, 4)), rng.normal(size=(4,)), np.zeros((2, 2))]
    grads = [[rng.normal(size=w.shape) for w in start] for _ in range(3)]
    variables = [keras.Variable(w.astype("float32")) for w in start]
    optimizer = LARS(0.5, momentum=0.9, weight_decay=0.01, trust_coefficient=0.02)
    for step in grads:
        optimizer.apply_gradients(
            [(tf.constant(g, tf.float32), v) for g, v in zip(step, variables)]
        )
    expected = _numpy_lars(start, grads, 0.5, 0.9, 0.01, 0.02)
    for v, e in zip(variables, expected):
        np.testing.assert_allclose(v.numpy(), e, rtol=1e-5, atol=1e-6)
    # the zero matrix: ‖w‖ = 0, so the trust ratio is 1 and its first step is plain SGD
    assert np.abs(expected[2]).max() > 0.1


def test_lars_round_trips_and_refuses_bad_arguments():
    optimizer = LARS(0.2, momentum=0.8, weight_decay=1.5e-6, trust_coefficient=1e-3)
    again = LARS.from_config(optimizer.get_config())
    for key in ("momentum", "weight_decay", "trust_coefficient", "learning_rate"):
        assert again.get_config()[key] == pytest.approx(optimizer.get_config()[key]), key
    for kwargs in ({"momentum": 1.0}, {"weight_decay": -1.0}, {"trust_coefficient": 0}):
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            LARS(**kwargs)


def test_lars_under_mirrored_strategy_equals_one_device(mirrored):
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 5)).astype("float32"), rng.normal(size=(8, 2)).astype("float32")
    weights = []
    for strategy in (tf.distribute.get_strategy(), mirrored):
        with strategy.scope():
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)])
            model.compile(LARS(0.5, weight_decay=0.01, trust_coefficient=0.1), loss="mse")
        start = model.get_weights()
        model.fit(x, y, batch_size=8, epochs=3, verbose=0, shuffle=False)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(weights[0][0], start[0])  # it trained


def test_warmup_linear_is_the_codes_schedule_by_hand():
    schedule = WarmupLinear(1e-3, warmup_steps=5, total_steps=15, end=1e-6)
    got = [float(schedule(s)) for s in (0, 1, 5, 10, 15, 40)]
    wanted = [0.0, 2e-4, 1e-3, 1e-3 + (1e-6 - 1e-3) * 0.5, 1e-6, 1e-6]
    np.testing.assert_allclose(got, wanted, rtol=1e-5, atol=1e-12)
    rebuilt = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
    assert rebuilt.get_config() == schedule.get_config()
    with pytest.raises(ValueError, match="total_steps"):
        WarmupLinear(1e-3, warmup_steps=5, total_steps=5)
