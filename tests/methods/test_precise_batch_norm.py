"""Method.precise_batch_norm: BatchNorm statistics from training batches (the run option
that applies it before the last checkpoint: tests/test_experiment.py)."""

import gin
import keras
import numpy as np
import pytest
from helpers import TINY_CONFIG

from zoo import experiment
from zoo.errors import UserError
from zoo.methods import Method


class Norms(Method):
    """Batches (x, z) of [B, 3]: x -> trained -> frozen; x and z each through shared;
    `unused` is never called."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.trained = keras.layers.BatchNormalization(name="trained")
        self.frozen = keras.layers.BatchNormalization(name="frozen")
        self.frozen.trainable = False
        self.shared = keras.layers.BatchNormalization(name="shared")
        self.unused = keras.layers.BatchNormalization(name="unused")
        for layer in (self.trained, self.frozen, self.shared, self.unused):
            layer.build((None, 3))
        self.built = True

    def statistics_passes(self, data):
        x, z = data
        self.frozen(self.trained(x, training=True), training=True)
        self.shared(x, training=True)
        self.shared(z, training=True)


def _batches(count, size=10, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(3.0, 2.0, size=(count, size, 3)).astype("float32")
    z = rng.normal(-1.0, 0.5, size=(count, size, 3)).astype("float32")
    return x, z


def test_the_statistics_are_the_mean_batch_statistics_of_every_call():
    method = Norms()
    x, z = _batches(4)
    assert method.precise_batch_norm(zip(x, z), progress=False) == 2
    np.testing.assert_allclose(method.trained.moving_mean.numpy(), x.mean(1).mean(0), rtol=1e-5)
    np.testing.assert_allclose(method.trained.moving_variance.numpy(), x.var(1).mean(0), rtol=1e-4)
    # two calls per batch: eight samples, four of x and four of z
    both = np.concatenate([x, z])
    np.testing.assert_allclose(method.shared.moving_mean.numpy(), both.mean(1).mean(0), rtol=1e-5)
    np.testing.assert_allclose(
        method.shared.moving_variance.numpy(), both.var(1).mean(0), rtol=1e-4
    )
    for layer in (method.frozen, method.unused):  # not normalized by batch statistics
        np.testing.assert_array_equal(layer.moving_mean.numpy(), np.zeros(3))
        np.testing.assert_array_equal(layer.moving_variance.numpy(), np.ones(3))
    assert method.trained.momentum == 0.99  # the layers are as before, apart from the statistics
    assert "_moments" not in vars(method.trained)


def test_steps_takes_the_first_batches_and_too_few_batches_is_an_error():
    method = Norms()
    x, z = _batches(4)
    method.precise_batch_norm(zip(x, z), steps=2, progress=False)
    np.testing.assert_allclose(method.trained.moving_mean.numpy(), x[:2].mean(1).mean(0), rtol=1e-5)
    with pytest.raises(UserError, match="gave 4 batches; 5 were asked"):
        Norms().precise_batch_norm(zip(x, z), steps=5, progress=False)
    with pytest.raises(UserError, match="gave 0 batches"):
        Norms().precise_batch_norm(iter(()), progress=False)
    with pytest.raises(UserError, match="steps"):
        Norms().precise_batch_norm(zip(x, z), steps=0)


class Stack(Method):
    """Two convolutions, each followed by BatchNorm: the second one's statistics depend on
    the first one's training-mode (batch-normalized) output."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        images = keras.Input((8, 8, 3))
        h = keras.layers.Conv2D(4, 3, padding="same")(images)
        h = keras.layers.BatchNormalization()(h)
        h = keras.layers.ReLU()(h)
        h = keras.layers.Conv2D(5, 3, padding="same")(h)
        h = keras.layers.BatchNormalization()(h)
        self.network = keras.Model(images, h)
        self.built = True

    def statistics_passes(self, data):
        self.network(data, training=True)


def test_with_one_batch_inference_mode_equals_training_mode_on_that_batch():
    keras.utils.set_random_seed(0)
    method = Stack()
    batch = np.random.default_rng(1).normal(2.0, 3.0, size=(6, 8, 8, 3)).astype("float32")
    training = method.network(batch, training=True).numpy()
    before = method.network(batch, training=False).numpy()
    assert np.abs(before - training).max() > 0.5  # initial statistics: zero mean, unit variance
    assert method.precise_batch_norm([batch], progress=False) == 2
    after = method.network(batch, training=False).numpy()
    np.testing.assert_allclose(after, training, atol=1e-4)


@pytest.fixture
def tiny_config():
    gin.clear_config()
    gin.parse_config(TINY_CONFIG)
    yield
    gin.clear_config()


def test_the_run_option_is_checked(tiny_config, tmp_path):
    for bad, error in ((-1, ValueError), (True, TypeError), (2.0, TypeError)):
        with pytest.raises(error, match="precise_batch_norm"):
            experiment.train(str(tmp_path / "run"), precise_batch_norm=bad)


def test_layers_that_ran_but_were_not_recorded_are_an_error(monkeypatch):
    import contextlib

    from zoo import internals

    model = Norms()
    before = {ly.name: ly.moving_mean.numpy().copy() for ly in (model.trained, model.shared)}
    # a Keras that no longer computes the statistics where the recorder looks
    monkeypatch.setattr(internals, "recording_moments", lambda *a: contextlib.nullcontext())
    with pytest.raises(RuntimeError, match=r"\['trained', 'shared'\] ran in training mode"):
        model.precise_batch_norm(zip(*_batches(2)), steps=2, progress=False)
    for layer in (model.trained, model.shared):  # the statistics as they were
        np.testing.assert_array_equal(layer.moving_mean.numpy(), before[layer.name])
