"""Test set-up: two logical CPU devices (for MirroredStrategy tests) before TF starts."""

import atexit
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Ops on one thread in each test worker and each child process it starts (the variable is
# inherited): three workers share two cores (Makefile), and a process's extra op threads
# then spin waiting for one another. Measured on the three slowest modules of
# tests/methods with three workers: 212 s wall and 368 CPU-s with TensorFlow's default
# threads, 175 s and 305 CPU-s with one.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
# One data cache for the session, never the user's: made by the process that starts the
# test workers, shared by them and their subprocesses (scenes are rendered once, not once
# per worker; two processes rendering one entry at once both end with it complete, see
# zoo.data.cache), removed when the session ends.
if "ZOO_TEST_CACHE_DIR" not in os.environ:
    os.environ["ZOO_TEST_CACHE_DIR"] = tempfile.mkdtemp(prefix="zoo-test-cache-")
    atexit.register(shutil.rmtree, os.environ["ZOO_TEST_CACHE_DIR"], ignore_errors=True)
os.environ["ZOO_CACHE_DIR"] = os.environ["ZOO_TEST_CACHE_DIR"]
# The temporary files of the child processes (a killed worker's copy of its run,
# zoo-launch-local's logs, a Ray cluster's session) go to one folder, removed when the
# session ends. Made once, by the process that starts the workers (a short path: Ray's
# socket paths under it must stay within the 107 characters of a Unix socket). The
# tests' own temporary folders (pytest's tmp_path) stay where they were.
if "ZOO_TEST_CHILD_TMPDIR" not in os.environ:
    tempfile.gettempdir()  # this process keeps the usual folder
    os.environ["ZOO_TEST_CHILD_TMPDIR"] = tempfile.mkdtemp(prefix="zoo-tests-")
    # other users may pass through it, as through /tmp (the read-only test's child runs
    # as another user), but not list it
    os.chmod(os.environ["ZOO_TEST_CHILD_TMPDIR"], 0o711)
    atexit.register(shutil.rmtree, os.environ["ZOO_TEST_CHILD_TMPDIR"], ignore_errors=True)
os.environ["TMPDIR"] = os.environ["ZOO_TEST_CHILD_TMPDIR"]

import tensorflow as tf  # noqa: E402

import zoo  # noqa: E402,F401  (selects the TensorFlow backend before keras is imported)
import zoo.configurables  # noqa: E402,F401  (tests parse gin text as the binaries do)

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)
# TensorFlow starts now, whatever test comes first: `train` then never changes the
# process's inter-op parallelism midway (`run_ops_one_at_a_time` warns instead), and
# every test runs with the same threading. Bit-identical runs across processes are
# tested with real `zoo-train` processes (tests/reliability/test_resume.py).
tf.constant(0.0)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def mirrored():
    """One MirroredStrategy over the two logical CPUs for the whole session.

    Strategies created one after the other in a process number their collective ops
    from the same keys, and TensorFlow then matches a new strategy's all-reduce with an
    old one's ("Shape mismatch in the collective instance"): tests share this one.
    """
    devices = [d.name for d in tf.config.list_logical_devices("CPU")[:2]]
    return tf.distribute.MirroredStrategy(devices)


@pytest.fixture(autouse=True)
def _own_working_directory(tmp_path_factory, monkeypatch):
    """Every test runs in an empty folder of its own: a relative path a test or the
    code under test writes to lands there, never in the checkout (`.ci/run` fails on a
    dirty tree)."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(autouse=True)
def _fresh_gin_config():
    """Every test starts and ends with an empty gin config (bindings would leak into
    every later gin-configurable call)."""
    import gin

    gin.clear_config()
    yield
    gin.clear_config()


def pytest_collection_modifyitems(items):
    """Each worker starts with its share of the modules with slow tests, each module's
    tests kept together (its fixtures are built once).

    pytest-xdist's work stealing gives worker i the i-th contiguous block of the
    collection at the start, and an idle worker then takes the second half of the
    longest queue. So each block begins with a share of the slow modules (the module
    with the most slow tests first, each to the block with the fewest slow tests so
    far) and is filled up with the other modules: a worker runs its slow tests first,
    and the quick ones at the end of its queue are the ones that can be stolen. (All
    slow modules at the front of the collection would put them in the first worker's
    block, one after the other.)"""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    modules = {}
    for item in items:
        modules.setdefault(item.module.__name__, []).append(item)
    slow_tests = {
        m: sum(bool(i.get_closest_marker("slow")) for i in its) for m, its in modules.items()
    }
    slow = sorted((m for m in modules if slow_tests[m]), key=lambda m: -slow_tests[m])
    blocks = [[] for _ in range(workers)]
    for module in slow:
        block = min(blocks, key=lambda b: sum(bool(i.get_closest_marker("slow")) for i in b))
        block.extend(modules[module])
    rest = [item for m, its in modules.items() if m not in slow for item in its]
    # the block sizes xdist hands out: the remaining items split evenly, in order
    remaining = len(items)
    for i, block in enumerate(blocks):
        size = remaining // (workers - i)
        remaining -= size
        take = max(0, size - len(block))
        block.extend(rest[:take])
        del rest[:take]
    blocks[-1].extend(rest)
    items[:] = [item for block in blocks for item in block]
