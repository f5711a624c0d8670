"""Synthetic scenes as `tf.data` datasets and as TFRecord files."""

import collections
import dataclasses
import itertools
import json
import multiprocessing
import os

import numpy as np
import tensorflow as tf

from zoo import checks
from zoo.data import tfrecord
from zoo.data.synthetic.scene import SceneSpec, generate, generate_job
from zoo.errors import ExistingFile, UserError, UserTypeError

IMAGE_KEYS = ("image", "next_image")


def output_signature(spec):
    """{key: (dtype, shape)} of `generate(spec, i)`."""
    s = spec.size
    image = (tf.float32, (s, s, 3))
    scalar = (tf.int32, ())
    if spec.mode == "single":
        return {"image": image, "label": scalar, "pose": scalar, "model": scalar}
    if spec.mode == "multi":
        return {
            "image": image,
            "depth": (tf.float32, (s, s)),
            "normals": (tf.float32, (s, s, 3)),
            "instances": (tf.int32, (s, s)),
            "semantics": (tf.int32, (s, s)),
            "contours": (tf.uint8, (s, s)),
            "scene": scalar,
        }
    return {"image": image, "next_image": image, "motion": (tf.uint8, (s, s)), "scene": scalar}


def dataset(spec, num, start=0):
    """Examples `start` .. `start + num - 1` of `spec` as a dataset of dicts, in index order.

    Rendering runs in parallel `tf.data` map calls; the order and the values do not
    depend on the parallelism.

    Args:
        spec: SceneSpec.
        num: int. Number of examples.
        start: int. First index. Defaults to 0.
    """
    if not isinstance(spec, SceneSpec):
        raise UserTypeError(f"`spec` must be a SceneSpec. Received: {type(spec).__name__}")
    if not (isinstance(num, int) and num >= 1 and isinstance(start, int) and start >= 0):
        raise UserError(f"`num` must be >= 1 and `start` >= 0. Received: num={num}, start={start}")
    signature = output_signature(spec)
    keys = list(signature)

    def render(index):
        example = generate(spec, int(index))
        return [np.asarray(example[k], signature[k][0].as_numpy_dtype) for k in keys]

    def load(index):
        values = tf.numpy_function(render, [index], [signature[k][0] for k in keys])
        return {k: tf.ensure_shape(v, signature[k][1]) for k, v in zip(keys, values)}

    indices = tf.data.Dataset.range(start, start + num)
    return indices.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def examples_of(spec, indices, workers=None):
    """Yields generate(spec, i) for i in `indices`, in order, rendered by `workers` processes.

    At most 4 examples per worker are rendered ahead of the consumer, so memory stays
    bounded however many examples are asked for and however slowly they are read.

    Args:
        spec: SceneSpec.
        indices: iterable of int.
        workers: int or None. Defaults to the CPU count (1 inside a worker process).
    """
    if workers is None:
        nested = multiprocessing.parent_process() is not None  # a worker starts none
        workers = 1 if nested else (os.cpu_count() or 1)
    jobs = ((spec, int(i)) for i in indices)
    if workers == 1:
        yield from map(generate_job, jobs)
        return
    # fork where there is one: workers start at once and do not re-run the caller's
    # script (spawn would, in a script without an `if __name__ == "__main__":` guard).
    # Workers only run the numpy renderer, never TensorFlow, so the parent's threads
    # are not a concern.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with context.Pool(workers) as pool:
        pending = collections.deque(
            pool.apply_async(generate_job, (job,)) for job in itertools.islice(jobs, 4 * workers)
        )
        while pending:
            result = pending.popleft().get()
            job = next(jobs, None)
            if job is not None:
                pending.append(pool.apply_async(generate_job, (job,)))
            yield result


def render_arrays(spec, num, workers=None):
    """Examples 0 .. num - 1 of `spec` stacked into numpy arrays {entry: [num, ...]}.

    Args:
        spec: SceneSpec.
        num: int. Number of examples.
        workers: int or None. Rendering processes. Defaults to the CPU count (one
            process below 64 examples).
    """
    if workers is None and num < 64:
        workers = 1
    examples = list(examples_of(spec, range(num), workers))
    return {k: np.stack([e[k] for e in examples]) for k in examples[0]}


def write_tfrecords(spec, num, out_dir, shards=1, workers=1, overwrite=False, progress=None):
    """Renders examples 0 .. num - 1 of `spec` into TFRecord shards plus `spec.json`.

    Images are stored as PNG, every other entry as a raw tensor (see
    `zoo.data.tfrecord`); `read_tfrecords(out_dir)` reads them back in index order.

    Args:
        spec: SceneSpec.
        num: int. Number of examples.
        out_dir: str. Output folder.
        shards: int. Number of TFRecord files. Defaults to 1.
        workers: int. Rendering processes. Defaults to 1 (render in this process).
        overwrite: bool. Replace an existing dataset in `out_dir`. Defaults to False.
        progress: callable or None. Called with the number of examples done so far.

    Returns:
        list of the shard paths.
    """
    checks.int_at_least(workers, 1, "workers", keyed=True)
    spec_path = os.path.join(out_dir, "spec.json")
    if os.path.exists(spec_path) and not overwrite:
        raise ExistingFile(
            f"{out_dir} already holds a synthetic dataset ({spec_path}); pass overwrite=True "
            "to replace it or choose another folder."
        )

    def examples():
        for done, example in enumerate(examples_of(spec, range(num), workers), start=1):
            if progress is not None:
                progress(done)
            yield example

    paths, count = tfrecord.write_tfrecords(
        examples(), out_dir, shards, image_keys=IMAGE_KEYS, overwrite=overwrite
    )
    with open(spec_path, "w") as f:
        json.dump({"spec": dataclasses.asdict(spec), "num": count, "shards": shards}, f, indent=2)
    return paths
