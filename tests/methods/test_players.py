"""Alternating players (Algorithm-1 style) on a toy two-player method (tests/helpers.py)."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import TwoPlayers

from zoo.methods import Phase

LR = 0.1


def _data(n=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 3)).astype("float32"), rng.normal(size=(n, 1)).astype("float32")


def _method(strategy=None, d_steps=2):
    with (strategy or tf.distribute.get_strategy()).scope():
        keras.utils.set_random_seed(0)
        method = TwoPlayers(d_steps=d_steps)
        method.compile(keras.optimizers.SGD(LR))
    return method


def _values(variables):
    return [v.numpy().copy() for v in variables]


def test_each_phase_changes_only_its_players_variables():
    method = _method()
    x, y = _data()
    for player, other, loss in (("g", "d", method.g_loss), ("d", "g", method.d_loss)):
        mine, theirs = _values(method.variables_of(player)), _values(method.variables_of(other))
        method.alternate((x, y), [Phase(player, loss)])
        assert all(not np.allclose(a, v.numpy()) for a, v in zip(mine, method.variables_of(player)))
        for a, v in zip(theirs, method.variables_of(other)):
            np.testing.assert_array_equal(a, v.numpy())


def test_steps_equal_a_hand_written_loop():
    method = _method(d_steps=2)
    x, y = _data()
    g_kernel, g_bias, d_kernel, d_bias = (v.numpy().astype("float64") for v in method.weights[:4])

    def forward(gk, gb, dk, db):
        return (x @ gk + gb) @ dk + db

    for _ in range(3):
        # g: d(g(x)) towards y, d fixed. L = mean_i (out_i - y_i)^2
        hidden = x @ g_kernel + g_bias
        err = forward(g_kernel, g_bias, d_kernel, d_bias) - y  # [B, 1]
        grad_hidden = 2 * err @ d_kernel.T / len(x)
        g_kernel, g_bias = g_kernel - LR * x.T @ grad_hidden, g_bias - LR * grad_hidden.sum(0)
        # d, twice: d(stop(g(x))) towards 2y, g fixed
        hidden = x @ g_kernel + g_bias
        for _ in range(2):
            err = hidden @ d_kernel + d_bias - 2 * y
            grad = 2 * err / len(x)
            d_kernel, d_bias = d_kernel - LR * hidden.T @ grad, d_bias - LR * grad.sum(0)
        method.train_step((tf.constant(x), tf.constant(y)))
    for expected, variable in zip((g_kernel, g_bias, d_kernel, d_bias), method.weights[:4]):
        np.testing.assert_allclose(variable.numpy(), expected, atol=1e-6)
    assert int(method.player_optimizers["g"].iterations) == 3
    assert int(method.player_optimizers["d"].iterations) == 6


def test_mirrored_strategy_equals_one_device(mirrored):
    x, y = _data(n=8, seed=1)
    data = tf.data.Dataset.from_tensors((x, y)).repeat(3)
    runs = {}
    for name, strategy in (("one", tf.distribute.get_strategy()), ("mirrored", mirrored)):
        method = _method(strategy)
        history = method.fit(data, epochs=1, verbose=0).history
        runs[name] = (history, _values(method.weights))
    assert mirrored.num_replicas_in_sync == 2
    for a, b in zip(runs["one"][1], runs["mirrored"][1]):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for key in ("g_loss", "d_loss"):
        assert runs["mirrored"][0][key][0] == pytest.approx(runs["one"][0][key][0], rel=1e-4)
    assert not np.allclose(runs["one"][1][0], _method().weights[0].numpy())  # it trained


def test_players_must_own_disjoint_variables_and_optimizers_cover_them():
    class Overlapping(TwoPlayers):
        def variables_of(self, player):
            return self.g.trainable_variables + (
                self.d.trainable_variables if player == "d" else []
            )

    with pytest.raises(ValueError, match="belongs to players 'g' and 'd'"):
        Overlapping().compile(keras.optimizers.SGD(LR))
    with pytest.raises(ValueError, match=r"unknown \['e'\]"):
        TwoPlayers().compile(
            {"g": keras.optimizers.SGD(), "d": keras.optimizers.SGD(), "e": keras.optimizers.SGD()}
        )
    method = _method()
    with pytest.raises(ValueError, match="phase player 'z'"):
        method.alternate(_data(), [Phase("z", method.g_loss)])


def test_train_step_runs_in_a_custom_distributed_loop(mirrored):
    """What multi-worker training needs (no `fit`): strategy.run of the same train_step."""
    x, y = _data(n=8, seed=2)
    reference = _method()
    reference.fit(tf.data.Dataset.from_tensors((x, y)).repeat(2), epochs=1, verbose=0)
    method = _method(mirrored)
    data = mirrored.experimental_distribute_dataset(tf.data.Dataset.from_tensors((x, y)).repeat(2))

    @tf.function
    def step(batch):
        return mirrored.run(method.train_step, args=(batch,))

    for batch in data:
        step(batch)
    for a, b in zip(reference.weights, method.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5)
    assert int(method.player_optimizers["d"].iterations.numpy()) == 4


def test_a_shared_pass_runs_once_and_a_phase_through_it_uses_its_tape():
    """Algorithm 1's shape: h = g(x) once; d takes two steps on h detached; then g's
    phase reads the same h (d as just updated) and its gradient flows back through the
    pass into g. Against numpy."""
    method = _method()
    x, y = _data()
    g_kernel, g_bias, d_kernel, d_bias = (v.numpy().astype("float64") for v in method.weights[:4])
    passes = []

    def shared(data, tape):
        passes.append(1)
        return {"h": method.g(data[0])}

    def d_loss(data, passed):
        out = method.d(tf.stop_gradient(passed["h"]))
        return tf.nn.compute_average_loss(tf.reduce_sum((out - 2 * data[1]) ** 2, -1))

    def g_loss(data, passed):
        out = method.d(passed["h"])
        return tf.nn.compute_average_loss(tf.reduce_sum((out - data[1]) ** 2, -1))

    last = method.alternate(
        (tf.constant(x), tf.constant(y)),
        [Phase("d", d_loss, steps=2), Phase("g", g_loss, through_shared=True)],
        shared=shared,
    )
    hidden = x @ g_kernel + g_bias
    for _ in range(2):
        grad = 2 * (hidden @ d_kernel + d_bias - 2 * y) / len(x)
        d_kernel, d_bias = d_kernel - LR * hidden.T @ grad, d_bias - LR * grad.sum(0)
    err = hidden @ d_kernel + d_bias - y
    grad_hidden = 2 * err @ d_kernel.T / len(x)
    g_kernel, g_bias = g_kernel - LR * x.T @ grad_hidden, g_bias - LR * grad_hidden.sum(0)
    for expected, variable in zip((g_kernel, g_bias, d_kernel, d_bias), method.weights[:4]):
        np.testing.assert_allclose(variable.numpy(), expected, atol=1e-6)
    assert len(passes) == 1 and float(last["g"]) == pytest.approx(np.mean(err**2), rel=1e-5)
    for phase, message in (
        (Phase("g", g_loss, through_shared=True), "shared"),
        (Phase("g", g_loss, steps=2, through_shared=True), "steps = 1"),
    ):
        with pytest.raises(ValueError, match=message):
            method.alternate((x, y), [phase], shared=None if message == "shared" else shared)
