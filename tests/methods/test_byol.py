"""BYOL in MultiTask: its loss against numpy, the τ schedule against its formula, the
target network moved by the moving average only, BYOL's views, and learning on the toy
problem of the contrastive tests."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_trunk, two_view_runs

from zoo.data import augment
from zoo.data.synthetic import SceneSpec
from zoo.losses import byol
from zoo.methods import MultiTask
from zoo.tasks import BYOL, MomentumSchedule

SPEC = SceneSpec(variant="----", mode="multi", resolution=32)


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def test_loss_is_the_symmetric_normalised_squared_error():
    rng = np.random.default_rng(0)
    p, z = rng.normal(size=(5, 2, 7)), rng.normal(size=(5, 2, 7))
    expected = np.sum((_unit(p[:, 0]) - _unit(z[:, 1])) ** 2, -1) + np.sum(
        (_unit(p[:, 1]) - _unit(z[:, 0])) ** 2, -1
    )
    got = byol(tf.constant(p, tf.float32), tf.constant(z, tf.float32)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    # a prediction equal to the other view's target costs nothing, an opposite one 8
    same = np.stack([z[:, 1], z[:, 0]], axis=1)
    np.testing.assert_allclose(byol(same, z).numpy(), 0.0, atol=1e-5)
    np.testing.assert_allclose(byol(-same, z).numpy(), 8.0, rtol=1e-5)


def test_momentum_schedule_is_the_cosine_increase_to_one():
    schedule = MomentumSchedule(0.996, 1000)
    for k in (0, 1, 250, 500, 999, 1000, 1500):
        expected = 1 - (1 - 0.996) * (math.cos(math.pi * min(k, 1000) / 1000) + 1) / 2
        assert float(schedule(k)) == pytest.approx(expected, abs=1e-7), k
    assert float(MomentumSchedule(0.99)(12345)) == pytest.approx(0.99)
    for base, steps in ((1.0, 10), (-0.1, 10), (True, 10), (0.9, 0), (0.9, 2.5)):
        with pytest.raises(ValueError, match="momentum"):
            MomentumSchedule(base, steps)


def _task(**kwargs):
    kwargs.setdefault("momentum_steps", 2)
    return BYOL(SPEC, num_examples=16, eval_examples=8, hidden=16, projection=8, **kwargs)


def _model(task, lr=0.05):
    model = MultiTask(tiny_trunk(), [task])
    model.compile(keras.optimizers.SGD(lr))
    return model


def _trained_pairs(model):
    """(target weight, online weight) of every trained parameter of the target network."""
    return model.momentum._pairs()


def test_target_network_is_the_moving_average_at_the_scheduled_tau():
    """τ_0 = 0.5, τ_1 = 0.75, τ_2 = 1 (K = 2): each step's target weights are τ_k · the
    previous ones + (1 − τ_k) · the online weights after the step, nothing else."""
    model = _model(_task(momentum=0.5, momentum_steps=2))
    encoders = model.momentum
    trainable = {id(v) for v in model.trainable_variables}
    assert encoders.weights and not any(id(v) in trainable for v in encoders.weights)
    assert not any(id(v) in trainable for v in model.momentum.key_trunk.weights)
    assert [h.name for h in encoders.key_heads.values()] == ["key_byol_projector"]
    pairs = _trained_pairs(model)
    target = [k.numpy() for k, _ in pairs]
    np.testing.assert_allclose(target[0], pairs[0][1].numpy())  # starts as the online one
    data = model.datasets(4)
    for k, tau in enumerate((0.5, 0.75, 1.0)):
        model.fit(data, epochs=1, steps_per_epoch=1, verbose=0)
        online = [q.numpy() for _, q in pairs]
        target = [tau * t + (1 - tau) * q for t, q in zip(target, online)]
        for (key, _), expected in zip(pairs, target):
            np.testing.assert_allclose(key.numpy(), expected, rtol=1e-5, atol=1e-6)
        assert int(encoders.steps.numpy()) == k + 1
    # the online network moved, the target at τ = 1 did not follow it
    assert any(not np.allclose(k.numpy(), q.numpy()) for k, q in pairs)


def test_no_gradient_reaches_the_target_network():
    model = _model(_task())
    inputs, targets = next(iter(model.datasets(4)))
    key_weights = [w.value for w in model.momentum.key_trunk.weights] + [
        w.value for head in model.momentum.key_heads.values() for w in head.weights
    ]
    with tf.GradientTape() as tape:
        tape.watch(key_weights)
        losses = model.task_losses(inputs, targets, model(inputs, training=True))
    grads = tape.gradient(losses["byol"], key_weights)
    assert all(g is None for g in grads)
    with tf.GradientTape() as tape:
        losses = model.task_losses(inputs, targets, model(inputs, training=True))
    online = tape.gradient(losses["byol"], model.trainable_variables)
    assert all(g is not None for g in online)  # trunk, projector and predictor learn


def test_views_are_byol_asymmetric_and_solarize_inverts_above_the_threshold():
    image = tf.constant(np.linspace(0, 1, 4 * 4 * 3).reshape(4, 4, 3), tf.float32)
    solarized = augment.Solarize(p=1.0)(image, tf.constant([1, 2]))
    expected = np.where(image.numpy() < 0.5, image.numpy(), 1 - image.numpy())
    np.testing.assert_allclose(solarized.numpy(), expected)
    np.testing.assert_allclose(augment.Solarize(p=0.0)(image, tf.constant([1, 2])), image)
    views = augment.byol_views()
    blur, solarize = zip(*views.per_view)
    assert [b.p for b in blur] == [1.0, 0.1] and [s.p for s in solarize] == [0.0, 0.2]
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(views))
    assert again == views and again.per_view[1][1] == augment.Solarize(p=0.2)
    # without per-view steps, a view is what it was before per-view steps existed
    plain = augment.Views(augment.RandomResizedCrop(size=16), [augment.HorizontalFlip()])
    assert "per_view" not in plain.get_config()
    with pytest.raises(ValueError, match="per_view"):
        augment.Views(per_view=[[augment.Solarize()]])
    with pytest.raises(ValueError, match="momentum_steps"):
        BYOL(SPEC)
    assert BYOL(SPEC, momentum_steps=5).views == views


@pytest.mark.slow
def test_views_sharing_an_image_are_found_far_above_chance():
    """The contrastive tests' toy problem (test_contrastive.py): after training, a
    held-out image's second view's projection is the nearest of 64 to its first's far
    more often than chance (1/64) and than before training, median of three seeds.

    BYOL bootstraps from its own target and starts slower than the contrastive methods
    (measured: gains 0.03-0.16 after their 60 steps, 0.14-0.17 after 150 steps at
    τ_base 0.9; at 0.99 the target of so short a run stays near its initial weights and
    gains were 0.05-0.13); BYOL's τ_base ranges 0.9-0.999 in its Table 5."""
    runs = two_view_runs(BYOL, steps=150, momentum=0.9, momentum_steps=150)
    gain = float(np.median([after - before for before, after in runs]))
    assert gain > 0.1 and np.median([after for _, after in runs]) > 10 / 64, runs
