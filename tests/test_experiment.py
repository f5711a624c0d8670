import json
import math
import os
import types

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import TINY_CONFIG

from export import export_trunk
from zoo import experiment
from zoo.errors import ExistingFile, UserError
from zoo.experiment import callbacks, runtime

TINY = TINY_CONFIG


@pytest.fixture
def tiny_config():
    gin.clear_config()
    gin.parse_config(TINY)
    yield TINY
    gin.clear_config()


@pytest.mark.slow
def test_train_writes_every_output(tiny_config, tmp_path):
    model_dir = str(tmp_path / "run")
    assert experiment.prepare_model_dir(model_dir, tiny_config) == "new"
    gin.parse_config(
        "zoo.experiment.train.callbacks = [@zoo.experiment.CostBudget()]\n"
        "zoo.experiment.CostBudget.task_costs = {'depth': 0.5}\n"
        "zoo.experiment.CostBudget.snapshot_every = 3\n"
        "zoo.experiment.train.precise_batch_norm = 2\n"
        "keras.optimizers.Adam.learning_rate = 1e-2\n"  # six steps that lower depth's error
    )
    results = experiment.train(model_dir, exporter=export_trunk)
    # 2 epochs x 3 steps of 1.5 units (depth 0.5 + rotation 1): snapshots at 3, 6 and 9
    # units, in the run's own folder (the callback got the model_dir from train)
    assert sorted(os.listdir(os.path.join(model_dir, "snapshots"))) == [
        f"cost_{u:09d}.weights.h5" for u in (3, 6, 9)
    ]
    for name in (
        "config.gin",
        "operative_config.gin",
        "method.json",
        "metrics.json",
        "checkpoints/epoch_001.weights.h5",
        "checkpoints/epoch_002.weights.h5",
    ):
        assert os.path.exists(os.path.join(model_dir, name)), name
    assert os.listdir(os.path.join(model_dir, "logs"))
    stored = json.load(open(os.path.join(model_dir, "metrics.json")))
    assert set(stored["trained"]) == {"depth", "rotation"}
    assert stored["trained"]["depth"]["mae"] < stored["untrained"]["depth"]["mae"]
    assert set(stored["trained"]["depth"]) == set(stored["metric_info"]["depth"])
    assert len(stored["history"]["depth_loss"]) == 2
    assert (
        "width_multiplier = 0.0625" in open(os.path.join(model_dir, "operative_config.gin")).read()
    )
    loaded = tf.saved_model.load(results["export"])
    out = loaded.signatures["serving_default"](images=tf.zeros([1, 32, 32, 3]))
    assert out["embedding"].shape == (1, 8)  # block2 of ResNet-18 at 1/16 width
    # the run rebuilds from its method.json and last checkpoint, with no gin config at
    # all: same trunk outputs
    gin.clear_config()
    model, checkpoint = experiment.restore(model_dir)
    assert checkpoint.endswith("epoch_002.weights.h5")
    # precise_batch_norm: the last checkpoint's BatchNorm statistics are those of the
    # first two training batches under its weights (six moving-average updates at
    # momentum 0.99 would have moved the means 6 % of the way there from zero)
    norms = [
        ly for ly in model._flatten_layers() if isinstance(ly, keras.layers.BatchNormalization)
    ]
    stored_means = [layer.moving_mean.numpy().copy() for layer in norms]
    assert model.precise_batch_norm(model.datasets(4), steps=2, progress=False) == len(norms)
    for layer, value in zip(norms, stored_means):
        np.testing.assert_allclose(layer.moving_mean.numpy(), value, rtol=1e-4, atol=1e-5)
    assert max(np.abs(value).max() for value in stored_means) > 0.1
    model, checkpoint = experiment.restore(model_dir)
    images = np.random.default_rng(0).random((2, 32, 32, 3)).astype("float32")
    exported = loaded.signatures["serving_default"](images=tf.constant(images))
    # float32 through 9 convolutions, eager against the exported graph: equal to 1e-5 of the
    # values (measured with oneDNN limited to AVX2: 1.2e-5 apart at a value of 1.4)
    np.testing.assert_allclose(
        model.trunk(images)["block2"].numpy(), exported["block2"].numpy(), rtol=1e-5, atol=1e-5
    )
    from zoo.evaluation.protocols import load_trunk

    # a trunk for a transfer protocol: rebuilt from the checkpoint at any input size,
    # the caller's gin config untouched
    gin.parse_config(tiny_config)
    gin.bind_parameter("zoo.experiment.train.epochs", 7)
    trunk = load_trunk(model_dir, input_shape=(32, 32, 3))
    assert gin.query_parameter("zoo.experiment.train.epochs") == 7
    np.testing.assert_allclose(
        trunk(images)["block2"].numpy(), exported["block2"].numpy(), rtol=1e-5, atol=1e-5
    )
    larger = load_trunk(model_dir, input_shape=(64, 64, 3))
    assert larger(np.zeros((1, 64, 64, 3), "float32"))["block2"].shape == (1, 8, 8, 8)
    first = load_trunk(os.path.join(model_dir, "checkpoints", "epoch_001.weights.h5"))
    assert not np.allclose(first(images)["block2"].numpy(), exported["block2"].numpy())
    # the scratch baseline of a transfer from this run takes its architecture
    from zoo.evaluation.transfer import transfer

    gin.clear_config()
    tiny = {"num_labels": 8, "variant": "----", "input_size": 32, "eval_examples": 8}
    rule = {"min_steps": 1, "max_steps": 1, "batch_size": 4, "endpoint": "block2"}
    pretrained = transfer(
        model_dir, "classification", protocol="frozen_k", frozen_stages=1, **tiny, **rule
    )
    scratch = transfer("random", "classification", like=model_dir, **tiny, **rule)
    assert scratch["trunk_params"] == pretrained["trunk_params"] == trunk.count_params()
    with pytest.raises(ValueError, match="needs the scratch trunk's architecture"):
        transfer("random", "classification", **tiny)
    with pytest.raises(FileNotFoundError, match="epoch_009"):
        experiment.restore(model_dir, "epoch_009.weights.h5")
    gin.clear_config()
    gin.parse_config(tiny_config)
    assert experiment.prepare_model_dir(model_dir, tiny_config) == "finished"
    report = experiment.format_report(stored, model_dir)
    for task, metrics in stored["trained"].items():
        for name in metrics:  # every metric a task returns, with its meaning
            line = next(x for x in report.splitlines() if x.split()[:2] == [task, name])
            assert stored["metric_info"][task][name][1] in line
            assert line.split()[4] == str(stored["examples"][task])  # computed on
    # eval_examples = 8 of each (a rotation draws one angle per image)
    assert stored["examples"] == {"depth": 8, "rotation": 8}
    assert f"SavedModel in {stored['export']}" in report.splitlines()[-1]
    unexported = experiment.format_report({**stored, "export": None}, model_dir)
    assert unexported.splitlines()[-1].endswith("(the trunk was not exported)")


