import json
import os

import numpy as np
import processes
import pytest

import zoo.evaluation.transfer  # noqa: F401  (registers the configurable)
from zoo.errors import InUse
from zoo.evaluation.sweep import (
    _keep_settings,
    factor_changes,
    label_counts,
    load_results,
    markdown_table,
    mean_utility,
    run_grid,
    run_sweep,
    summarize,
    transfer_settings,
    variant_dirs,
    variant_utilities,
    write_report,
)


def test_label_counts():
    assert label_counts(3000) == [100, 250, 500, 1000, 2500, 3000]
    assert label_counts(100) == [100]


def _fake_run(calls):
    curves = {
        "random": {100: 0.5, 500: 0.7, 1000: 0.8},
        "pretrained": {100: 0.7, 500: 0.8, 1000: 0.85},
    }

    def run(source, n, seed):
        calls.append((source, n, seed))
        return {"metric": "accuracy", "value": curves[source][n] + 0.01 * seed}

    return run


def test_sweep_is_resumable_and_appends(tmp_path):
    calls = []
    methods = {"scratch": "random", "rotation": "pretrained"}
    run_sweep(str(tmp_path), methods, [100, 500], [0, 1], _fake_run(calls), progress=None)
    assert len(calls) == 8
    run_sweep(str(tmp_path), methods, [100, 500, 1000], [0, 1], _fake_run(calls), progress=None)
    assert len(calls) == 12  # only the four new n=1000 cells ran
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 12 and json.loads(lines[0])["method"] == "scratch"
    assert len(load_results(str(tmp_path))) == 12


def test_a_second_process_on_a_sweep_or_grid_folder_is_refused(tmp_path):
    """Each record rewrites results.jsonl from the writer's own rows: a second writer
    would drop the first one's cells, so it is refused before it runs a cell."""
    calls, methods = [], {"scratch": "random", "rotation": "pretrained"}
    run_sweep(str(tmp_path), methods, [100], [0], _fake_run(calls), progress=None)
    before = (tmp_path / "results.jsonl").read_text()
    holder = processes.hold_lock(tmp_path, "sweep folder")
    try:
        with pytest.raises(InUse, match=f"sweep folder {tmp_path} is in use .*PID {holder.pid}"):
            run_sweep(str(tmp_path), methods, [100, 500], [0], _fake_run(calls), progress=None)
        with pytest.raises(InUse, match=f"grid folder {tmp_path} is in use"):
            run_grid(str(tmp_path), [(("a",), 1, 2, 3)], None, print, str)
    finally:
        holder.stdin.close()
        holder.wait()
    assert len(calls) == 2 and (tmp_path / "results.jsonl").read_text() == before
    run_sweep(str(tmp_path), methods, [100, 500], [0], _fake_run(calls), progress=None)
    assert len(calls) == 4  # the holder gone, the sweep goes on


def test_summary_and_table(tmp_path):
    calls = []
    methods = {"scratch": "random", "rotation": "pretrained"}
    results = run_sweep(
        str(tmp_path), methods, [100, 500, 1000], [0, 2], _fake_run(calls), progress=None
    )
    table = summarize(results)
    rotation = {row["n"]: row for row in table["rotation"]}
    assert rotation[100]["mean"] == 0.71 and np.isclose(rotation[100]["std"], 0.02 / 2**0.5)
    # scratch means: 0.51 @100, 0.71 @500, 0.81 @1000; rotation's 0.71 @100 -> n̂ = 500
    assert np.isclose(rotation[100]["utility"], 4.0)
    assert np.isnan(rotation[1000]["utility"])  # 0.86 beyond the best scratch 0.81
    text = markdown_table(table, "accuracy")
    assert "| scratch | 0.510 ± 0.014" in text and "(U 4.00)" in text and "(U —)" in text
    # one seed: no spread to show
    one = summarize([r for r in results if r["seed"] == 0])
    assert np.isnan(one["rotation"][0]["std"]) and one["rotation"][0]["seeds"] == 1
    assert "| scratch | 0.500 | 0.700 | 0.800 |" in markdown_table(one, "accuracy")


