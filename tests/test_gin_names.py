"""No dead names: every gin-configurable parameter of the zoo reaches what it configures.

For each configurable, each parameter is bound to a value other than the default and the
object built through gin must differ where it matters (its data, head, loss, network or
output), not only in a stored attribute. Parameters whose effect needs a whole run are
named with the test that shows it. The list of configurables is read from the source,
so a new configurable without an entry here fails the test.

The table is derived from the configurables' signatures: a parameter with a bool or
number default is bound to another value (`_derived_value`); the hand entries are the
values that must be chosen (strings, objects, sizes that keep the test small, values
a derived one would make invalid) and the tests that show a whole run's knobs.
"""

import hashlib
import inspect
import os
import re

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import momentum_targets

import zoo.data.augment
import zoo.data.synthetic
import zoo.evaluation.protocols
import zoo.evaluation.sweep
import zoo.evaluation.transfer
import zoo.experiment
import zoo.layers
import zoo.methods
import zoo.optimizers
import zoo.tasks
import zoo.trunks  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = "@zoo.data.synthetic.SceneSpec()"
BASE = """
zoo.data.synthetic.SceneSpec.variant = "----"
zoo.data.synthetic.SceneSpec.mode = "{mode}"
zoo.data.synthetic.SceneSpec.resolution = 32
zoo.trunks.resnet.depth = 18
zoo.trunks.resnet.width_multiplier = 0.125
zoo.trunks.resnet.input_shape = (32, 32, 3)
zoo.trunks.resnet9.width_multiplier = 0.125
zoo.trunks.resnet9.input_shape = (32, 32, 3)
zoo.trunks.alexnet.width_multiplier = 0.0625
zoo.trunks.alexnet.input_shape = (67, 67, 3)
"""


def _hash(*arrays):
    digest = hashlib.sha1()
    for a in tf.nest.flatten(arrays):
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(a)).tobytes())
    return digest.hexdigest()


def _build(name, bindings, mode="multi", **kwargs):
    gin.clear_config()
    gin.parse_config(BASE.format(mode=mode) + "\n".join(bindings))
    keras.utils.set_random_seed(0)
    return gin.get_configurable(name)(**kwargs)


# -- fingerprints: what a parameter must change ---------------------------------------


def _trunk_print(trunk):
    shapes = sorted((k, tuple(v.shape)) for k, v in trunk.output.items())
    kinds = sorted({type(layer).__name__ for layer in trunk.layers})
    size = trunk.input.shape[1] or 32
    images = np.random.default_rng(0).uniform(0, 1, (1, size, size, 3)).astype("float32")
    values = _hash(*(v for _, v in sorted(trunk(images).items())))
    return trunk.name, trunk.count_params(), shapes, kinds, tuple(trunk.input.shape), values


def _task_print(task, input_size=32):
    """The task's fingerprint, part by part, cheapest first (a generator: a test that
    only asks whether a binding changed anything stops at the first part that differs,
    before building pipelines that a head's parameter leaves alone)."""
    yield task.name, task.endpoint
    read = task.endpoints_read("last")
    # a head of several maps (AMDIM pools its maps to 7x7 and 5x5) gets each of them
    shape = (8, 8, 8) if isinstance(read, tuple) else (4, 4, 8)
    features = keras.Input(shape)
    if isinstance(read, tuple):
        features = {e: keras.Input(shape, name=e.replace("/", "_")) for e in read}
    keras.utils.set_random_seed(0)
    head = keras.Model(tf.nest.flatten(features), task.build_head(features, input_size))
    yield head.count_params(), str(tf.nest.map_structure(lambda t: tuple(t.shape), head.output))
    # the training pipeline first: more parameters change it alone (augmentation, the
    # examples drawn) than change the held-out one alone (eval_examples, eval_source)
    train_x, train_y = next(iter(task.pipeline("train", 4)))
    yield _hash(train_x, train_y)
    eval_batches = list(task.pipeline("eval", 4).take(3))
    x, y = eval_batches[0]
    yield len(eval_batches), _hash(x, y)
    rows = task.to_trunk(x).shape[0]
    rng = np.random.default_rng(0)
    endpoint = [rng.normal(size=(rows, *shape)).astype("float32") for _ in head.inputs]
    outputs = head(endpoint)
    if isinstance(task, zoo.tasks.MomentumTask):  # the keys and queues a method gives
        keys = task.key_head(head)(endpoint) if task.key_network else outputs
        y = momentum_targets(task, keys, given=y)
        x = (x, tf.nest.flatten(y))
    try:
        loss = task.loss(y, outputs).numpy()
    except (ValueError, tf.errors.InvalidArgumentError):
        loss = None  # targets of another size than this stand-in head's output
    yield (
        _hash(x, y),
        None if loss is None else _hash(np.round(loss, 5)),
        str(tf.nest.map_structure(lambda t: tuple(t.shape), x)),
        str(tf.nest.map_structure(lambda t: tuple(t.shape), y)),
    )


def _method_print(method):
    batch = next(iter(method.datasets(2, "eval")))
    method.compile(keras.optimizers.SGD(0.0))
    keras.utils.set_random_seed(0)
    logs = method.test_step(batch)
    return (
        method.players,
        method.count_params(),
        sorted((k, tuple(v.shape)) for k, v in method.network.output.items()),
        float(logs["loss"]),
        None if method.lasso is None else method.lasso.l1,
        sorted(method.groups),
    )


def _scene_print(spec):
    from zoo.data.synthetic import generate

    example = generate(spec, 0)
    return sorted(example), _hash(
        *(np.asarray(example[k]) for k in sorted(example) if k != "scene")
    )


