"""Multi-worker training (`strategy = "multi_worker"`): real localhost worker processes
on free ports, against one process on the same global batch.

Tolerance: a one-process run and a 2-worker run sum the same numbers in different orders
(per-replica sums then an all-reduce), and the rounding, amplified by the steps of these
tiny networks, moves single weights by up to 5e-5 after two SGD steps at 1e-3 (measured
on a CPU with AVX-512; from run to run, as threads finish in another order). What the two
runs changed is compared instead: the difference of the two updates (checkpoint minus
initial weights) in norm over the whole checkpoint, relative to the update's norm:
measured 7e-5 for each configuration, allowed 0.01; a gradient off by a factor of the
number of workers makes it 0.5 or more.
"""

import json
import os
import signal
import subprocess
import sys
import time

import gin
import h5py
import keras
import processes
import pytest
from helpers import relative_difference
from scale_out.configs import CONFIGS, MULTITASK

from zoo import experiment
from zoo.cli.launch_local import cluster_env, free_ports

HERE = os.path.dirname(os.path.abspath(__file__))


def cluster_processes(workers, argv, tmp=None):
    """`workers` processes of `argv`, each a worker of one localhost cluster on free
    ports (TF_CONFIG) pinned to a core of its own, with temporary files in `tmp`."""
    ports = free_ports(workers)
    cores = sorted(os.sched_getaffinity(0))
    started = []
    for index in range(workers):
        core = cores[index % len(cores)]
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **cluster_env(ports, index))
        if tmp is not None:
            env["TMPDIR"] = str(tmp)
        started.append(
            subprocess.Popen(
                argv,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                preexec_fn=lambda c=core: os.sched_setaffinity(0, [c]),
            )
        )
    return started


def arrays(path):
    """{name: array} of every dataset in a .weights.h5 file (weights, optimizer state,
    queues)."""
    out = {}
    with h5py.File(path) as f:
        f.visititems(
            lambda k, v: out.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None
        )
    return out


def assert_same_updates(initial, a, b, tolerance=0.01):
    """The checkpoints `a` and `b` of two runs from the weights `initial` moved them the
    same way: |(a - initial) - (b - initial)| <= tolerance * |a - initial| over every
    array (weights, optimizer state, queues)."""
    initial, a, b = arrays(initial), arrays(a), arrays(b)
    assert initial.keys() == a.keys() == b.keys()
    update_a = [a[n] - initial[n] for n in sorted(a)]
    update_b = [b[n] - initial[n] for n in sorted(a)]
    assert any(u.any() for u in update_a)
    assert relative_difference(update_a, update_b) <= tolerance


class _SaveInitialWeights(keras.callbacks.Callback):
    def __init__(self, path):
        super().__init__()
        self.path = path

    def on_train_begin(self, logs=None):
        if not os.path.exists(self.path):
            self.model.save_weights(self.path)


def files_of(model_dir):
    """The run's files, with TensorBoard's event files (named by host, time and PID)
    counted per folder."""
    names = []
    for root, _, found in os.walk(model_dir):
        for name in found:
            relative = os.path.relpath(os.path.join(root, name), model_dir)
            names.append(
                relative.split("events.out.tfevents")[0] + ("events" if "events" in name else "")
            )
    return sorted(names)


