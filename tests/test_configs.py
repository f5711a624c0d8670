"""Every training experiment in gin_configs/ builds its method with the paper's settings.

The trunk is narrowed (width 1/16) so that the full-size heads, input sizes, tasks and
optimizers of each file are built in seconds; no data is rendered (photos/pretext.gin
reads the photographs that scikit-image installs).
"""

import glob
import os

import gin
import keras
import pytest

from zoo.cli import gin_setup
from zoo.methods import Method

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# an experiment file names its tasks (base.gin, trunk.gin, small.gin and eval_* do not)
TRAINING = sorted(
    os.path.relpath(p, os.path.join(ROOT, "gin_configs"))
    for p in glob.glob(os.path.join(ROOT, "gin_configs", "**", "*.gin"), recursive=True)
    if "zoo.methods.MultiTask.tasks =" in open(p).read()
)
NARROW = {
    "zoo.trunks.resnet": "import zoo.trunks\nzoo.trunks.resnet.width_multiplier = 0.0625",
    "zoo.trunks.resnet9": "zoo.trunks.resnet9.width_multiplier = 0.0625",
}


def test_the_training_experiments_are_found():
    assert "quickstart.gin" in TRAINING and "newell20/pretrain_rotation.gin" in TRAINING
    assert "photos/pretext.gin" in TRAINING
    assert {f"ren_lee18/{n}.gin" for n in ("3tasks", "depth", "edge", "surf")} <= set(TRAINING)
    assert len([t for t in TRAINING if t.startswith("doersch17/")]) == 12


@pytest.mark.parametrize("name", TRAINING)
def test_experiment_builds_its_method(name):
    extra = []
    if name == "photos/pretext.gin":  # the user's folder: here scikit-image's photos
        from zoo.data.sources import skimage_data_dir

        extra = [f'PHOTO_FOLDER = "{skimage_data_dir()}"']
    gin_setup.parse([os.path.join(ROOT, "gin_configs", name)], [*NARROW.values(), *extra])
    bindings = gin.get_bindings("zoo.experiment.train")
    method = bindings["method"]()
    assert isinstance(method, Method)
    method.compile(bindings["optimizer"])
    assert all(o.built for o in method.player_optimizers.values())
    assert isinstance(bindings["optimizer"], keras.optimizers.Optimizer)
    expected_size = {
        "quickstart.gin": 64,
        "newell20/pretrain_rotation.gin": 64,
        "photos/pretext.gin": 256,
    }
    size = expected_size.get(name, 256 if name.startswith("doersch17") else 128)
    assert method.input_size == size  # the paper's (or the file's) input size
