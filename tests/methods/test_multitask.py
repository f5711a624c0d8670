import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_trunk

from zoo.data.synthetic import SceneSpec, generate
from zoo.methods import MultiTask
from zoo.tasks import Colorization, Contours, Depth, Normals, Rotation

SPEC = SceneSpec(variant="----", mode="multi", resolution=32)


def _tasks():
    return [
        Depth(SPEC, num_examples=16, eval_examples=8, head_width=16, endpoint="block2"),
        Rotation(SPEC, num_examples=16, eval_examples=8, endpoint="block2"),
    ]


def _model(lasso_block=None, tasks=None, **kwargs):
    return MultiTask(tiny_trunk(), tasks or _tasks(), lasso_block=lasso_block, **kwargs)


def _batch(model, batch_size=4, split="eval"):
    return next(iter(model.datasets(batch_size, split)))


def _manual_losses(model, batch, training=False):
    inputs, targets = batch
    outputs = model(inputs, training=training)
    return {
        n: float(tf.reduce_mean(t.loss(targets[n], outputs[n]))) for n, t in model.tasks.items()
    }


def test_reported_losses_equal_task_losses_plus_lasso_penalty():
    model = _model(lasso_block="block2", lasso_l1=0.1, loss_weights={"depth": 2.0})
    model.compile(keras.optimizers.SGD(0.0))
    batch = _batch(model)
    expected = _manual_losses(model, batch, training=True)  # batch statistics, as in fit
    penalty = 0.1 * np.abs(model.lasso.alphas()).sum()
    assert len(model.losses) == 1  # the penalty is added once, however many heads read it
    assert float(model.losses[0]) == pytest.approx(penalty, rel=1e-5)
    logs = model.train_step(batch)
    assert float(logs["depth_loss"]) == pytest.approx(expected["depth"], rel=1e-4)
    assert float(logs["rotation_loss"]) == pytest.approx(expected["rotation"], rel=1e-4)
    total = 2.0 * expected["depth"] + expected["rotation"] + penalty
    assert float(logs["loss"]) == pytest.approx(total, rel=1e-4)
    labels = batch[1]["rotation"].numpy()
    predicted = model(batch[0], training=True)["rotation"].numpy().argmax(-1)  # lr 0
    assert float(logs["rotation_accuracy"]) == pytest.approx(np.mean(labels == predicted))


def test_fit_lowers_the_losses():
    model = _model()
    model.compile(keras.optimizers.Adam(1e-3))
    batch = _batch(model, batch_size=8, split="train")
    # batch statistics: 30 steps are too few for the moving BN averages
    before = _manual_losses(model, batch, training=True)
    history = model.fit(tf.data.Dataset.from_tensors(batch).repeat(30), epochs=1, verbose=0)
    after = _manual_losses(model, batch, training=True)
    assert after["depth"] < before["depth"] and after["rotation"] < before["rotation"]
    assert set(history.history) >= {"loss", "depth_loss", "rotation_loss", "rotation_accuracy"}
    assert history.history["loss"][0] > 0  # the method's own total, not Keras' empty one


def test_per_task_optimizers_update_only_their_head():
    model = _model(lasso_block="block2", per_task_optimizers=True)
    assert model.players == ("depth", "rotation")
    model.compile({"depth": keras.optimizers.SGD(0.0), "rotation": keras.optimizers.RMSprop(1e-3)})
    depth_head = [v for v in model.variables_of("depth") if v.path.startswith("depth_")]
    rotation_head = [v for v in model.variables_of("rotation") if v.path.startswith("rotation_")]
    assert depth_head and rotation_head
    assert "lasso/alpha_depth" in {v.path for v in model.variables_of("depth")}
    assert "lasso/alpha_rotation" not in {v.path for v in model.variables_of("depth")}
    before = {v.path: v.numpy().copy() for v in model.trainable_variables}
    model.train_step(_batch(model))
    changed = {
        v.path for v in model.trainable_variables if not np.array_equal(before[v.path], v.numpy())
    }
    assert not changed & {v.path for v in depth_head}  # its optimizer has lr 0
    assert {v.path for v in rotation_head} <= changed
    assert "stem_conv/kernel" in changed  # the shared trunk moves with the rotation task
    assert "lasso/alpha_rotation" in changed and "lasso/alpha_depth" not in changed


def test_one_optimizer_is_copied_per_player_and_built_in_compile():
    model = _model(per_task_optimizers=True)
    given = keras.optimizers.RMSprop(0.01, clipnorm=1.0)
    model.compile(given)
    copies = model.player_optimizers
    assert set(copies) == {"depth", "rotation"}
    assert copies["depth"] is not copies["rotation"] and given not in copies.values()
    for name, optimizer in copies.items():
        assert optimizer.built and optimizer.clipnorm == 1.0
        assert float(optimizer.learning_rate) == pytest.approx(0.01)
        slots = [v for v in optimizer.variables if v.path.endswith("_velocity")]
        assert len(slots) == len(model.variables_of(name))