def test_sweep_over_variants_and_factor_changes(tmp_path):
    calls = []
    boost = {"----": 0.0, "T---": 0.1, "-C--": -0.05, "TC--": 0.1}

    def run(source, n, seed, variant):
        calls.append((source, n, variant))
        scratch = {100: 0.5, 500: 0.7, 1000: 0.8}[n]
        value = scratch if source == "random" else min(scratch + 0.1 + boost[variant], 0.79)
        return {"metric": "accuracy", "value": value}

    run_sweep(
        str(tmp_path),
        {"rot": "runs/rot_{variant}"},
        [100, 500, 1000],
        [0],
        run,
        progress=None,
        variants=list(boost),
    )
    assert ("runs/rot_T---", 100, "T---") in calls and len(calls) == 4 * 2 * 3
    assert sorted(variant_dirs(str(tmp_path))) == sorted(boost)
    utilities = variant_utilities(str(tmp_path))
    # at n=100 the pretrained value 0.6 + boost is reached by scratch at n̂ with
    # log-linear interpolation between (100, 0.5) and (500, 0.7); n=500, 1000 add more.
    changes = factor_changes(utilities)
    pairs = {(a, b) for a, b, _ in changes["rot"]["T"]}
    assert pairs == {("----", "T---"), ("-C--", "TC--")}
    by_pair = {(a, b): c for a, b, c in changes["rot"]["T"]}
    expected = utilities["T---"]["rot"] - utilities["----"]["rot"]
    assert np.isclose(by_pair[("----", "T---")], expected) and expected > 0
    assert {(a, b) for a, b, _ in changes["rot"]["C"]} == {("----", "-C--"), ("T---", "TC--")}
    text, written = write_report(str(tmp_path))
    assert "## variant T---" in text and "mean utility over n" in text
    for path in written:
        assert os.path.getsize(path) > 1000 or path.endswith(".md")
    assert os.path.join(str(tmp_path), "factors.png") in written


def test_factor_changes_by_hand():
    utilities = {
        "----": {"a": 1.0, "b": 0.5},
        "---L": {"a": 3.0, "b": float("nan")},
        "-C-L": {"a": 2.0, "b": 1.0},
    }
    changes = factor_changes(utilities)
    assert changes == {
        "a": {"L": [("----", "---L", 2.0)], "C": [("---L", "-C-L", -1.0)]},
    }
    assert np.isnan(mean_utility([{"utility": float("nan")}]))
    assert mean_utility([{"utility": 1.0}, {"utility": float("nan")}, {"utility": 3.0}]) == 2.0


def test_a_sweep_refuses_another_transfer_configuration(tmp_path):
    import gin

    def run(source, n, seed):
        return {"metric": "accuracy", "value": 0.5}

    gin.clear_config()
    gin.parse_config("zoo.evaluation.transfer.task = 'pose'")
    settings = transfer_settings()
    assert "transfer.task = 'pose'" in settings
    gin.parse_config("zoo.evaluation.run_sweep.seeds = [4]")
    assert transfer_settings() == settings  # the grid is not part of it
    _keep_settings(str(tmp_path), settings)
    gin.parse_config("zoo.evaluation.transfer.task = 'classification'")
    with pytest.raises(ValueError, match="another transfer configuration"):
        _keep_settings(str(tmp_path), transfer_settings())
    gin.clear_config()
    with pytest.raises(ValueError, match="variant"):
        run_sweep(str(tmp_path / "v"), {}, [10], [0], run, progress=None, variants=["TXVL"])
    assert not os.path.exists(tmp_path / "v")


