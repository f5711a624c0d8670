"""What the training commands do after reading their flags (no flags defined here, so
that one command can run another's body)."""

import contextlib
import json
import os
import signal
import sys
import threading


@contextlib.contextmanager
def stop_on_ctrl_c():
    """Ctrl-C (SIGINT) asks the run to stop after the step in progress
    (`experiment.request_stop`); a second Ctrl-C ends the process at once (the default
    action: files are written atomically, so nothing is left half-written either way).
    Installed even where the shell started the process with SIGINT ignored."""
    from zoo import experiment

    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may handle signals
        return

    def first(signum, frame):
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        print(
            "\nCtrl-C: stopping after the step in progress (Ctrl-C again stops at once).",
            file=sys.stderr,
            flush=True,
        )
        experiment.request_stop()

    previous = signal.signal(signal.SIGINT, first)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def train_command(gin_files, gin_bindings, model_dir, overwrite=False, say=print, what=None):
    """What `zoo-train` does after reading its flags; returns the run's results (None
    on a worker of a multi-worker run that is not the chief).

    Once the configuration parses, the run holds its model_dir's lock to the end (a
    second writer is refused), and Ctrl-C stops it after the step in progress
    (Interrupted). Raises a ZooError for anything the user can fix from its message.
    """
    from export import export_trunk
    from zoo import experiment, files
    from zoo.cli import gin_setup
    from zoo.experiment import cluster

    config = gin_setup.parse(gin_files, gin_bindings)
    strategy = _bound("strategy", "auto")
    if _bound("serial_ops", False):  # before TensorFlow runs its first op
        experiment.run_ops_one_at_a_time(strategy)
    clustered = strategy in ("multi_worker", "parameter_server")
    if clustered and not cluster.is_chief(cluster.require_cluster()):
        # the chief checks the folder and writes the run; this process trains with it
        # (multi_worker) or serves it (a parameter-server cluster's workers and servers)
        say(f"{cluster.task_name()}: in the cluster of the chief, which writes {model_dir}")
        if strategy == "multi_worker":
            experiment.make_strategy(strategy)  # before TensorFlow runs its first op
        with stop_on_ctrl_c():
            experiment.train(model_dir, exporter=export_trunk)
        return None
    if clustered:  # before TensorFlow runs its first op
        experiment.make_strategy(strategy)
    with stop_on_ctrl_c(), files.exclusive(model_dir):
        state = experiment.prepare_model_dir(model_dir, config, overwrite)
        if state == "finished":
            with open(os.path.join(model_dir, "metrics.json")) as f:
                results = json.load(f)
            say(
                f"{model_dir} holds a finished run of this configuration "
                "(--overwrite trains it again).\n"
            )
            return results
        say(
            f"{'resuming' if state == 'resume' else 'starting'} the run in "
            f"{os.path.abspath(model_dir)}: {what or ', '.join(gin_files)}"
        )
        results = experiment.train(model_dir, exporter=export_trunk)
    say("")
    return results


def _bound(parameter, default):
    import gin

    try:
        return gin.query_parameter(f"zoo.experiment.train.{parameter}")
    except ValueError:
        return default