def _sweep_print(run_sweep, tmp_path):
    cells = []

    def cell(source, n, seed, variant=None):
        cells.append((source, n, seed, variant))
        return {"value": 0.5, "metric": "accuracy"}

    folder = tmp_path / f"sweep_{len(os.listdir(tmp_path))}"
    run_sweep(str(folder), run_cell=cell, progress=None)
    return sorted(cells, key=str)


# -- the table --------------------------------------------------------------------------
# configurable -> (fingerprint(bindings) or None, {parameter: binding value | "see <test>"})

# one augmented image (its steps on the harmonized training images)
_IMAGE_STEPS = (
    "@zoo.data.augment.Views()",
    ["zoo.data.augment.Views.count = 1", "zoo.data.augment.Views.crop = None"],
)
_DENSE = {
    "head_width": "8",
    "head": '"linear"',
    "augment": "@zoo.data.augment.ScaleCropFlip()",
    # DenseTask's own: the harmonized image changes, its maps do not
    "image_augment": "see tests/data/test_augment.py::"
    "test_a_dense_task_augments_its_training_examples_only",
}
MULTI_TASKS = {
    "zoo.tasks.Depth": {
        **_DENSE,
        "depth_loss": '"l1"',
        "output": ('"linear"', ['zoo.tasks.Depth.depth_loss = "l1"']),
        "max_depth": "see tests/tasks/test_tasks.py::"
        "test_depth_is_measured_and_served_within_the_scenes_farthest_surface",
    },
    "zoo.tasks.Normals": _DENSE,
    "zoo.tasks.SceneClassification": {
        # the synthetic source names its 7 scenes: another count is refused
        "classes": "see tests/tasks/test_tasks.py::test_scene_classification",
        "augment": _IMAGE_STEPS,
    },
    "zoo.tasks.Contours": {**_DENSE, "positive_weight": "0.95"},
    "zoo.tasks.SemanticSegmentation": {
        **_DENSE,
        "augment": (_DENSE["augment"], ["zoo.tasks.SemanticSegmentation.ignore_label = 255"]),
        "classes": "13",
        "ignore_label": "0",
    },
    "zoo.tasks.Rotation": {"size": "16", "augment": _IMAGE_STEPS},
    "zoo.tasks.VAE": {
        "beta": "0.5",
        "output_size": "16",
        "kl_over_batch": "False",
        "augment": _IMAGE_STEPS,
    },
    "zoo.tasks.Colorization": {
        "head_width": "8",
        "stride": "4",
        "neighbours": "2",
        "sigma": "20.0",
        "rebalance_images": ("4", ["zoo.tasks.Colorization.rebalance = True"]),
    },
    "zoo.tasks.RelativePosition": {
        "augment": _IMAGE_STEPS,
        "image_size": "40",
        "patch_size": "6",
        "gap": "2",
        "jitter": "1",
        "head_widths": "(8, 8)",
        "head_bottleneck": "3",
        "fc_width": "12",
        "fc_bottleneck": "3",
        "fc_units": "1",
    },
    "zoo.tasks.Exemplar": {
        "image_size": "24",
        "patch_size": "12",
        "scale_range": "(0.5, 0.6)",
        "max_rotation": "80.0",
        "margin": "2.0",
        "head_widths": "(8, 8)",
        "head_bottleneck": "3",
    },
}
_CONTRASTIVE = {
    "views": ("@zoo.data.augment.Views()", ["zoo.data.augment.Views.crop = None"]),
    "hidden": "12",
    "projection": "6",
    "temperature": "0.05",
}
_MOMENTUM = {
    **_CONTRASTIVE,
    "queue_size": "9",
    "negatives": '"bank"',
    "momentum": "see tests/methods/test_contrastive.py::"
    "test_key_network_starts_as_the_query_network_and_follows_the_moving_average",
}
_CMC_SCORES = (
    "see tests/tasks/test_cmc_amdim.py::test_cmc_scores_each_half_against_the_other_half_s_bank"
)
_SCHEDULE = (
    "see tests/methods/test_byol.py::test_target_network_is_the_moving_average_at_the_scheduled_tau"
)
MULTI_TASKS.update(
    {
        "zoo.tasks.SimCLR": _CONTRASTIVE,
        "zoo.tasks.MoCo": _MOMENTUM,
        "zoo.tasks.DenseCL": {**_MOMENTUM, "grid": "3", "dense_weight": "0.9"},
        "zoo.tasks.BYOL": {
            "views": _CONTRASTIVE["views"],
            "hidden": "12",
            "projection": "6",
            "momentum": _SCHEDULE,
            "momentum_steps": _SCHEDULE,
        },
        "zoo.tasks.CMC": {
            "views": ("@zoo.data.augment.Views()", ["zoo.data.augment.Views.count = 1"]),
            "projection": "6",
            "temperature": "0.05",
            "negatives": _CMC_SCORES,
            "halves": _CMC_SCORES,
            "bank_momentum": "see tests/tasks/test_cmc_amdim.py::"
            "test_cmc_bank_starts_uniform_and_mixes_each_step_s_embeddings_in_at_their_images",
        },
        "zoo.tasks.AMDIM": {
            "views": ("@zoo.data.augment.Views()", ["zoo.data.augment.Views.crop = None"]),
            "local_endpoints": "see tests/tasks/test_cmc_amdim.py::"
            "test_amdim_head_reads_the_global_and_two_local_maps",
        },
    }
)
SINGLE_TASKS = {
    "zoo.tasks.Classification": {
        # the synthetic source names its 10 classes: another count is refused
        "classes": "see tests/tasks/test_tasks.py::test_classification_classes",
        "augment": _IMAGE_STEPS,
    },
    "zoo.tasks.Pose": {"augment": _IMAGE_STEPS},
}
MOTION_TASKS = {
    "zoo.tasks.MotionSegmentation": {"head_width": "8", "stride": "4", "image_shape": "(16, 24)"}
}
SMALL_TASK = {  # bindings that keep each task small (heads of a few units)
    "zoo.tasks.RelativePosition": [
        "zoo.tasks.RelativePosition.image_size = 32",
        "zoo.tasks.RelativePosition.patch_size = 8",
        "zoo.tasks.RelativePosition.gap = 1",
        "zoo.tasks.RelativePosition.jitter = 0",
        "zoo.tasks.RelativePosition.head_widths = (4, 4)",
        "zoo.tasks.RelativePosition.head_bottleneck = 2",
        "zoo.tasks.RelativePosition.fc_width = 8",
        "zoo.tasks.RelativePosition.fc_bottleneck = 2",
    ],
    "zoo.tasks.Exemplar": [
        "zoo.tasks.Exemplar.image_size = 32",
        "zoo.tasks.Exemplar.patch_size = 16",
        "zoo.tasks.Exemplar.head_widths = (4, 4)",
        "zoo.tasks.Exemplar.head_bottleneck = 2",
    ],
    "zoo.tasks.Colorization": ["zoo.tasks.Colorization.head_width = 4"],
    **{
        f"zoo.tasks.{kind}": [f"zoo.tasks.{kind}.hidden = 8", f"zoo.tasks.{kind}.projection = 4"]
        for kind in ("SimCLR", "MoCo", "DenseCL")
    },
    "zoo.tasks.BYOL": [
        "zoo.tasks.BYOL.hidden = 8",
        "zoo.tasks.BYOL.projection = 4",
        "zoo.tasks.BYOL.momentum_steps = 10",  # required: the run's length
    ],
    "zoo.tasks.DenseCL": [
        "zoo.tasks.DenseCL.hidden = 8",
        "zoo.tasks.DenseCL.projection = 4",
        "zoo.tasks.DenseCL.grid = 2",
    ],
    "zoo.tasks.MotionSegmentation": ["zoo.tasks.MotionSegmentation.head_width = 4"],
    "zoo.tasks.CMC": ["zoo.tasks.CMC.projection = 4", "zoo.tasks.CMC.negatives = 3"],
    "zoo.tasks.AMDIM": ["zoo.tasks.AMDIM.features = 4"],
}
# Task's own parameters, bound on every task
OTHER_SOURCE = ["@other/zoo.data.synthetic.SceneSpec()", 'other/SceneSpec.variant = "TCVL"']
HELD_SOURCE = ["@held/zoo.data.synthetic.SceneSpec()", "held/SceneSpec.seed = 9"]
TASK_BASE = {
    "source": "\n".join(OTHER_SOURCE).replace("/SceneSpec", "/zoo.data.synthetic.SceneSpec"),
    "eval_source": "\n".join(HELD_SOURCE).replace("/SceneSpec", "/zoo.data.synthetic.SceneSpec"),
    "endpoint": '"block1"',
    "harmonizer": '"lab_l3"',
    "num_examples": "7",
    "eval_examples": "5",
    "seed": "3",
    "name": '"renamed"',
    "labelled_fraction": "0.5",
}


