"""Newell & Deng's comparison grid (zoo.evaluation.newell20): its stages resume cell by
cell, Table 1 and the sweeps read the pretrained runs, and the report judges the claims
on known numbers (the transfer runs replaced by a table of results)."""

import importlib
import json
import os

import processes
import pytest

from zoo.evaluation import claims, newell20, sweep

# accuracy by (method, n): rotation helps at few labels only; cmc never
ACCURACY = {
    ("rotation", 10): 0.50,
    ("rotation", 40): 0.71,
    ("cmc", 10): 0.30,
    ("cmc", 40): 0.70,
    ("scratch", 10): 0.30,
    ("scratch", 20): 0.50,
    ("scratch", 40): 0.70,
}
LINEAR = {"rotation": 0.40, "cmc": 0.60, "supervised": 0.90}


def _method(source):
    if source == "random":
        return "scratch"
    return os.path.basename(os.path.dirname(os.path.normpath(source)))


def _fake_transfer(calls):
    def transfer(source, task=None, protocol="finetune", num_labels=0, seed=0, **kwargs):
        calls.append((source, protocol, num_labels, seed, kwargs.get("variant")))
        if protocol == "linear" or kwargs.get("like") and num_labels == 64:
            value = LINEAR["supervised" if source == "random" else _method(source)]
        elif protocol == "frozen_k":  # a little worse at n = 10, better at 40 with 1 frozen
            k = kwargs["frozen_stages"]
            value = {(1, 10): 0.45, (1, 40): 0.75, (3, 10): 0.2, (3, 40): 0.3}[(k, num_labels)]
        else:
            value = ACCURACY.get((_method(source), num_labels), 0.6)
        value += 0.01 * seed  # seeds differ a little
        return {"value": value, "metric": "accuracy"}

    return transfer


