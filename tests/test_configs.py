"""Every training experiment in gin_configs/ builds its method with the paper's settings.

The trunk is narrowed (width 1/16) so that the full-size heads, input sizes, tasks and
optimizers of each file are built in seconds; no data is rendered (photos/pretext.gin
reads the photographs that scikit-image installs).
"""

import glob
import os

import gin
import keras
import numpy as np
import pytest

from zoo.cli import gin_setup
from zoo.methods import Method

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# an experiment file names its tasks or its adapted layer (base.gin, trunk.gin, small.gin,
# da_base.gin and eval_* do not)
TRAINING = sorted(
    os.path.relpath(p, os.path.join(ROOT, "gin_configs"))
    for p in glob.glob(os.path.join(ROOT, "gin_configs", "**", "*.gin"), recursive=True)
    if any(
        key in open(p).read()
        for key in (
            "zoo.methods.MultiTask.tasks =",
            "zoo.methods.DomainAdversarial.adapt_at =",
            "zoo.methods.MGM.tasks =",
        )
    )
    # MGM's rows with players, a network or a stream of their own (their optimizers must
    # match them); the other mgm_*.gin rows switch a flag of mgm.gin (test_mgm.py)
    or p.endswith(("mgm22/mgm_g.gin", "mgm22/mgm_refine.gin", "mgmr.gin", "mgm_recon.gin"))
)
NARROW = {
    "zoo.trunks.resnet": "import zoo.trunks\nzoo.trunks.resnet.width_multiplier = 0.0625",
    "zoo.trunks.resnet9": "zoo.trunks.resnet9.width_multiplier = 0.0625",
    # CMC's half networks (newell20/pretrain_cmc.gin), whose widths are given
    "half": "half/zoo.trunks.resnet9.width_multiplier = 1.0\n"
    "half/zoo.trunks.resnet9.widths = [4, 8, 8, 32]\n"
    "half/zoo.trunks.resnet9.inner_widths = (4, 16)",
    "zoo.trunks.alexnet": "zoo.trunks.alexnet.width_multiplier = 0.0625",
    # MGM's generator, discriminator and R (their full sizes: tests/layers/test_gan_networks.py
    # and tests/trunks/test_resnet.py)
    "zoo.methods.MGM": "zoo.methods.MGM.generator_width = 4\n"
    "zoo.methods.MGM.refinement_widths = (4, 4, 4)\n"
    "zoo.methods.MGM.refinement_stem = 4",
}


def test_the_training_experiments_are_found():
    assert "quickstart.gin" in TRAINING and "newell20/pretrain_rotation.gin" in TRAINING
    assert "photos/pretext.gin" in TRAINING
    rows = ("3tasks", "depth", "edge", "surf", "da_conv1", "da_conv4", "da_conv5", "da_conv6")
    rows += ("da_conv5_bifool", "da_conv5_more_data")
    assert {f"ren_lee18/{n}.gin" for n in rows} <= set(TRAINING)
    assert len([t for t in TRAINING if t.startswith("doersch17/")]) == 12
    names = ("moco_v2", "simclr", "densecl")
    assert {f"contrastive/{n}.gin" for n in names} <= set(TRAINING)


@pytest.mark.parametrize("name", TRAINING)
def test_experiment_builds_its_method(name):
    extra = []
    if name == "photos/pretext.gin" or name.startswith("contrastive/"):
        # the user's folder: here scikit-image's photos
        from zoo.data.sources import skimage_data_dir

        macro = "PHOTO_FOLDER" if name.startswith("photos") else "IMAGE_FOLDER"
        extra = [f'{macro} = "{skimage_data_dir()}"']
    if name.startswith("mgm22/"):  # widths of its own (MGM's [48, 96, 192, 360])
        extra = [
            "zoo.trunks.resnet.width_multiplier = 1.0",
            "zoo.trunks.resnet.widths = [4, 8, 8, 16]",
        ]
    gin_setup.parse([os.path.join(ROOT, "gin_configs", name)], [*NARROW.values(), *extra])
    bindings = gin.get_bindings("zoo.experiment.train")
    method = bindings["method"]()
    assert isinstance(method, Method)
    method.compile(bindings["optimizer"])
    assert all(o.built for o in method.player_optimizers.values())
    optimizers = bindings["optimizer"]
    optimizers = optimizers.values() if isinstance(optimizers, dict) else [optimizers]
    assert all(isinstance(o, keras.optimizers.Optimizer) for o in optimizers)
    expected_size = {
        "quickstart.gin": 64,
        "newell20/pretrain_rotation.gin": 64,
        "photos/pretext.gin": 256,
    }
    papers = {"doersch17": 256, "ren_lee18": 227, "contrastive": 224, "compl22": 512}
    papers["newell20"] = 64
    if name.startswith("compl22/boundaries"):
        expected_size[name] = 481  # BSDS500
    if name.startswith("compl22/depth"):
        expected_size[name] = (425, 560)  # NYUD's crops
    expected_size["compl22/supervised.gin"] = 224  # the ImageNet stand-in
    size = expected_size.get(name, papers.get(name.split("/")[0], 128))
    assert method.input_size == size  # the paper's (or the file's) input size