# parameters a caller always gives (gin would not be allowed to bind them)
DENYLISTED = {
    "zoo.experiment.train": {"model_dir", "exporter"},
    "zoo.evaluation.transfer": {"source", "predictions_path"},
    "zoo.evaluation.run_sweep": {"sweep_dir", "run_cell", "progress", "executor"},
    "zoo.data.Synthetic": {"spec", "num"},
    "zoo.layers.batch_norm": {"name"},
    "zoo.methods.MultiTask": {"name"},
    "zoo.methods.DomainAdversarial": {"name"},
    "zoo.methods.MGM": {"name"},
    "zoo.methods.Transfer": {"name"},
    "zoo.data.Photos": {
        "path",
        "labels",
        "masks",
        "mask_key",
        "depth_scale",
        "class_names",
        "recursive",
    },
}


def _covered_parameters(name):
    return set(_defaults(name))


def _defaults(name):
    """{parameter: default (inspect.Parameter.empty if none)} of a configurable."""
    fn = gin.get_configurable(name)
    # a class that passes **kwargs up takes the parameters of its bases' __init__ too,
    # up to the first that does not
    inits = [fn]
    if isinstance(fn, type):
        inits = []
        for c in fn.__mro__:
            if "__init__" in c.__dict__ and c.__module__.startswith("zoo."):
                inits.append(c.__dict__["__init__"])
                signature = inspect.signature(inits[-1]).parameters.values()
                if all(p.kind != p.VAR_KEYWORD for p in signature):
                    break
    params = [p for init in inits for p in inspect.signature(init).parameters.values()]
    return {
        p.name: p.default
        for p in params
        if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        and p.name != "self"
        and p.name not in DENYLISTED.get(name, set())
    }


def _derived_value(default):
    """A gin value other than a bool or number `default` (None for other defaults: their
    value must be chosen by hand)."""
    if isinstance(default, bool):
        return str(not default)
    if isinstance(default, int):
        return str(default + 1)
    if isinstance(default, float):
        return repr(default * 2 if default else 0.5)
    return None


def _entries(name, hand):
    """The table of configurable `name`: its hand entries, and for each other parameter
    with a bool or number default, a value derived from it."""
    entries = dict(hand)
    for param, default in _defaults(name).items():
        if param not in entries and _derived_value(default) is not None:
            entries[param] = _derived_value(default)
    return entries


