import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICKSTART = os.path.join(ROOT, "gin_configs", "quickstart.gin")


def _train(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, os.path.join(ROOT, "tools", "train.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


@pytest.mark.slow
def test_misspelled_binding_names_binding_and_file(tmp_path):
    result = _train(
        f"--gin_file={QUICKSTART}",
        f"--model_dir={tmp_path}/run",
        "--gin_bindings=zoo.experiment.train.epoch = 2",
    )
    assert result.returncode != 0
    assert "zoo-train: gin:" in result.stderr and "epoch" in result.stderr
    assert "bindings" in result.stderr  # where the bad line is
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_missing_data_path(tmp_path):
    result = _train(
        f"--gin_file={QUICKSTART}",
        f"--model_dir={tmp_path}/run",
        "--gin_bindings=zoo.tasks.Depth.source = '/no/such/records'",
    )
    assert result.returncode != 0
    assert "data path '/no/such/records' does not exist" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_model_dir_of_another_config_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.gin").write_text("# another experiment\n")
    result = _train(f"--gin_file={QUICKSTART}", f"--model_dir={run}")
    assert result.returncode != 0
    assert "another configuration" in result.stderr and "--overwrite" in result.stderr
    assert (run / "config.gin").read_text() == "# another experiment\n"


@pytest.mark.slow
def test_missing_gin_file(tmp_path):
    result = _train("--gin_file=nope.gin", f"--model_dir={tmp_path}/run")
    assert result.returncode != 0 and "gin file 'nope.gin' does not exist" in result.stderr