@pytest.mark.parametrize(
    "name",
    [
        "newell20/classification_sweep.gin",
        "newell20/pretrain_rotation.gin",
        "contrastive/classification_sweep.gin",
        "transfer/linear.gin",
        "transfer/linear_global.gin",
        "transfer/lasso_linear.gin",
        "transfer/finetune.gin",
        "transfer/frozen_k.gin",
        "transfer/dense_coarse.gin",
        "transfer/depth_up_projection.gin",
    ],
)
def test_transfer_and_newell20_configs_parse(name):
    import gin

    from zoo.cli import gin_setup

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    gin.clear_config()
    gin_setup.parse([os.path.join(root, "gin_configs", name)], [])
    if name.startswith("transfer/"):
        assert gin.query_parameter("zoo.evaluation.transfer.protocol") in (
            "linear",
            "lasso_linear",
            "finetune",
            "frozen_k",
        )
    if name == "newell20/classification_sweep.gin":
        assert gin.query_parameter("zoo.evaluation.run_sweep.counts") == [100, 250, 500, 1000]
        assert gin.query_parameter("zoo.evaluation.transfer.variant") == "TCVL"
    if name == "contrastive/classification_sweep.gin":
        methods = gin.query_parameter("zoo.evaluation.run_sweep.methods")
        assert sorted(methods) == ["densecl", "moco_v2", "simclr"]
        assert gin.query_parameter("zoo.evaluation.transfer.endpoint") == "block3"
    gin.clear_config()


def test_a_sweep_refuses_cells_of_other_weights(tmp_path):
    from zoo.errors import ConfigMismatch
    from zoo.evaluation.sweep import source_identity

    run = tmp_path / "run"  # a zoo-train model_dir with one checkpoint
    (run / "checkpoints").mkdir(parents=True)
    (run / "method.json").write_text("{}")
    (run / "checkpoints" / "epoch_001.weights.h5").write_bytes(b"weights one")
    calls = []

    def cell(source, n, seed):
        calls.append(source)
        return {"metric": "accuracy", "value": 0.5}

    sweep = str(tmp_path / "sweep")
    methods = {"pretrained": str(run)}
    run_sweep(sweep, methods, [100], [0], cell, progress=None)
    first = source_identity(str(run))
    assert first.startswith("epoch_001.weights.h5:") and source_identity("random") == "random"
    assert {r["source_id"] for r in load_results(sweep)} == {"random", first}
    run_sweep(sweep, methods, [100], [0], cell, progress=None)
    assert len(calls) == 2  # same weights: the finished cells are kept
    # the run trained another epoch: its cells no longer describe what the name points at
    (run / "checkpoints" / "epoch_002.weights.h5").write_bytes(b"weights two")
    with pytest.raises(ConfigMismatch, match=r"\['pretrained'\] computed from other weights"):
        run_sweep(sweep, methods, [100, 250], [0], cell, progress=None)
    assert len(calls) == 2 and len(load_results(sweep)) == 2  # nothing ran or was lost
    assert source_identity(str(run)) != first


@pytest.mark.parametrize("task", ["segmentation", "depth"])
def test_newell20_dense_sweeps_augment_as_the_paper(task, monkeypatch):
    """<task>_sweep.gin: the image and its maps flipped alike (segmentation also padded by
    res / 8 and cropped; no crop for depth), colour jitter and Cutout on the image alone,
    segmentation scored by the share of pixels right with the padding ignored."""
    import gin

    from zoo.cli import gin_setup
    from zoo.evaluation import transfer as transfer_module

    class Built(Exception):
        pass

    seen = {}

    def trunk_and_task(source, task, **setting):
        seen.update(setting, task=task)
        raise Built

    monkeypatch.setattr(transfer_module, "_trunk_and_task", trunk_and_task)
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    gin.clear_config()
    gin_setup.parse([os.path.join(root, "gin_configs", "newell20", f"{task}_sweep.gin")], [])
    with pytest.raises(Built):
        transfer_module.transfer("random", num_labels=100)
    assert seen["task"] == task and (seen["input_size"], seen["variant"]) == (64, "TCVL")
    moves = seen["dense_augment"]
    assert (moves.scales, moves.flip) == ((1.0,), 0.5)
    assert moves.pad == (0.125 if task == "segmentation" else 0.0)
    assert [type(s).__name__ for s in seen["augment"].steps] == ["ChannelJitter", "Cutout"]
    assert gin.query_parameter("zoo.evaluation.transfer.head") == "coarse"
    if task == "segmentation":
        assert gin.query_parameter("zoo.evaluation.transfer.metric") == "pixel_accuracy"
        assert gin.query_parameter("zoo.tasks.SemanticSegmentation.ignore_label") == 255
    gin.clear_config()
