"""Transfer protocols and heads: `zoo.methods.Transfer` on a zoo trunk and a zoo task."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.data.synthetic import SceneSpec
from zoo.evaluation.exported import signature_input_size
from zoo.evaluation.protocols import load_trunk, source_trunk
from zoo.methods import Transfer
from zoo.tasks import Classification, Depth, SemanticSegmentation
from zoo.trunks import resnet

SINGLE = SceneSpec(variant="----", mode="single", resolution=48)
MULTI = SceneSpec(variant="----", mode="multi", resolution=48)


def _trunk(input_shape=(48, 48, 3)):
    """A seeded ResNet-18 v2 to block 3 (its stages' units as the protocols see them, on
    half the layers of a ResNet-26 to block 3)."""
    keras.utils.set_random_seed(0)
    return resnet(
        18,
        version=2,
        width_multiplier=0.0625,
        stop_at="block3",
        output_stride=8,
        input_shape=input_shape,
    )


def _classification(**kwargs):
    kwargs.setdefault("endpoint", "block3")
    return Classification(SINGLE, num_examples=16, eval_examples=8, **kwargs)


def _fit(model):
    """Paths of the weights two SGD steps change."""
    model.compile(keras.optimizers.SGD(0.1))
    before = [(w, w.numpy().copy()) for w in model.weights]
    model.fit(model.datasets(8), steps_per_epoch=2, epochs=1, verbose=0)
    return {w.path for w, value in before if not np.array_equal(value, w.numpy())}


def test_linear_trains_only_the_linear_layer():
    model = Transfer(_trunk(), _classification(), protocol="linear", pooling="max3x3")
    head = {"classification_logits/kernel", "classification_logits/bias"}
    assert {w.path for w in model.trainable_weights} == head
    kernel = model.network.get_layer("classification_logits").kernel
    assert kernel.shape == (3 * 3 * 16, 10)  # 3x3 cells x 256/16 channels, 10 classes
    assert _fit(model) == head  # BatchNorm statistics frozen too


def test_lasso_linear_adds_one_trainable_row():
    model = Transfer(_trunk(), _classification(), protocol="lasso_linear", lasso_block="block3")
    paths = {w.path for w in model.trainable_weights}
    assert paths == {
        "lasso/alpha_classification",
        "classification_logits/kernel",
        "classification_logits/bias",
    }
    assert model.lasso.alphas().shape == (1, 2)  # ResNet-26: 2 units in block 3


def test_frozen_k_and_finetune():
    model = Transfer(_trunk(), _classification(), protocol="frozen_k", frozen_stages=2)
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable and all(p.startswith(("block3_", "classification_")) for p in trainable)
    changed = _fit(model)
    assert any(p.startswith("block3_") for p in changed)
    assert not any(p.startswith(("stem", "block1_", "block2_")) for p in changed)
    full = Transfer(_trunk(), _classification(), protocol="finetune")
    assert len(full.trainable_weights) == len(_trunk().trainable_weights) + 2


def test_frozen_k_freezes_each_half_of_a_split_trunk():
    """CMC's trunk nests two ResNet-9s (L and ab): k freezes the stem and blocks 1..k
    of both, not only the weightless layers that join their maps."""
    import functools

    from zoo.trunks import resnet9
    from zoo.trunks.protocols import set_trainable
    from zoo.trunks.split import channel_split

    def frozen_and_trained(k):
        trunk = channel_split(
            functools.partial(resnet9, width_multiplier=0.125), input_shape=(32, 32, 3)
        )
        set_trainable(trunk, "frozen_k", k)
        kernels = {
            f"{half.name}/{layer.name}": layer.trainable
            for half in trunk.layers
            if isinstance(half, keras.Model)
            for layer in half.layers
            if isinstance(layer, keras.layers.Conv2D)
        }
        return kernels, len(trunk.trainable_weights)

    counts = []
    for k in (0, 1, 2, 3):
        kernels, trainable = frozen_and_trained(k)
        counts.append(trainable)
        frozen = ("stem",) + tuple(f"block{i}_" for i in range(1, k + 1))
        for half in ("channel_split_l", "channel_split_ab"):
            mine = {n.split("/")[1]: t for n, t in kernels.items() if n.startswith(half + "/")}
            assert len(mine) == 8  # prep, block1's conv and unit (2), block2, block3's (3)
            assert {n for n, t in mine.items() if not t} == {
                n for n in mine if n.startswith(frozen)
            }
    # 2 halves x 8 convolutions x (kernel, BN's scale and offset); each frozen
    # convolution takes 6 of those 48 (the stem; + block 1's 3; + block 2's; + block 3's 3)
    assert counts == [48 - 6, 48 - 24, 48 - 30, 0]


def test_bad_arguments():
    with pytest.raises(ValueError, match="`protocol` must be one of"):
        Transfer(_trunk(), _classification(), protocol="knn")
    task = Classification(SINGLE, num_examples=16, endpoint="block4")
    with pytest.raises(ValueError, match="endpoints the trunk does not have"):
        Transfer(_trunk(), task, protocol="linear")
    small = resnet(18, width_multiplier=0.125, input_shape=(32, 32, 3))  # block4: 1x1
    task = Classification(SceneSpec(variant="----", resolution=32), num_examples=8)
    with pytest.raises(ValueError, match="does not pool to 3x3"):
        Transfer(small, task, protocol="linear", pooling="max3x3")
    with pytest.raises(ValueError, match="lasso_linear is a protocol of global tasks"):
        Transfer(_trunk(), Depth(MULTI, endpoint="block3"), protocol="lasso_linear")
    for k in (4, -1, "2", True):  # the trunk stops at block 3
        with pytest.raises(
            ValueError, match=r"must be 0 to 3 for this trunk \(blocks \[1, 2, 3\]\)"
        ):
            Transfer(_trunk(), _classification(), protocol="frozen_k", frozen_stages=k)


def test_configs_of_older_runs_still_load():
    """A Transfer config written when Transfer derived from MultiTask carries its one
    task's loss weight (always 1 from zoo-finetune): it loads; another weight is refused."""
    model = Transfer(_trunk(), _classification(), protocol="lasso_linear", lasso_block="block3")
    config = model.get_config()
    assert "tasks" not in config and config["lasso_block"] == "block3"
    rebuilt = Transfer.from_config({**config, "loss_weights": {"classification": 1.0}})
    assert rebuilt.get_config() == model.get_config()
    x = np.random.default_rng(0).uniform(size=(2, 48, 48, 3)).astype("float32")
    rebuilt.set_weights(model.get_weights())
    np.testing.assert_allclose(
        rebuilt({"images": x})["classification"], model({"images": x})["classification"], atol=1e-6
    )
    with pytest.raises(ValueError, match="no longer takes loss_weights"):
        Transfer.from_config({**model.get_config(), "loss_weights": {"classification": 2.0}})


