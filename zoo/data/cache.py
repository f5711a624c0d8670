"""The zoo's data cache: synthetic scenes rendered once, stored as TFRecord shards.

The cache lives in `$ZOO_CACHE_DIR`, else `$XDG_CACHE_HOME/zoo`, else `~/.cache/zoo`.
An entry is `synthetic/<digest of the SceneSpec>/n<count>-<entries>/`: the first `count`
examples of the spec with the listed entries (TFRecords of `zoo.data.tfrecord`, plus
`entry.json`). A request is served by any entry of the same spec with at least as many
examples and every wanted entry (reading stops after the first `num`); otherwise a new
entry is rendered by parallel worker processes and renamed into place when complete, so
a killed render leaves nothing a later run could mistake for data and two processes
rendering the same entry at once both end with a complete one. Deleting the folder is
always safe: entries are rendered again on demand.
"""

import dataclasses
import hashlib
import json
import os
import re

from absl import logging

from zoo import files
from zoo.data import tfrecord
from zoo.data.synthetic.io import IMAGE_KEYS, examples_of
from zoo.errors import NotWritable

# Part of every digest: raise it when the renderer changes what a spec draws, so that
# entries rendered by an older version are never read.
RENDERER_VERSION = 1
_ENTRY = re.compile(r"^n(\d+)-([a-z0-9_+]+)$")


def cache_dir() -> str:
    """The cache's root folder (see the module docstring)."""
    if os.environ.get("ZOO_CACHE_DIR"):
        return os.path.abspath(os.environ["ZOO_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "zoo")


def spec_digest(spec) -> str:
    """16 hex digits naming a SceneSpec (and the renderer version) in the cache."""
    text = json.dumps(
        {"spec": dataclasses.asdict(spec), "renderer": RENDERER_VERSION}, sort_keys=True
    )
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def find(spec, num: int, keys) -> str | None:
    """A complete entry holding examples 0 .. num - 1 of `spec` with `keys`, or None."""
    folder = os.path.join(cache_dir(), "synthetic", spec_digest(spec))
    if not os.path.isdir(folder):
        return None
    best = None
    for name in sorted(os.listdir(folder)):
        match = _ENTRY.match(name)
        if not match or not os.path.exists(os.path.join(folder, name, "entry.json")):
            continue
        count, stored = int(match.group(1)), set(match.group(2).split("+"))
        if count >= num and set(keys) <= stored and (best is None or count < best[0]):
            best = (count, name)
    return None if best is None else os.path.join(folder, best[1])


def render(spec, num: int, keys, workers: int | None = None, progress=None) -> str:
    """Renders examples 0 .. num - 1 of `spec` with `keys` into a new cache entry.

    Returns the entry's folder (an equal entry another process finished first is kept).
    """

    keys = sorted(set(keys))
    folder = os.path.join(cache_dir(), "synthetic", spec_digest(spec))
    files.make_dirs(folder, "data cache folder")
    path = os.path.join(folder, f"n{num}-{'+'.join(keys)}")
    if not os.access(folder, os.W_OK):
        raise NotWritable(
            f"the data cache {folder} is not writable; set ZOO_CACHE_DIR to a writable folder."
        )
    shards = max(1, min(16, num // 512))
    if workers is None and num < 64:
        workers = 1  # starting worker processes costs more than a few scenes
    logging.info("Rendering %d scenes of %s (%s) into the cache %s", num, spec, keys, path)

    def write(temporary):

        def wanted():
            for done, example in enumerate(examples_of(spec, range(num), workers), start=1):
                if progress is not None:
                    progress(done)
                yield {k: example[k] for k in keys}

        tfrecord.write_tfrecords(wanted(), temporary, shards, image_keys=IMAGE_KEYS)
        entry = {"spec": dataclasses.asdict(spec), "num": num, "keys": keys, "shards": shards}
        files.write_json(os.path.join(temporary, "entry.json"), entry)

    if os.path.exists(os.path.join(path, "entry.json")):
        return path
    try:
        files.write_folder(path, write)
    except FileExistsError:  # another process finished the same entry first
        pass
    return path
