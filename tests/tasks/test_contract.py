"""Every task keeps the task contract (tests/helpers.py: check_task_contract)."""

import inspect

import pytest
from helpers import check_task_contract

import zoo.tasks
from zoo.data.synthetic import SceneSpec

MULTI = SceneSpec(variant="----", mode="multi", resolution=32)
SINGLE = SceneSpec(variant="----", mode="single", resolution=32)
MOTION = SceneSpec(variant="----", mode="motion", resolution=32)
SMALL = dict(num_examples=4, eval_examples=4)

TASKS = {
    "Depth": lambda: zoo.tasks.Depth(MULTI, head_width=8, **SMALL),
    "Normals": lambda: zoo.tasks.Normals(MULTI, head_width=8, **SMALL),
    "Contours": lambda: zoo.tasks.Contours(MULTI, head_width=8, **SMALL),
    "SemanticSegmentation": lambda: zoo.tasks.SemanticSegmentation(MULTI, head_width=8, **SMALL),
    "Classification": lambda: zoo.tasks.Classification(SINGLE, **SMALL),
    "Pose": lambda: zoo.tasks.Pose(SINGLE, **SMALL),
    "SceneClassification": lambda: zoo.tasks.SceneClassification(MULTI, **SMALL),
    "Rotation": lambda: zoo.tasks.Rotation(MULTI, harmonizer="lab_l3", **SMALL),
    "Colorization": lambda: zoo.tasks.Colorization(MULTI, head_width=8, **SMALL),
    "MotionSegmentation": lambda: zoo.tasks.MotionSegmentation(MOTION, head_width=8, **SMALL),
    "RelativePosition": lambda: zoo.tasks.RelativePosition(
        SINGLE,
        image_size=32,
        patch_size=8,
        gap=2,
        jitter=1,
        head_widths=(8, 4),
        head_bottleneck=2,
        fc_width=8,
        fc_bottleneck=2,
        **SMALL,
    ),
    "SimCLR": lambda: zoo.tasks.SimCLR(MULTI, hidden=8, projection=4, **SMALL),
    "MoCo": lambda: zoo.tasks.MoCo(MULTI, hidden=8, projection=4, queue_size=6, **SMALL),
    "DenseCL": lambda: zoo.tasks.DenseCL(
        MULTI, hidden=8, projection=4, queue_size=6, grid=2, **SMALL
    ),
    "BYOL": lambda: zoo.tasks.BYOL(MULTI, hidden=8, projection=4, momentum_steps=10, **SMALL),
    "VAE": lambda: zoo.tasks.VAE(SINGLE, harmonizer="lab", output_size=16, **SMALL),
    "CMC": lambda: zoo.tasks.CMC(SINGLE, projection=4, negatives=3, **SMALL),
    "AMDIM": lambda: zoo.tasks.AMDIM(SINGLE, features=4, **SMALL),
    "Probe": lambda: zoo.tasks.Probe(zoo.tasks.Classification(SINGLE, **SMALL), kind="mlp"),
    "Exemplar": lambda: zoo.tasks.Exemplar(
        SINGLE, image_size=32, patch_size=16, head_widths=(8, 4), head_bottleneck=2, **SMALL
    ),
}


def test_every_task_class_is_listed():
    classes = {
        name
        for name, obj in vars(zoo.tasks).items()
        if inspect.isclass(obj) and issubclass(obj, zoo.tasks.Task) and not inspect.isabstract(obj)
    }
    assert classes == set(TASKS)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_task_contract(name):
    task = TASKS[name]()
    # features of a stride-8 endpoint of 32 px images (the patch tasks' heads pool them);
    # AMDIM pools its maps to 7x7 and 5x5
    shape = (8, 8, 8) if name == "AMDIM" else (4, 4, 8)
    metrics = check_task_contract(task, input_size=32, endpoint_shape=shape)
    assert metrics