@pytest.mark.parametrize(
    "row,layer,bi_fool,scenes",
    [
        ("da_conv1", "conv1", False, 500000),
        ("da_conv4", "conv4", False, 500000),
        ("da_conv5", "conv5", False, 500000),
        ("da_conv6", "conv6", False, 500000),
        ("da_conv5_bifool", "conv5", True, 500000),
        ("da_conv5_more_data", "conv5", False, 1500000),
    ],
)
def test_table_3_rows_name_their_layer_and_data(row, layer, bi_fool, scenes):
    path = os.path.join(ROOT, "gin_configs", "ren_lee18", f"{row}.gin")
    gin_setup.parse([path], [NARROW["zoo.trunks.alexnet"]])
    method = gin.get_bindings("zoo.experiment.train")["method"]()
    assert (method.adapt_endpoint, method.bi_fool) == (layer, bi_fool)
    assert {t.num_examples for t in method.tasks.values()} == {scenes}
    assert method.loss_balance == "grad_norm" and method.discriminator.input.shape[1] == (
        56 if layer == "conv1" else 13
    )
    # small.gin keeps the rows apart: 3x the scenes for row 10, the layers, bi-fool
    small = os.path.join(ROOT, "gin_configs", "ren_lee18", "small.gin")
    gin.clear_config()
    gin_setup.parse([path, small], [])
    method = gin.get_bindings("zoo.experiment.train")["method"]()
    assert method.input_size == 96 and method.adapt_endpoint == layer
    assert {t.num_examples for t in method.tasks.values()} == {
        3 * 1024 if scenes > 500000 else 1024
    }


@pytest.mark.parametrize(
    "name,task", [("moco_v2", "moco"), ("simclr", "simclr"), ("densecl", "densecl")]
)
def test_contrastive_experiments_full_size_and_small(name, task):
    """The papers' settings, and small.gin's CPU version with its data streaming."""
    from zoo.data.sources import skimage_data_dir

    path = os.path.join(ROOT, "gin_configs", "contrastive", f"{name}.gin")
    gin_setup.parse([path], [f'IMAGE_FOLDER = "{skimage_data_dir()}"', NARROW["zoo.trunks.resnet"]])
    method = gin.get_bindings("zoo.experiment.train")["method"]()
    full = method.tasks[task]
    assert full.input_shape(224) == (2, 224, 224, 3) and full.projection == 128
    assert full.hidden == 2048 and method.trunk.name.startswith("resnet50")
    if name != "simclr":
        assert (full.queue_size, full.momentum, full.temperature) == (65536, 0.999, 0.2)
        assert method.momentum.queues[f"{task}/keys"].shape == (65536, 128)
    else:
        assert full.temperature == 0.1 and full.views.crop.scale == (0.08, 1.0)
    small = os.path.join(ROOT, "gin_configs", "contrastive", "small.gin")
    gin.clear_config()
    gin_setup.parse([path, small], [NARROW["zoo.trunks.resnet9"]])
    method = gin.get_bindings("zoo.experiment.train")["method"]()
    assert method.input_size == 64 and method.tasks[task].num_examples == 4096
    assert gin.get_bindings("zoo.experiment.train")["batch_size"] == 32
    inputs, _ = next(iter(method.datasets(2, "eval")))  # the held-out scenes stream
    assert inputs[task].shape == (2, 2, 64, 64, 3)