# Task's data parameters act in Task's code (its sources and pipeline); a task that reads
# its data as another task of its family does is shown on that one (each family keeps one:
# dense maps, a class per image, two views with a key network).
DATA_PARAMETERS = (
    "source",
    "eval_source",
    "num_examples",
    "eval_examples",
    "seed",
    "harmonizer",
    "labelled_fraction",
)
SAME_DATA_PATH = {
    "zoo.tasks.Normals": "zoo.tasks.Depth",
    "zoo.tasks.Contours": "zoo.tasks.Depth",
    "zoo.tasks.SemanticSegmentation": "zoo.tasks.Depth",
    "zoo.tasks.Pose": "zoo.tasks.Classification",
    "zoo.tasks.SceneClassification": "zoo.tasks.Classification",
    "zoo.tasks.DenseCL": "zoo.tasks.MoCo",
    "zoo.tasks.BYOL": "zoo.tasks.MoCo",
}


def _task_base(name):
    """TASK_BASE for task `name`, its data parameters pointing at its family's test."""
    if name not in SAME_DATA_PATH:
        return TASK_BASE
    shown = SAME_DATA_PATH[name]
    return {
        p: f"see ::test_every_task_parameter_changes_the_task[{shown}-...-{p}-...]"
        if p in DATA_PARAMETERS
        else v
        for p, v in TASK_BASE.items()
    }


def _task_cases():
    for group, mode in ((MULTI_TASKS, "multi"), (SINGLE_TASKS, "single"), (MOTION_TASKS, "motion")):
        for name, own in group.items():
            for param, value in _entries(name, {**_task_base(name), **own}).items():
                if not (isinstance(value, str) and value.startswith("see ")):
                    yield name, mode, param, value


_DEFAULT_PRINTS = {}


@pytest.mark.parametrize("name,mode,param,value", list(_task_cases()))
def test_every_task_parameter_changes_the_task(name, mode, param, value):
    extra = []
    if isinstance(value, tuple):
        value, extra = value
    value_lines = value.split("\n")
    setup = [
        f"{name}.source = {SPEC}",
        f"{name}.num_examples = 12",
        f"{name}.eval_examples = 12",
        *SMALL_TASK.get(name, []),
        *extra,
    ]
    if param == "harmonizer" and name == "zoo.tasks.Colorization":
        value_lines = ['"identity"']  # its default is lab_l3
    key = (name, mode, tuple(setup))
    if key not in _DEFAULT_PRINTS:  # one default task per setup, shared by its parameters
        _DEFAULT_PRINTS[key] = list(_task_print(_build(name, setup, mode)))
    default = _DEFAULT_PRINTS[key]
    spec_mode = [
        f"other/zoo.data.synthetic.SceneSpec.mode = '{mode}'",
        "other/zoo.data.synthetic.SceneSpec.resolution = 32",
        f"held/zoo.data.synthetic.SceneSpec.mode = '{mode}'",
        "held/zoo.data.synthetic.SceneSpec.resolution = 32",
        "held/zoo.data.synthetic.SceneSpec.split = 'test'",
        "held/zoo.data.synthetic.SceneSpec.variant = '----'",
    ]
    bound = _task_print(
        _build(
            name, [*setup, f"{name}.{param} = {value_lines[0]}", *value_lines[1:], *spec_mode], mode
        )
    )
    # the parts in the same order as the default's: the first that differs ends the test
    assert any(part != want for part, want in zip(bound, default)), (
        f"{name}.{param} = {value} changed nothing"
    )