def test_the_grid_resumes_reads_its_runs_and_judges_the_claims(tmp_path, monkeypatch):
    out = str(tmp_path)
    calls = []
    monkeypatch.setattr(newell20, "transfer", _fake_transfer(calls))
    # the sweeps' cells import the transfer when they run
    transfer_module = importlib.import_module("zoo.evaluation.transfer")
    monkeypatch.setattr(transfer_module, "transfer", _fake_transfer(calls))
    # stage 1 with a stand-in for the zoo-train processes (run_pretraining)
    trained = []

    def executor(run, cells, record):
        for key, *_ in cells:
            trained.append(key)
            record(key, {"model_dir": "x", "objective": {}, "probes": {"pose_mlp": 0.5}}, 1.0)

    for _ in range(2):  # the second time, every cell is there already
        records = newell20.pretrain(["rotation", "cmc"], ["TCVL"], out, executor=executor)
    assert trained == [("rotation", "TCVL"), ("cmc", "TCVL")] and len(records) == 2
    with pytest.raises(ValueError, match="other settings"):
        newell20.pretrain(["cmc"], ["TCVL"], out, gin_bindings=["NUM_IMAGES = 8"])
    with pytest.raises(ValueError, match="unknown methods"):
        newell20.pretrain(["simclr"], ["TCVL"], out)
    # stage 2: a linear layer on each run, the supervised reference from scratch
    newell20.linear(["rotation", "cmc"], ["TCVL"], out, 64, [0, 1])
    linear_calls = [c for c in calls if c[2] == 64]
    assert {(_method(c[0]), c[1]) for c in linear_calls} == {
        ("rotation", "linear"),
        ("cmc", "linear"),
        ("scratch", "finetune"),
    }
    assert all(c[4] == "TCVL" for c in linear_calls) and len(linear_calls) == 6
    # each record names its cell's fields (the claims registry selects by them)
    assert _load(out, "linear")[1] == {
        "key": ["cmc", "TCVL", 0],
        "method": "cmc",
        "variant": "TCVL",
        "seed": 0,
        "value": 0.60,
        "metric": "accuracy",
    }
    # stage 3: the sweeps of each run against scratch
    folders = newell20.sweeps(
        ["rotation", "cmc"], ["TCVL"], ["classification"], [10, 20, 40], [0, 1], out
    )
    rows = sweep.load_results(os.path.join(folders["classification"], "TCVL"))
    assert {r["method"] for r in rows} == {"rotation", "cmc", "scratch"} and len(rows) == 18
    assert {c[0] for c in calls if c[2] == 10} == {
        "random",
        newell20.pretrain_dir(out, "rotation", "TCVL"),
        newell20.pretrain_dir(out, "cmc", "TCVL"),
    }
    count = len(calls)
    newell20.linear(["rotation", "cmc"], ["TCVL"], out, 64, [0, 1])  # resumed: nothing to do
    assert len(calls) == count

    # the dense tasks: pretrained on scenes in a folder of their own, swept from there
    newell20.pretrain(["rotation", "cmc"], ["TCVL"], out, executor=executor, scenes=True)
    assert trained[-2:] == [("rotation", "TCVL"), ("cmc", "TCVL")]
    assert len(_load(out, "pretrain_scenes")) == 2 and len(_load(out, "pretrain")) == 2
    count = len(calls)
    folders.update(
        newell20.sweeps(["rotation", "cmc"], ["TCVL"], ["segmentation"], [10, 20, 40], [0], out)
    )
    assert {c[0] for c in calls[count:]} == {
        "random",
        newell20.pretrain_dir(out, "rotation", "TCVL", scenes=True),
        newell20.pretrain_dir(out, "cmc", "TCVL", scenes=True),
    }
    # Fig. 5: CMC best for classification (here it is not), rotation for segmentation
    best = dict(newell20.best_method_claims(folders, ["rotation", "cmc"]))
    assert best["Fig. 5: cmc finetunes classification best with few labels (TCVL, n=10)"] == (
        "**reversed** (cmc 0.305 against rotation 0.505 (reversed))"
    )
    assert best["Fig. 5: rotation finetunes segmentation best with few labels (TCVL, n=10)"] == (
        "**unresolved** (rotation 0.500 against cmc 0.300 (unresolved))"  # one seed
    )

    # Fig. 8: frozen-k against the classification sweep's full finetuning
    count = len(calls)
    newell20.frozen(["rotation", "cmc"], ["TCVL", "----"], [1, 3], [10, 40], [0, 1], out)
    frozen_calls = calls[count:]
    assert len(frozen_calls) == 16 and {c[1] for c in frozen_calls} == {"frozen_k"}
    assert {c[4] for c in frozen_calls} == {"TCVL"}  # the first variant
    with pytest.raises(ValueError, match="k must be 1, 2 or 3"):
        newell20.frozen(["rotation"], ["TCVL"], [4], [10], [0], out)
    records = _load(out, "frozen")
    assert records[1] == {
        "key": ["cmc", "TCVL", 1, 10, 0],
        **dict(method="cmc", variant="TCVL", k=1, n=10, seed=0),
        **dict(value=0.45, metric="accuracy"),
    }
    table = newell20.frozen_table(records, folders["classification"], ["rotation", "cmc"])
    # rotation at n=10: 0.45 + 0.01 seed frozen (1 block) against 0.50 + 0.01 seed whole
    assert "| rotation | 1 | -0.050 ± 0.000 | +0.040 ± 0.000 |" in table
    found = dict(newell20.frozen_claims(records, folders["classification"], ["rotation"]))
    assert found["Fig. 8: rotation finetuned whole beats 3 blocks frozen (n=40)"].startswith(
        "**holds**"
    )
    assert found[
        "Fig. 8: some freezing helps rotation with few labels (best k = 1, n=10)"
    ].startswith("**reversed**")

    # the report covers the folder's runs, in the grid's order of methods
    assert newell20.members(out) == (["rotation", "cmc"], ["TCVL"])
    newell20.pretrain(["vae"], ["-CVL"], out, executor=executor, scenes=True)
    assert newell20.members(out) == (["rotation", "vae", "cmc"], ["TCVL", "-CVL"])
    text, written = newell20.report(out, ["rotation", "cmc"], ["TCVL"])
    assert "## Online probes of the pretraining runs (scenes)" in text
    # every task the grid has swept
    assert "## classification: accuracy and utility against scratch" in text
    assert "## segmentation: accuracy and utility against scratch" in text
    assert "## Frozen-k: accuracy against full finetuning" in text
    # Table 1: ours in %, the paper's in brackets
    assert "| TCVL | 40.5 ± 0.7 (32.9) | 60.5 ± 0.7 (69.0) | 90.5 ± 0.7 (91.5) |" in text
    assert "| rotation | TCVL | 0.500 |" in text  # the probes of each run
    verdicts = dict(
        newell20.claims([], _load(out, "linear"), folders, ["rotation", "cmc"], ["TCVL"])
    )
    few = "Fig. 4: rotation helps classification with few labels (TCVL, U(n=10) > 0)"
    assert verdicts[few].startswith("**holds**")
    assert verdicts[
        "Fig. 4: cmc helps classification with few labels (TCVL, U(n=10) > 0)"
    ].startswith("**unresolved**")
    rank = [v for k, v in verdicts.items() if k.startswith("sec. 8")]
    assert rank == ["**holds** (ranks by means; not a significance test)"]  # cmc > rotation linear
    # one method has no ranking to judge (it was "reversed": one order equals itself)
    alone = newell20.claims([], _load(out, "linear"), folders, ["rotation"], ["TCVL"])
    assert not [k for k, _ in alone if k.startswith("sec. 8")]
    assert os.path.exists(os.path.join(out, "report.md")) and any(
        p.endswith(".png") for p in written
    )