def test_byol_experiment_full_size_and_small():
    """BYOL's paper settings (projector and predictor 4096 -> 256, τ 0.996 rising to 1
    over the run, LARS at 3.2 after 10 warm-up epochs, batch 4096), and small.gin's."""
    from zoo.data.sources import skimage_data_dir
    from zoo.optimizers import LARS

    path = os.path.join(ROOT, "gin_configs", "contrastive", "byol.gin")
    gin_setup.parse([path], [f'IMAGE_FOLDER = "{skimage_data_dir()}"', NARROW["zoo.trunks.resnet"]])
    train = gin.get_bindings("zoo.experiment.train")
    method = train["method"]()
    task = method.tasks["byol"]
    assert (task.hidden, task.projection, task.momentum) == (4096, 256, 0.996)
    assert task.momentum_steps == train["epochs"] * train["steps_per_epoch"] == 1000 * 312
    assert train["batch_size"] == 4096 and task.views.per_view[1][1].p == 0.2
    assert method.momentum.key_heads["byol"].name == "key_byol_projector"
    optimizer = train["optimizer"]
    assert isinstance(optimizer, LARS) and optimizer.lars_weight_decay == 1.5e-6
    schedule = keras.optimizers.schedules.deserialize(optimizer.get_config()["learning_rate"])
    assert float(schedule(0)) == 0.0 and float(schedule(3120)) == pytest.approx(3.2)
    assert schedule.warmup_steps + schedule.decay_steps == task.momentum_steps
    small = os.path.join(ROOT, "gin_configs", "contrastive", "small.gin")
    gin.clear_config()
    gin_setup.parse([path, small], [NARROW["zoo.trunks.resnet9"]])
    train = gin.get_bindings("zoo.experiment.train")
    method = train["method"]()
    task = method.tasks["byol"]
    assert method.input_size == 64 and task.num_examples == 4096
    assert task.momentum_steps == train["epochs"] * train["steps_per_epoch"] == 600


@pytest.mark.parametrize("name", ["rotation", "vae", "cmc", "amdim"])
def test_newell20_pretraining_at_the_code_s_sizes_on_both_trunks_and_small(name):
    """Each method's ResNet-9 and ResNet-50 files carry the code's settings and the four
    online probes; small.gin's CPU version streams its held-out objects."""
    folder = os.path.join(ROOT, "gin_configs", "newell20")
    gin_setup.parse([os.path.join(folder, f"pretrain_{name}.gin")], list(NARROW.values()))
    bindings = gin.get_bindings("zoo.experiment.train")
    method = bindings["method"]()
    probes = {f"{t}_{k}" for t in ("classification", "pose") for k in ("linear", "mlp")}
    assert set(method.tasks) == {name, *probes}
    assert {t.num_examples for t in method.tasks.values()} == {400000}
    assert {t.harmonizer for t in method.tasks.values()} == {"lab"}
    # the probes share one input of the images as they are; the method's are augmented
    assert len(method.groups) == 2
    if name in ("rotation", "vae"):  # the code's augmentation, on the Lab images
        steps = [type(s).__name__ for s in task_steps(method.tasks[name])]
        wanted = ["PadCrop", "HorizontalFlip", "ChannelJitter", "Grayscale"]
        assert steps == wanted + (["Cutout"] if name == "rotation" else [])
    optimizer = bindings["optimizer"]
    assert (optimizer.beta_1, optimizer.beta_2, optimizer.epsilon) == (0.8, 0.999, 1e-8)
    schedule = gin.get_bindings("zoo.optimizers.WarmupLinear")
    steps = bindings["epochs"] * bindings["steps_per_epoch"]
    assert schedule["total_steps"] == steps
    assert schedule["warmup_steps"] == 5 * bindings["steps_per_epoch"]
    chunk = 25000 if name == "amdim" else 50000  # the code's epoch: 50,000 images
    assert (
        abs(bindings["steps_per_epoch"] * bindings["batch_size"] - chunk) < bindings["batch_size"]
    )
    task = method.tasks[name]
    if name == "cmc":
        assert (task.negatives, task.bank_momentum, task.temperature) == (8192, 0.2, 0.1)
        assert method.momentum.queues["cmc/l"].shape == (400000, 128)
        assert method.trunk.get_layer("channel_split_l").input.shape[-1] == 1
    if name == "amdim":
        assert (task.clip, task.features, method.endpoints[name]) == (
            30.0,
            256,
            ("block3", "block2"),
        )
    gin.clear_config()
    gin_setup.parse([os.path.join(folder, f"pretrain_{name}_r50.gin")], list(NARROW.values()))
    method = gin.get_bindings("zoo.experiment.train")["method"]()
    last = method.trunk(np.zeros((1, 64, 64, 3), "float32"))["block4"]
    assert last.shape[1] == 4  # reduced pooling: stride 16 at 64 px
    if name == "cmc":
        assert method.tasks["cmc"].negatives == 4086
        assert method.trunk.get_layer("channel_split_ab").name == "channel_split_ab"
    if name == "amdim":
        assert method.endpoints["amdim"] == ("block4", "block3")
    gin.clear_config()
    gin_setup.parse(
        [os.path.join(folder, f"pretrain_{name}.gin"), os.path.join(folder, "small.gin")], []
    )
    bindings = gin.get_bindings("zoo.experiment.train")
    method = bindings["method"]()
    assert {t.num_examples for t in method.tasks.values()} == {4096}
    assert bindings["batch_size"] == 64
    assert gin.get_bindings("zoo.optimizers.WarmupLinear")["total_steps"] == 800
    if name == "cmc":  # the held-out objects stream (the same renders for every method)
        inputs, targets = next(iter(method.datasets(2, "eval")))
        assert inputs[method.input_names[name]].shape[0] == 2
        assert set(targets) == set(method.tasks)


