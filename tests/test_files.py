import os
import subprocess
import sys
import threading

import pytest

from zoo import files
from zoo.errors import ExistingFile


def _ended_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_a_write_clears_what_ended_writers_left_not_what_live_ones_write(tmp_path):
    dead = tmp_path / f".x.txt{files.PARTIAL}-{_ended_pid()}-0000abcd.txt"
    live = tmp_path / f".x.txt{files.PARTIAL}-{os.getpid()}-0000ef01.txt"
    dead.write_text("left by a killed writer")
    live.write_text("being written")
    files.write_text(str(tmp_path / "x.txt"), "new")
    assert (tmp_path / "x.txt").read_text() == "new"
    assert not dead.exists() and live.read_text() == "being written"
    assert sorted(os.listdir(tmp_path)) == [live.name, "x.txt"]


def test_two_writers_of_one_folder_both_end_with_it_complete(tmp_path):
    """Two writers of the same cache entry at once (two runs rendering the same scenes):
    the second to start must not delete the first one's unfinished folder."""
    path = str(tmp_path / "entry")
    started, go_on, outcome = threading.Event(), threading.Event(), {}

    def slow(folder):
        os.makedirs(folder)
        open(os.path.join(folder, "a"), "w").write("slow")
        started.set()
        go_on.wait(60)
        open(os.path.join(folder, "b"), "w").write("slow")

    def fast(folder):
        os.makedirs(folder)
        for name in ("a", "b"):
            open(os.path.join(folder, name), "w").write("fast")

    def first():
        try:
            files.write_folder(path, slow)
            outcome["first"] = "written"
        except Exception as error:  # noqa: BLE001 (the outcome is the assertion)
            outcome["first"] = type(error).__name__

    thread = threading.Thread(target=first)
    thread.start()
    assert started.wait(60)
    files.write_folder(path, fast)
    go_on.set()
    thread.join(60)
    # the first finished its folder, then found the entry written: ExistingFile, as the
    # cache expects (the old code deleted its folder mid-write: FileNotFoundError)
    assert outcome["first"] == ExistingFile.__name__
    assert sorted(os.listdir(path)) == ["a", "b"]
    assert [open(os.path.join(path, n)).read() for n in ("a", "b")] == ["fast", "fast"]
    assert os.listdir(tmp_path) == ["entry"]


def test_the_lock_of_a_folder_nests_and_is_released(tmp_path):
    folder = tmp_path / "run"
    with files.exclusive(str(folder)):
        assert (folder / files.LOCK).read_text() == f"{os.getpid()}\n"
        with files.exclusive(str(folder / ".." / "run")):  # the same folder, nested
            pass
        assert (folder / files.LOCK).read_text() == f"{os.getpid()}\n"
    assert (folder / files.LOCK).read_text() == ""
    (tmp_path / "a_file").write_text("mine")
    with pytest.raises(ExistingFile, match="is a file"), files.exclusive(str(tmp_path / "a_file")):
        pass
    assert (tmp_path / "a_file").read_text() == "mine"
