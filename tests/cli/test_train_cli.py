import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
QUICKSTART = os.path.join(ROOT, "gin_configs", "quickstart.gin")


@pytest.mark.slow
def test_misspelled_binding_names_binding_and_file(tool, tmp_path):
    result = tool(
        "train.py",
        f"--gin_file={QUICKSTART}",
        f"--model_dir={tmp_path}/run",
        "--gin_bindings=zoo.experiment.train.epoch = 2",
    )
    assert result.returncode != 0
    assert "zoo-train: gin bindings:" in result.stderr and "epoch" in result.stderr
    assert "bindings" in result.stderr  # where the bad line is
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_missing_data_path(tool, tmp_path):
    result = tool(
        "train.py",
        f"--gin_file={QUICKSTART}",
        f"--model_dir={tmp_path}/run",
        "--gin_bindings=zoo.tasks.Depth.source = '/no/such/records'",
    )
    assert result.returncode != 0
    assert "data path '/no/such/records' does not exist" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_model_dir_of_another_config_is_refused(tool, tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.gin").write_text("a = 1\n")
    (run / "checkpoints" / "epoch_001.weights.h5").write_text("trained")
    result = tool("train.py", f"--gin_file={QUICKSTART}", f"--model_dir={run}")
    assert result.returncode != 0
    assert "another configuration" in result.stderr and "--overwrite" in result.stderr
    assert (run / "config.gin").read_text() == "a = 1\n"


@pytest.mark.slow
def test_missing_gin_file(tool, tmp_path):
    result = tool("train.py", "--gin_file=nope.gin", f"--model_dir={tmp_path}/run")
    assert result.returncode != 0 and "gin file 'nope.gin' does not exist" in result.stderr
