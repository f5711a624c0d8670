"""RayCells (`--ray`) on a stand-in for Ray that runs each task when it is waited for, one
after the other, on a clock that each cell moves by its n seconds: each cell reports the
seconds it ran, not its wait in the queue behind the others."""

import types

import gin
import pytest
import tensorflow as tf

from zoo.cli import ray_cells
from zoo.errors import UserError


class _Task:
    def __init__(self, function):
        self.function, self.options_given = function, None

    def options(self, **options):
        self.options_given = options
        return self

    def remote(self, *args):
        return lambda: self.function(*args)


class _Ray:
    exceptions = types.SimpleNamespace(RayError=RuntimeError)

    def __init__(self):
        self.tasks = []

    def remote(self, function):
        self.tasks.append(_Task(function))
        return self.tasks[-1]

    def wait(self, refs, num_returns):
        return refs[:num_returns], refs[num_returns:]

    def get(self, ref):
        return ref()


@pytest.fixture
def threads_kept(monkeypatch):
    """The cell task sets TensorFlow's threads (a worker's own process); put them back."""
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "0")
    monkeypatch.setenv("TF_NUM_INTEROP_THREADS", "0")
    intra = tf.config.threading.get_intra_op_parallelism_threads()
    inter = tf.config.threading.get_inter_op_parallelism_threads()
    yield
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:  # TensorFlow had started before the cell set them: unchanged
        pass


def test_each_cell_reports_the_seconds_it_ran(monkeypatch, threads_kept):
    clock = {"now": 100.0}
    monkeypatch.setattr(ray_cells, "time", types.SimpleNamespace(perf_counter=lambda: clock["now"]))
    fake = _Ray()
    monkeypatch.setattr(ray_cells, "connect", lambda address: fake)
    gin.parse_config("zoo.evaluation.transfer.min_steps = 7")

    def run_cell(source, n, seed):
        assert gin.query_parameter("zoo.evaluation.transfer.min_steps") == 7  # the sweep's config
        if n == 0:
            raise ValueError("no labels")
        clock["now"] += n
        return {"value": n + seed, "source": source}

    recorded = []
    cells = [(("a", 5), "run_a", 5, 0), (("b", 0), "run_b", 0, 0), (("c", 7), "run_c", 7, 1)]
    with pytest.raises(UserError, match=r"1 cell\(s\) failed twice.*\('b', 0\).*no labels"):
        ray_cells.RayCells("auto", cpus_per_cell=2)(
            run_cell, cells, lambda *row: recorded.append(row)
        )
    # the queue's order would have given c 5 + 7 = 12 s; its own run is 7
    assert recorded == [
        (("a", 5), {"value": 5, "source": "run_a"}, 5.0),
        (("c", 7), {"value": 8, "source": "run_c"}, 7.0),
    ]
    assert fake.tasks[0].options_given["num_cpus"] == 2
