import json
import math
import os
import shlex

import pytest

from zoo.evaluation import claims, results


def _write(path, records):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in records)


def test_judge_follows_the_two_standard_error_rule():
    # means 0.41 and 0.31, sample stds 0.01 each over 3 seeds: error sqrt(2 * 0.01² / 3)
    verdict = claims.judge([0.40, 0.41, 0.42], [0.30, 0.31, 0.32])
    assert verdict.verdict == "holds"
    assert verdict.difference == pytest.approx(0.10)
    assert verdict.error == pytest.approx(math.sqrt(2 * 0.01**2 / 3))
    assert claims.judge([0.30, 0.31, 0.32], [0.40, 0.41, 0.42]).verdict == "reversed"
    # difference 0.01, error sqrt(0.1² / 3 + 0.01² / 3) = 0.058: within two errors
    assert claims.judge([0.20, 0.40, 0.30], [0.28, 0.29, 0.30]).verdict == "unresolved"
    # lower is better: the smaller mean is the better arm
    assert claims.judge([0.80, 0.81], [0.90, 0.91], higher_is_better=False).verdict == "holds"
    one_seed = claims.judge([0.9], [0.1, 0.2])
    assert one_seed.verdict == "unresolved" and one_seed.difference == pytest.approx(0.75)
    assert claims.judge([], [0.1, 0.2]).verdict == "no runs"
    # non-finite values are not seeds
    assert claims.judge([float("nan")], [0.1]).verdict == "no runs"


def test_arms_read_their_records_and_subtract_by_seed(tmp_path):
    rows = [
        {"method": m, "n": n, "seed": s, "value": v}
        for m, n, s, v in [
            ("rotation", 100, 0, 0.30),
            ("rotation", 100, 1, 0.34),
            ("scratch", 100, 0, 0.10),
            ("scratch", 100, 1, 0.20),
            ("scratch", 100, 2, 0.90),  # no rotation cell at seed 2: left out of the difference
            ("rotation", 250, 0, 0.99),
        ]
    ]
    _write(str(tmp_path / "s" / "results.jsonl"), rows)
    scratch = claims.Arm("scratch", "s/results.jsonl", {"method": "scratch", "n": 100})
    rotation = claims.Arm("rot", "s/results.jsonl", {"method": "rotation", "n": 100})
    assert rotation.values(str(tmp_path)) == {0: 0.30, 1: 0.34}
    advantage = claims.Arm("adv", "s/results.jsonl", rotation.where, minus=scratch)
    assert advantage.values(str(tmp_path)) == pytest.approx({0: 0.20, 1: 0.14})
    assert claims.Arm("x", "missing/results.jsonl", {}).values(str(tmp_path)) == {}


def test_every_claim_is_complete_and_its_commands_name_real_files():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ids = [c.id for p in claims.PAPERS.values() for c in p.claims]
    assert len(ids) == len(set(ids)) and len(ids) >= 12
    assert {"compl22", "mgm22"} <= set(claims.PAPERS)  # papers still to build are listed
    for claim in claims.select():
        assert claim.statement and claim.where and claim.paper_numbers and claim.metric
        assert claim.better.label != claim.worse.label
        for command in claims.commands_of([claim], "claims"):
            argv = shlex.split(command)
            module = claims.argv_of(command)[2]
            assert os.path.exists(os.path.join(root, *module.split(".")) + ".py"), command
            for arg in argv[1:]:
                if arg.startswith("--gin_file="):
                    assert os.path.exists(os.path.join(root, arg.split("=", 1)[1])), arg
        # the files the arms read are made by the claim's commands
        assert any(os.path.dirname(claim.better.file).split("/")[0] in c for c in claim.commands)


def test_commands_run_with_this_python_and_the_checkouts_gin_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no gin_configs/ here
    argv = claims.argv_of("zoo-sweep --sweep_dir=a --gin_file=gin_configs/quickstart.gin")
    assert argv[1:3] == ["-m", "zoo.cli.sweep"] and argv[3] == "--sweep_dir=a"
    assert os.path.isfile(argv[4].split("=", 1)[1])


def test_select_refuses_unknown_papers_and_claims():
    assert [c.name for c in claims.select("ren_lee18", "conv5_beats_conv6")] == [
        "conv5_beats_conv6"
    ]
    assert claims.select(claim="ren_lee18/conv5_beats_conv6")[0].paper == "ren_lee18"
    with pytest.raises(ValueError, match=r"unknown paper 'renlee'; papers: \["):
        claims.select("renlee")
    with pytest.raises(ValueError, match="unknown claim 'conv9'; claims: "):
        claims.select(claim="conv9")


