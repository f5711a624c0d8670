"""MGM (zoo.methods.MGM): the players each phase of Algorithm 1 updates, in the code's
order; the stages; a run resumed in the middle of a stage; the scene labels of its
batches; refused arguments. (Its contract: tests/methods/test_method_contracts.py.)"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import tiny_mgm_settings

from zoo.data.synthetic import SCENE_NAMES, SceneSpec
from zoo.errors import UserError
from zoo.methods import MGM
from zoo.tasks import Depth


def tiny_mgm(run_eagerly=False, **kwargs):
    """MGM at 32 px (`tiny_mgm_settings`), compiled with Adam (`run_eagerly`: steps of a
    few epochs without tracing each stage's step)."""
    keras.utils.set_random_seed(0)
    method = MGM(**tiny_mgm_settings(**kwargs))
    method.compile(keras.optimizers.Adam(1e-3), run_eagerly=run_eagerly)
    return method


def _recorded_step(method, batch):
    """The players `method`'s step updates, in order (its `apply` calls, eagerly)."""
    order = []
    apply = method.apply

    def recording(player, tape, loss):
        order.append(player)
        apply(player, tape, loss)

    method.apply = recording
    method.train_step(batch)
    del method.apply
    return order


def _values(variables):
    return [v.numpy().copy() for v in variables]


def _moved(before, variables):
    return any(not np.array_equal(b, v.numpy()) for b, v in zip(before, variables))


def test_a_joint_step_updates_the_players_of_algorithm_1_in_the_code_s_order():
    method = tiny_mgm(gan_steps=2)
    batch = next(iter(method.datasets(4)))
    assert method.stage == "joint"
    # tasks -> M; CE of R(M(x)) -> R, E; NT-Xent -> M; 2 x (D, then G with Emb and E);
    # the synthetic batch: CE -> E alone (R frozen), NT-Xent -> M
    gan = ["D", "G", "Emb", "E"]
    assert _recorded_step(method, batch) == ["M", "R", "E", "M", *gan, *gan, "E", "M"]


def test_the_synthetic_phase_leaves_r_and_g_alone():
    """The generated batch's losses reach E only: with no self-supervision and G frozen
    after its stage (MGM/j), a joint step's last update is E's on CE(c, R(M(x̃))); R's
    weights and moving statistics and G's weights are where the real-data phases left
    them."""
    method = tiny_mgm(self_supervision=None, joint_generator=False)
    batch = next(iter(method.datasets(4)))
    order = _recorded_step(method, batch)
    assert order == ["M", "R", "E", "E"]
    refinement = method.networks["refinement"].weights
    generator = method.networks["generator"].weights
    trunk = method.trunk.trainable_variables
    before_r, before_g, before_e = _values(refinement), _values(generator), _values(trunk)
    # the synthetic phase alone: the real-data phases switched off for one call
    method.stage = "joint"
    x, targets = batch
    fake = (method.networks["generator"]([tf.zeros([4, 8]), targets["scene"]]) + 1.0) / 2.0
    before = method.player_optimizers["E"].iterations.numpy()
    method.refinement_phase(fake, targets["scene"], weak=True)
    assert method.player_optimizers["E"].iterations.numpy() == before + 1
    assert not _moved(before_r, refinement), "R changed in the synthetic phase"
    assert not _moved(before_g, generator), "G changed in the synthetic phase"
    assert _moved(before_e, trunk)


def test_stages_switch_by_epoch_and_each_moves_its_players_only():
    method = tiny_mgm(stage_epochs=(1, 1), self_supervision=None, run_eagerly=True)
    parts = {
        "heads": [v for v in method.train_network.trainable_variables if "trunk" not in v.path],
        "trunk": method.trunk.weights,  # with BatchNorm's moving statistics
        "R": method.networks["refinement"].trainable_variables,
        "G": method.networks["generator"].trainable_variables,
        "D": method.networks["discriminator"].trainable_variables,
        "Emb": method.networks["embedding"].trainable_variables,
    }
    assert [method.stage_of(e) for e in range(4)] == ["tasks", "gan", "joint", "joint"]
    moved, logged = [], []

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.before = {k: _values(v) for k, v in parts.items()}

        def on_epoch_end(self, epoch, logs=None):
            moved.append(sorted(k for k, v in parts.items() if _moved(self.before[k], v)))
            logged.append(sorted(logs))

    method.fit(
        method.datasets(4),
        epochs=3,
        steps_per_epoch=1,
        verbose=0,
        callbacks=[*method.method_callbacks(), Snapshot()],
    )
    assert moved == [
        ["heads", "trunk"],  # stage 1: M alone
        ["D", "Emb", "G"],  # stage 2: M frozen (E in inference mode)
        ["D", "Emb", "G", "R", "heads", "trunk"],
    ]
    # each stage logs its phases' losses only (stage 2's `loss`: D's plus G's)
    assert logged[0] == ["depth_loss", "loss", "normals_loss"]
    assert logged[1] == ["d_accuracy", "d_loss", "g_loss", "loss", "trunk_frechet_distance"]
    assert {"scene_loss", "weak_scene_loss", "d_loss", "depth_loss"} <= set(logged[2])


def test_a_traced_step_is_traced_again_when_the_stage_changes():
    """`fit`'s graph function of stage 1 (tasks alone) is replaced at stage 3: R, which
    only the joint stage trains, moves in the second epoch and not in the first."""
    depth = Depth(
        SceneSpec(variant="----", mode="multi", resolution=32),
        head_width=8,
        num_examples=8,
        eval_examples=4,
    )
    method = tiny_mgm(tasks=[depth], generator=None, self_supervision=None, stage_epochs=(1, 0))
    refinement = method.networks["refinement"].trainable_variables
    moved = []

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.before = _values(refinement)

        def on_epoch_end(self, epoch, logs=None):
            moved.append(_moved(self.before, refinement))

    method.fit(
        method.datasets(4),
        epochs=2,
        steps_per_epoch=1,
        verbose=0,
        callbacks=[*method.method_callbacks(), Snapshot()],
    )
    assert moved == [False, True]


def test_a_run_resumed_in_the_middle_of_a_stage_equals_an_uninterrupted_one(tmp_path):
    """Three epochs of one step (stage 1, then the GAN stage of two epochs) against two
    epochs, a checkpoint, and the third in a new instance."""

    def fitted(method, first, last):
        method.fit(
            method.datasets(4).skip(first),
            initial_epoch=first,
            epochs=last,
            steps_per_epoch=1,
            verbose=0,
            callbacks=method.method_callbacks(),
        )

    whole = tiny_mgm(stage_epochs=(1, 2), run_eagerly=True)
    fitted(whole, 0, 3)
    first = tiny_mgm(stage_epochs=(1, 2), run_eagerly=True)
    fitted(first, 0, 2)
    path = str(tmp_path / "epoch_2.weights.h5")
    first.save_weights(path)
    resumed = tiny_mgm(stage_epochs=(1, 2), run_eagerly=True)
    resumed.load_weights(path)
    fitted(resumed, 2, 3)
    assert resumed.stage == "gan"
    for a, b in zip(whole.weights, resumed.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6, err_msg=a.path)


def test_a_retry_after_a_blow_up_draws_other_noise():
    """After a roll-back (`rolled_back`) the step counter that seeds every draw jumps past
    any step a run reaches: the retried steps draw other noise than the diverged ones."""
    from zoo.methods.mgm import _seeds

    method = tiny_mgm()
    before = [s.numpy() for s in _seeds(method._step, 4)]
    method.rolled_back(1)
    assert int(method._step.numpy()) == 1 << 40
    after = [s.numpy() for s in _seeds(method._step, 4)]
    assert all(not np.array_equal(a, b) for a, b in zip(before, after))


def test_on_two_replicas_each_draws_its_own_noise_and_a_step_trains(mirrored):
    """The step's seeds fold in the replica (two replicas drawing the same noise would
    halve what G and D see); a fit step of the whole method on two replicas gives
    finite logs of every phase."""
    from zoo.methods.mgm import _seeds

    per_replica = mirrored.run(lambda: _seeds(tf.constant(5, tf.int64), 2)[0])
    first, second = [t.numpy() for t in mirrored.experimental_local_results(per_replica)]
    assert not np.array_equal(first, second)
    batch = next(iter(tiny_mgm(gan_steps=1).datasets(4)))
    with mirrored.scope():  # eagerly: tracing every phase for two replicas costs a minute
        method = tiny_mgm(gan_steps=1, run_eagerly=True)
    data = tf.data.Dataset.from_tensors(batch).repeat()
    history = method.fit(data, epochs=1, steps_per_epoch=1, verbose=0).history
    assert {"d_loss", "g_loss", "weak_scene_loss", "simclr_loss", "depth_loss"} <= set(history)
    assert all(np.isfinite(v[0]) for v in history.values()), history


def test_a_user_s_scenes_with_a_scene_label_each_from_tfrecords(tmp_path):
    """A user's data: images with depth, normals and a scene category each, written as
    TFRecords with the category names in labels.json; MGM counts the scene classes from
    the names, its batches carry each example's category, and a joint step runs."""
    import json

    from zoo.data import TFRecords
    from zoo.data.synthetic.io import examples_of
    from zoo.data.tfrecord import write_tfrecords
    from zoo.tasks import Normals

    spec = SceneSpec(variant="----", mode="multi", resolution=32)
    keys = ("image", "depth", "normals")
    scenes = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2]
    examples = [
        {**{k: e[k] for k in keys}, "scene": np.int64(c)}
        for e, c in zip(examples_of(spec, range(12)), scenes)
    ]
    names = {"scene": ["kitchen", "office", "street"]}
    for split, part in (("train", examples[:8]), ("eval", examples[8:])):
        write_tfrecords(part, str(tmp_path / split), image_keys=("image",))
        (tmp_path / split / "labels.json").write_text(json.dumps(names))
    data = {"source": TFRecords(str(tmp_path / "train")), "head_width": 8}
    data["eval_source"] = TFRecords(str(tmp_path / "eval"))
    method = tiny_mgm(tasks=[Depth(**data), Normals(**data)])
    assert method.scene_classes == 3
    _, targets = next(iter(method.datasets(4, "eval")))
    assert targets["scene"].numpy().tolist() == scenes[8:]
    order = _recorded_step(method, next(iter(method.datasets(4))))
    assert order[:3] == ["M", "R", "E"] and order[-1] == "M"