_PROBE = "see tests/tasks/test_probe.py::"
_WARMUP = "see tests/test_optimizers.py::test_warmup_linear_is_the_codes_schedule_by_hand"
OTHER = {
    "zoo.optimizers.WarmupLinear": {
        "peak": _WARMUP,
        "warmup_steps": _WARMUP,
        "total_steps": _WARMUP,
        "end": _WARMUP,
    },
    "zoo.tasks.Probe": {
        "task": _PROBE
        + "test_probes_train_their_heads_and_leave_the_trunk_as_the_objective_alone_moves_it",
        "kind": _PROBE
        + "test_a_dense_probe_predicts_at_the_target_size_and_only_standard_heads_are_probed",
        "name": _PROBE
        + "test_a_dense_probe_predicts_at_the_target_size_and_only_standard_heads_are_probed",
    },
    "zoo.trunks.resnet": {
        "depth": "26",
        "version": "1",
        "widths": ("[4, 8, 8, 8]", [], ["zoo.trunks.resnet.width_multiplier = 1.0"]),
        "width_multiplier": "0.25",
        "output_stride": "8",
        "norm": '"group"',
        "stem_kernel": "5",
        "stem_width": "16",
        "stop_at": '"block2"',
        "input_shape": "(None, None, 3)",
        "name": '"renamed"',
        "layout": '"keras"',
        "weights": "see tests/trunks/test_imagenet.py (full-width trunks only)",
    },
    "zoo.trunks.alexnet": {
        "width_multiplier": "0.125",
        "widths": ("[8, 8, 8, 8, 8, 16, 16]", [], ["zoo.trunks.alexnet.width_multiplier = 1.0"]),
        "norm": '"group"',
        "input_shape": "(99, 99, 3)",
        "name": '"renamed"',
    },
    "zoo.trunks.resnet9": {
        "widths": ("[4, 8, 8, 8]", [], ["zoo.trunks.resnet9.width_multiplier = 1.0"]),
        "inner_widths": "(8, 16)",
        "width_multiplier": "0.25",
        "output_stride": "4",
        "norm": '"group"',
        "stop_at": '"block2"',
        "input_shape": "(None, None, 3)",
        "name": '"renamed"',
    },
    "zoo.trunks.channel_split": {
        "builder": "see tests/trunks/test_split.py::"
        "test_each_trunk_sees_only_its_channels_and_the_joined_map_is_theirs",
        "splits": "((0, 1), (2,))",
        "names": '("a", "b")',
        "input_shape": "(32, 32, 3)",
        "name": '"renamed"',
    },
    "zoo.trunks.deeplab_v3_plus": {
        "trunk": "see tests/methods/test_compl.py::"
        "test_decoder_shapes_rates_and_groups_at_both_output_strides",
        "input_shape": "(64, 64, 3)",
        "aspp_endpoint": '"block3"',
        "skip_endpoint": '"block2"',
        "output_stride": "8",
        "rates": "(1, 2, 3)",
        "filters": "8",
        "skip_filters": "4",
        "groups": "4",
        "skip_groups": "2",
        "name": '"renamed"',
    },
    "zoo.data.synthetic.SceneSpec": {
        "variant": '"TCVL"',
        "mode": '"single"',
        "resolution": "16",
        "num_objects": "(1, 1)",
        "split": '"test"',
        "seed": "5",
    },
    "zoo.methods.MultiTask": {
        "trunk": "@zoo.trunks.resnet9",
        "tasks": "[@zoo.tasks.Depth()]",
        "input_size": ("64", [], ["zoo.data.synthetic.SceneSpec.resolution = 64"]),
        "lasso_block": '"block2"',
        "lasso_l1": ("0.5", ['zoo.methods.MultiTask.lasso_block = "block2"']),
        "loss_weights": '{"depth": 3.0}',
        "loss_balance": '"grad_norm"',  # the balanced weights and their statistics
        "balance_steps": "see tests/methods/test_domain_adaptation.py::"
        "test_grad_norm_balancing_equalises_the_tasks_gradients",
        "one_pass": "see tests/methods/test_compl.py::"
        "test_one_concatenated_pass_equals_a_pass_per_input_and_refuses_batch_norm",
    },
    "zoo.methods.DomainAdversarial": {
        p: f"see tests/methods/test_domain_adaptation.py::{test}"
        for p, test in (
            ("trunk", "test_configuration_round_trip_and_errors"),
            ("tasks", "test_configuration_round_trip_and_errors"),
            ("input_size", "test_configuration_round_trip_and_errors"),
            ("real", "test_real_images_reach_the_trunk_only_with_bi_fool"),
            ("adapt_at", "test_configuration_round_trip_and_errors"),
            (
                "adversarial_weight",
                "test_a_step_is_algorithm_1_discriminator_first_then_trunk_and_heads",
            ),
            ("bi_fool", "test_real_images_reach_the_trunk_only_with_bi_fool"),
            ("d_steps", "test_configuration_round_trip_and_errors"),
            ("history_pool", "test_history_pool_fills_then_swaps_half_for_stored_features"),
            ("discriminator_widths", "test_configuration_round_trip_and_errors"),
            ("joint_statistics", "test_real_images_reach_the_trunk_only_with_bi_fool"),
            ("loss_balance", "test_grad_norm_balancing_equalises_the_tasks_gradients"),
            ("loss_weights", "test_configuration_round_trip_and_errors"),
            ("balance_steps", "test_grad_norm_balancing_equalises_the_tasks_gradients"),
        )
    },
    "zoo.methods.MGM": {
        p: f"see tests/methods/test_mgm.py::{test}"
        for test, params in (
            (
                "test_a_run_resumed_in_the_middle_of_a_stage_equals_an_uninterrupted_one",
                ("trunk", "tasks", "input_size"),
            ),
            ("test_bad_arguments", ("scene_classes",)),
            (
                "test_each_size_knob_reaches_its_network",
                (
                    "generator_width",
                    "attention_size",
                    "z_dim",
                    "projection",
                    "refinement_widths",
                    "refinement_units",
                    "refinement_stem",
                    "relu_logits",
                ),
            ),
            (
                "test_the_loss_knobs_reach_the_losses_and_the_warm_up_latent_its_players",
                ("temperature", "instance_noise", "warmup_latent"),
            ),
            (
                "test_a_joint_step_updates_the_players_of_algorithm_1_in_the_code_s_order",
                ("gan_steps",),
            ),
            ("test_stages_switch_by_epoch_and_each_moves_its_players_only", ("stage_epochs",)),
            ("test_the_synthetic_phase_leaves_r_and_g_alone", ("joint_generator",)),
            ("test_players_follow_the_ablations", ("generator",)),
            (
                "test_reconstruction_replaces_simclr_with_the_mse_of_a_decoded_image",
                ("self_supervision",),
            ),
            ("test_refinement_training_strategies_of_table_9", ("refinement",)),
            ("test_mgmr_steps_on_the_real_scenes_outside_the_labelled_share", ("weak_real",)),
            ("test_synthetic_ratio_sets_the_number_of_generated_images", ("synthetic_ratio",)),
        )
        for p in params
    },
    "zoo.evaluation.run_sweep": {
        "methods": '{"mine": "runs/x"}',
        "counts": "[3, 5]",
        "seeds": "[7]",
        "variants": '["T---"]',
        "max_labels": "300",
    },
    # The driver and the callbacks act over a whole run: each knob is shown by a test.
    "zoo.experiment.train": {  # tests/test_experiment.py unless said
        "method": "see ::test_train_writes_every_output",
        "optimizer": "see ::test_the_optimizer_binding_reaches_every_player",
        "batch_size": "see ::test_train_writes_every_output",
        "epochs": "see ::test_train_writes_every_output",
        "steps_per_epoch": "see ::test_train_writes_every_output (snapshot count)",
        "strategy": "see ::test_strategy_choices and tests/scale_out/",
        "precision": "see tests/scale_out/test_mixed_precision.py",
        "seed": "see ::test_seed_and_serial_ops_reach_the_run",
        "callbacks": "see ::test_train_writes_every_output (CostBudget bound)",
        "deterministic": "see tests/reliability/test_resume.py (bit-identical processes)",
        "serial_ops": "see ::test_seed_and_serial_ops_reach_the_run and "
        "tests/reliability/test_resume.py",
        "verbose": "see tests/reliability/test_resume.py (no progress bar at 0)",
        "precise_batch_norm": "see ::test_train_writes_every_output",
        "recoveries": "see ::test_a_diverged_run_rolls_back_to_its_last_checkpoint_once",
        "loss_bound": "see ::test_a_diverged_run_rolls_back_to_its_last_checkpoint_once",
    },
    # sources: built through gin in the test's folder (see `_data_folders`)
    "zoo.data.Synthetic": {
        "storage": '"render"',  # nothing written to the data cache
        "workers": "see tests/data/test_sources.py::test_render_on_the_fly_equals_the_cache",
    },
    "zoo.data.TFRecords": {"path": '"records2"'},
    "zoo.layers.batch_norm": {"synchronized": "True"},
    # augmentations: applied to one image with 16 seeds
    "zoo.data.augment.Views": {
        "crop": "@zoo.data.augment.FixedOffsetCrops()",
        "steps": "[@zoo.data.augment.Grayscale()]",
        "per_view": "[[@zoo.data.augment.Grayscale()], []]",
    },
    "zoo.data.augment.Solarize": {"threshold": "0.9", "p": "1.0"},
    "zoo.optimizers.LARS": {
        "learning_rate": "0.5",
        "momentum": "0.5",
        "weight_decay": "0.1",
        "trust_coefficient": "0.1",
        "name": '"other"',
    },
    "zoo.data.augment.RandomResizedCrop": {
        "size": "8",
        "scale": "(0.1, 0.2)",
        "ratio": "(0.5, 0.6)",
    },
    "zoo.data.augment.FixedOffsetCrops": {"size": "12", "offset": "2"},
    "zoo.data.augment.HorizontalFlip": {"p": "0.0"},
    "zoo.data.augment.ColorJitter": {
        "brightness": "0.0",
        "contrast": "0.0",
        "saturation": "0.0",
        "hue": "0.0",
        "p": "0.0",
    },
    "zoo.data.augment.Grayscale": {"p": "1.0", "mode": '"mean"'},
    "zoo.data.augment.ChannelJitter": {"scale": "0.5", "shift": "0.0", "p": "0.3"},
    "zoo.data.augment.Cutout": {"fraction": "0.5"},
    "zoo.data.augment.PadCrop": {"pad": "0.25", "unchanged": "0.5"},
    "zoo.data.augment.ScaleCropFlip": {"scales": "(0.5, 1.5)", "size": "(16, 24)", "pad": "0.25"},
    "zoo.data.augment.GaussianBlur": {
        "sigma": "(3.0, 4.0)",
        # at 32 px MoCo's σ (0.1-2 px at 224 px) is below 0.3 px: keep σ in pixels
        "p": ("0.0", ["zoo.data.augment.GaussianBlur.reference_size = None"]),
        "reference_size": "32",
        "radius": ("1", ["zoo.data.augment.GaussianBlur.sigma = (3.0, 4.0)"]),
    },
    "zoo.data.Holdout": {
        "source": (
            "@other/zoo.data.TFRecords()",
            [],
            ['other/zoo.data.TFRecords.path = "records2"'],
        ),
        "fraction": "0.25",
        "part": '"eval"',
        "seed": "5",
    },
    "zoo.data.LabelledFraction": {
        "source": (
            "@other/zoo.data.TFRecords()",
            [],
            ['other/zoo.data.TFRecords.path = "records2"'],
        ),
        "fraction": "0.25",
        "seed": "5",
        "complement": "True",
    },
    "zoo.data.ImageFolder": {
        "path": '"other"',
        "labels": '"folders"',
        "masks": '"masks"',
        "mask_key": "see tests/data/test_sources.py::test_masks_semantics_and_depth",
        "depth_scale": (
            "10.0",
            ['zoo.data.ImageFolder.masks = "depth"', 'zoo.data.ImageFolder.mask_key = "depth"'],
        ),
        "class_names": (
            '["a", "b", "c", "d", "e", "f"]',
            ['zoo.data.ImageFolder.masks = "masks"'],
        ),
        "size": "6",
        "crop": "4",
        "seed": ("3", ["zoo.data.ImageFolder.crop = 4"]),
        "recursive": ("False", ['zoo.data.ImageFolder.path = "flat"']),
    },
    "zoo.data.real_photos": {
        "part": '"heldout"',
        "crop": "12",
        "size": "20",
        "crops_per_image": "3",
        "seed": "4",
    },
    "zoo.data.Photos": {
        "names": '["coffee"]',
        "size": "8",
        "crop": "8",
        "seed": ("3", ["zoo.data.Photos.crop = 8"]),
    },
    "zoo.experiment.CostBudget": {
        "task_costs": '{"rp": 2.0}',
        "budget": "4",
        "snapshot_every": "2",
        "folder": '"elsewhere"',
    },
    "zoo.evaluation.KnnMonitor": {
        **{
            p: "see tests/evaluation/test_knn.py::"
            "test_the_monitor_logs_the_trunks_knn_accuracy_every_few_epochs"
            for p in ("task", "every", "batch_size")
        },
        **{
            p: "see tests/evaluation/test_knn.py::"
            "test_scores_are_scikit_learns_cosine_votes_weighted_by_exp_similarity"
            for p in ("k", "temperature")
        },
    },
    "zoo.evaluation.transfer": {
        p: "see tests/evaluation/test_transfer.py and tests/evaluation/test_protocols.py"
        for p in (
            "task",
            "protocol",
            "num_labels",
            "variant",
            "builder",
            "input_size",
            "endpoint",
            "pooling",
            "frozen_stages",
            "head",
            "like",
            "lasso_block",
            "lasso_l1",
            "harmonizer",
            "augment",
            "dense_augment",
            "batch_size",
            "epochs",
            "min_steps",
            "max_steps",
            "learning_rate",
            "eval_examples",
            "seed",
            "precise_batch_norm",
            "metric",
        )
    },
    "zoo.evaluation.source_trunk": {
        p: "see tests/cli/test_finetune.py (zoo-finetune binds all three)"
        for p in ("source", "input_size", "like")
    },
    "zoo.methods.Transfer": {
        p: "see tests/evaluation/test_protocols.py (each protocol and head, built and trained)"
        for p in (
            "trunk",
            "task",
            "protocol",
            "head",
            "pooling",
            "frozen_stages",
            "lasso_block",
            "lasso_l1",
            "input_size",
        )
    },
}


