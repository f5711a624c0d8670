"""CompL's parts: the DeepLabv3+ decoder, the composite step (target and auxiliary
images in one concatenated pass, losses weighed by λ), labelled fractions, the key bank
and the export without the auxiliary heads."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import TWO_STAGE_DEEPLAB, check_method_contract

from zoo.data import LabelledFraction, Synthetic
from zoo.data.synthetic import SceneSpec
from zoo.errors import UserError
from zoo.methods import MultiTask
from zoo.tasks import DenseCL, Depth, MoCo, Rotation
from zoo.trunks import deeplab_v3_plus, resnet

SPEC = SceneSpec(variant="----", mode="multi", resolution=32)
STAGES = ("block3", "block4")


def _resnet(**kwargs):
    return resnet(26, version=1, norm="group", width_multiplier=0.0625, **kwargs)


def _two_stage_resnet(**kwargs):
    return resnet(18, version=1, norm="group", width_multiplier=0.0625, stop_at="block2", **kwargs)


def _deeplab(input_shape=(32, 32, 3), seed=0, **kwargs):
    """DeepLabv3+ on the first two stages of a narrow ResNet-18 (ASPP on block 2 at
    stride 8): the decoder of CompL's rows on a third of ResNet-26's layers."""
    keras.utils.set_random_seed(seed)
    kwargs = {"filters": 16, "skip_filters": 8, "rates": (1, 2, 3), **kwargs}
    kwargs = {"aspp_endpoint": "block2", "output_stride": 8, **kwargs}
    return deeplab_v3_plus(_two_stage_resnet, input_shape=input_shape, **kwargs)


def _tasks(negatives="bank", examples=16):
    common = {"num_examples": examples, "eval_examples": 8, "endpoint": "decoder"}
    return [
        Depth(SPEC, head="linear", depth_loss="l1", **common),
        DenseCL(SPEC, hidden=16, projection=8, grid=2, negatives=negatives, **common),
        Rotation(SPEC, **common),
    ]


def _composite(one_pass=True, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    model = MultiTask(
        lambda **k: _deeplab(seed=seed, **k),
        _tasks(**kwargs),
        input_size=32,
        loss_weights={"densecl": 0.2, "rotation": 0.05},
        one_pass=one_pass,
    )
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9))
    return model


def test_decoder_shapes_rates_and_groups_at_both_output_strides():
    for stride, rates in ((16, (6, 12, 18)), (8, (12, 24, 36))):
        model = deeplab_v3_plus(_resnet, input_shape=(64, 64, 3), output_stride=stride, filters=32)
        out = model(np.zeros((2, 64, 64, 3), "float32"))
        assert tuple(out["block4"].shape) == (2, 64 // stride, 64 // stride, 128)
        assert tuple(out["aspp"].shape) == (2, 64 // stride, 64 // stride, 32)
        assert tuple(out["decoder"].shape) == (2, 16, 16, 32)  # block 1's stride 4
        got = tuple(model.get_layer(f"aspp_rate{i}_conv").dilation_rate[0] for i in (1, 2, 3))
        assert got == rates
        groups = {
            layer.name: layer.groups
            for layer in model.layers
            if isinstance(layer, keras.layers.GroupNormalization)
        }
        assert groups["decoder_skip_gn"] == 24 and groups["decoder_conv2_gn"] == 32
        assert groups["aspp_pool_gn"] == 32 and len(groups) == 9
        # the trunk dilates block 4 at stride 16, blocks 3 and 4 at stride 8 (the first
        # unit's 3x3 convolution at the rate before, as torchvision and TF-Slim do)
        trunk = model.get_layer("resnet26_v1")
        dilation = {n: trunk.get_layer(f"{n}_unit_2_2_conv").dilation_rate[0] for n in STAGES}
        wanted = {"block3": 1, "block4": 2} if stride == 16 else {"block3": 2, "block4": 4}
        assert dilation == wanted
    with pytest.raises(UserError, match="no endpoint"):
        deeplab_v3_plus(_resnet, skip_endpoint="block0")
    # a built trunk (from_supervised.gin's): the decoder on it, its weights shared
    trunk = _resnet(output_stride=16)
    wrapped = deeplab_v3_plus(trunk, filters=16)
    assert wrapped.get_layer(trunk.name) is trunk and wrapped.input.shape[1] is None


def test_one_concatenated_pass_equals_a_pass_per_input_and_refuses_batch_norm():
    joined, separate = _composite(one_pass=True), _composite(one_pass=False)
    separate.set_weights(joined.get_weights())

    def slices(network):
        return [x for x in network.layers if type(x).__name__ == "SliceRows"]

    # the three inputs are 32 px images: one trunk pass in training, inference unchanged
    assert len(slices(joined.train_network)) == 3 and not slices(joined.network)
    assert not slices(separate.train_network)
    inputs = next(iter(joined.datasets(4)))[0]
    a = joined.train_network(inputs, training=True)["tasks"]
    b = separate.train_network(inputs, training=True)["tasks"]
    for task in a:
        for x, y in zip(tf.nest.flatten(a[task]), tf.nest.flatten(b[task])):
            np.testing.assert_allclose(x.numpy(), y.numpy(), atol=1e-5, err_msg=task)

    def batch_norm_resnet(**kwargs):
        return resnet(26, version=1, width_multiplier=0.0625, **kwargs)

    batch_norm = deeplab_v3_plus(batch_norm_resnet, input_shape=(32, 32, 3), filters=16)
    with pytest.raises(UserError, match="BatchNormalization"):
        MultiTask(batch_norm, _tasks(negatives="queue"), one_pass=True)


def test_the_logged_loss_is_the_target_plus_lambda_times_the_auxiliaries():
    model = _composite()
    history = model.fit(model.datasets(4), epochs=2, steps_per_epoch=1, verbose=0).history
    for step in range(2):
        total = (
            history["depth_loss"][step]
            + 0.2 * history["densecl_loss"][step]
            + 0.05 * history["rotation_loss"][step]
        )
        assert history["loss"][step] == pytest.approx(total, rel=1e-5)
    assert history["densecl_loss"][1] > 0  # the bank holds the first step's keys


def test_labelled_fractions_are_nested_exact_and_read_their_examples():
    source = Synthetic(SPEC, 40)
    kept = {f: set(LabelledFraction(source, f, seed=3).positions()) for f in (0.1, 0.25, 0.5, 1.0)}
    assert [len(k) for k in kept.values()] == [4, 10, 20, 40]
    assert kept[0.1] < kept[0.25] < kept[0.5] < kept[1.0]
    assert set(LabelledFraction(source, 0.25, seed=4).positions()) != kept[0.25]
    part = LabelledFraction(source, 0.1, seed=3)
    images = [e["image"] for e in source.examples(["image"]).as_numpy_iterator()]
    wanted = [images[p] for p in sorted(kept[0.1])]
    got = [e["image"] for e in part.examples(["image"]).as_numpy_iterator()]
    np.testing.assert_array_equal(np.stack(got), np.stack(wanted))
    places = sorted(int(i) for i, _ in part.shuffled(["image"], seed=0).as_numpy_iterator())
    assert places == [0, 1, 2, 3]
    with pytest.raises(UserError, match="fraction"):
        LabelledFraction(source, 0.0)
    # the complement: the other examples (MGMr's weakly labelled scenes)
    rest = LabelledFraction(source, 0.25, seed=3, complement=True)
    assert set(rest.positions()) == set(range(40)) - kept[0.25] and len(rest) == 30
    got = [e["image"] for e in rest.examples(["image"]).as_numpy_iterator()]
    np.testing.assert_array_equal(np.stack(got), np.stack([images[p] for p in rest.positions()]))
    with pytest.raises(UserError, match="none for the complement"):
        LabelledFraction(source, 1.0, complement=True)
    # a task's labelled_fraction: the same order whatever the task's seed
    for seed in (0, 7):
        task = Depth(SPEC, num_examples=40, labelled_fraction=0.25, seed=seed)
        assert set(task.data_source("train").positions()) == set(
            LabelledFraction(source, 0.25).positions()
        )


def test_target_and_auxiliary_images_are_drawn_apart():
    """The target reads its labelled quarter, the auxiliary every image, each from a
    stream of its own: a step's two batches are different images."""
    depth = Depth(SPEC, num_examples=16, eval_examples=8, labelled_fraction=0.25)
    aux = MoCo(SPEC, num_examples=16, eval_examples=8, negatives="bank", hidden=8, projection=4)
    model = MultiTask(lambda **k: _deeplab(**k), [depth, aux], input_size=32)
    source = Synthetic(SPEC, 16)
    images = np.stack([e["image"] for e in source.examples(["image"]).as_numpy_iterator()])
    kept = set(depth.data_source("train").positions())
    seen_target, seen_aux, same = [], [], 0
    for inputs, targets in model.datasets(4).take(6):
        for image in inputs["images"].numpy():  # the target's images: only its quarter
            (match,) = np.flatnonzero(np.abs(images - image).max(axis=(1, 2, 3)) < 1e-6)
            seen_target.append(int(match))
        step = targets["moco"].numpy().tolist()  # the auxiliary's images: their indices
        seen_aux += step
        same += sorted(step) == sorted(seen_target[-4:])
    assert set(seen_target) == kept and len(kept) == 4
    assert len(set(seen_aux)) >= 12 and same < 6


