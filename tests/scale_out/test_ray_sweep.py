"""zoo-sweep --ray=auto: a sweep's cells in parallel on a local Ray cluster give the rows
the serial sweep gives, and a cell that keeps failing is named, not dropped."""

import json

import processes
import pytest

# four cells: the scratch baseline at 2 label counts x 2 seeds, tiny and short
CONFIG = """
import zoo.evaluation
import zoo.trunks
zoo.evaluation.transfer.task = "classification"
zoo.evaluation.transfer.protocol = "linear"
zoo.evaluation.transfer.variant = "----"
zoo.evaluation.transfer.builder = @zoo.trunks.resnet
zoo.trunks.resnet.depth = 18
zoo.trunks.resnet.width_multiplier = 0.0625
zoo.trunks.resnet.output_stride = 8
zoo.evaluation.transfer.input_size = 32
zoo.evaluation.transfer.eval_examples = 16
zoo.evaluation.transfer.min_steps = 3
zoo.evaluation.transfer.max_steps = 3
zoo.evaluation.run_sweep.counts = [8, 16]
zoo.evaluation.run_sweep.seeds = [0, 1]
"""


def _rows(sweep_dir):
    with open(sweep_dir / "results.jsonl") as f:
        rows = [json.loads(line) for line in f]
    return {(r["method"], r["n"], r["seed"]): r for r in rows}


@pytest.mark.slow
def test_a_ray_sweep_gives_the_serial_rows_and_names_a_failing_cell(tmp_path):
    config = tmp_path / "sweep.gin"
    config.write_text(CONFIG)
    serial = processes.python(
        "-m", "zoo.cli.sweep", f"--sweep_dir={tmp_path / 'serial'}", f"--gin_file={config}"
    )
    assert serial.returncode == 0, serial.stderr[-3000:]
    # the same cells on Ray, and a method whose source does not exist: its two cells
    # fail, are run again, fail again and are named; the other rows are all kept
    parallel = processes.python(
        "-m",
        "zoo.cli.sweep",
        f"--sweep_dir={tmp_path / 'ray'}",
        f"--gin_file={config}",
        "--ray=auto",
        f"--method=broken={tmp_path / 'no_such_run'}",
        "--seeds=0,1",
        "--counts=8,16",
    )
    assert parallel.returncode != 0
    message = parallel.stderr.strip().splitlines()[-1]
    assert "4 cell(s) failed twice on the Ray cluster" in message, parallel.stderr[-3000:]
    for n in (8, 16):
        for seed in (0, 1):
            assert f"('broken', {n}, {seed})" in message
    one, other = _rows(tmp_path / "serial"), _rows(tmp_path / "ray")
    assert sorted(one) == sorted(other) == [("scratch", n, s) for n in (8, 16) for s in (0, 1)]
    for key, row in one.items():
        assert set(row) == set(other[key])
        for name, value in row.items():
            if isinstance(value, float):
                assert other[key][name] == pytest.approx(value, rel=1e-5, abs=1e-6), (key, name)
            else:
                assert other[key][name] == value, (key, name)