def _load(out, stage):
    with open(os.path.join(out, stage, "results.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_a_pretraining_record_scores_each_probe(tmp_path):
    """Classes by accuracy, segmentation by the share of pixels right, depth by δ1."""
    trained = {
        "rotation": {"accuracy": 0.9},
        "classification_linear": {"accuracy": 0.4},
        "semantic_segmentation_mlp": {"miou": 0.1, "pixel_accuracy": 0.8},
        "depth_linear": {"delta1": 0.3, "rmse": 2.0},
    }
    (tmp_path / "metrics.json").write_text(json.dumps({"trained": trained}))
    record = newell20.pretraining_record(str(tmp_path), "rotation")
    assert record["objective"] == {"accuracy": 0.9}
    assert record["probes"] == {
        "classification_linear": 0.4,
        "semantic_segmentation_mlp": 0.8,
        "depth_linear": 0.3,
    }


def test_the_claims_registry_judges_the_grids_own_records(tmp_path, monkeypatch):
    """`zoo-evaluate claims --paper=newell20` reads the folders the grid writes."""
    finetuned = {  # (method, n) -> accuracy; each seed adds 0.01
        ("rotation", 100): 0.50,
        ("rotation", 1000): 0.80,
        ("cmc", 100): 0.30,
        ("cmc", 1000): 0.70,
        ("scratch", 100): 0.30,
        ("scratch", 1000): 0.75,
    }
    linear = {"rotation": 0.40, "amdim": 0.70, "supervised": 0.90}

    def transfer(source, task=None, protocol="finetune", num_labels=0, seed=0, **kwargs):
        if protocol == "frozen_k":
            value = 0.30
        elif protocol == "linear" or num_labels == 64:  # Table 1's cells
            value = linear["supervised" if source == "random" else _method(source)]
        else:
            value = finetuned[(_method(source), num_labels)]
        return {"value": value + 0.01 * seed, "metric": "accuracy"}

    monkeypatch.setattr(newell20, "transfer", transfer)
    monkeypatch.setattr(importlib.import_module("zoo.evaluation.transfer"), "transfer", transfer)
    out = str(tmp_path / "newell20")
    newell20.linear(["rotation", "amdim"], ["TCVL"], out, 64, [0, 1])
    newell20.sweeps(["rotation", "cmc"], ["TCVL"], ["classification"], [100, 1000], [0, 1], out)
    newell20.frozen(["rotation"], ["TCVL"], [3], [1000], [0, 1], out)

    root = str(tmp_path)
    verdicts = {c.name: claims.judge_claim(c, root) for c in claims.select("newell20")}
    assert verdicts["rotation_helps_with_few_labels"].verdict == "holds"
    assert verdicts["rotation_helps_with_few_labels"].difference == pytest.approx(0.20)
    assert verdicts["cmc_helps_with_few_labels"].verdict == "unresolved"  # equal to scratch
    # rotation's advantage: +0.20 at n = 100, +0.05 at n = 1000, the same at both seeds
    assert verdicts["rotation_advantage_shrinks"].difference == pytest.approx(0.15)
    assert verdicts["cmc_best_for_classification_over_rotation"].verdict == "reversed"
    assert verdicts["vae_helps_with_few_labels"].verdict == "no runs"
    assert verdicts["linear_amdim_over_rotation"].verdict == "holds"
    assert verdicts["linear_supervised_over_amdim"].difference == pytest.approx(0.20)
    assert verdicts["amdim_linear_not_finetuning"].verdict == "no runs"  # amdim not swept
    whole = verdicts["rotation_finetuned_whole_beats_frozen"]
    assert whole.verdict == "holds" and whole.difference == pytest.approx(0.50)
    details = claims.DETAILS["newell20"][1](root)
    assert "| TCVL | 40.5 ± 0.7 (32.9) | — (31.5) | — (69.0) | 70.5 ± 0.7 (74.5) |" in details
    assert "Classification (object classification accuracy, TCVL):" in details


def test_fig_6_claims_judge_each_methods_change_when_a_factor_is_added(tmp_path):
    """The grid's report and the claims registry judge Fig. 6 on the same folders."""
    # scratch 0.5, 0.7, 0.8 at n = 100, 500, 1000 on both variants: 0.7 at n = 100 is
    # U = 500/100 - 1 = 4, 0.8 at 500 is U = 1, 0.75 at 500 is U = 500·√2/500 - 1
    folder = tmp_path / "newell20" / "sweeps" / "classification"
    cells = {
        "-CVL": {"cmc": [0.5, 0.7], "vae": [0.5, 0.7], "rotation": [0.7, 0.8]},
        "TCVL": {"cmc": [0.7, 0.8], "vae": [0.7, 0.8], "rotation": [0.5, 0.7]},
    }
    for variant, by_method in cells.items():
        rows = [
            {"method": "scratch", "n": n, "seed": s, "value": v, "metric": "accuracy"}
            for n, v in ((100, 0.5), (500, 0.7), (1000, 0.8))
            for s in (0, 1)
        ]
        for method, (at_100, at_500) in by_method.items():
            for s in (0, 1):
                at_500_s = 0.75 if (variant, method, s) == ("TCVL", "cmc", 1) else at_500
                rows += [
                    {"method": method, "n": 100, "seed": s, "value": at_100, "metric": "accuracy"},
                    {
                        "method": method,
                        "n": 500,
                        "seed": s,
                        "value": at_500_s,
                        "metric": "accuracy",
                    },
                ]
        os.makedirs(folder / variant)
        (folder / variant / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # per cell, per seed at one n, and per seed over n
    cmc_tcvl = sweep.cell_utilities(str(folder / "TCVL"), "cmc")
    assert cmc_tcvl == pytest.approx({(100, 0): 4, (100, 1): 4, (500, 0): 1, (500, 1): 2**0.5 - 1})
    assert sweep.seed_utilities(str(folder / "TCVL"), "cmc", 500) == pytest.approx(
        {0: 1, 1: 2**0.5 - 1}
    )
    assert sweep.seed_utilities(str(folder / "TCVL"), "cmc") == pytest.approx(
        {0: 2.5, 1: (3 + 2**0.5) / 2}
    )
    assert sweep.seed_utilities(str(folder / "TCVL"), "amdim") == {}

    found = dict(newell20.factor_claims(str(folder), ["rotation", "vae", "cmc", "amdim"]))
    assert set(found) == {  # the paper says nothing of rotation's
        "Fig. 6: adding texture (-CVL → TCVL) raises cmc's mean utility (classification)",
        "Fig. 6: adding texture (-CVL → TCVL) lowers vae's mean utility (classification)",
        "Fig. 6: adding texture (-CVL → TCVL) lowers amdim's mean utility (classification)",
    }
    # CMC: mean U over n goes from 0 to (4 + 1) / 2 at seed 0 and (4 + √2 - 1) / 2 at seed 1
    change = (2.5 + (3 + 2**0.5) / 2) / 2
    cmc = found["Fig. 6: adding texture (-CVL → TCVL) raises cmc's mean utility (classification)"]
    assert cmc.startswith(f"**holds** ({change:+.2f} vs +0.00")
    vae = found["Fig. 6: adding texture (-CVL → TCVL) lowers vae's mean utility (classification)"]
    assert vae.startswith("**reversed** (+2.50 vs +0.00")
    assert found[
        "Fig. 6: adding texture (-CVL → TCVL) lowers amdim's mean utility (classification)"
    ].startswith("no runs")

    # the registry compares the two variants' per-seed utilities (not paired by seed)
    verdicts = {c.name: claims.judge_claim(c, str(tmp_path)) for c in claims.select("newell20")}
    cmc = verdicts["texture_raises_cmc_utility"]
    assert cmc.verdict == "holds" and cmc.difference == pytest.approx(change)
    assert cmc.worse[:2] == pytest.approx((0.0, 0.0))
    vae = verdicts["texture_lowers_vae_utility"]
    assert vae.verdict == "reversed" and vae.difference == pytest.approx(-2.5)
    assert verdicts["texture_lowers_amdim_utility"].verdict == "no runs"
    assert not any("rotation" in name for name in verdicts if name.startswith("texture_"))


@pytest.mark.parametrize(
    "tasks, first_stage, untouched",
    [
        ("segmentation,depth", "pretrain_scenes", "pretrain"),
        ("pose", "pretrain", "pretrain_scenes"),
    ],
)
def test_the_command_runs_the_stages_its_tasks_need(tmp_path, tasks, first_stage, untouched):
    """`zoo-evaluate newell20 --tasks=...`: the dense tasks start with the scenes'
    pretraining and touch no stage on single objects; an object task starts with the
    objects' pretraining. Each stage's folder holds settings of another grid, so the
    command stops, naming it, at the first stage it reaches."""
    for stage in ("pretrain", "pretrain_scenes"):
        os.makedirs(tmp_path / stage)
        (tmp_path / stage / "settings.json").write_text('{"another": "grid"}')
    run = processes.python(
        "-m", "zoo.cli.evaluate", "newell20", f"--out={tmp_path}", f"--tasks={tasks}",
        "--methods=rotation", "--variants=TCVL",
    )  # fmt: skip
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
    assert f"{tmp_path / first_stage} holds cells made with other settings" in run.stderr
    assert sorted(os.listdir(tmp_path)) == ["pretrain", "pretrain_scenes"]
    assert os.listdir(tmp_path / untouched) == ["settings.json"]


def test_a_report_of_the_scene_stages_alone_has_no_table_1(tmp_path):
    def executor(run, cells, record):
        for key, *_ in cells:
            record(key, {"model_dir": "x", "objective": {}, "probes": {"depth_mlp": 0.7}}, 1.0)

    newell20.pretrain(["vae"], ["TCVL"], str(tmp_path), executor=executor, scenes=True)
    text, _ = newell20.report(str(tmp_path), *newell20.members(str(tmp_path)))
    assert "Table 1" not in text
    assert "| vae | TCVL | 0.700 |" in text  # the scene run's probe
