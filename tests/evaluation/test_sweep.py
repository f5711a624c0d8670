import json

import numpy as np

from zoo.evaluation.sweep import label_counts, load_results, markdown_table, run_sweep, summarize


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


def test_summary_and_table(tmp_path):
    calls = []
    methods = {"scratch": "random", "rotation": "pretrained"}
    results = run_sweep(
        str(tmp_path), methods, [100, 500, 1000], [0, 2], _fake_run(calls), progress=None
    )
    table = summarize(results)
    rotation = {row["n"]: row for row in table["rotation"]}
    assert rotation[100]["mean"] == 0.71 and np.isclose(rotation[100]["std"], 0.01)
    # scratch means: 0.51 @100, 0.71 @500, 0.81 @1000; rotation's 0.71 @100 -> n̂ = 500
    assert np.isclose(rotation[100]["utility"], 4.0)
    assert np.isnan(rotation[1000]["utility"])  # 0.86 beyond the best scratch 0.81
    text = markdown_table(table, "accuracy")
    assert "| scratch | 0.510 ± 0.010" in text and "(U 4.00)" in text and "(U —)" in text
