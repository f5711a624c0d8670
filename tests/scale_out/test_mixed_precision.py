"""`precision = "mixed_float16" | "mixed_bfloat16"`: a few steps on the CPU with finite
losses, float32 where the zoo keeps float32 (variables, BatchNorm statistics, head
outputs, the queue) and a float32 export."""

import json
import os

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf
from scale_out.configs import MOCO, MULTITASK

from export import export_trunk
from zoo import experiment
from zoo.errors import UserError
from zoo.experiment import runtime


def _train(config, precision, model_dir):
    gin.clear_config()
    gin.parse_config(config)
    gin.parse_config(f'zoo.experiment.train.precision = "{precision}"')
    gin.parse_config("keras.optimizers.SGD.learning_rate = 0.01")
    return experiment.train(str(model_dir), exporter=export_trunk)


def _method(precision):
    """The method of the gin config built and compiled as the run builds it."""
    with runtime.precision_policy(precision):
        model = gin.query_parameter("zoo.experiment.train.method").scoped_configurable_fn()
        model.compile(keras.optimizers.SGD(0.01))
    return model


def _check_float32_where_kept(model, compute):
    """16-bit compute in the trunk; float32 variables, BatchNorm statistics and head
    outputs (so losses and metrics)."""
    assert model.trunk(tf.zeros([1, 32, 32, 3]))["block2"].dtype == compute
    assert {v.dtype for v in model.weights if v.dtype != "int64"} == {"float32"}
    norms = [
        ly for ly in model._flatten_layers() if isinstance(ly, keras.layers.BatchNormalization)
    ]
    assert norms and all(ly.moving_variance.dtype == "float32" for ly in norms)
    inputs, _ = next(iter(model.datasets(2)))
    assert {o.dtype for o in tf.nest.flatten(model(inputs))} == {tf.float32}


@pytest.mark.slow
def test_mixed_float16_trains_with_loss_scaling_and_exports_float32(tmp_path):
    gin.parse_config(MULTITASK)
    model = _method("mixed_float16")
    assert model.dtype_policy.name == "mixed_float16"
    assert keras.config.dtype_policy().name == "float32"  # the policy is restored
    _check_float32_where_kept(model, "float16")
    # every player's optimizer scales its loss, and the scaled step trains
    assert all(
        isinstance(o, keras.optimizers.LossScaleOptimizer) for o in model.player_optimizers.values()
    )
    before = [w.numpy().copy() for w in model.trunk.trainable_weights]
    history = model.fit(model.datasets(4), epochs=1, steps_per_epoch=2, verbose=0).history
    assert np.isfinite(history["loss"]).all() and np.isfinite(history["depth_loss"]).all()
    moved = [np.abs(w.numpy() - b).max() for w, b in zip(model.trunk.trainable_weights, before)]
    assert min(moved) > 0  # no update lost to an infinite scaled gradient
    # the export's signature is float32 in and out
    path = export_trunk(model.trunk, str(tmp_path / "export"))
    served = tf.saved_model.load(path).signatures["serving_default"]
    assert served.structured_input_signature[1]["images"].dtype == tf.float32
    out = served(images=tf.random.uniform([2, 32, 32, 3]))
    assert {v.dtype for v in out.values()} == {tf.float32}
    assert all(np.isfinite(v.numpy()).all() for v in out.values())


def test_mixed_bfloat16_trains_without_loss_scaling():
    gin.parse_config(MULTITASK)
    model = _method("mixed_bfloat16")
    _check_float32_where_kept(model, "bfloat16")
    assert not any(
        isinstance(o, keras.optimizers.LossScaleOptimizer) for o in model.player_optimizers.values()
    )
    history = model.fit(model.datasets(4), epochs=1, steps_per_epoch=2, verbose=0).history
    assert np.isfinite(history["loss"]).all() and np.isfinite(history["depth_loss"]).all()


@pytest.mark.slow
def test_the_momentum_queue_stays_float32_under_float16(tmp_path):
    results = _train(MOCO, "mixed_float16", tmp_path / "run")
    assert np.isfinite(results["history"]["moco_loss"]).all()
    queues = _method("mixed_float16").momentum.queues
    assert queues and all(q.dtype == "float32" for q in queues.values())
    stored = json.load(open(os.path.join(tmp_path, "run", "progress.json")))
    assert stored["epochs"]["1"]["logs"]["moco_queue_fill"] > 0


def test_an_unknown_precision_is_refused_with_the_choices(tmp_path):
    gin.parse_config(MULTITASK)
    gin.parse_config('zoo.experiment.train.precision = "float16"')
    with pytest.raises(
        UserError,
        match=r"`precision` must be one of \('float32', 'mixed_float16', 'mixed_bfloat16'\)",
    ):
        experiment.train(str(tmp_path / "run"))