def test_prepare_model_dir_states(tmp_path):
    model_dir = str(tmp_path / "run")
    assert experiment.prepare_model_dir(model_dir, "a = 1\n") == "new"
    # the same parsed configuration, spelled or commented differently
    assert experiment.prepare_model_dir(model_dir, "# other files\na = 1  # note\n\n") == "resume"
    # a run that never trained an epoch (it failed before) does not block a corrected one
    assert experiment.prepare_model_dir(model_dir, "a = 2\n") == "new"
    assert open(os.path.join(model_dir, "config.gin")).read() == "a = 2\n"
    os.makedirs(os.path.join(model_dir, "checkpoints"))
    open(os.path.join(model_dir, "checkpoints", "epoch_001.weights.h5"), "w").write("w")
    with pytest.raises(experiment.ConfigMismatch, match="another configuration"):
        experiment.prepare_model_dir(model_dir, "a = 3\n")
    open(os.path.join(model_dir, "keep.txt"), "w").write("user data")
    with pytest.raises(experiment.ConfigMismatch):
        experiment.prepare_model_dir(model_dir, "a = 3\n")
    assert os.path.exists(os.path.join(model_dir, "keep.txt"))  # nothing deleted
    assert experiment.prepare_model_dir(model_dir, "a = 3\n", overwrite=True) == "new"
    assert not os.path.exists(os.path.join(model_dir, "keep.txt"))
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(experiment.ConfigMismatch, match="holds no zoo run"):
        experiment.prepare_model_dir(str(foreign), "a = 1\n")
    with pytest.raises(ExistingFile, match="is a file"):
        experiment.prepare_model_dir(str(foreign / "notes.txt"), "a = 1\n")