def _configurables_in_source():
    names = set()
    for folder, _, files in os.walk(os.path.join(ROOT, "zoo")):
        for file in files:
            if not file.endswith(".py"):
                continue
            text = open(os.path.join(folder, file)).read()
            for module, obj in re.findall(
                r'@gin\.configurable\(\s*module="([\w.]+)"[^)]*\)\n'
                r"(?:@[^\n]*\n)*(?:def|class) (\w+)",
                text,
            ):
                names.add(f"{module}.{obj}")
            for obj, module in re.findall(
                r'gin\.external_configurable\(\s*(\w+),[^)]*?module="(zoo[\w.]*)"', text
            ):
                names.add(f"{module}.{obj}")
    return names


# arguments of a method's base that the method itself does not take
NOT_PARAMETERS = {
    "zoo.methods.Transfer": {
        "tasks",
        "loss_weights",
        "per_task_optimizers",
        "loss_balance",
        "balance_steps",
    },
    "zoo.methods.DomainAdversarial": {"lasso_block", "lasso_l1", "per_task_optimizers"},
}


def test_denylisted_parameters_cannot_be_bound():
    for table in (DENYLISTED, NOT_PARAMETERS):
        for name, params in table.items():
            for param in params:
                with pytest.raises(ValueError):
                    gin.parse_config(f"{name}.{param} = 1")
    gin.clear_config()


