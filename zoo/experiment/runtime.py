"""What a run sets before it builds anything: serial ops, seeds, determinism, the
distribution strategy; and how Keras prints its progress."""

import contextlib
import sys

import keras
import tensorflow as tf
from absl import logging

from zoo.errors import UserError
from zoo.experiment import cluster, parameter_server

STRATEGIES = ("auto", "default", "mirrored", "multi_worker", "parameter_server")


PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


@contextlib.contextmanager
def precision_policy(precision: str):
    """Keras' global dtype policy set to `precision` while the run builds and trains its
    networks (restored after): "mixed_float16" / "mixed_bfloat16" compute in 16 bits
    and keep variables in float32 (docs/guides/scale-out.md, "Mixed precision")."""
    if precision not in PRECISIONS:
        raise UserError(f"`precision` must be one of {PRECISIONS}. Received: {precision!r}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def run_ops_one_at_a_time(strategy: str = "auto") -> bool:
    """Sets TensorFlow's inter-op parallelism to 1, for bit-identical same-seed runs.

    With independent ops running concurrently, same-seed runs of a multi-threaded CPU
    process end apart in the last bits (measured on the quickstart: 2 of 6 runs in one
    process differed after 3 steps; Adam then turns the noise in the gradients of
    convolution biases that a BatchNorm follows into full-size steps). One op at a time
    gave bit-identical weights in every run measured, at about 0.8x the speed
    (docs/guides/determinism-and-resume.md). It must run before TensorFlow executes its
    first op: `zoo-train` calls it when `train.serial_ops` is bound to True. It is skipped
    for a multi-device strategy, whose replicas run concurrently.

    Returns:
        True when ops now run one at a time.
    """
    if strategy in ("mirrored", "multi_worker", "parameter_server") or (
        strategy == "auto" and len(tf.config.list_physical_devices("GPU")) > 1
    ):
        return False
    if tf.config.threading.get_inter_op_parallelism_threads() == 1:
        return True
    try:
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already runs
        logging.warning(
            "TensorFlow has already run ops in this process: its runs may differ from "
            "each other in the last bits (see docs/guides/determinism-and-resume.md)."
        )
        return False
    return True


def make_strategy(name):
    """ "auto": MirroredStrategy over the GPUs when there are several, else the default;
    "multi_worker": MultiWorkerMirroredStrategy over the cluster of `TF_CONFIG`
    (`zoo.experiment.cluster`), every worker's GPUs or else its CPU; "parameter_server":
    the chief's ParameterServerStrategy (`zoo.experiment.parameter_server`)."""
    if name not in STRATEGIES:
        raise UserError(f"`strategy` must be one of {STRATEGIES}. Received: {name!r}")
    if name in ("multi_worker", "parameter_server"):
        return _cluster_strategy(name)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and len(gpus) > 1):
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


_CLUSTER_STRATEGY = {}


def _cluster_strategy(name):
    """The process's one strategy over its cluster: creating it configures TensorFlow's
    runtime (collective ops, the connection to the cluster), which is possible only
    before TensorFlow runs its first op (the training commands create it right after
    parsing their configuration)."""
    if name not in _CLUSTER_STRATEGY:
        try:
            if name == "multi_worker":
                cluster.require_cluster()
                made = tf.distribute.MultiWorkerMirroredStrategy()
            else:
                cluster.require_cluster(("chief", "worker", "ps"))
                made = parameter_server.make_strategy()
        except RuntimeError as error:
            raise UserError(
                f"strategy {name!r} must be created before TensorFlow runs its first op (a "
                "zoo-train process does so); from Python, call "
                f"`zoo.experiment.make_strategy({name!r})` at the start of the program. "
                f"TensorFlow: {error}"
            ) from None
        _CLUSTER_STRATEGY[name] = made
    return _CLUSTER_STRATEGY[name]


def runtime(strategy, seed, deterministic, serial_ops):
    """The stage before any model: serial ops, seeds, determinism; the strategy."""
    if serial_ops:
        run_ops_one_at_a_time(strategy)
    keras.utils.set_random_seed(seed)
    if deterministic:
        tf.config.experimental.enable_op_determinism()
    return make_strategy(strategy)


def epoch_lines(verbose: int) -> int:
    """Keras' `verbose` for `fit`: a progress bar (1) becomes one line per epoch (2) when
    standard output is not a terminal."""
    if verbose == 1 and not (hasattr(sys.stdout, "isatty") and sys.stdout.isatty()):
        return 2
    return verbose
