r"""zoo-launch-local: a multi-worker run on this machine, to try one before a cluster.

Usage:
    zoo-launch-local --workers=2 -- --gin_file=gin_configs/quickstart.gin \
        --model_dir=runs/quickstart_2workers
    zoo-launch-local --workers=2 --command=zoo-finetune -- --data=... --source=... ...

Starts N processes of the command (zoo-train by default, or zoo-finetune) with the
flags after `--`, each with a `TF_CONFIG` naming all N on free localhost ports and its
own index, and `strategy = "multi_worker"` bound: worker 0 is the chief, which writes
the run. Each worker gets its share of this machine's cores (`--cores_per_worker`).
The chief's output is streamed here; the other workers' goes to log files named at the
start. When a worker fails, every other worker is stopped and the failing worker's last
lines are printed; Ctrl-C asks every worker to stop after the step in progress (they
agree on the step), a second Ctrl-C stops them at once. Re-running the same command
resumes the run, as zoo-train does.
"""

import os
import signal
import subprocess
import sys
import tempfile
import time

from absl import app, flags

import zoo.cli

FLAGS = flags.FLAGS
flags.DEFINE_integer("workers", 2, "Worker processes to start (>= 1).")
flags.DEFINE_enum("command", "zoo-train", ["zoo-train", "zoo-finetune"], "The training command.")
flags.DEFINE_integer(
    "cores_per_worker",
    None,
    "Cores each worker is pinned to (default: this machine's cores divided among the "
    "workers, at least 1; 0: no pinning).",
)

_MODULES = {"zoo-train": "zoo.cli.train", "zoo-finetune": "zoo.cli.finetune"}
GRACE = 10.0  # seconds a stopped worker is given before it is killed


def free_ports(count: int) -> list:
    """`count` distinct localhost ports that were free a moment ago."""
    import socket

    sockets, ports = [], []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("localhost", 0))
            sockets.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in sockets:
            s.close()
    return ports


def cluster_env(ports: list, index: int) -> dict:
    """The environment of worker `index` of a localhost cluster on `ports`."""
    import json

    cluster = {"worker": [f"localhost:{p}" for p in ports]}
    return {
        "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
    }


def core_sets(workers: int, per_worker: int | None) -> list:
    """The cores each worker is pinned to ([] for none)."""
    available = sorted(os.sched_getaffinity(0))
    if per_worker == 0:
        return [[] for _ in range(workers)]
    per_worker = per_worker or max(1, len(available) // workers)
    return [
        [available[(i * per_worker + j) % len(available)] for j in range(per_worker)]
        for i in range(workers)
    ]


def _child_setup(cores):
    def setup():
        if cores:
            os.sched_setaffinity(0, cores)
        try:  # the worker ends with this launcher, however it ends (Linux)
            import ctypes

            ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass

    return setup


def start(command: str, args: list, workers: int, per_worker: int | None, say=print):
    """Starts the workers; returns [(name, Popen, log path or None)], the chief first."""
    ports = free_ports(workers)
    bindings = '--gin_bindings=zoo.experiment.train.strategy = "multi_worker"'
    logs = tempfile.mkdtemp(prefix="zoo-launch-local-")
    started = []
    for index, cores in enumerate(core_sets(workers, per_worker)):
        env = dict(os.environ, **cluster_env(ports, index))
        argv = [sys.executable, "-m", _MODULES[command], *args, bindings]
        log = None if index == 0 else os.path.join(logs, f"worker_{index}.log")
        out = None if log is None else open(log, "w")  # noqa: SIM115 (closed in `stop`)
        process = subprocess.Popen(
            argv,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,  # Ctrl-C reaches the launcher, which forwards it
            preexec_fn=_child_setup(cores),
        )
        started.append((f"worker {index}", process, log, out))
        pinned = f" on cores {cores}" if cores else ""
        where = "output below" if log is None else f"log {log}"
        say(
            f"started worker {index} (pid {process.pid}, localhost:{ports[index]}){pinned}: {where}"
        )
    return started


def stop(started, sig=signal.SIGTERM):
    """Sends `sig` to every worker still running; kills those still running after GRACE."""
    for _, process, _, _ in started:
        if process.poll() is None:
            process.send_signal(sig)
    deadline = time.monotonic() + GRACE
    for _, process, _, _ in started:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tail(path, lines=20):
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])


def supervise(started, say=print) -> int:
    """Waits for the workers: 0 when all succeed; when one fails, stops the others and
    returns its exit status. Ctrl-C is forwarded (once: stop after the step in
    progress; twice: at once)."""
    interrupted = False
    try:
        while True:
            try:
                codes = [process.poll() for _, process, _, _ in started]
                failed = [(s, c) for s, c in zip(started, codes) if c not in (None, 0)]
                if failed:
                    (name, _, log, _), code = failed[0]
                    say(f"zoo-launch-local: {name} exited with status {code}; stopping the others.")
                    if log:
                        say(f"last lines of {log}:\n{_tail(log)}")
                    stop(started)
                    return code
                if all(c == 0 for c in codes):
                    return 0
                time.sleep(0.2)
            except KeyboardInterrupt:
                if interrupted:
                    stop(started, signal.SIGKILL)
                    return 130
                interrupted = True
                for _, process, _, _ in started:
                    if process.poll() is None:
                        process.send_signal(signal.SIGINT)
    finally:
        for _, _, _, out in started:
            if out:
                out.close()


def main(argv):
    args = argv[1:]
    if FLAGS.workers < 1:
        raise app.UsageError(f"--workers must be >= 1. Received: {FLAGS.workers}")
    if FLAGS.cores_per_worker is not None and FLAGS.cores_per_worker < 0:
        raise app.UsageError(f"--cores_per_worker must be >= 0. Received: {FLAGS.cores_per_worker}")
    if not args:
        raise app.UsageError(
            f"give {FLAGS.command}'s flags after `--`, e.g. zoo-launch-local --workers=2 -- "
            "--gin_file=gin_configs/quickstart.gin --model_dir=runs/quickstart_2workers"
        )
    started = start(FLAGS.command, args, FLAGS.workers, FLAGS.cores_per_worker)
    code = supervise(started)
    if code:
        raise SystemExit(code)


def run():
    zoo.cli.run(main, __name__)


if __name__ == "__main__":
    run()