def test_the_table_covers_every_configurable_and_parameter():
    tasks = {**MULTI_TASKS, **SINGLE_TASKS, **MOTION_TASKS}
    found = _configurables_in_source()
    table = set(tasks) | set(OTHER)
    assert found == table, (
        f"configurables without an entry here: {sorted(found - table)} (add one to "
        "MULTI_TASKS / SINGLE_TASKS / OTHER: each parameter, a value that changes what it "
        f"configures, or 'see <test>'); entries of no configurable: {sorted(table - found)}"
    )
    for name in sorted(found):
        listed = set(_entries(name, OTHER.get(name) or {**_task_base(name), **tasks[name]}))
        parameters = _covered_parameters(name)
        assert parameters == listed, (
            f"{name}: parameters without an entry: {sorted(parameters - listed)} (give each "
            "a value that changes what it configures, or 'see <the test that shows it>'); "
            f"entries of no parameter: {sorted(listed - parameters)}"
        )


def _data_folders(root):
    """Small image folders and TFRecords in `root` for the source parameters."""
    from PIL import Image

    from zoo.data.tfrecord import write_tfrecords

    rng = np.random.default_rng(0)

    def save(path, array):
        path = root / path
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(path)

    for folder in ("images", "other"):
        for name in ("a/0.png", "a/1.png", "b/2.png"):
            save(f"{folder}/{name}", rng.integers(0, 256, (12, 12, 3), dtype=np.uint8))
            save(f"masks/{name}", rng.integers(0, 5, (12, 12), dtype=np.uint8))
            save(f"depth/{name}", rng.integers(100, 9000, (12, 12)).astype(np.uint16))
    save("flat/x.png", rng.integers(0, 256, (12, 12, 3), dtype=np.uint8))
    save("flat/deep/y.png", rng.integers(0, 256, (12, 12, 3), dtype=np.uint8))
    for folder, offset in (("records", 0), ("records2", 100)):
        examples = ({"index": np.int64(offset + i)} for i in range(40))
        write_tfrecords(examples, str(root / folder), overwrite=True)


OTHER_CASES = [
    (name, param, value)
    for name, table in OTHER.items()
    for param, value in _entries(name, table).items()
    if not (isinstance(value, str) and value.startswith("see "))
]