def test_dense_heads_and_their_targets():
    depth = Depth(MULTI, num_examples=4, eval_examples=4, endpoint="block3")
    coarse = Transfer(_trunk(), depth, protocol="linear", head="coarse")
    assert coarse.network.output["depth"].shape == (None, 6, 6, 1)  # 48 / 8
    assert len(coarse.trainable_weights) == 2
    assert coarse.task.target_stride == 8
    task = SemanticSegmentation(MULTI, num_examples=8, endpoint="block3")
    up = Transfer(_trunk(), task, protocol="finetune", head="up_projection")
    assert up.network.output["semantic_segmentation"].shape == (None, 48, 48, 11)
    assert up.task.target_stride == 1  # three 2x blocks from 6x6
    own = Transfer(_trunk(), Depth(MULTI, endpoint="block3", head_width=8), head="task")
    assert own.network.output["depth"].shape == (None, 48, 48, 1)
    _, targets = next(iter(coarse.datasets(2)))
    assert targets["depth"].shape == (2, 6, 6, 1)


def test_coarse_targets_of_dense_tasks():
    depth = Depth(MULTI, target_stride=2)
    maps = np.arange(16, dtype="float32").reshape(4, 4, 1)
    np.testing.assert_allclose(
        depth.resize_targets(maps).numpy()[..., 0], [[2.5, 4.5], [10.5, 12.5]]
    )
    labels = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]], "int32")
    segmentation = SemanticSegmentation(MULTI, target_stride=2)
    np.testing.assert_array_equal(segmentation.resize_targets(labels).numpy(), [[1, 2], [3, 4]])
    with pytest.raises(ValueError, match="power of two"):
        Depth(MULTI, target_stride=3)


