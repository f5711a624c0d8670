"""Atomic writes: a file or folder is either absent or complete, whenever a process dies.

Everything a run keeps (checkpoints, snapshots, exports, metrics, sweep results) is
written to a temporary name in the destination's own folder (the same file system) and
renamed into place; a rename replaces its target atomically on POSIX file systems.
Temporary names start with "." and contain ".partial" and the writer's PID, so listings
skip them and a later write clears what a killed process left (never what a live one,
another run sharing the data cache for one, is still writing).
"""

import contextlib
import fcntl
import json
import os
import shutil
import uuid

from zoo.errors import ExistingFile, InUse, NotWritable

PARTIAL = ".partial"
LOCK = ".lock"  # in a folder one process writes: the writer's PID, under an OS lock
_held = {}  # real path of a locked folder -> [its open lock file, depth]


def is_partial(name: str) -> bool:
    """True for the temporary name of an unfinished write."""
    return os.path.basename(name).startswith(".") and PARTIAL in name


def _temporary(path: str, suffix: str = "") -> str:
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}{PARTIAL}-{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _fsync_folder(folder):
    with contextlib.suppress(OSError):  # not every file system lets a folder be opened
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _clear_partials(path):
    """Removes the temporary files of `path` that processes which ended left behind."""
    folder, name = os.path.split(os.path.abspath(path))
    if not os.path.isdir(folder):
        return
    prefix = f".{name}{PARTIAL}-"
    for other in os.listdir(folder):
        if not other.startswith(prefix):
            continue
        writer = other[len(prefix) :].split("-", 1)[0]
        if writer.isdigit() and _alive(int(writer)):
            continue  # still being written
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


@contextlib.contextmanager
def exclusive(folder: str, what: str = "model_dir"):
    """Holds an exclusive OS lock on `folder` (creating it) while the block runs.

    The lock is `flock` on `<folder>/.lock`, which also records the holder's PID: the
    operating system releases it whenever the process ends, so a lock left by a killed
    process blocks nothing. Another process asking for it is refused at once (InUse,
    naming the folder and the holder's PID); the same process may nest the block.
    Readers (export, evaluation of the last checkpoint) need no lock: every file a
    writer keeps appears whole.
    """
    make_dirs(folder, what)
    key = os.path.realpath(folder)
    if key not in _held:
        try:
            handle = open(os.path.join(folder, LOCK), "a+")  # noqa: SIM115 (held past the block)
        except OSError as error:
            raise NotWritable(
                f"cannot write in the {what} {folder}: {error.strerror}; give a folder you "
                "can write."
            ) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise InUse(
                f"the {what} {folder} is in use by another process (PID {holder}); wait for "
                f"it to end, or give another {what}."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        _held[key] = [handle, 0]
    entry = _held[key]
    entry[1] += 1
    try:
        yield
    finally:
        entry[1] -= 1
        if entry[1] == 0:
            del _held[key]
            entry[0].truncate(0)  # no holder
            entry[0].close()  # releases the lock


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
    if os.path.exists(path) and overwrite:
        old = _temporary(path)
        os.replace(path, old)
    try:
        os.replace(temporary, path)  # fails when another writer put a folder there meanwhile
    except OSError:
        shutil.rmtree(temporary, ignore_errors=True)
        if not os.path.isdir(path) or not os.listdir(path):
            raise
        raise ExistingFile(f"{path} was written by another process meanwhile.") from None
    _fsync_folder(os.path.dirname(path))
    if old:
        shutil.rmtree(old, ignore_errors=True)
    return path