def _bank_model(strategy=None):
    with (strategy or tf.distribute.get_strategy()).scope():
        keras.utils.set_random_seed(0)
        task = MoCo(
            SPEC,
            num_examples=16,
            eval_examples=8,
            hidden=16,
            projection=8,
            negatives="bank",
            endpoint="decoder",
            temperature=0.4,
        )
        model = MultiTask(lambda **k: _deeplab(**k), [task], input_size=32)
        model.compile(keras.optimizers.SGD(0.01))
    return model


def test_the_bank_masks_the_own_slot_and_writes_each_key_at_its_image_index():
    model = _bank_model()
    task, encoders = model.tasks["moco"], model.momentum
    assert task.queue_size == 16  # a slot per training image
    bank, filled = encoders.queues["moco/keys"], encoders.filled["moco/keys"]
    rng = np.random.default_rng(0)
    start = rng.normal(size=(16, 8)).astype("float32")
    start /= np.linalg.norm(start, axis=1, keepdims=True)
    bank.assign(start)
    filled.assign(np.r_[np.ones(12), np.zeros(4)].astype("float32"))  # slots 12-15 empty
    inputs, targets = next(iter(model.datasets(4)))
    index = targets["moco"].numpy()
    assert targets["moco"].dtype == tf.int64 and len(set(index)) == 4

    # the loss against numpy: the own slot and the empty ones are not negatives
    out = model(inputs, training=True)["moco"]
    given = encoders.targets("moco", inputs["moco"], targets["moco"])
    loss = task.loss(given, out).numpy()
    q = out.numpy() / np.linalg.norm(out.numpy(), axis=1, keepdims=True)
    k = given["key"].numpy() / np.linalg.norm(given["key"].numpy(), axis=1, keepdims=True)
    expected = []
    for b in range(4):
        negatives = [j for j in range(12) if j != index[b]]
        logits = np.r_[q[b] @ k[b], start[negatives] @ q[b]] / 0.4
        expected.append(np.log(np.exp(logits).sum()) - logits[0])
    np.testing.assert_allclose(loss, expected, rtol=1e-4, atol=1e-5)

    # one step writes the step's keys (the key network's before its update) at the indices
    keys = tf.math.l2_normalize(encoders.keys("moco", inputs["moco"]), axis=-1).numpy()
    model.fit(tf.data.Dataset.from_tensors((inputs, targets)), epochs=1, verbose=0)
    after = bank.numpy()
    np.testing.assert_allclose(after[index], keys, atol=1e-5)
    untouched = [j for j in range(16) if j not in index]
    np.testing.assert_array_equal(after[untouched], start[untouched])
    assert filled.numpy()[index].tolist() == [1.0] * 4


