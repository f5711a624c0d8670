r"""zoo-launch-local: a multi-worker run on this machine, to try one before a cluster.

Usage:
    zoo-launch-local --workers=2 -- --gin_file=gin_configs/quickstart.gin \
        --model_dir=runs/quickstart_2workers
    zoo-launch-local --workers=2 --command=zoo-finetune -- --data=... --source=... ...
    zoo-launch-local --workers=2 --parameter_servers=1 -- \
        --gin_file=gin_configs/doersch17/small.gin --gin_file=gin_configs/doersch17/async.gin ...

Starts N processes of the command (zoo-train by default, or zoo-finetune) with the
flags after `--`, each with a `TF_CONFIG` naming all N on free localhost ports and its
own index, and `strategy = "multi_worker"` bound: worker 0 is the chief, which writes
the run. With `--parameter_servers=P`, Doersch & Zisserman's asynchronous per-task
training instead (`strategy = "parameter_server"`): a chief that drives the run, N
workers that run the tasks' steps and P parameter servers that hold the variables; the
workers and servers are stopped when the chief ends. Each multi-worker process gets its
share of this machine's cores (`--cores_per_worker`; a parameter-server cluster is not
pinned: with one core each its processes' thread pools deadlock).
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
    "parameter_servers",
    0,
    "Parameter servers (> 0: a chief, --workers workers and these, strategy "
    '"parameter_server"; 0: --workers workers, strategy "multi_worker").',
)
flags.DEFINE_integer(
    "cores_per_worker",
    None,
    "Cores each worker is pinned to (default: this machine's cores divided among the "
    "workers, at least 1; 0: no pinning).",
)

_MODULES = {"zoo-train": "zoo.cli.train", "zoo-finetune": "zoo.cli.finetune"}
GRACE = 10.0  # seconds a stopped worker is given before it is killed


# Ports below Linux's ephemeral range (32768-60999): a port the kernel hands out for any
# outgoing connection could be taken in the seconds before a task's server binds it.
PORTS = (20000, 32768)


def free_ports(count: int) -> list:
    """`count` distinct localhost ports, drawn at random from `PORTS`, that were free a
    moment ago."""
    import random
    import socket

    draw = random.SystemRandom()  # not the seeded generator: two runs must differ
    sockets, ports = [], []
    try:
        while len(ports) < count:
            port = draw.randrange(*PORTS)
            s = socket.socket()
            try:
                s.bind(("localhost", port))
            except OSError:  # in use
                s.close()
                continue
            sockets.append(s)
            ports.append(port)
    finally:
        for s in sockets:
            s.close()
    return ports


def cluster_spec(workers: int, parameter_servers: int = 0) -> list:
    """[(job, index)] of a localhost cluster, the chief first: N workers (worker 0 the
    chief), or with parameter servers a chief, N workers and the servers."""
    tasks = [("worker", i) for i in range(workers)]
    if parameter_servers:
        tasks = [("chief", 0), *tasks, *(("ps", i) for i in range(parameter_servers))]
    return tasks


def cluster_env(ports: list, index: int, tasks: list | None = None) -> dict:
    """The environment of task `index` of a localhost cluster of `tasks` (default: as
    many workers as ports) on `ports`."""
    import json

    tasks = tasks or [("worker", i) for i in range(len(ports))]
    cluster = {}
    for (job, _), port in zip(tasks, ports):
        cluster.setdefault(job, []).append(f"localhost:{port}")
    job, number = tasks[index]
    return {"TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": job, "index": number}})}


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


def start(command, args, workers, per_worker, parameter_servers=0, say=print):
    """Starts the cluster's processes; returns [(name, Popen, log path or None, log
    file)], the chief first."""
    tasks = cluster_spec(workers, parameter_servers)
    ports = free_ports(len(tasks))
    strategy = "parameter_server" if parameter_servers else "multi_worker"
    bindings = f'--gin_bindings=zoo.experiment.train.strategy = "{strategy}"'
    logs = tempfile.mkdtemp(prefix="zoo-launch-local-")
    started = []
    # A parameter-server cluster is not pinned: with one core, its servers' and its
    # chief's thread pools have one thread each and the run hangs (measured here).
    cores_of = core_sets(len(tasks), 0 if parameter_servers else per_worker)
    for index, cores in enumerate(cores_of):
        env = dict(os.environ, **cluster_env(ports, index, tasks))
        argv = [sys.executable, "-m", _MODULES[command], *args, bindings]
        name = " ".join(map(str, tasks[index]))
        log = None if index == 0 else os.path.join(logs, f"{name.replace(' ', '_')}.log")
        out = None if log is None else open(log, "w")  # noqa: SIM115 (closed in `supervise`)
        process = subprocess.Popen(
            argv,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT if out else None,
            start_new_session=True,  # Ctrl-C reaches the launcher, which forwards it
            preexec_fn=_child_setup(cores),
        )
        started.append((name, process, log, out))
        pinned = f" on cores {cores}" if cores else ""
        where = "output below" if log is None else f"log {log}"
        say(f"started {name} (pid {process.pid}, localhost:{ports[index]}){pinned}: {where}")
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


def supervise(started, say=print, servers=False) -> int:
    """Waits for the processes: 0 when all succeed (`servers`: when the chief does, the
    others serving it are then stopped); when one fails, stops the others and returns
    its exit status. Ctrl-C is forwarded (once: stop after the step in progress; twice:
    at once)."""
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
                if servers and codes[0] == 0:  # the chief is done: stop what it drove
                    stop(started)
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
    if FLAGS.parameter_servers < 0:
        raise app.UsageError(
            f"--parameter_servers must be >= 0. Received: {FLAGS.parameter_servers}"
        )
    started = start(
        FLAGS.command, args, FLAGS.workers, FLAGS.cores_per_worker, FLAGS.parameter_servers
    )
    code = supervise(started, servers=FLAGS.parameter_servers > 0)
    if code:
        raise SystemExit(code)


def run():
    zoo.cli.run(main, __name__)


if __name__ == "__main__":
    run()