@pytest.mark.slow
def test_two_workers_train_every_kind_of_method_as_one_process_does(tmp_path):
    """A MultiTask of depth, MoCo (key network and queue updated after the step:
    `after_step`) and SimCLR (NT-Xent over the batch gathered from every replica) in three
    input groups, and DomainAdversarial (two players, a discriminator) on 2 workers x 1
    CPU: the chief's checkpoints (weights, optimizer state, queue) equal one process's,
    and its folder holds the same files; the other worker leaves nothing behind."""
    names = list(CONFIGS)
    temporary = tmp_path / "tmp"  # where the non-chief worker's copy of each run goes
    temporary.mkdir()
    workers = cluster_processes(
        2,
        [sys.executable, os.path.join(HERE, "train_many.py"), str(tmp_path / "cluster"), *names],
        tmp=temporary,
    )
    (tmp_path / "initial").mkdir()
    for name in names:  # one process, meanwhile
        gin.clear_config()
        gin.parse_config(CONFIGS[name])
        initial = str(tmp_path / "initial" / f"{name}.weights.h5")
        gin.bind_parameter("zoo.experiment.train.callbacks", [_SaveInitialWeights(initial)])
        experiment.train(str(tmp_path / "one" / name))
    for process in workers:
        code, out, err = processes.communicate(process)
        assert code == 0, err[-3000:]
    for name in names:
        one, cluster = tmp_path / "one" / name, tmp_path / "cluster" / name
        assert files_of(cluster) == files_of(one), name
        checkpoint = os.path.join("checkpoints", "epoch_001.weights.h5")
        initial = tmp_path / "initial" / f"{name}.weights.h5"
        assert_same_updates(initial, one / checkpoint, cluster / checkpoint)
        # the logs are fit's: each metric's mean over the replicas, the one-process value
        logs = [json.load(open(d / "progress.json"))["epochs"]["1"]["logs"] for d in (one, cluster)]
        assert logs[0].keys() == logs[1].keys()
        for key in logs[0]:
            assert logs[1][key] == pytest.approx(logs[0][key], rel=1e-4, abs=1e-5), (name, key)
    # the other worker deleted its copies of the runs
    assert not [n for n in os.listdir(temporary) if n.startswith("zoo-worker-")]


@pytest.mark.slow
def test_a_killed_worker_stops_the_run_and_it_resumes_without_redoing_an_epoch(tmp_path):
    """zoo-launch-local: worker 1 killed (SIGKILL) during epoch 2 stops the chief too; the
    same command again resumes after epoch 1 (its checkpoint and record untouched) and
    finishes the run. (That a resumed run trains on the batches of an uninterrupted one
    is tested on one process, where runs are bit-identical: tests/reliability.)"""
    config = tmp_path / "run.gin"
    config.write_text(
        MULTITASK.replace("train.epochs = 1", "train.epochs = 2")
        .replace("steps_per_epoch = 2", "steps_per_epoch = 8")
        .replace("verbose = 0", "verbose = 2")
    )
    model_dir = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "zoo.cli.launch_local",
        "--workers=2",
        "--",
        f"--gin_file={config}",
        f"--model_dir={model_dir}",
    ]
    launcher = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    first = model_dir / "checkpoints" / "epoch_001.weights.h5"
    deadline = time.monotonic() + processes.HANG_GUARD
    while not first.exists() and launcher.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert first.exists(), launcher.communicate()[0][-3000:]
    worker = _worker_pid(launcher)
    os.kill(worker, signal.SIGKILL)
    code, out, _ = processes.communicate(launcher)
    assert code != 0 and "worker 1 exited with status -9; stopping the others" in out, out[-3000:]
    progress = json.load(open(model_dir / "progress.json"))
    done = sorted(int(e) for e in progress["epochs"])
    assert done == [1], f"the kill came after epoch {done[-1]}, not during epoch 2"
    before = {e: progress["epochs"][str(e)] for e in done}
    mtimes = {
        e: os.path.getmtime(model_dir / "checkpoints" / f"epoch_{e:03d}.weights.h5") for e in done
    }

    again = processes.run(command)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "resuming after epoch 1 of 2" in again.stdout, again.stdout[-3000:]
    progress = json.load(open(model_dir / "progress.json"))
    assert sorted(progress["epochs"]) == ["1", "2"]
    for e in done:  # no finished epoch trained or written again
        assert progress["epochs"][str(e)] == before[e]
        assert (
            os.path.getmtime(model_dir / "checkpoints" / f"epoch_{e:03d}.weights.h5") == mtimes[e]
        )
    results = json.load(open(model_dir / "metrics.json"))
    assert len(results["history"]["loss"]) == 2
    assert os.listdir(model_dir / "export" / "trunk")


def _worker_pid(launcher):
    """Worker 1's PID, from the launcher's "started worker 1 (pid N, ...)" line."""
    for line in launcher.stdout:
        if line.startswith("started worker 1 "):
            return int(line.split("(pid ")[1].split(",")[0])
    raise AssertionError("the launcher did not start worker 1")
