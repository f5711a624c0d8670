"""MGM 2022's comparison grid (zoo.evaluation.mgm22): the cells and their bindings, a
cell's record from its runs, resuming, the report, the plot and the paper's claims on
known records."""

import json
import os

import gin
import numpy as np
import pytest
from PIL import Image

from zoo.cli import gin_setup
from zoo.errors import UserError
from zoo.evaluation import claims, mgm22

TASKS = ("semantic_segmentation", "depth", "normals")


def _records():
    """Rows at 1.0 and 0.25, three seeds: MGM +0.03 mIoU over MT at 0.25 and +0.01 at 1.0,
    depth 0.1 lower, normals 2 degrees lower; MGM/G equal to MGM up to noise."""
    out = []
    for fraction, gain in ((1.0, 0.01), (0.25, 0.03)):
        for seed, noise in enumerate((0.0, 0.002, -0.002)):
            for row, better in (("mt", 0.0), ("st", -0.01), ("mgm", 1.0), ("mgm_g", 1.0)):
                jitter = 0.004 * seed if row == "mgm_g" else 0.0
                out.append(
                    {
                        "key": [row, fraction, seed],
                        "row": row,
                        "fraction": fraction,
                        "seed": seed,
                        "semantic_segmentation": 0.2 + better * gain + noise + jitter,
                        "depth": 1.0 - better * 0.1 + noise,
                        "normals": 30.0 - better * 2.0 + noise,
                    }
                )
    return out


def test_report_comparisons_plot_and_claims_on_known_records(tmp_path):
    records = _records()
    text = mgm22.report(records)
    # each cell: mean ± sample std (seeds), the paper's NYUv2 number beside it
    assert "| MGM | 0.230 ± 0.002 (3) (paper 0.229) |" in text
    assert "| MT | 0.200 ± 0.002 (3) (paper 0.256) | 1.000 ± 0.002 (3) (paper 0.708) |" in text
    assert "### 25 % of the scenes labelled" in text
    # seed-wise advantage, signed so that > 0 is the paper's way (lower depth error)
    assert "| MGM beats MT (Table 2) | 0.25 | +0.030 (holds) | +0.100 (holds) | +2.000" in text
    assert "| the generator adds to MGM/G (Table 3) | 0.25 | -0.004 (unresolved) |" in text
    path = mgm22.plot(records, str(tmp_path / "fractions.png"))
    assert Image.open(path).size[0] > 3 * 300  # three panels

    root = tmp_path / "claims"
    (root / "mgm22").mkdir(parents=True)
    with open(root / "mgm22" / "results.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    verdicts = {c.name: claims.judge_claim(c, str(root)).verdict for c in claims.select("mgm22")}
    assert verdicts["mgm_beats_mt_segmentation"] == "holds"
    assert verdicts["mgm_beats_mt_depth"] == "holds"
    assert verdicts["mgm_beats_st_normals"] == "holds"
    assert verdicts["gain_grows_as_labels_shrink"] == "holds"  # +0.03 against +0.01
    assert verdicts["generator_adds_depth"] == "unresolved"  # MGM/G equal up to noise
    assert verdicts["refinement_helps_normals"] == "no runs"


def test_cells_and_refused_grids():
    cells = mgm22.cells(["mt", "mgmr"], [1.0, 0.5], [0, 1])
    assert [c[0] for c in cells] == [
        ("mt", 1.0, 0),
        ("mt", 0.5, 0),
        ("mgmr", 0.5, 0),  # no MGMr at 1.0: no scene is left out of the labelled share
        ("mt", 1.0, 1),
        ("mt", 0.5, 1),
        ("mgmr", 0.5, 1),
    ]
    for args, message in [
        ((["mgm", "mgm2"], [0.5], [0], 5, 1), "unknown rows"),
        ((["mgm"], [0.0], [0], 5, 1), "fractions must be in"),
        ((["mgm"], [0.5], [], 5, 1), "at least one seed"),
        ((["mgm"], [0.5], [0], 1, 1), "epochs must be >= 2"),
    ]:
        with pytest.raises(UserError, match=message):
            mgm22.check(*args)


@pytest.mark.parametrize("row", sorted(mgm22.ROWS))
def test_every_row_takes_the_cell_bindings(row):
    """Each row's files with small.gin and a cell's bindings parse, and the bindings take
    effect: the labelled share, and equal task epochs (5) with the GAN's (2) on top."""
    small = os.path.join(mgm22.CONFIG_DIR, "small.gin")
    for path in mgm22.row_files(row):
        gin.clear_config()
        gin_setup.parse([path, small], mgm22.cell_bindings(row, 0.25, 5, 2))
        gan = mgm22.ROWS[row][2]
        task_epochs = 15 if row == "mt_3x" else 5
        assert gin.query_parameter("zoo.experiment.train.epochs") == task_epochs + (2 if gan else 0)
        task = "zoo.tasks.Depth.labelled_fraction"
        assert gin.query_parameter(task).scoped_selector.startswith("LABELLED")
        assert gin.query_parameter("%LABELLED") == 0.25
        if row not in ("st", "mt", "mt_3x"):
            stages = gin.query_parameter("zoo.methods.MGM.stage_epochs")
            assert tuple(stages) == (1, 2 if gan else 0)


def test_a_cell_s_record_from_its_runs_and_no_second_run(tmp_path, monkeypatch):
    """ST's cell is three runs, one per task, each measured from its metrics.json; the
    grid does not train a finished cell again and refuses other settings."""
    trained = []

    def fake_train(gin_files, gin_bindings, model_dir, seed, what):
        trained.append((os.path.basename(gin_files[0]), list(gin_bindings), seed))
        name = os.path.basename(model_dir)
        metrics = {
            "st_segmentation": {"semantic_segmentation": {"miou": 0.3}},
            "st_depth": {"depth": {"mae": 1.5, "rmse": 2.0}},
            "st_normals": {"normals": {"mean_angle": 20.0}},
        }[name]
        os.makedirs(model_dir)
        with open(os.path.join(model_dir, "metrics.json"), "w") as f:
            json.dump({"trained": metrics}, f)

    monkeypatch.setattr(mgm22.sweep, "train_process", fake_train)
    said = []
    (record,) = mgm22.grid(["st"], [0.5], [3], str(tmp_path), say=said.append)
    assert [t[0] for t in trained] == ["st_segmentation.gin", "st_depth.gin", "st_normals.gin"]
    assert trained[0][1] == ["LABELLED = 0.5", "zoo.experiment.train.epochs = 20"]
    assert trained[0][2] == 3
    assert (record["row"], record["fraction"], record["seed"]) == ("st", 0.5, 3)
    assert [record[t] for t in TASKS] == [0.3, 1.5, 20.0]
    assert said == ["ST, 0.5 of the labels, seed 3: miou 0.300, mae 1.500, mean_angle 20.000 (0 s)"]
    again = mgm22.grid(["st"], [0.5], [3], str(tmp_path), say=said.append)
    assert again == [record] and len(trained) == 3
    with pytest.raises(UserError, match="other settings"):
        mgm22.grid(["st"], [0.5], [3], str(tmp_path), epochs=6)  # the folder's are 20
    assert np.isclose(mgm22.difference([record], "st", "st", 0.5, "depth")[3], 0.0)