@pytest.mark.slow
def test_load_trunk_from_an_export_keeps_endpoints_and_values(tmp_path):
    from export import export_trunk

    trunk = _trunk()
    path = export_trunk(trunk, str(tmp_path / "trunk"))
    loaded = load_trunk(path, input_shape=(48, 48, 3))
    # the trunk's endpoint order (heads read the last one by default), also for an
    # export without zoo_export.json (written before it listed them)
    assert list(loaded.output) == list(trunk.output)
    os.remove(os.path.join(path, "zoo_export.json"))
    assert list(load_trunk(path, input_shape=(48, 48, 3)).output) == list(trunk.output)
    images = np.random.default_rng(1).random((2, 48, 48, 3)).astype("float32")
    expected, got = trunk(images), loaded(images)
    for key in ("block3/unit_2", "block3", "stem"):
        np.testing.assert_allclose(got[key].numpy(), expected[key].numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="takes 48x48 images"):
        load_trunk(path, input_shape=(64, 64, 3))
    assert signature_input_size(path) == 48
    # a trunk of a run on (height, width) images: its export says so, and is refused at
    # a square size with the reason
    wide = export_trunk(_trunk(input_shape=(24, 32, 3)), str(tmp_path / "wide"))
    assert signature_input_size(wide) == (24, 32)
    with pytest.raises(ValueError, match="takes 24x32 images .* not square"):
        load_trunk(wide, input_shape=(32, 32, 3))
    # linear: the head alone trains, and the frozen export runs in inference mode
    model = Transfer(loaded, _classification(), protocol="linear", pooling="max3x3")
    head = {"classification_logits/kernel", "classification_logits/bias"}
    assert {w.path for w in model.trainable_weights} == head
    statistics = [v.numpy().copy() for v in model.non_trainable_weights]
    _fit(model)
    for before, variable in zip(statistics, model.non_trainable_weights):
        np.testing.assert_array_equal(before, variable.numpy())


def _same_heads(model, reference):
    sources = {w.path: w for w in reference.weights if w.path.startswith("classification")}
    heads = [w for w in model.weights if w.path in sources]
    assert heads
    for weight in heads:
        weight.assign(sources[weight.path])


@pytest.mark.slow
def test_an_export_finetunes_and_measures_batch_norm_as_its_trunk_does(tmp_path):
    from export import export_trunk
    from zoo.evaluation.exported import ExportedTrunk

    trunk = _trunk()
    path = export_trunk(trunk, str(tmp_path / "trunk"))
    exported = load_trunk(path, input_shape=(48, 48, 3))
    direct = Transfer(trunk, _classification(endpoint=None))
    model = Transfer(exported, _classification(endpoint=None))
    _same_heads(model, direct)
    batch = next(iter(direct.datasets(8)))
    data = tf.data.Dataset.from_tensors(batch).repeat()
    losses = []
    for method in (direct, model):  # Adam: slots named after the export's variables
        method.compile(keras.optimizers.Adam(1e-3))
        history = method.fit(data, steps_per_epoch=2, epochs=1, verbose=0)
        losses.append(history.history["loss"][-1])
    np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4)
    layer = next(layer for layer in exported.layers if isinstance(layer, ExportedTrunk))
    weights = {w.name: w for w in layer.weights}
    kernel = direct.trunk.get_layer("block3_unit_2_2_conv").kernel
    np.testing.assert_allclose(
        weights["block3_unit_2_2_conv_kernel"].numpy(), kernel.numpy(), atol=1e-5
    )
    # precise BatchNorm reaches the BatchNorm layers inside the SavedModel
    batches = list(direct.datasets(8).take(3))
    count = direct.precise_batch_norm(iter(batches), 3, progress=False)
    assert model.precise_batch_norm(iter(batches), 3, progress=False) == count
    assert count == len(layer.batch_norm_statistics()) > 10
    for mean, variance in layer.batch_norm_statistics():
        norm = direct.trunk.get_layer(mean.name.removesuffix("_moving_mean"))
        for got, expected in ((mean, norm.moving_mean), (variance, norm.moving_variance)):
            np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-4, atol=1e-5)


def test_load_trunk_random_and_errors(tmp_path):
    trunk = load_trunk(
        "random",
        builder=lambda input_shape: resnet(18, width_multiplier=0.125, input_shape=input_shape),
        input_shape=(32, 32, 3),
    )
    assert trunk.output["block4"].shape == (None, 1, 1, 64)
    with pytest.raises(ValueError, match="needs `builder`"):
        load_trunk("random")
    # a "random" transfer source without `like`: a new ResNet-50 v1, as keras.applications'
    default = source_trunk("random", 32)
    reference = keras.applications.ResNet50(
        weights=None, include_top=False, input_shape=(32, 32, 3)
    )
    assert default.count_params() == reference.count_params()
    assert default.output["block4"].shape == (None, 1, 1, 2048)
    with pytest.raises(FileNotFoundError, match="neither"):
        load_trunk(str(tmp_path))
