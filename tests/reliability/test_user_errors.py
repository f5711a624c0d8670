"""Every user mistake found so far ends with one line naming the parameter, file or
folder and what is allowed (a ZooError), and leaves nothing that blocks a corrected run."""

import os
import shutil
import stat
import tempfile

import gin
import numpy as np
import processes
import pytest
from helpers import TINY_CONFIG

from zoo.cli.train import train_command
from zoo.errors import ZooError, first_line

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config(tmp_path, text=TINY_CONFIG):
    path = tmp_path / "tiny.gin"
    path.write_text(text)
    return str(path)


def _records(tmp_path, damage=None, entries=("image", "depth")):
    """Two TFRecord shards of 8 scenes each (train) and one of 8 (eval); `damage` spoils
    the second training shard."""
    from zoo.data.synthetic import SceneSpec, render_arrays
    from zoo.data.tfrecord import write_tfrecords

    arrays = render_arrays(SceneSpec(variant="----", mode="multi", resolution=32), 24)
    examples = [{k: arrays[k][i] for k in entries} for i in range(24)]
    train, _ = write_tfrecords(examples[:16], str(tmp_path / "train"), shards=2)
    write_tfrecords(examples[16:], str(tmp_path / "eval"))
    shard = train[1]
    data = bytearray(open(shard, "rb").read())
    if damage == "junk":
        data = bytearray(np.random.default_rng(0).integers(0, 256, len(data), np.uint8))
    elif damage == "truncated":
        data = data[: len(data) // 2]
    elif damage == "bit flip":
        data[len(data) // 2] ^= 0x10
    open(shard, "wb").write(bytes(data))
    return tmp_path / "train", tmp_path / "eval", shard


def _record_bindings(train, evaluation):
    return [
        f"zoo.tasks.Depth.source = '{train}'",
        f"zoo.tasks.Depth.eval_source = '{evaluation}'",
        "zoo.methods.MultiTask.tasks = [@zoo.tasks.Depth()]",
    ]


def _expect(tmp_path, fragments, files=None, bindings=(), model_dir=None):
    gin.clear_config()
    with pytest.raises(ZooError) as caught:
        train_command(
            files or [_config(tmp_path)],
            list(bindings),
            str(model_dir or tmp_path / "run"),
            say=lambda *_: None,
        )
    line = first_line(caught.value)
    assert "\n" not in str(caught.value).split("  In call to configurable")[0].strip()
    for fragment in fragments:
        assert fragment in line, line
    return line


# (case, gin bindings, fragments the one-line message must contain)
BINDINGS = [
    ("batch_size 0", ["zoo.experiment.train.batch_size = 0"], ["batch_size", ">= 1"]),
    ("batch_size -4", ["zoo.experiment.train.batch_size = -4"], ["batch_size=-4", ">= 1"]),
    ("batch_size 'big'", ['zoo.experiment.train.batch_size = "big"'], ["batch_size='big'"]),
    ("epochs 0", ["zoo.experiment.train.epochs = 0"], ["epochs", ">= 1"]),
    ("steps_per_epoch 0", ["zoo.experiment.train.steps_per_epoch = 0"], ["steps_per_epoch"]),
    ("epochs 2.5", ["zoo.experiment.train.epochs = 2.5"], ["epochs=2.5", "int"]),
    ("unknown parameter", ["zoo.experiment.train.epoch = 2"], ["bindings", "'epoch'"]),
    ("unclosed bracket", ["zoo.experiment.train.callbacks = ["], ["bindings", "not closed"]),
    ("strategy", ["zoo.experiment.train.strategy = 'tpu'"], ["strategy", "'mirrored'"]),
    ("method called", ["zoo.experiment.train.method = @zoo.methods.MultiTask()"], ["`method`"]),
    ("resnet depth", ["zoo.trunks.resnet.depth = 17"], ["depth", "17"]),
    ("missing data", ["zoo.tasks.Depth.source = '/no/such/records'"], ["/no/such/records"]),
]


@pytest.mark.parametrize("case,bindings,fragments", BINDINGS, ids=[c[0] for c in BINDINGS])
def test_a_bad_value_names_its_parameter(tmp_path, case, bindings, fragments):
    _expect(tmp_path, fragments, bindings=bindings)
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_gin_files_that_cannot_be_used(tmp_path):
    _expect(tmp_path, ["does not exist"], files=[str(tmp_path / "nope.gin")])
    _expect(tmp_path, ["is a folder"], files=[str(tmp_path)])
    broken = tmp_path / "broken.gin"
    broken.write_text("import zoo.experiment\n\nzoo.experiment.train.batch_size = 3 4\n")
    _expect(tmp_path, [str(broken), "line 3"], files=[str(broken)])
    including = tmp_path / "including.gin"
    including.write_text('include "broken.gin"\n')
    _expect(tmp_path, [str(including), f"in {broken}", "line 3"], files=[str(including)])
    unclosed = tmp_path / "unclosed.gin"
    unclosed.write_text("import zoo.experiment\nzoo.experiment.train.callbacks = [\n")
    _expect(tmp_path, [str(unclosed), "not closed"], files=[str(unclosed)])


def test_model_dirs_that_cannot_be_used(tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    _expect(tmp_path, [str(a_file), "is a file"], model_dir=a_file)
    assert a_file.read_text() == "mine"


@pytest.mark.parametrize("damage", ["junk", "truncated", "bit flip"])
def test_a_damaged_record_file_is_named(tmp_path, damage):
    train, evaluation, shard = _records(tmp_path, damage)
    line = _expect(tmp_path, [shard, "damaged"], bindings=_record_bindings(train, evaluation))
    assert "rewrite" in line


def test_records_without_an_entry_a_task_needs(tmp_path):
    train, evaluation, _ = _records(tmp_path, entries=("image",))
    _expect(
        tmp_path,
        ["needs ['depth'], which TFRecords(", "(it gives ['image'])"],
        bindings=_record_bindings(train, evaluation),
    )


@pytest.mark.slow
def test_a_corrected_run_after_a_failed_one_and_another_spelling(tmp_path, monkeypatch):
    model_dir = tmp_path / "run"
    _expect(tmp_path, ["batch_size"], bindings=["zoo.experiment.train.batch_size = 0"])
    assert os.path.exists(model_dir / "config.gin")  # written, but blocks nothing
    gin.clear_config()
    bindings = ["zoo.experiment.train.epochs = 1"]
    results = train_command([_config(tmp_path)], bindings, str(model_dir), say=lambda *_: None)
    assert len(results["history"]["loss"]) == 1
    # the same configuration, spelled differently: recognised as the finished run
    gin.clear_config()
    monkeypatch.chdir(tmp_path)
    messages = []
    again = train_command(
        ["./tiny.gin"], ["zoo.experiment.train.epochs=1"], "run", say=messages.append
    )
    assert "finished run" in messages[0] and again["trained"] == results["trained"]


# Run as another user when the tests run as root (root may write anywhere).
_READ_ONLY = """
import os, sys
from zoo import experiment
from zoo.errors import ZooError, first_line
if os.geteuid() == 0:
    os.setgid(65534)
    os.setuid(65534)
for model_dir in sys.argv[1:]:
    try:
        experiment.prepare_model_dir(model_dir, "a = 1\\n")
        print("no error", model_dir)
    except ZooError as error:
        print(first_line(error))
"""


def test_read_only_model_dirs():
    # a folder every user can reach (pytest's tmp_path is private to its owner)
    top = tempfile.mkdtemp(prefix="zoo-read-only-")
    os.chmod(top, 0o755)
    folder = os.path.join(top, "shared")
    os.mkdir(folder)
    existing = os.path.join(folder, "empty")  # an empty folder that cannot be written
    os.mkdir(existing)
    run = os.path.join(folder, "run")  # a run of this configuration, now read-only
    os.mkdir(run)
    with open(os.path.join(run, "config.gin"), "w") as f:
        f.write("a = 1\n")
    read_only = stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH
    for path in (folder, existing, run):
        os.chmod(path, read_only | stat.S_IXOTH)
    targets = [os.path.join(folder, "new"), existing, run]
    try:
        out = processes.python("-c", _READ_ONLY, *targets, cwd=ROOT)
    finally:
        for path in (folder, existing, run):
            os.chmod(path, 0o755)
        shutil.rmtree(top)
    lines = out.stdout.strip().splitlines()
    assert out.returncode == 0 and len(lines) == 3, out.stderr[-2000:]
    assert lines[0].startswith(f"cannot create the model_dir {targets[0]}: Permission denied")
    for line, target in zip(lines[1:], targets[1:]):
        assert line.startswith(f"cannot write in the model_dir {target}: Permission denied"), line


@pytest.mark.slow
def test_the_binaries_print_one_line_and_exit_1(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("mine")
    config = _config(tmp_path)
    commands = {
        "export": (["zoo.cli.export", f"--model_dir={tmp_path}", f"--out={a_file}"], "is a file"),
        "train": (
            [
                "zoo.cli.train",
                f"--gin_file={config}",
                f"--model_dir={tmp_path}/run",
                "--gin_bindings=zoo.experiment.train.batch_size = -4",
            ],
            "`batch_size` must be an int >= 1. Received: batch_size=-4",
        ),
    }
    for name, (args, message) in commands.items():
        out = processes.python("-m", *args, cwd=ROOT)
        last = out.stderr.strip().splitlines()[-1]
        assert out.returncode == 1 and "Traceback" not in out.stderr, (name, out.stderr[-2000:])
        assert last.startswith(f"zoo-{name}: ") and message in last, last
    assert a_file.read_text() == "mine"
