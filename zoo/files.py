"""Atomic writes: a file or folder is either absent or complete, whenever a process dies.

Everything a run keeps (checkpoints, snapshots, exports, metrics, sweep results) is
written to a temporary name in the destination's own folder (the same file system) and
renamed into place; a rename replaces its target atomically on POSIX file systems.
Temporary names start with "." and contain ".partial", so listings skip them and a
later write clears what a killed one left.
"""

import contextlib
import json
import os
import shutil
import uuid

from zoo.errors import ExistingFile, NotWritable

PARTIAL = ".partial"


def is_partial(name: str) -> bool:
    """True for the temporary name of an unfinished write."""
    return os.path.basename(name).startswith(".") and PARTIAL in name


def _temporary(path: str, suffix: str = "") -> str:
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}{PARTIAL}-{uuid.uuid4().hex[:8]}{suffix}")


def _fsync_folder(folder):
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _clear_partials(path):
    folder, name = os.path.split(os.path.abspath(path))
    if not os.path.isdir(folder):
        return
    for other in os.listdir(folder):
        if other.startswith(f".{name}{PARTIAL}-"):
            full = os.path.join(folder, other)
            if os.path.isdir(full):
                shutil.rmtree(full, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.remove(full)


def make_dirs(folder: str, what: str = "folder") -> None:
    """`os.makedirs` with a message naming `what` when the folder cannot be made."""
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ExistingFile(f"the {what} {folder} is a file; give a folder.")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        raise NotWritable(f"cannot create the {what} {folder}: {error.strerror}.") from None


def write_file(path: str, write) -> str:
    """Calls `write(temporary_path)`, then renames the result to `path`.

    `write` must create the temporary file; its name ends like `path` (".weights.h5"
    stays, as Keras wants).
    """
    folder = os.path.dirname(os.path.abspath(path))
    make_dirs(folder)
    _clear_partials(path)
    name = os.path.basename(path)
    suffix = ".weights.h5" if name.endswith(".weights.h5") else os.path.splitext(name)[1]
    temporary = _temporary(path, suffix)
    try:
        write(temporary)
        with open(temporary, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise
    _fsync_folder(folder)
    return path


def write_text(path: str, text: str) -> str:
    """Writes `text` to `path` atomically."""

    def write(temporary):
        with open(temporary, "w") as f:
            f.write(text)

    return write_file(path, write)


def write_json(path: str, value) -> str:
    """Writes `value` as indented JSON to `path` atomically."""
    return write_text(path, json.dumps(value, indent=2) + "\n")


def save_weights(model, path: str) -> str:
    """`model.save_weights(path)`, atomically."""
    return write_file(path, lambda temporary: model.save_weights(temporary))


def write_folder(path: str, write, overwrite: bool = False) -> str:
    """Calls `write(temporary_folder)`, then renames the folder to `path`.

    An existing `path` is refused (ExistingFile) unless `overwrite`; then it is replaced
    by two renames, so at every moment `path` is the old or the new complete folder
    (or, for the instant between them, absent).
    """
    path = os.path.abspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ExistingFile(f"{path} is a file; give a folder for the export.")
    if os.path.isdir(path) and os.listdir(path) and not overwrite:
        raise ExistingFile(
            f"{path} already holds an export; pass overwrite=True (--overwrite) to replace it."
        )
    make_dirs(os.path.dirname(path))
    _clear_partials(path)
    temporary = _temporary(path)
    try:
        write(temporary)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    old = None
    if os.path.exists(path):
        old = _temporary(path)
        os.replace(path, old)
    os.replace(temporary, path)
    _fsync_folder(os.path.dirname(path))
    if old:
        shutil.rmtree(old, ignore_errors=True)
    return path
