"""A run on several machines: who this process is in `TF_CONFIG`'s cluster, and the
folder a worker that is not the chief writes to.

`strategy = "multi_worker"` reads the cluster from the `TF_CONFIG` environment variable,
as every TensorFlow multi-worker program does (docs/guides/scale-out.md):

    {"cluster": {"worker": ["host1:port", "host2:port"]}, "task": {"type": "worker", "index": 0}}

The chief is the task of type "chief", or worker 0 when the cluster has no "chief". It
alone writes the run's folder; every other worker reads the folder's state once (to
resume at the same epoch as the chief) and writes into a temporary copy of it that it
deletes at the end (`writable_model_dir`): the model_dir must be a folder every worker
reads, a shared filesystem or a path TensorFlow's file systems read (`gs://...`).
"""

import contextlib
import json
import os
import shutil
import tempfile

from zoo.errors import UserError

GUIDE = "docs/guides/scale-out.md"


def tf_config() -> dict | None:
    """The parsed `TF_CONFIG`, or None when it is not set; a UserError naming what is
    wrong when it does not describe a cluster and this process's task in it."""
    text = os.environ.get("TF_CONFIG", "")
    if not text.strip():
        return None
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"TF_CONFIG is not JSON ({error}): {text[:200]!r}") from None
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise UserError(
            'TF_CONFIG must have "cluster" ({type: [host:port, ...]}) and "task" '
            f'({{"type": ..., "index": ...}}). Received: {text[:200]!r} (see {GUIDE}).'
        )
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in cluster or not isinstance(index, int) or not 0 <= index < len(cluster[kind]):
        raise UserError(
            f"TF_CONFIG's task {task} is not in its cluster {sorted(cluster)} "
            f"({ {k: len(v) for k, v in cluster.items()} } tasks; see {GUIDE})."
        )
    return config


def require_cluster(jobs=None) -> dict:
    """`tf_config()`, refusing a process started without one, or whose cluster lacks
    one of `jobs` (e.g. ("chief", "worker", "ps") for the parameter-server strategy)."""
    config = tf_config()
    if config is None:
        raise UserError(
            "strategies 'multi_worker' and 'parameter_server' read the cluster from the "
            f"TF_CONFIG environment variable, which is not set. Set it on every machine "
            f"({GUIDE}), or try it on this one with `zoo-launch-local --workers=2 -- "
            "<zoo-train flags>`."
        )
    missing = [job for job in jobs or () if not config["cluster"].get(job)]
    if missing:
        raise UserError(
            f"TF_CONFIG's cluster has no {missing} task; this strategy needs {list(jobs)} "
            f"(see {GUIDE}; zoo-launch-local --parameter_servers=1 starts them)."
        )
    return config


def is_chief(config: dict | None = None) -> bool:
    """Whether this process writes the run: the "chief" task, or worker 0 of a cluster
    without one (TensorFlow's convention). True outside a cluster."""
    config = tf_config() if config is None else config
    if config is None:
        return True
    task = config["task"]
    if task["type"] == "chief":
        return True
    return (
        task["type"] == "worker" and task.get("index", 0) == 0 and "chief" not in config["cluster"]
    )


def task_name(config: dict | None = None) -> str:
    """ "worker 1", "chief 0": this process in the cluster."""
    config = tf_config() if config is None else config
    if config is None:
        return "the only process"
    return f"{config['task']['type']} {config['task'].get('index', 0)}"


# what a worker reads of the run's folder to resume where the chief resumes
_STATE = ("config.gin", "method.json", "progress.json")


@contextlib.contextmanager
def writable_model_dir(model_dir: str, chief: bool):
    """The folder this process writes the run to: `model_dir` on the chief; on another
    worker a temporary folder holding a copy of the run's state and links to its
    checkpoints (so it resumes at the chief's epoch), deleted on exit."""
    if chief:
        yield model_dir
        return
    view = tempfile.mkdtemp(prefix="zoo-worker-")
    try:
        for name in _STATE:
            if os.path.exists(os.path.join(model_dir, name)):
                shutil.copy(os.path.join(model_dir, name), os.path.join(view, name))
        saved = os.path.join(model_dir, "checkpoints")
        if os.path.isdir(saved):
            os.makedirs(os.path.join(view, "checkpoints"))
            for name in os.listdir(saved):
                os.symlink(
                    os.path.abspath(os.path.join(saved, name)),
                    os.path.join(view, "checkpoints", name),
                )
        yield view
    finally:
        shutil.rmtree(view, ignore_errors=True)