def test_batches_carry_the_scene_of_each_rendered_scene():
    method = tiny_mgm()
    assert method.scene_classes == len(SCENE_NAMES) == 7
    x, targets = next(iter(method.datasets(4, "eval")))
    scenes = [int(e["scene"]) for e in method.tasks["depth"].examples("eval", ["scene"]).take(4)]
    assert targets["scene"].dtype == tf.int32
    assert targets["scene"].numpy().tolist() == scenes
    assert len(set(scenes)) > 1


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"generator": "stylegan"}, "`generator` must be one of"),
        ({"stage_epochs": (1,)}, "stage_epochs must be two ints"),
        ({"warmup_latent": "zeros"}, "`warmup_latent` must be one of"),
        ({"scene_classes": 5}, "scene_classes=5, but the source names 7"),
        ({"gan_steps": 0}, "gan_steps"),
        ({"generator_width": 0}, "generator_width"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(UserError, match=message):
        tiny_mgm(**kwargs)


def test_players_follow_the_ablations():
    assert tiny_mgm().players == ("M", "E", "R", "Emb", "G", "D")
    assert tiny_mgm(generator=None).players == ("M", "E", "R")  # MGM/G
    assert tiny_mgm(generator=None, refinement=None).players == ("M",)


def _sizes(method):
    return {k: n.count_params() for k, n in method.networks.items()}


def test_each_size_knob_reaches_its_network():
    base = _sizes(tiny_mgm())
    for kwargs, part in [
        ({"generator_width": 8}, "generator"),
        ({"generator_width": 8}, "discriminator"),
        ({"z_dim": 4}, "embedding"),
        ({"projection": 4}, "projection"),
        ({"refinement_widths": (8, 8, 16)}, "refinement"),
        ({"refinement_units": (1, 1, 2)}, "refinement"),
        ({"refinement_stem": 4}, "refinement"),
    ]:
        assert _sizes(tiny_mgm(**kwargs))[part] != base[part], kwargs
    kinds = lambda m: {type(layer).__name__ for layer in m.networks["generator"].layers}  # noqa: E731
    assert "ConditionalBatchNorm" in kinds(tiny_mgm()) and "SelfAttention" not in kinds(tiny_mgm())
    assert "SelfAttention" in kinds(tiny_mgm(generator="sagan", attention_size=8))
    assert "SelfAttention" not in kinds(tiny_mgm(generator="sagan", attention_size=None))
    relu = tiny_mgm(relu_logits=True).networks["refinement"]
    assert relu.layers[-1].name == "refinement_relu_logits"


def _logs_of_one_step(**kwargs):
    method = tiny_mgm(**kwargs)
    order = _recorded_step(method, next(iter(method.datasets(4))))
    return order, {m.name: float(m.result()) for m in method.metrics}


def test_the_loss_knobs_reach_the_losses_and_the_warm_up_latent_its_players():
    contrastive = {"generator": None, "refinement": None}
    _, base = _logs_of_one_step(**contrastive)
    _, sharper = _logs_of_one_step(temperature=0.1, **contrastive)
    assert sharper["simclr_loss"] != pytest.approx(base["simclr_loss"], rel=1e-3)
    gan = {"refinement": None, "self_supervision": None, "stage_epochs": (0, 1)}
    order, base = _logs_of_one_step(gan_steps=1, **gan)
    assert order == ["D", "G", "Emb"]  # stage 2: G and Emb, M frozen
    order, noisier = _logs_of_one_step(gan_steps=1, instance_noise=0.5, **gan)
    assert noisier["d_loss"] != pytest.approx(base["d_loss"], rel=1e-3)
    order, _ = _logs_of_one_step(gan_steps=1, warmup_latent="noise", **gan)
    assert order == ["D", "G"]  # the code's warm-up: z is noise, Emb unused


def test_the_frechet_monitor_and_the_picture_of_generated_scenes(tmp_path):
    """The monitor logs a finite distance once G trains (not in stage 1); the picture has
    a row per scene class (7) with the image and M's three maps; `generate` draws [0, 1]
    images without moving BatchNorm's statistics."""
    from PIL import Image

    from zoo.evaluation.plots import plot_run_generated

    method = tiny_mgm()
    monitor = [c for c in method.method_callbacks() if type(c).__name__ == "_FrechetMonitor"][0]
    monitor.set_model(method)
    statistics = _values(method.non_trainable_variables)
    logs = {}
    monitor.on_epoch_end(0, logs)
    assert np.isfinite(logs["trunk_frechet_distance"]) and logs["trunk_frechet_distance"] > 0
    assert not _moved(statistics, method.non_trainable_variables)
    method.stage = "tasks"
    quiet = {}
    monitor.on_epoch_end(0, quiet)
    assert quiet == {}
    method.stage = "joint"
    fake = method.generate(tf.zeros([3, 32, 32, 3]), tf.constant([0, 1, 2]))
    assert fake.shape == (3, 32, 32, 3) and 0 <= fake.numpy().min() and fake.numpy().max() <= 1
    names = plot_run_generated(method, str(tmp_path / "generated.png"))
    assert names == list(SCENE_NAMES)
    width, height = Image.open(tmp_path / "generated.png").size
    assert height > 6 * 100 and width > 3 * 100  # 7 rows of 1.6 in, 3 maps + the image


def test_mgmr_steps_on_the_real_scenes_outside_the_labelled_share():
    """MGMr: the weak phase reads the real training scenes that the tasks' labelled
    fraction leaves out, with their scene categories, and updates E (CE, R frozen) and M
    (NT-Xent); refused without a labelled fraction or with a generator."""
    scenes = SceneSpec(variant="----", mode="multi", resolution=32)
    small = {"head_width": 8, "num_examples": 8, "eval_examples": 4, "labelled_fraction": 0.5}
    method = tiny_mgm(tasks=[Depth(scenes, **small)], generator=None, weak_real=True)
    x, targets = batch = next(iter(method.datasets(4)))
    depth = method.tasks["depth"]
    labelled = depth.data_source("train")
    images = [e["image"] for e in labelled.source.examples(["image"]).as_numpy_iterator()]
    weak = targets["weak"]["image"].numpy()
    outside = [images[p] for p in set(range(8)) - set(labelled.positions())]
    for image in weak:  # each weak image is one of the four outside the labelled half
        assert min(np.abs(image - o).max() for o in outside) < 1e-6
    for image in x[method.group].numpy():
        assert min(np.abs(image - o).max() for o in outside) > 1e-3
    assert targets["weak"]["scene"].shape == (4,)
    assert _recorded_step(method, batch) == ["M", "R", "E", "M", "E", "M"]
    logs = {m.name for m in method.metrics if m.name.startswith("weak")}
    assert logs >= {"weak_scene_loss", "weak_simclr_loss"}
    with pytest.raises(UserError, match="labelled_fraction is 1.0"):
        tiny_mgm(generator=None, weak_real=True).datasets(4)
    with pytest.raises(UserError, match="set generator=None"):
        tiny_mgm(weak_real=True)


def test_synthetic_ratio_sets_the_number_of_generated_images():
    from zoo.methods.mgm import _synthetic

    x, _ = next(iter(tiny_mgm().datasets(4)))
    scenes = tf.constant([0, 1, 2, 3])
    for ratio, count in [(1.0, 4), (0.5, 2), (2.5, 10)]:
        method = tiny_mgm(synthetic_ratio=ratio)
        weak = _synthetic(method, x, scenes, tf.constant([1, 2], tf.int64))
        assert weak["image"].shape == (count, 32, 32, 3), ratio
        assert weak["scene"].numpy().tolist() == ([0, 1, 2, 3] * 3)[:count]
    # each copy of a real image draws its own noise
    images = _synthetic(tiny_mgm(synthetic_ratio=2.0), x, scenes, tf.constant([1, 2], tf.int64))
    assert np.abs(images["image"][0] - images["image"][4]).max() > 1e-4


def test_reconstruction_replaces_simclr_with_the_mse_of_a_decoded_image():
    """MGM_recon: the self-supervised loss is the mean squared error between the image and
    the decoder's output from E's map (against numpy), and it steps M."""
    from zoo.methods.mgm import _self_supervised_loss

    method = tiny_mgm(self_supervision="reconstruction", generator=None, refinement=None)
    assert "projection" not in method.networks
    images = tf.random.stateless_uniform([3, 32, 32, 3], (4, 2))
    per_example = _self_supervised_loss(method, images, tf.constant([0, 1], tf.int64)).numpy()
    features = method.trunk(images, training=True)[method.endpoints["depth"]]
    rebuilt = method.networks["reconstruction"](features, training=True).numpy()
    wanted = ((rebuilt - images.numpy()) ** 2).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(per_example, wanted, rtol=1e-5)
    decoder = method.networks["reconstruction"].trainable_variables
    assert all(any(v is w for w in method.variables_of("M")) for v in decoder)
    order, logs = _logs_of_one_step(self_supervision="reconstruction", generator=None)
    assert order == ["M", "R", "E", "M"] and logs["reconstruction_loss"] > 0


@pytest.mark.parametrize(
    "refinement,order",
    [
        ("em", ["M", "R", "E", "E"]),  # EML: R and E on real, E alone on generated
        ("end_to_end", ["M", "R", "M", "R", "M"]),  # PEoE: R and all of M on every image
        ("separate", ["M", "R", "E"]),  # LSeT: R alone on real, E alone on generated
    ],
)
def test_refinement_training_strategies_of_table_9(refinement, order):
    method = tiny_mgm(refinement=refinement, self_supervision=None, joint_generator=False)
    assert _recorded_step(method, next(iter(method.datasets(4)))) == order