def task_steps(task):
    return task.image_augmentation().steps


@pytest.mark.parametrize("name", ["rotation", "vae", "cmc", "amdim"])
def test_newell20_scene_pretraining_at_the_code_s_dense_sizes_and_small(name):
    """pretrain_<method>_scenes.gin: 128 px scenes of several objects, supervised at 16x16
    on the last map, per-pixel class and depth probes, the code's dense batch, epochs of
    10,000 images and learning rates; small_scenes.gin keeps the 16x16 at 64 px."""
    folder = os.path.join(ROOT, "gin_configs", "newell20")
    path = os.path.join(folder, f"pretrain_{name}_scenes.gin")
    gin_setup.parse([path], list(NARROW.values()))
    bindings = gin.get_bindings("zoo.experiment.train")
    method = bindings["method"]()
    probes = {f"{t}_{k}" for t in ("semantic_segmentation", "depth") for k in ("linear", "mlp")}
    assert set(method.tasks) == {name, *probes} and method.input_size == 128
    assert {t.num_examples for t in method.tasks.values()} == {204000}
    assert {t.source.mode for t in method.tasks.values()} == {"multi"}
    last = method.trunk(np.zeros((1, 128, 128, 3), "float32"))["block3"]
    assert last.shape[1:3] == (16, 16)
    assert {method.tasks[p].target_stride for p in probes} == {8}
    batch, epoch = bindings["batch_size"], bindings["steps_per_epoch"]
    code = {"rotation": (64, 900, 5e-4), "vae": (96, 1200, 1e-3)}
    code.update({"cmc": (64, 1600, 1e-3), "amdim": (32, 1600, 5e-4)})
    schedule = gin.get_bindings("zoo.optimizers.WarmupLinear")
    assert (batch, bindings["epochs"], schedule["peak"]) == code[name]
    assert schedule["total_steps"] == bindings["epochs"] * epoch
    assert schedule["warmup_steps"] == 5 * epoch
    chunk = 5000 if name == "amdim" else 10000  # the code's dense epoch (pairs: half)
    assert abs(epoch * batch - chunk) < batch
    if name == "cmc":
        assert (method.tasks["cmc"].negatives, method.tasks["cmc"].bank_momentum) == (16384, 0.4)
    if name == "vae":
        assert method.tasks["vae"].output_size == 64
    gin.clear_config()
    narrow = ["zoo.trunks.resnet9.widths = [4, 8, 16, 32]", NARROW["half"]]
    gin_setup.parse([path, os.path.join(folder, "small_scenes.gin")], narrow)
    method = gin.get_bindings("zoo.experiment.train")["method"]()
    assert method.input_size == 64 and {t.num_examples for t in method.tasks.values()} == {4096}
    last = method.trunk(np.zeros((1, 64, 64, 3), "float32"))["block3"]
    assert last.shape[1:3] == (16, 16)  # output stride 4
    assert {method.tasks[p].target_stride for p in probes} == {4}