@pytest.mark.slow
def test_contract_and_an_export_without_the_auxiliary_heads(mirrored, tmp_path):
    from export import export_model
    from zoo.methods import groups
    from zoo.tasks.base import pipeline

    depth, densecl, _ = _tasks()  # rotation's pass is the target's: the test above
    streams = {"images": pipeline([depth], "train", 4), "densecl": pipeline([densecl], "train", 4)}
    batch = next(iter(groups.merged(streams)))
    kwargs = {
        "trunk": lambda **k: _deeplab(**k),
        "tasks": [depth, densecl],
        "input_size": 32,
        "loss_weights": {"densecl": 0.2},
        "one_pass": True,
    }
    # on two replicas the first step equals one device's, the bank included: each
    # replica writes the slots of the whole global batch
    trained = check_method_contract(MultiTask, kwargs, batch, strategy=mirrored)
    assert trained.momentum.filled["densecl/keys"].numpy().sum() == 4
    path = export_model(trained, "depth", str(tmp_path), "depth")
    loaded = tf.saved_model.load(path)
    names = [v.name for v in loaded.variables]
    assert names and not [n for n in names if "densecl" in n]
    assert any("decoder_conv2" in n for n in names)
    assert os.path.exists(os.path.join(path, "zoo_export.json"))


