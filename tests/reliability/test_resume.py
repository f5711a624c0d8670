"""zoo-train stopped by Ctrl-C (SIGINT, once: after the step in progress; twice: at
once) and killed (SIGKILL) at chosen points, then run again with the same command: no
finished epoch is trained or written again, and the run ends with the weights of an
uninterrupted run."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import processes
import pytest
from helpers import TINY_CONFIG

# ops one at a time: same-seed processes are then bit-identical
# (docs/guides/determinism-and-resume.md)
CONFIG = TINY_CONFIG.replace("train.epochs = 2", "train.epochs = 3") + (
    "zoo.experiment.train.serial_ops = True\n"
)
assert "train.epochs = 3" in CONFIG

# Runs zoo-train after arranging a SIGKILL at one point; logs each epoch it begins.
DRIVER = """
import os, signal, sys, time
point, arg, log = sys.argv[1:4]
import keras
import tensorflow as tf
from zoo.experiment import callbacks
import zoo.files as files
from zoo.methods import MultiTask

def die():
    os.kill(os.getpid(), signal.SIGKILL)

begin = callbacks.EpochCheckpoints.on_epoch_begin
def logged_begin(self, epoch, logs=None):
    with open(log, "a") as f:
        f.write(f"{os.getpid()} {epoch + 1}\\n")
    begin(self, epoch, logs)
callbacks.EpochCheckpoints.on_epoch_begin = logged_begin

if point.startswith("interrupt"):  # Ctrl-C after global step `arg` (twice: again at once)
    batch_end = callbacks.StopOnNonFinite.on_train_batch_end
    steps = []
    def counted(self, batch, logs=None):
        batch_end(self, batch, logs)
        steps.append(batch)
        if len(steps) == int(arg):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.1)  # the handler runs
            if point == "interrupt twice":
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(10)
    callbacks.StopOnNonFinite.on_train_batch_end = counted
