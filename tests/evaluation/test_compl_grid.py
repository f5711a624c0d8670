"""CompL's label-fraction grid: a cell trained, measured and never run twice; the report,
the gains and the paper's claims on known records."""

import json
import os

import numpy as np
import pytest
from helpers import TWO_STAGE_DEEPLAB
from PIL import Image

from zoo.errors import UserError
from zoo.evaluation import claims, compl


def _records():
    """semseg at two fractions, three seeds: DenseCL +0.04 at 0.05 and +0.01 at 1.0."""
    out = []
    for fraction, base, gain in ((0.05, 0.30, 0.04), (1.0, 0.60, 0.01)):
        for seed, noise in enumerate((0.0, 0.004, -0.004)):
            for auxiliary, value in (
                ("none", base + noise),
                ("densecl", base + gain + noise + 0.001 * seed),
                ("rot", base - 0.01 + noise),
            ):
                out.append(
                    {
                        "target": "semseg",
                        "auxiliary": auxiliary,
                        "fraction": fraction,
                        "seed": seed,
                        "value": value,
                        "value_P": value / 2,
                        "value_TCVL": value / 3,
                        "shifted": {"P": {"miou": value / 2}, "TCVL": {"miou": value / 3}},
                    }
                )
    return out


def test_gains_report_plot_and_claims_on_known_records(tmp_path):
    records = _records()
    gains = compl.gains(records, "semseg", "densecl")
    assert gains[0.05][0] == pytest.approx(0.041) and gains[1.0][0] == pytest.approx(0.011)
    assert gains[0.05][1] == pytest.approx(np.std([0.040, 0.041, 0.042], ddof=1))
    text = compl.report(records)
    assert "| densecl | 0.341 ± 0.004 (3) | 0.611 ± 0.004 (3) |" in text
    assert "| rot | -0.010 ± 0.000 | -0.010 ± 0.000 |" in text
    assert "zero-shot on P:" in text and "| none | 0.150 ± 0.002 (3)" in text
    path = compl.plot_gains(records, str(tmp_path / "gains.png"))
    assert open(path, "rb").read(8) == b"\x89PNG\r\n\x1a\n"

    root = tmp_path / "claims"
    (root / "compl22").mkdir(parents=True)
    with open(root / "compl22" / "results.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)
    verdicts = {c.name: claims.judge_claim(c, str(root)).verdict for c in claims.select("compl22")}
    assert verdicts["densecl_helps_segmentation"] == "holds"
    assert verdicts["contrastive_beats_rotation_for_segmentation"] == "holds"
    assert verdicts["segmentation_gain_largest_with_few_labels"] == "holds"
    assert verdicts["densecl_more_robust"] == "holds"
    assert verdicts["moco_helps_segmentation"] == "no runs"
    assert verdicts["densecl_helps_depth"] == "no runs"


@pytest.mark.slow
def test_a_cell_is_trained_measured_and_not_run_again(tmp_path):
    tiny = [
        "INPUT_SIZE = 32",
        "NUM_SCENES = 16",
        "zoo.tasks.SemanticSegmentation.eval_examples = 8",
        *TWO_STAGE_DEEPLAB,
        "BATCH = 4",
        "STEPS = 2",
        "STEPS_PER_EPOCH = 2",
        "zoo.experiment.train.epochs = 1",
    ]
    said = []
    records = compl.grid(
        ["semseg"], ["none"], [0.5], [0], str(tmp_path), gin_bindings=tiny, num=8, say=said.append
    )
    (record,) = records
    assert (record["target"], record["auxiliary"], record["fraction"]) == ("semseg", "none", 0.5)
    assert set(record["shifted"]) == {"TCVL", "P"} and 0 <= record["value_P"] <= 1
    assert record["value"] == record["metrics"]["miou"]
    picture = compl.plot_shifted(record["model_dir"], str(tmp_path / "shifted.png"), num=2)
    assert Image.open(picture).size[1] > 6 * 100  # six rows: two scenes x three domains
    with open(os.path.join(record["model_dir"], "operative_config.gin")) as f:
        config = f.read()
    assert "FRACTION = 0.5" in config and "labelled_fraction = %FRACTION" in config
    again = compl.grid(
        ["semseg"], ["none"], [0.5], [0], str(tmp_path), gin_bindings=tiny, num=8, say=said.append
    )
    assert again == records and len(said) == 1  # nothing trained the second time
    with pytest.raises(UserError, match="other settings"):
        compl.grid(["semseg"], ["none"], [0.5], [0], str(tmp_path), gin_bindings=tiny, num=9)
    with pytest.raises(UserError, match="unknown auxiliaries"):
        compl.grid(["semseg"], ["jigsaw"], [0.5], [0], str(tmp_path))
