"""Every method of the zoo passes `check_method_contract` (tests/helpers.py)."""

import functools

import numpy as np
import pytest
import tensorflow as tf
from helpers import TwoPlayers, check_method_contract, tiny_mgm_settings, tiny_trunk

from zoo.data import sources
from zoo.data.synthetic import SceneSpec
from zoo.methods import MGM, DomainAdversarial, MultiTask, Transfer
from zoo.tasks import AMDIM, BYOL, CMC, Classification, Contours, Depth, Rotation
from zoo.trunks import channel_split, resnet9

MULTI = SceneSpec(variant="----", mode="multi", resolution=32)
SINGLE = SceneSpec(variant="----", mode="single", resolution=32)
SMALL = {"num_examples": 8, "eval_examples": 4}
SYNCED = functools.partial(tiny_trunk, norm="sync_batch")
# MGM on one task and an R of one stage: the phases and players of two tasks and three
# stages, at a third of the cost of tracing them (two tasks: tests/methods/test_mgm.py)
ONE_TASK_MGM = {
    "tasks": [Depth(MULTI, head_width=8, **SMALL)],
    "refinement_widths": (8,),
    "refinement_units": (1,),
}
HALF = functools.partial(resnet9, widths=[8, 8, 8, 16], inner_widths=(4, 8), norm="group")


def _batch(method_class, kwargs, batch_size=4):
    return next(iter(method_class(**kwargs).datasets(batch_size)))


CASES = {
    "MultiTask": (
        MultiTask,
        {
            "trunk": SYNCED,
            "input_size": 32,
            "tasks": [Depth(MULTI, head_width=8, **SMALL), Rotation(MULTI, **SMALL)],
        },
        True,
    ),
    "MultiTask, lasso rows and a player per task": (
        MultiTask,
        {
            "trunk": tiny_trunk,
            "input_size": 32,
            "tasks": [Depth(MULTI, head_width=8, **SMALL), Rotation(MULTI, **SMALL)],
            "lasso_block": "block2",
            "per_task_optimizers": True,
        },
        False,
    ),
    # a key network with a schedule (BYOL), beside a supervised task
    "MultiTask, BYOL and rotation": (
        MultiTask,
        {
            "trunk": tiny_trunk,
            "input_size": 32,
            "tasks": [
                BYOL(MULTI, hidden=8, projection=4, momentum_steps=4, **SMALL),
                Rotation(MULTI, **SMALL),
            ],
        },
        False,
    ),
    # CMC's banks (no key network) and AMDIM's heads of several maps, on two halves (two
    # replicas: AMDIM's loss in tests/tasks/test_cmc_amdim.py, the banks' gathered
    # writes in tests/methods/test_compl.py)
    "MultiTask, CMC and AMDIM": (
        MultiTask,
        {
            "trunk": functools.partial(channel_split, HALF),
            "input_size": 32,
            "tasks": [
                CMC(SINGLE, projection=4, negatives=5, **SMALL),
                AMDIM(SINGLE, features=4, local_endpoints=("block1", "block2"), **SMALL),
            ],
        },
        False,
    ),
    "DomainAdversarial, grad_norm": (
        DomainAdversarial,
        {
            "trunk": tiny_trunk,
            "input_size": 32,
            "tasks": [Contours(MULTI, head_width=8, **SMALL), Depth(MULTI, head_width=8, **SMALL)],
            "real": sources.real_photos("train", crop=32, size=40, crops_per_image=2),
            "adapt_at": "block1",
            "loss_balance": "grad_norm",
            "balance_steps": 1,
        },
        False,
    ),
    # players in Algorithm 1's phases, E updated by two of them (M's and E's)
    "MGM": (
        MGM,
        # (two GAN steps and the self-supervision: tests/methods/test_mgm.py)
        tiny_mgm_settings(gan_steps=1, self_supervision=None, **ONE_TASK_MGM),
        False,
    ),
    # MGM/G on two replicas: refinement's phases on synchronised BatchNorm (the GAN's
    # random draws differ per replica: tests/methods/test_mgm.py)
    "MGM/G": (
        MGM,
        tiny_mgm_settings(trunk=SYNCED, generator=None, self_supervision=None, **ONE_TASK_MGM),
        True,
    ),
    "Transfer, linear": (
        Transfer,
        {
            "trunk": SYNCED,
            "input_size": 32,
            "task": Classification(SINGLE, **SMALL),
            "protocol": "linear",
        },
        True,
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_method_contract(name, mirrored):
    method_class, kwargs, replicas = CASES[name]
    batch = _batch(method_class, kwargs)
    check_method_contract(method_class, kwargs, batch, strategy=mirrored if replicas else None)


def test_two_players_contract(mirrored):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(8, 3)).astype("float32"), rng.normal(size=(8, 1)).astype("float32")
    method = check_method_contract(TwoPlayers, {}, (tf.constant(x), tf.constant(y)), mirrored)
    with pytest.raises(NotImplementedError, match="`trunk`, which the export"):
        method.trunk  # noqa: B018  (the declared member's error)
    assert not hasattr(method, "trunk")