elif point == "checkpoint":  # half of epoch `arg`'s checkpoint is on disk
    save = keras.Model.save_weights
    def half_written(self, path, *a, **k):
        save(self, path, *a, **k)
        if f"epoch_{int(arg):03d}.weights.h5" in os.path.basename(path):
            size = os.path.getsize(path)
            with open(path, "r+b") as f:
                f.truncate(size // 2)
            die()
    keras.Model.save_weights = half_written
elif point == "evaluation":  # inside the held-out evaluation after training
    evaluate = MultiTask.heldout_metrics
    def dying(self, batch_size):
        if os.path.exists(os.path.join(os.path.dirname(log), "run", "checkpoints")):
            die()
        return evaluate(self, batch_size)
    MultiTask.heldout_metrics = dying
elif point == "export":  # the export folder is written, not yet renamed into place
    save = tf.saved_model.save
    def dying(*a, **k):
        save(*a, **k)
        die()
    tf.saved_model.save = dying
elif point == "metrics":  # metrics.json written under its temporary name
    replace = files.os.replace
    class _Os:
        def __getattr__(self, name):
            return getattr(os, name)
        def replace(self, src, dst):
            if dst.endswith("metrics.json"):
                die()
            replace(src, dst)
    files.os = _Os()

sys.argv = ["zoo-train", *sys.argv[4:]]
from zoo.cli import train
train.run()
"""


def _train(tmp_path, model_dir, point="none", arg="0", log="epochs.log"):
    return subprocess.Popen(
        [
            sys.executable,
            str(tmp_path / "driver.py"),
            point,
            arg,
            str(tmp_path / log),
            f"--gin_file={tmp_path / 'tiny.gin'}",
            f"--model_dir={model_dir}",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )


def _finished(process):
    return processes.communicate(process)


def _checkpoint_files(model_dir):
    folder = os.path.join(model_dir, "checkpoints")
    names = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
    return {
        n: os.stat(os.path.join(folder, n)).st_mtime_ns
        for n in names
        if n.startswith("epoch_") and n.endswith(".weights.h5")
    }


def _weights(path):
    import h5py

    values = []
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, item: (
                values.append((name, item[()])) if isinstance(item, h5py.Dataset) else None
            )
        )
    return dict(values)


@pytest.mark.slow
def test_killed_anywhere_resumes_without_redoing_a_finished_epoch(tmp_path):
    """Ctrl-C once (the run stops after the step, exit status 130, saying how to resume),
    Ctrl-C twice (it ends at once), SIGKILL inside a checkpoint write, the held-out
    evaluation, the export and the metrics write, one after another on one run: each
    re-run resumes, no finished epoch is trained or written again, and the end equals
    an uninterrupted run bit for bit."""
    (tmp_path / "tiny.gin").write_text(CONFIG)
    (tmp_path / "driver.py").write_text(DRIVER)
    reference = _train(tmp_path, tmp_path / "reference", log="reference.log")  # uninterrupted
    model_dir = tmp_path / "run"
    kills = [
        ("interrupt", "4"),  # epoch 2, step 1: stops after the step, rc 130
        ("interrupt twice", "2"),  # epoch 2, step 2: the second Ctrl-C ends it at once
        ("checkpoint", "2"),  # inside the write of epoch 2's checkpoint
        ("evaluation", "0"),  # held-out evaluation after the last epoch
        ("export", "0"),  # inside the trunk export
        ("metrics", "0"),  # inside the metrics.json write
    ]
    finished = {}  # checkpoint -> mtime once complete: never written again
    for point, arg in kills:
        code, _, err = _finished(_train(tmp_path, model_dir, point, arg))
        expected = {"interrupt": 130, "interrupt twice": -signal.SIGINT}.get(point, -9)
        assert code == expected, (point, err[-2000:])
        if point == "interrupt":
            lines = err.strip().splitlines()
            assert "Ctrl-C: stopping after the step in progress" in err, err[-2000:]
            assert lines[-1] == (
                "zoo-train: stopped on request after step 1 of epoch 2 (last checkpoint: "
                "epoch 1); run the same command again to resume."
            ), err[-2000:]
            assert list(_checkpoint_files(model_dir)) == ["epoch_001.weights.h5"]
        now = _checkpoint_files(model_dir)
        for name, mtime in finished.items():
            assert now.get(name) == mtime, (point, name)
        finished.update(now)
    code, out, err = _finished(_train(tmp_path, model_dir))
    assert code == 0, err[-3000:]
    assert "Held-out metrics" in out
    assert "/step" not in out and "training had ended" not in out  # verbose = 0
    for name, mtime in finished.items():
        assert _checkpoint_files(model_dir)[name] == mtime

    # epochs begun, per process: 1 2 | 2 | 2 | 2 3 | - | - | -; epoch 2 was begun four
    # times because no process finished it before the third resume
    began = [
        int(line.split()[1]) for line in (tmp_path / "epochs.log").read_text().split("\n") if line
    ]
    assert began[:2] == [1, 2] and sorted(began) == [1, 2, 2, 2, 2, 3]
    assert not any(".partial" in n for n in os.listdir(model_dir / "checkpoints"))
    assert os.path.exists(model_dir / "checkpoints" / "epoch_002.weights.h5")

    code, _, err = _finished(reference)
    assert code == 0, err[-3000:]
    ours = json.loads((model_dir / "metrics.json").read_text())
    theirs = json.loads((tmp_path / "reference" / "metrics.json").read_text())
    assert len(ours["history"]["loss"]) == 3  # every epoch, over seven processes
    assert ours["seconds"] > 0
    np.testing.assert_allclose(ours["history"]["loss"], theirs["history"]["loss"], rtol=1e-4)
    got = _weights(model_dir / "checkpoints" / "epoch_003.weights.h5")
    want = _weights(tmp_path / "reference" / "checkpoints" / "epoch_003.weights.h5")
    assert got.keys() == want.keys()
    worst = max(
        float(np.max(np.abs(got[k].astype("float64") - want[k]))) for k in got if got[k].size
    )
    assert worst <= 1e-6, worst  # measured: 0 (docs/guides/determinism-and-resume.md)
    assert os.path.exists(model_dir / "export" / "trunk" / "saved_model.pb")
