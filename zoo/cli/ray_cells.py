"""The cells of a sweep on a Ray cluster, in parallel (`zoo-sweep --ray=auto|<address>`).

Ray is an optional extra (`pip install -e .[ray]`). Each cell is a Ray task holding its
share of the cluster (`cpus_per_cell`, `gpus_per_cell`: Ray runs as many at once as the
cluster has room for, and TensorFlow in the task uses that many threads); it parses the
sweep's gin configuration and runs the cell as the serial sweep does. Results come back
to the sweep's process, the only one that writes results.jsonl, one row per finished
cell as it finishes: two cells ending at once cannot duplicate or lose a row. A cell
that raises or whose worker dies is run once more; if it fails again it is reported by
name (the others' rows are kept, and the same command runs the missing cells again).
"""

import time

import gin

from zoo.errors import UserError

RETRIES = 1


def connect(address: str):
    """Starts a local Ray cluster ("auto") or connects to the one at `address`."""
    try:
        import ray
    except ImportError:
        raise UserError(
            "--ray needs Ray, an optional extra: pip install -e '.[ray]' (or pip install ray)."
        ) from None
    if not ray.is_initialized():
        if address == "auto":
            ray.init(include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    return ray


def _cell_task(config: str, threads: int, run_cell, source, n, seed):
    """In a Ray worker: the sweep's configuration, TensorFlow's threads, then the cell;
    returns its result and the seconds it ran (not counting its wait in Ray's queue)."""
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # the cell's own processes (a grid's zoo-train runs) hold to its CPUs too
    os.environ["TF_NUM_INTRAOP_THREADS"] = os.environ["TF_NUM_INTEROP_THREADS"] = str(threads)
    import tensorflow as tf

    import zoo.configurables  # noqa: F401  (every name the configuration uses)

    try:  # a fresh worker process; a reused one keeps its threads
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        pass
    gin.clear_config()
    gin.parse_config(config)
    start = time.perf_counter()
    return run_cell(source, n, seed), time.perf_counter() - start


class RayCells:
    """Runs a sweep's cells as Ray tasks (module docstring).

    Args:
        address: str. "auto" (a local cluster on this machine) or a cluster's address.
        cpus_per_cell: int >= 1. CPUs a cell holds. Defaults to 1.
        gpus_per_cell: float >= 0. GPUs a cell holds. Defaults to 0.
    """

    def __init__(self, address: str = "auto", cpus_per_cell: int = 1, gpus_per_cell: float = 0):
        if not isinstance(cpus_per_cell, int) or cpus_per_cell < 1:
            raise UserError(f"cpus_per_cell must be an int >= 1. Received: {cpus_per_cell!r}")
        if gpus_per_cell < 0:
            raise UserError(f"gpus_per_cell must be >= 0. Received: {gpus_per_cell!r}")
        self.address, self.cpus, self.gpus = address, cpus_per_cell, gpus_per_cell

    def __call__(self, run_cell, cells, record):
        """Runs `run_cell(source, n, seed)` for each (key, source, n, seed) of `cells`
        and calls `record(key, result, seconds)` as each finishes; raises a UserError
        naming the cells that failed twice, after recording every other one."""
        ray = connect(self.address)
        config = gin.config_str()
        task = ray.remote(_cell_task).options(
            num_cpus=self.cpus,
            num_gpus=self.gpus,
            max_retries=RETRIES,  # a dead worker
            retry_exceptions=True,  # a raised error, once too
        )
        pending = {}
        for key, source, n, seed in cells:
            pending[task.remote(config, self.cpus, run_cell, source, n, seed)] = key
        failed = []
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            key = pending.pop(done[0])
            try:
                result, seconds = ray.get(done[0])
            except (ray.exceptions.RayError, Exception) as error:  # noqa: BLE001 (reported below)
                failed.append((key, error))
                continue
            record(key, result, seconds)
        if failed:
            named = "; ".join(
                f"{k}: {type(e).__name__}: {str(e).splitlines()[-1]}" for k, e in failed
            )
            raise UserError(
                f"{len(failed)} cell(s) failed twice on the Ray cluster (the others' results "
                f"are saved; the same command runs the missing ones again): {named}"
            )