def test_non_finite_loss_names_the_task(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    (checkpoints / "epoch_001.weights.h5").write_bytes(b"")
    guard = callbacks.StopOnNonFinite(str(checkpoints))
    guard.on_epoch_begin(1)
    guard.on_train_batch_end(0, {"depth_loss": 0.5, "rotation_loss": 1.0, "loss": 1.5})
    with pytest.raises(
        experiment.TrainingDiverged, match=r"^rotation_loss became.*epoch 2, step 4"
    ):
        guard.on_train_batch_end(3, {"depth_loss": 0.5, "rotation_loss": math.nan, "loss": 1.0})
    with pytest.raises(experiment.TrainingDiverged, match="epoch_001.weights.h5"):
        guard.on_train_batch_end(3, {"depth_loss": np.inf, "rotation_loss": 1.0, "loss": 1.0})


def test_a_loss_above_the_bound_counts_as_diverged(tmp_path):
    guard = callbacks.StopOnNonFinite(str(tmp_path / "checkpoints"), bound=100.0)
    guard.on_train_batch_end(0, {"d_loss": 99.0, "loss": 1.0})
    with pytest.raises(experiment.TrainingDiverged, match=r"^d_loss exceeded 100 at epoch 1"):
        guard.on_train_batch_end(1, {"d_loss": 250.0, "loss": 1.0})


class _BlowUp(keras.callbacks.Callback):
    """Makes depth's loss NaN at the first step of the second epoch, `times` times."""

    def __init__(self, times):
        super().__init__()
        self.times, self.blown = times, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.epoch == 1 and batch == 0 and self.blown < self.times:
            self.blown += 1
            logs["depth_loss"] = math.nan


@pytest.mark.slow
def test_a_diverged_run_rolls_back_to_its_last_checkpoint_once(tiny_config, tmp_path, monkeypatch):
    """With recoveries = 1 a blow-up in epoch 2 goes back to epoch 1's checkpoint, tells
    the method (`rolled_back`), and the run finishes; a second blow-up stops it; with no
    recoveries the first does."""
    from zoo.methods import MultiTask

    told = []
    monkeypatch.setattr(MultiTask, "rolled_back", lambda self, attempt: told.append(attempt))
    once = _BlowUp(1)
    results = experiment.train(str(tmp_path / "once"), callbacks=[once], recoveries=1)
    assert once.blown == 1 and told == [1]
    assert len(results["history"]["depth_loss"]) == 2
    assert all(math.isfinite(v) for v in results["history"]["depth_loss"])
    twice = _BlowUp(2)
    with pytest.raises(experiment.TrainingDiverged, match=r"after 1 roll-back"):
        experiment.train(str(tmp_path / "twice"), callbacks=[twice], recoveries=1)
    assert twice.blown == 2 and told == [1, 1]
    with pytest.raises(experiment.TrainingDiverged, match=r"^depth_loss became NaN"):
        experiment.train(str(tmp_path / "never"), callbacks=[_BlowUp(1)])
    with pytest.raises(
        experiment.TrainingDiverged, match=r"loss exceeded 1e-09 at epoch 1, step 1"
    ):
        experiment.train(str(tmp_path / "bound"), loss_bound=1e-9)  # the run's bound
    with pytest.raises(UserError, match="`recoveries` must be"):
        experiment.train(str(tmp_path / "bad"), recoveries=-1)


def test_strategy_choices():
    assert experiment.make_strategy("default") is tf.distribute.get_strategy()
    assert isinstance(experiment.make_strategy("mirrored"), tf.distribute.MirroredStrategy)
    with pytest.raises(ValueError, match="strategy"):
        experiment.make_strategy("tpu")


class _Built(Exception):
    pass


def test_seed_and_serial_ops_reach_the_run(tiny_config, tmp_path, monkeypatch):
    seen = []
    serial = []
    monkeypatch.setattr(runtime, "run_ops_one_at_a_time", lambda strategy: serial.append(1))

    def method():  # stops the run once it is seeded
        seen.append((np.random.random(), float(keras.random.uniform((), seed=None))))
        raise _Built()

    gin.bind_parameter("zoo.experiment.train.method", method)
    for seed, serial_ops in ((3, True), (3, False), (4, True)):
        with pytest.raises(_Built):
            experiment.train(str(tmp_path), seed=seed, serial_ops=serial_ops)
    assert seen[0] == seen[1] != seen[2]
    assert len(serial) == 2  # ops one at a time when asked only


def test_train_refuses_a_built_method_and_bad_lengths(tiny_config, tmp_path):
    gin.parse_config("zoo.experiment.train.method = @zoo.methods.MultiTask()")
    with pytest.raises(TypeError, match="without parentheses"):
        experiment.train(str(tmp_path))
    gin.parse_config("zoo.experiment.train.method = @zoo.methods.MultiTask")
    with pytest.raises(ValueError, match="steps_per_epoch=0"):
        experiment.train(str(tmp_path), steps_per_epoch=0)


def test_the_optimizer_binding_reaches_every_player(tiny_config):
    gin.parse_config(
        "zoo.methods.MultiTask.per_task_optimizers = True\n"
        "zoo.experiment.train.optimizer = @keras.optimizers.RMSprop()\n"
        "keras.optimizers.RMSprop.learning_rate = @keras.optimizers.schedules.CosineDecay()\n"
        "keras.optimizers.schedules.CosineDecay.initial_learning_rate = 0.5\n"
        "keras.optimizers.schedules.CosineDecay.decay_steps = 10\n"
        "keras.optimizers.RMSprop.clipnorm = 2.0\n"
    )
    bindings = gin.get_bindings("zoo.experiment.train")
    method = bindings["method"]()
    method.compile(bindings["optimizer"])  # what train() does inside the strategy scope
    assert set(method.player_optimizers) == {"depth", "rotation"}
    for optimizer in method.player_optimizers.values():
        assert type(optimizer).__name__ == "RMSprop" and optimizer.clipnorm == 2.0
        schedule = optimizer.get_config()["learning_rate"]
        assert schedule["class_name"] == "CosineDecay"
        assert schedule["config"]["initial_learning_rate"] == 0.5
        assert schedule["config"]["decay_steps"] == 10


def test_cost_budget_snapshots_and_stops(tmp_path):
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    budget = experiment.CostBudget(
        {"rp": 0.5, "col": 1.0},
        budget=10,
        snapshot_every=3,
        folder=str(tmp_path),
    )
    x = np.zeros((4, 2), "float32")
    history = model.fit(
        tf.data.Dataset.from_tensors((x, x[:, :1])).repeat(),
        steps_per_epoch=4,
        epochs=5,
        callbacks=[budget],
        verbose=0,
    )
    # 1.5 units a step: the budget of 10 is reached at step 7 (10.5 units), in epoch 2
    assert budget.spent == 10.5 and len(history.history["loss"]) == 2
    assert sorted(os.listdir(tmp_path)) == [f"cost_{u:09d}.weights.h5" for u in (3, 6, 9)]
    for folder in (None, "snapshots"):  # outside a run: only an absolute folder
        stray = experiment.CostBudget({"rp": 1.0}, snapshot_every=1, folder=folder)
        with pytest.raises(ValueError, match="absolute folder. Received: folder="):
            model.fit(x, x[:, :1], epochs=1, callbacks=[stray], verbose=0)
    with pytest.raises(ValueError, match="task_costs"):
        experiment.CostBudget({"rp": 0})
    # one table for a paper's experiments: other tasks' costs unused, typos refused
    run = types.SimpleNamespace(tasks={"relative_position": None})
    shared = experiment.CostBudget({"relative_position": 2.0, "colorization": 0.5}, folder="/x")
    shared.set_model(run)
    shared.on_train_begin()
    assert shared.step_cost == 2.0
    typo = experiment.CostBudget({"relative_position": 2.0, "colourization": 0.5}, folder="/x")
    typo.set_model(run)
    with pytest.raises(ValueError, match=r"unknown tasks \['colourization'\]; this run's"):
        typo.on_train_begin()
    with pytest.raises(ValueError, match="budget"):
        experiment.CostBudget({"rp": 1}, budget=-1)


@pytest.mark.parametrize(
    "name",
    [
        "rp",
        "col",
        "ex",
        "ms",
        "rp_col",
        "rp_ex",
        "rp_ms",
        "rp_col_ex",
        "rp_col_ex_ms",
        "rp_h",
        "rp_col_h",
        "lasso_pretrain",
    ],
)
def test_doersch17_experiments_parse_with_paper_defaults(name):
    from zoo.cli import gin_setup

    folder = os.path.join(os.path.dirname(os.path.dirname(__file__)), "gin_configs", "doersch17")
    gin.clear_config()
    path = os.path.join(folder, f"{name}.gin")
    gin_setup.parse([path], [])
    assert "Table" in open(path).read().splitlines()[0]  # each file names its paper row
    tasks = gin.query_parameter("zoo.methods.MultiTask.tasks")
    abbreviations = {
        "RelativePosition": "rp",
        "Colorization": "col",
        "Exemplar": "ex",
        "MotionSegmentation": "ms",
    }
    names = [abbreviations[t.configurable.name] for t in tasks]
    expected = {"lasso_pretrain": ["rp", "col", "ex", "ms"]}.get(
        name, [n for n in name.split("_") if n != "h"]
    )
    assert names == expected
    assert gin.query_parameter("zoo.trunks.resnet.depth") == 101
    assert gin.query_parameter("zoo.trunks.resnet.output_stride") == 8
    assert gin.query_parameter("zoo.experiment.train.optimizer").configurable.name == "RMSprop"
    assert gin.query_parameter("zoo.methods.MultiTask.per_task_optimizers")
    harmonizer = gin.query_parameter("zoo.tasks.RelativePosition.harmonizer")
    assert harmonizer == ("lab_l3" if name.endswith("_h") else "drop_color")
    bindings = gin.get_bindings("zoo.methods.MultiTask")
    assert bindings.get("lasso_block") == ("block3" if name == "lasso_pretrain" else None)
    gin.clear_config()


@pytest.mark.slow
def test_doersch17_small_builds_and_evaluation_configs_parse():
    from zoo.cli import gin_setup

    folder = os.path.join(os.path.dirname(os.path.dirname(__file__)), "gin_configs", "doersch17")
    gin.clear_config()
    gin_setup.parse(
        [os.path.join(folder, "lasso_pretrain.gin"), os.path.join(folder, "small.gin")], []
    )
    model = gin.get_configurable("zoo.methods.MultiTask")()
    assert model.lasso.alphas().shape == (4, 6)  # ResNet-50: 6 units in block 3
    shapes = {n: tuple(out.shape) for n, out in model.network.output.items()}
    assert shapes == {
        "relative_position": (None, 8),
        "colorization": (None, 8, 8, 262),
        "exemplar": (None, 3, 32),  # 1x1x32 per 32 px patch
        "motion_segmentation": (None, 8, 8, 1),
    }
    for name in ("eval_linear", "eval_lasso", "eval_depth"):
        gin.clear_config()
        gin_setup.parse([os.path.join(folder, f"{name}.gin")], [])
        assert gin.query_parameter("zoo.evaluation.transfer.endpoint") == "block3"
    assert gin.query_parameter("zoo.evaluation.transfer.head") == "up_projection"
    assert gin.query_parameter("zoo.tasks.Depth.depth_loss") == "berhu"
    gin.clear_config()


def test_an_unusable_checkpoint_is_set_aside_and_the_one_before_used(tiny_config, tmp_path):
    model_dir = str(tmp_path / "run")
    experiment.prepare_model_dir(model_dir, tiny_config)
    finished = experiment.train(model_dir)
    os.remove(os.path.join(model_dir, "metrics.json"))  # as if killed before the end
    last = experiment.checkpoints(model_dir)[-1]
    data = open(last, "rb").read()
    open(last, "wb").write(data[: len(data) // 2])  # a write cut in half
    results = experiment.train(model_dir)
    # set aside, and its epoch trained again from the one before: the same weights
    assert open(last + ".unreadable", "rb").read() == data[: len(data) // 2]
    assert [os.path.basename(c) for c in experiment.checkpoints(model_dir)] == [
        "epoch_001.weights.h5",
        "epoch_002.weights.h5",
    ]
    assert open(last, "rb").read() != data[: len(data) // 2]
    assert results["trained"] == finished["trained"]
    assert results["history"] == finished["history"]


def test_a_checkpoint_laid_out_for_other_variables_is_refused_and_kept(tmp_path):
    """A grad_norm run checkpointed before its weights moved into the loss_balancer
    layer held them as the method's own variables: such a file is refused by name and
    left as it was."""
    import h5py
    from helpers import tiny_trunk

    from zoo.data.synthetic import SceneSpec
    from zoo.errors import DataError
    from zoo.methods import MultiTask
    from zoo.tasks import Depth, Normals

    spec = SceneSpec(variant="----", mode="multi", resolution=32)
    tasks = [Depth(spec, num_examples=4, head_width=8), Normals(spec, num_examples=4)]
    model = MultiTask(tiny_trunk(), tasks, loss_balance="grad_norm", balance_steps=2)
    path = str(tmp_path / "epoch_001.weights.h5")
    model.save_weights(path)
    with h5py.File(path, "r+") as f:  # the earlier layout: the balancer's vars at the top
        del f["vars"]
        f.move("balancer/vars", "vars")
        del f["balancer"]
    before = open(path, "rb").read()
    with pytest.raises(DataError, match=r"epoch_001.weights.h5 does not hold this method"):
        experiment.load_checkpoint(model, path)
    assert open(path, "rb").read() == before
    fresh = MultiTask(tiny_trunk(), tasks, loss_balance="grad_norm", balance_steps=2)
    fresh.save_weights(path)
    experiment.load_checkpoint(model, path)  # the current layout loads