def test_tasks_reading_the_same_scenes_share_one_batch_and_one_trunk_pass():
    tasks = [
        Depth(SPEC, num_examples=8, eval_examples=8, head_width=8),
        Normals(SPEC, num_examples=8, eval_examples=8, head_width=8),
        Contours(SPEC, num_examples=8, eval_examples=8, head_width=8),
        Rotation(SPEC, num_examples=8, eval_examples=8),
    ]
    model = _model(tasks=tasks)
    assert model.groups == {"images": ["depth", "normals", "contours"], "rotation": ["rotation"]}
    assert len(model.trunk._inbound_nodes) == 2  # one trunk pass per group
    inputs, targets = _batch(model)
    test_spec = SceneSpec(variant="----", mode="multi", resolution=32, split="test")
    for i in range(4):  # the eval split in order: every target belongs to image i
        scene = generate(test_spec, i)
        np.testing.assert_allclose(inputs["images"][i].numpy(), scene["image"], atol=0.5 / 255)
        np.testing.assert_array_equal(targets["depth"][i, ..., 0].numpy(), scene["depth"])
        np.testing.assert_array_equal(targets["normals"][i].numpy(), scene["normals"])
        np.testing.assert_array_equal(targets["contours"][i, ..., 0].numpy(), scene["contours"])
    # another harmonizer, or another seed, makes another stream
    other = Normals(SPEC, num_examples=8, eval_examples=8, head_width=8, harmonizer="lab_l3")
    assert _model(tasks=[tasks[0], other]).groups == {
        "images": ["depth"],
        "images_2": ["normals"],
    }


def test_the_default_endpoint_is_the_trunks_last_and_geometry_is_checked():
    model = _model(tasks=[Rotation(SPEC, num_examples=8, eval_examples=8)])
    assert model.endpoints == {"rotation": "block2"}
    colorization = Colorization(SPEC, num_examples=8, eval_examples=8, head_width=8)
    with pytest.raises(
        ValueError, match="colorization targets are at stride 8; endpoint 'block2' is at stride 16"
    ):
        MultiTask(tiny_trunk(output_stride=None), [colorization])
    assert _model(tasks=[colorization]).network.output["colorization"].shape[1] == 4
    at_stem = Colorization(SPEC, num_examples=8, head_width=8, endpoint="stem")
    with pytest.raises(ValueError, match="stride 8; endpoint 'stem' is at stride 4"):
        _model(tasks=[at_stem])
    # 5x5 features of 36 px: deconvolutions to 20, resized to 36
    odd = MultiTask(
        tiny_trunk(input_shape=(36, 36, 3)), [Depth(SPEC, num_examples=8, head_width=8)]
    )
    assert odd.network.output["depth"].shape[1:3] == (36, 36)
    with pytest.raises(ValueError, match="larger than that"):
        MultiTask(
            tiny_trunk(input_shape=(32, 32, 3)),
            [Depth(SPEC, num_examples=8, head_width=8, target_stride=8, endpoint="stem")],
        )


def test_bad_arguments():
    with pytest.raises(ValueError, match="fixed input_shape"):
        MultiTask(tiny_trunk(input_shape=(None, None, 3)), _tasks())
    with pytest.raises(ValueError, match="unknown tasks"):
        _model(loss_weights={"segmentation": 1.0})
    with pytest.raises(ValueError, match="distinct names"):
        _model(tasks=_tasks() + _tasks()[:1])
    model = _model(per_task_optimizers=True)
    with pytest.raises(ValueError, match="keras Optimizer or a dict"):
        model.compile()
    with pytest.raises(ValueError, match=r"missing \['rotation'\]"):
        model.compile({"depth": keras.optimizers.SGD()})
    model.compile(keras.optimizers.SGD())
    inputs, targets = _batch(model)
    with pytest.raises(ValueError, match="expects batches"):
        model.train_step((inputs, {"depth": targets["depth"]}))


def test_keras_file_and_json_config_round_trip_with_lasso_rows(tmp_path):
    model = _model(lasso_block="block2", lasso_l1=0.01, loss_weights={"depth": 3.0})
    model.compile(keras.optimizers.Adam(1e-2))
    batch = _batch(model, split="train")
    model.train_step(batch)  # the α rows and weights move away from their initial values
    path = str(tmp_path / "method.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    expected = model(batch[0])
    for name, value in loaded(batch[0]).items():
        np.testing.assert_array_equal(value.numpy(), expected[name].numpy())
    np.testing.assert_array_equal(loaded.lasso.alphas(), model.lasso.alphas())
    # the config alone (what method.json holds) rebuilds the same method
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(model)))
    rebuilt = keras.saving.deserialize_keras_object(config)
    original = json.dumps(keras.saving.serialize_keras_object(model), sort_keys=True)
    assert json.dumps(keras.saving.serialize_keras_object(rebuilt), sort_keys=True) == original
    assert rebuilt.loss_weights == {"depth": 3.0, "rotation": 1.0} and rebuilt.lasso.l1 == 0.01


def _rotation_pair_model():
    tasks = [
        Rotation(SPEC, num_examples=16, eval_examples=8, name=n, seed=s)
        for n, s in (("rotation_a", 0), ("rotation_b", 1))
    ]
    return MultiTask(tiny_trunk(norm="group"), tasks, per_task_optimizers=True)


def _one_step(strategy, batch):
    with strategy.scope():
        model = _rotation_pair_model()
        model.compile(
            {"rotation_a": keras.optimizers.SGD(0.1), "rotation_b": keras.optimizers.RMSprop(1e-3)}
        )
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
        model = _model(lasso_block="block2", per_task_optimizers=True)
        model.compile(
            {"depth": keras.optimizers.Adam(1e-3), "rotation": keras.optimizers.RMSprop(1e-3)}
        )
        model.fit(model.datasets(4, "eval"), epochs=epochs, verbose=0, callbacks=callbacks)
        return model

    reference = train([])
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
    with pytest.raises(RuntimeError, match="interrupted"):
        train([backup, _Interrupt()])
    resumed = train([keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))])
    for a, b in zip(reference.weights, resumed.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-5, err_msg=a.path)
    for name in ("depth", "rotation"):
        assert int(resumed.player_optimizers[name].iterations) == int(
            reference.player_optimizers[name].iterations
        )