@pytest.mark.parametrize("name,param,value", OTHER_CASES)
def test_every_other_parameter_changes_what_it_configures(
    name, param, value, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # relative folders (CostBudget.folder) land here
    extra, bound_extra = [], []
    if isinstance(value, tuple):
        value, extra, *rest = value
        bound_extra = rest[0] if rest else []
    if name.startswith("zoo.trunks"):
        base = {
            "zoo.trunks.resnet": [f"{name}.depth = 18"],
            "zoo.trunks.channel_split": [
                f"{name}.builder = @zoo.trunks.resnet9",
                "zoo.trunks.resnet9.width_multiplier = 0.0625",
            ],
            "zoo.trunks.deeplab_v3_plus": [
                f"{name}.trunk = @zoo.trunks.resnet",
                f"{name}.filters = 16",
                f"{name}.skip_filters = 8",
                "zoo.trunks.resnet.depth = 18",
                "zoo.trunks.resnet.norm = 'group'",
                "zoo.trunks.resnet.width_multiplier = 0.0625",
            ],
        }.get(name, [])

        def fingerprint(bindings):
            return _trunk_print(_build(name, [*base, *bindings]))

    elif name == "zoo.data.synthetic.SceneSpec":

        def fingerprint(bindings):
            return _scene_print(_build(name, bindings, mode="multi"))

    elif name == "zoo.methods.MultiTask":
        setup = [
            "zoo.methods.MultiTask.trunk = @zoo.trunks.resnet",
            "zoo.trunks.resnet.stop_at = 'block2'",
            "zoo.trunks.resnet.output_stride = 8",
            "zoo.trunks.resnet.input_shape = (None, None, 3)",
            "zoo.trunks.resnet9.stop_at = 'block2'",
            "zoo.methods.MultiTask.input_size = 32",
            "zoo.methods.MultiTask.tasks = [@zoo.tasks.Depth(), @zoo.tasks.Rotation()]",
            f"zoo.tasks.Depth.source = {SPEC}",
            f"zoo.tasks.Rotation.source = {SPEC}",
            "zoo.tasks.Depth.head_width = 8",
            "zoo.tasks.Depth.num_examples = 4",
            "zoo.tasks.Depth.eval_examples = 4",
            "zoo.tasks.Rotation.num_examples = 4",
            "zoo.tasks.Rotation.eval_examples = 4",
        ]

        def fingerprint(bindings):
            return _method_print(_build(name, [*setup, *bindings]))

    elif name.startswith("zoo.data.") and name.split(".")[2] not in ("synthetic", "augment"):
        _data_folders(tmp_path)
        base = {
            "zoo.data.Synthetic": [],
            "zoo.data.TFRecords": ['zoo.data.TFRecords.path = "records"'],
            "zoo.data.Holdout": [
                "zoo.data.Holdout.source = @zoo.data.TFRecords()",
                'zoo.data.TFRecords.path = "records"',
                "zoo.data.Holdout.fraction = 0.5",
            ],
            "zoo.data.LabelledFraction": [
                "zoo.data.LabelledFraction.source = @zoo.data.TFRecords()",
                'zoo.data.TFRecords.path = "records"',
                "zoo.data.LabelledFraction.fraction = 0.5",
            ],
            "zoo.data.ImageFolder": ['zoo.data.ImageFolder.path = "images"'],
            "zoo.data.Photos": [
                'zoo.data.Photos.names = ["coffee", "camera"]',
                "zoo.data.Photos.size = 16",
            ],
            "zoo.data.real_photos": [
                "zoo.data.real_photos.crop = 8",
                "zoo.data.real_photos.crops_per_image = 2",
            ],
        }[name]

        def fingerprint(bindings):
            from zoo.data import cache
            from zoo.data.synthetic import SceneSpec

            monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / f"cache{len(bindings)}"))
            kwargs = {}
            if name == "zoo.data.Synthetic":
                kwargs = {"spec": SceneSpec(variant="----", resolution=16), "num": 3}
            source = _build(name, [*base, *bindings], **kwargs)
            keys = sorted(k for k in source.signature() if k != "path")
            cached = name == "zoo.data.Synthetic" and cache.find(kwargs["spec"], 3, keys)
            examples = list(source.examples(keys).as_numpy_iterator())
            names = source.label_names
            return keys, _hash(*[e[k] for e in examples for k in keys]), bool(cached), names

    elif name.startswith("zoo.data.augment."):
        # FixedOffsetCrops needs a size; the others start from their defaults
        base = ["zoo.data.augment.FixedOffsetCrops.size = 16"]

        def fingerprint(bindings):
            step = _build(name, [*base, *bindings])
            image = tf.constant(np.random.default_rng(0).random((32, 32, 3)), tf.float32)
            outputs = []
            labels = tf.constant(np.random.default_rng(1).integers(0, 5, (32, 32)), tf.int32)
            for k in range(16):
                seed = tf.constant([k, 1], tf.int64)
                if hasattr(step, "crops"):
                    outputs.append(step.crops(image, tf.random.split(seed, 2)))
                elif isinstance(step, zoo.data.augment.ScaleCropFlip):  # an example's maps
                    out = step({"image": image, "semantics": labels}, seed)
                    outputs.append(tf.cast(out["semantics"], tf.float32) + out["image"][..., 0])
                else:
                    outputs.append(step(image, seed))
            return _hash(*outputs), tuple(outputs[0].shape)

    elif name == "zoo.optimizers.LARS":

        def fingerprint(bindings):  # two steps on one weight matrix
            optimizer = _build(name, bindings)
            rng = np.random.default_rng(0)
            weight = keras.Variable(rng.normal(size=(3, 2)).astype("float32"))
            for _ in range(2):
                optimizer.apply_gradients(
                    [(tf.constant(rng.normal(size=(3, 2)), "float32"), weight)]
                )
            return optimizer.name, _hash(weight)

    elif name == "zoo.experiment.CostBudget":

        def fingerprint(bindings):
            gin.clear_config()
            gin.parse_config(
                "zoo.experiment.CostBudget.task_costs = {'rp': 1.0}\n"
                "zoo.experiment.CostBudget.snapshot_every = 3\n" + "\n".join(bindings)
            )
            budget = gin.get_configurable(name)()
            budget.model_dir = str(tmp_path / f"run_{len(bindings)}")  # default / bound
            model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
            model.compile("sgd", "mse")
            x = np.zeros((4, 2), "float32")
            data = tf.data.Dataset.from_tensors((x, x[:, :1])).repeat()
            history = model.fit(data, steps_per_epoch=4, epochs=3, callbacks=[budget], verbose=0)
            written = sorted(os.listdir(budget.folder)) if os.path.isdir(budget.folder) else []
            return budget.spent, len(history.history["loss"]), budget.folder, written

    elif name == "zoo.evaluation.run_sweep":

        def fingerprint(bindings):
            gin.clear_config()
            gin.parse_config("\n".join(bindings))
            return _sweep_print(zoo.evaluation.sweep.run_sweep, tmp_path)

    elif name == "zoo.layers.batch_norm":

        def fingerprint(bindings):
            gin.clear_config()
            gin.parse_config("\n".join(bindings))
            return zoo.layers.batch_norm("norm").get_config()

    else:
        raise AssertionError(name)
    default = fingerprint(extra)
    bound = fingerprint([*extra, f"{name}.{param} = {value}", *bound_extra])
    gin.clear_config()
    assert bound != default, f"{name}.{param} = {value} changed nothing"