def test_paper_page_judges_what_is_there_and_says_what_is_missing(tmp_path):
    records = [
        {"row": row, "seed": s, "p_classification": v, "gap_adapted": g, "model_dir": "-"}
        for row, values, gaps in [
            ("3tasks", [0.30, 0.31], [0.90, 0.92]),
            ("da_conv5", [0.20, 0.21], [0.80, 0.81]),
        ]
        for s, (v, g) in enumerate(zip(values, gaps))
    ]
    _write(str(tmp_path / "ren_lee18" / "results.jsonl"), records)
    page = claims.paper_page(claims.PAPERS["ren_lee18"], str(tmp_path))
    rows = [line for line in page.splitlines() if line.startswith("| ")]

    def line(statement):
        (found,) = [row for row in rows if row.startswith(f"| {statement} (")]
        return found

    conv5 = line("adaptation at a mid layer (conv5) beats no adaptation")
    assert "DA conv5: 0.205 ± 0.007 (2)" in conv5 and "no DA: 0.305 ± 0.007 (2)" in conv5
    assert conv5.endswith("| -0.100 ± 0.007 | **reversed** |")
    gap = line("adaptation at conv5 makes synthetic and real conv5 features harder to tell apart")
    assert gap.endswith("**holds** |")  # 0.805 against 0.91, lower is better
    assert line("adaptation at conv5 beats adaptation at conv6").endswith("**no runs** |")
    assert "## Every measured row of Table 3" in page and "| 3 tasks, DA conv5 | 2 |" in page
    assert f"--out={tmp_path}/ren_lee18 --rows=" in page
    assert "No runs yet for `ren_lee18/none_beats_conv1`" in page
    empty = claims.paper_page(claims.Paper("next", "Next 2027", "not built yet"), str(tmp_path))
    assert "not built yet" in empty


def test_runs_table_and_stamped_page(tmp_path):
    for name, seed_values in (("seed_0", (0.8, 0.25)), ("seed_1", (0.9, 0.2))):
        os.makedirs(tmp_path / name)
        metrics = {
            "untrained": {"rotation": {"accuracy": seed_values[1]}},
            "trained": {"rotation": {"accuracy": seed_values[0]}},
            "metric_info": {"rotation": {"accuracy": ["higher", "share of |correct| labels"]}},
            "examples": {"rotation": 256},
            "history": {"loss": [2.0, 1.0]},
            "seconds": 10.4,
        }
        (tmp_path / name / "metrics.json").write_text(json.dumps(metrics))
    runs = [str(tmp_path / "seed_0"), str(tmp_path / "seed_1")]
    table = results.runs_table(runs)
    assert (
        "| rotation | accuracy | 0.225 ± 0.035 (2) | 0.850 ± 0.071 (2) | 0.800 | 0.900 | "
        "share of \\|correct\\| labels (higher is better) |" in table  # a cell, not 3
    )
    path = results.write_page(str(tmp_path / "page.md"), "Runs", table, "zoo-evaluate results")
    text = open(path).read()
    assert text.startswith("# Runs\n\n*Generated on 20")
    assert "with `zoo-evaluate results`. Do not edit" in text
    with pytest.raises(FileNotFoundError, match="has no metrics.json"):
        results.runs_table([str(tmp_path)])


@pytest.mark.slow
def test_the_command_prints_the_verdicts_and_writes_the_pages(tmp_path):
    import sys

    import processes

    records = [
        {"row": row, "seed": s, "p_classification": v, "model_dir": "-"}
        for row, values in [("3tasks", [0.30, 0.31, 0.32]), ("da_conv1", [0.20, 0.21, 0.22])]
        for s, v in enumerate(values)
    ]
    _write(str(tmp_path / "runs" / "ren_lee18" / "results.jsonl"), records)
    command = [sys.executable, "-m", "zoo.cli.evaluate", "claims", "--paper=ren_lee18"]
    command += [f"--root={tmp_path / 'runs'}", f"--pages={tmp_path / 'pages'}"]
    done = processes.run(command, cwd=str(tmp_path))
    assert done.returncode == 0, done.stderr[-3000:]
    (conv1,) = [line for line in done.stdout.splitlines() if "beats adaptation at conv1" in line]
    assert "no DA: 0.310 ± 0.010 (3)" in conv1 and conv1.endswith("**holds** |")
    assert "4 of 5 claims have no runs" in done.stdout
    page = (tmp_path / "pages" / "ren_lee18.md").read_text()
    assert page.startswith("# Ren & Lee 2018: claims and runs\n\n*Generated on ")
    assert "zoo-evaluate claims --paper=ren_lee18" in page and conv1 in page
    overview = (tmp_path / "pages" / "claims.md").read_text()
    assert "## MGM 2022" in overview and "MGM beats MT on depth" in overview
    # judging one paper again keeps the other sections as they were, each stamped
    command[4] = "--paper=newell20"
    again = processes.run(command, cwd=str(tmp_path))
    assert again.returncode == 0, again.stderr[-3000:]
    merged = (tmp_path / "pages" / "claims.md").read_text()
    (ren_lee,) = [s for s in merged.split("\n## ") if s.startswith("Ren & Lee 2018")]
    assert conv1 in ren_lee and "with `zoo-evaluate claims --paper=ren_lee18" in ren_lee
    (newell,) = [s for s in merged.split("\n## ") if s.startswith("Newell & Deng 2020")]
    assert "--paper=newell20" in newell and "**no runs**" in newell
    assert not (tmp_path / "pages" / "mgm22.md").exists()  # no page without claims
