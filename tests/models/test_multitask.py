import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.data.synthetic import SceneSpec
from zoo.models import MultiTaskModel
from zoo.tasks import Depth, Rotation
from zoo.trunks import resnet

SPEC = SceneSpec(variant="----", mode="multi", resolution=32)


def _tasks():
    return [
        Depth(SPEC, num_examples=16, eval_examples=8, head_width=16, endpoint="block2"),
        Rotation(SPEC, num_examples=16, eval_examples=8, endpoint="block2"),
    ]


def _trunk(**kwargs):
    """A seeded ResNet-18 v2 cut at block 2, 1/8 width, for 32x32 inputs."""
    keras.utils.set_random_seed(0)
    return resnet(
        18, version=2, width_multiplier=0.125, stop_at="block2", input_shape=(32, 32, 3), **kwargs
    )


def _model(lasso_block=None, **kwargs):
    trunk = _trunk(output_stride=8)
    return MultiTaskModel(trunk, _tasks(), lasso_block=lasso_block, **kwargs)


def _batch(model, batch_size=4, split="eval"):
    return {n: next(iter(t.pipeline(split, batch_size))) for n, t in model.tasks.items()}


def _manual_losses(model, batch, training=False):
    return {
        n: float(
            tf.reduce_mean(model.tasks[n].loss(y, model.task_networks[n](x, training=training)))
        )
        for n, (x, y) in batch.items()
    }


def test_reported_losses_equal_task_losses_plus_lasso_penalty():
    model = _model(lasso_block="block2", lasso_l1=0.1, loss_weights={"depth": 2.0})
    model.compile(optimizer=keras.optimizers.SGD(0.0))
    batch = _batch(model)
    expected = _manual_losses(model, batch, training=True)  # batch statistics, as in fit
    penalty = 0.1 * np.abs(model.lasso.alphas()).sum()
    logs = model.train_step(batch)
    assert float(logs["depth_loss"]) == pytest.approx(expected["depth"], rel=1e-4)
    assert float(logs["rotation_loss"]) == pytest.approx(expected["rotation"], rel=1e-4)
    total = 2.0 * expected["depth"] + expected["rotation"] + penalty
    assert float(logs["loss"]) == pytest.approx(total, rel=1e-4)
    assert 0.0 <= float(logs["rotation_accuracy"]) <= 1.0


def test_fit_lowers_the_losses():
    model = _model()
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    batch = _batch(model, batch_size=8, split="train")
    # batch statistics: 30 steps are too few for the moving BN averages
    before = _manual_losses(model, batch, training=True)
    data = tf.data.Dataset.from_tensors(batch).repeat(30)
    history = model.fit(data, epochs=1, verbose=0)
    after = _manual_losses(model, batch, training=True)
    assert after["depth"] < before["depth"] and after["rotation"] < before["rotation"]
    assert set(history.history) >= {"loss", "depth_loss", "rotation_loss", "rotation_accuracy"}


def test_per_task_optimizers_update_only_their_head():
    model = _model(lasso_block="block2")
    model.compile(
        task_optimizers={
            "depth": keras.optimizers.SGD(0.0),
            "rotation": keras.optimizers.RMSprop(1e-3),
        }
    )
    model.build_optimizers()
    depth_head = [v for v in model.task_variables("depth") if v.path.startswith("depth_")]
    rotation_head = [v for v in model.task_variables("rotation") if v.path.startswith("rotation_")]
    assert depth_head and rotation_head
    assert {v.path for v in model.task_variables("depth")} & {"lasso/alpha_depth"}
    assert "lasso/alpha_rotation" not in {v.path for v in model.task_variables("depth")}
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    model.train_step(_batch(model))
    changed = {
        v.path for v in model.trainable_variables if not np.array_equal(before[v.path], v.numpy())
    }
    assert not changed & {v.path for v in depth_head}  # its optimizer has lr 0
    assert {v.path for v in rotation_head} <= changed
    assert "stem_conv/kernel" in changed  # the shared trunk moves with the rotation task
    assert "lasso/alpha_rotation" in changed and "lasso/alpha_depth" not in changed


def test_bad_arguments():
    with pytest.raises(ValueError, match="fixed square input_shape"):
        MultiTaskModel(resnet(18, width_multiplier=0.125), _tasks())
    with pytest.raises(ValueError, match="unknown tasks"):
        _model(loss_weights={"segmentation": 1.0})
    model = _model()
    with pytest.raises(ValueError, match="either"):
        model.compile()
    with pytest.raises(ValueError, match="missing"):
        model.compile(task_optimizers={"depth": keras.optimizers.SGD()})
    model.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="expects batches"):
        model.train_step({"depth": _batch(model)["depth"]})


def _rotation_pair_model():
    trunk = _trunk(norm="group")
    tasks = [
        Rotation(SPEC, num_examples=16, eval_examples=8, endpoint="block2", name=n, seed=s)
        for n, s in (("rotation_a", 0), ("rotation_b", 1))
    ]
    return MultiTaskModel(trunk, tasks)


def _one_step(strategy, batch):
    with strategy.scope():
        model = _rotation_pair_model()
        model.compile(
            task_optimizers={
                "rotation_a": keras.optimizers.SGD(0.1),
                "rotation_b": keras.optimizers.RMSprop(1e-3),
            }
        )
        model.build_optimizers()
    history = model.fit(tf.data.Dataset.from_tensors(batch), epochs=1, verbose=0)
    return history.history, [v.numpy() for v in model.trainable_variables]


def test_mirrored_strategy_matches_one_device(mirrored):
    model = _rotation_pair_model()
    batch = _batch(model, batch_size=8)
    single_logs, single_weights = _one_step(tf.distribute.get_strategy(), batch)
    assert mirrored.num_replicas_in_sync == 2
    mirrored_logs, mirrored_weights = _one_step(mirrored, batch)
    for key in ("loss", "rotation_a_loss", "rotation_b_loss", "rotation_a_accuracy"):
        assert mirrored_logs[key][0] == pytest.approx(single_logs[key][0], rel=1e-4), key
    for a, b in zip(single_weights, mirrored_weights):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert not np.allclose(single_weights[0], model.trainable_variables[0].numpy())


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 1:
            raise RuntimeError("interrupted")


def test_backup_and_restore_resumes_with_optimizer_state(tmp_path):
    def train(callbacks, epochs=3):
        model = _model(lasso_block="block2")
        model.compile(
            task_optimizers={
                "depth": keras.optimizers.Adam(1e-3),
                "rotation": keras.optimizers.RMSprop(1e-3),
            }
        )
        model.build_optimizers()
        data = tf.data.Dataset.zip({n: t.pipeline("eval", 4) for n, t in model.tasks.items()})
        model.fit(data, epochs=epochs, verbose=0, callbacks=callbacks)
        return model

    reference = train([])
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(RuntimeError, match="interrupted"):
        train([backup, _Interrupt()])
    resumed = train([keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))])
    for a, b in zip(reference.weights, resumed.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5, err_msg=a.path)
    for name in ("depth", "rotation"):
        assert int(resumed.task_optimizers[name].iterations) == int(
            reference.task_optimizers[name].iterations
        )