TINY_ROW = [
    "INPUT_SIZE = 32",
    "NUM_SCENES = 16",
    "zoo.tasks.DenseCL.eval_examples = 8",
    "zoo.tasks.SemanticSegmentation.eval_examples = 8",
    *TWO_STAGE_DEEPLAB,
    "zoo.data.augment.FixedOffsetCrops.size = 24",
    "zoo.tasks.DenseCL.grid = 2",
    "BATCH = 4",
    "STEPS = 1",
    "STEPS_PER_EPOCH = 1",
    "zoo.experiment.train.epochs = 1",
    "zoo.experiment.train.verbose = 0",
]


def test_a_row_starts_from_the_whole_network_of_a_pretrained_run(tmp_path):
    """Tables 1-2's "A -> A + T": DenseCL alone trained first (densecl.gin), then the
    row's network starts from its trunk and decoder (from_run.gin)."""
    import gin

    from zoo import experiment
    from zoo.cli import gin_setup

    root = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "gin_configs")
    small = os.path.join(root, "compl22", "small.gin")
    gin_setup.parse([os.path.join(root, "compl22", "densecl.gin"), small], TINY_ROW)
    pretrained = str(tmp_path / "densecl")
    experiment.train(pretrained)
    source, _ = experiment.restore(pretrained)
    gin.clear_config()
    files = [os.path.join(root, "compl22", f) for f in ("semseg_densecl.gin", "small.gin")]
    files.append(os.path.join(root, "compl22", "from_run.gin"))
    gin_setup.parse(files, [*TINY_ROW, f'PRETRAINED_RUN = "{pretrained}"'])
    method = gin.get_bindings("zoo.experiment.train")["method"]()
    assert "decoder" in method.trunk.output and method.trunk.input.shape[1] is None
    start = {w.path: w.numpy() for w in source.trunk.weights}
    assert len(start) == len(method.trunk.weights) > 50
    for weight in method.trunk.weights:
        np.testing.assert_array_equal(weight.numpy(), start[weight.path], err_msg=weight.path)


