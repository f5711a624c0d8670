"""tools/sweep.py, tools/evaluate.py and tools/visualize.py as a user runs them."""

import json
import os

import processes
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TINY_SWEEP = """
include "{root}/gin_configs/transfer/finetune.gin"
import zoo.evaluation.sweep
import zoo.trunks
zoo.evaluation.run_sweep.methods = {{"exported": "{export}"}}
zoo.evaluation.run_sweep.counts = [8, 16]
zoo.evaluation.run_sweep.seeds = [0]
zoo.evaluation.transfer.task = "classification"
zoo.evaluation.transfer.variant = "----"
zoo.evaluation.transfer.input_size = 32
zoo.evaluation.transfer.builder = @zoo.trunks.resnet
zoo.trunks.resnet.depth = 18
zoo.trunks.resnet.width_multiplier = 0.0625
zoo.trunks.resnet.stop_at = "block2"
zoo.evaluation.transfer.endpoint = "block2"
zoo.evaluation.transfer.min_steps = 2
zoo.evaluation.transfer.max_steps = 2
zoo.evaluation.transfer.eval_examples = 16
"""


@pytest.mark.slow
def test_sweep_report_and_pictures(tool, tmp_path):
    from export import export_trunk
    from zoo.trunks import resnet

    export = export_trunk(
        resnet(18, width_multiplier=0.0625, stop_at="block2", input_shape=(32, 32, 3)),
        str(tmp_path / "trunk"),
    )
    config = tmp_path / "sweep.gin"
    config.write_text(TINY_SWEEP.format(root=ROOT, export=export))
    sweep_dir = str(tmp_path / "sweep")
    first = tool("sweep.py", f"--sweep_dir={sweep_dir}", f"--gin_file={config}")
    assert first.returncode == 0, first.stderr
    assert "0 of 4 cells done" in first.stdout and "[4/4]" in first.stdout
    rows = [json.loads(line) for line in open(os.path.join(sweep_dir, "results.jsonl"))]
    assert sorted((r["method"], r["n"]) for r in rows) == [
        ("exported", 8),
        ("exported", 16),
        ("scratch", 8),
        ("scratch", 16),
    ]
    assert all(r["steps"] == 2 and r["value"] == r[r["metric"]] for r in rows)
    # (resuming a finished sweep runs nothing: tests/evaluation/test_sweep.py)
    # (resuming with another transfer configuration or a bad --variants is refused:
    # tests/evaluation/test_sweep.py; the tool's one-line refusal: the Ray sweep below)
    _the_same_sweep_on_ray(tool, config, sweep_dir, tmp_path / "ray")

    # a sweep's report and its curves are drawn without TensorFlow (about 1 CPU-s, not 6)
    report = _without_tensorflow("evaluate.py", "report", f"--sweep_dir={sweep_dir}")
    assert report.returncode == 0, report.stderr
    assert "| scratch |" in report.stdout and "| exported |" in report.stdout
    assert Image.open(os.path.join(sweep_dir, "report.png")).size == (1000, 400)
    curves = _without_tensorflow(
        "visualize.py", "curves", f"--sweep_dir={sweep_dir}", f"--out={tmp_path}/c.png"
    )
    assert curves.returncode == 0 and os.path.getsize(tmp_path / "c.png") > 10000

    zero = tool("evaluate.py", "transfer", "--source=random", "--task=pose", "--num_labels=0")
    assert zero.returncode == 1 and "Traceback" not in zero.stderr
    assert zero.stderr.strip().splitlines()[-1] == (
        "zoo-evaluate: `num_labels` must be an int >= 1. Received: 0"
    )


def _without_tensorflow(script, *args):
    """tools/`script` run with `-X importtime`: its result, once it is shown that
    TensorFlow was never imported."""
    run = processes.python("-X", "importtime", os.path.join(ROOT, "tools", script), *args)
    assert "| tensorflow\n" not in run.stderr and "| keras\n" not in run.stderr, run.stderr[-2000:]
    assert "tensorflow.python" not in run.stderr, run.stderr[-2000:]
    return run


def _the_same_sweep_on_ray(tool, config, serial_dir, ray_dir):
    """zoo-sweep --ray=auto (docs/guides/scale-out.md): the cells of n = 8 in parallel on a
    local Ray cluster give the serial sweep's rows, with a method whose source does not
    exist beside them: its cell fails, runs again, fails again and is named at the end;
    the other rows are all written."""
    broken = os.path.join(os.path.dirname(ray_dir), "no_such_run")
    run = tool(
        "sweep.py",
        f"--sweep_dir={ray_dir}",
        f"--gin_file={config}",
        "--ray=auto",
        "--counts=8",
        f"--method=broken={broken}",
    )
    assert run.returncode != 0 and "Traceback" not in run.stderr, run.stderr[-3000:]
    message = run.stderr.strip().splitlines()[-1]
    assert "1 cell(s) failed twice on the Ray cluster" in message, run.stderr[-3000:]
    assert "('broken', 8, 0)" in message

    def rows(folder):
        with open(os.path.join(folder, "results.jsonl")) as f:
            return {(r["method"], r["n"], r["seed"]): r for r in map(json.loads, f)}

    serial, parallel = rows(serial_dir), rows(ray_dir)
    serial = {key: row for key, row in serial.items() if key[1] == 8}
    assert sorted(serial) == sorted(parallel) == [("exported", 8, 0), ("scratch", 8, 0)]
    for key, row in serial.items():
        assert set(row) == set(parallel[key])
        for name, value in row.items():
            if isinstance(value, float):
                assert parallel[key][name] == pytest.approx(value, rel=1e-5, abs=1e-6), (key, name)
            else:
                assert parallel[key][name] == value, (key, name)


def test_views_picture(tool, tmp_path):
    out = tmp_path / "views.png"
    run = tool(
        "visualize.py",
        "views",
        "--augmentation=simclr",
        "--variant=----",
        "--mode=single",
        "--resolution=32",
        "--num=3",
        "--views=2",
        f"--out={out}",
    )
    assert run.returncode == 0, run.stderr
    # three rows of the image and two views, 1.4 inches each at 100 dpi
    assert Image.open(out).size == (420, 460)