def test_linear_depth_outputs_take_an_l1_loss_on_the_depth_itself():
    """CompL's depth head predicts the depth: the L1 loss and the metrics read it as it
    is (the log output's exp would make a far-too-small prediction's gradient vanish)."""
    task = Depth(SPEC, num_examples=4, eval_examples=4, depth_loss="l1", output="linear")
    truth = np.array([[[[2.0], [0.0]], [[4.0], [1.0]]]], "float32")  # one unknown pixel
    predicted = np.array([[[[1.0], [9.0]], [[4.5], [-1.0]]]], "float32")
    expected = (1.0 + 0.5 + 2.0) / 3  # the unknown pixel left out
    assert task.loss(tf.constant(truth), tf.constant(predicted)).numpy()[0] == pytest.approx(
        expected
    )
    assert task.serving_outputs(tf.constant(predicted))["depth"].numpy()[0, 1, 0, 0] == 4.5
    log = Depth(SPEC, num_examples=4, eval_examples=4, depth_loss="l1")
    assert log.loss(tf.constant(truth), tf.constant(np.log(truth + 1e-9))).numpy()[0] < 1e-5
    with pytest.raises(UserError, match="scale-invariant"):
        Depth(SPEC, num_examples=4, eval_examples=4, output="linear")


def test_a_non_square_depth_row_trains_measures_and_serves_its_size(tmp_path):
    """The paper's depth rows take 425x560 crops (here 24x32 of 32 px scenes): the
    target's augmentation crops training scenes to that size and held-out ones at their
    centre, rotation turns a 24 px square, and the export serves 24x32 images (files of
    any size resized to cover it and cropped at the centre)."""
    import gin

    from export import export_model
    from zoo import experiment
    from zoo.cli import gin_setup
    from zoo.tasks.base import pipeline

    root = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "gin_configs")
    files = [os.path.join(root, "compl22", f) for f in ("depth_rot.gin", "small.gin")]
    gin_setup.parse(
        files,
        [
            *TINY_ROW,
            "INPUT_SIZE = (24, 32)",
            "RENDER_SIZE = 32",
            "zoo.tasks.Rotation.size = 24",
            "zoo.tasks.Depth.eval_examples = 8",
            "zoo.tasks.Rotation.eval_examples = 8",
        ],
    )
    experiment.train(str(tmp_path / "run"))
    gin.clear_config()
    model, _ = experiment.restore(str(tmp_path / "run"))
    assert model.input_size == (24, 32)
    assert tuple(model.task_model("depth").input.shape) == (None, 24, 32, 3)
    assert tuple(model.task_model("rotation").input.shape) == (None, 24, 24, 3)
    depth, rotation = model.tasks["depth"], model.tasks["rotation"]
    for task, shape in ((depth, (24, 32, 3)), (rotation, (24, 24, 3))):
        for split in ("train", "eval"):
            inputs, _ = next(iter(pipeline([task], split, 2)))
            assert tuple(inputs.shape[1:]) == shape, (task.name, split)
    # held out: the centre 24 rows of the 32 px scene, unscaled
    held, truth = next(iter(pipeline([depth], "eval", 1)))
    scene = next(iter(depth.data_source("eval").examples(["depth"])))
    np.testing.assert_array_equal(truth["depth"][0, ..., 0], scene["depth"][4:28])
    with open(tmp_path / "run" / "metrics.json") as f:
        trained = json.load(f)["trained"]
    assert np.isfinite(trained["depth"]["rmse"]) and 0 <= trained["rotation"]["accuracy"] <= 1

    path = export_model(model, "depth", str(tmp_path / "serving"), "depth")
    loaded = tf.saved_model.load(path)
    predicted = loaded.signatures["serving_default"](images=held)
    assert tuple(next(iter(predicted.values())).shape) == (1, 24, 32, 1)
    png = tf.io.encode_png(tf.zeros((48, 40, 3), tf.uint8))
    served = loaded.signatures["serve_bytes"](encoded=tf.stack([png]))
    assert tuple(next(iter(served.values())).shape) == (1, 24, 32, 1)
