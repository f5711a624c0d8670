"""Every user mistake found so far ends with one line naming the parameter, file or
folder and what is allowed (a ZooError), and leaves nothing that blocks a corrected run."""

import json
import os
import shutil
import signal
import stat
import tempfile

import gin
import numpy as np
import processes
import pytest
from helpers import TINY_CONFIG

from zoo import experiment
from zoo.cli.train import train_command
from zoo.errors import DataError, ZooError, first_line

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
    (
        "input_size not the data's",
        ["zoo.methods.MultiTask.input_size = 48"],
        ["are (32, 32, 3) per example", "takes (48, 48, 3) (input_size=48)"],
    ),
]


@pytest.mark.parametrize("case,bindings,fragments", BINDINGS, ids=[c[0] for c in BINDINGS])
def test_a_bad_value_names_its_parameter(tmp_path, case, bindings, fragments):
    """Each gin binding of the table below (a value out of range, of the wrong type, a misspelt
    parameter, an unclosed bracket, data that does not exist or does not fit): one line
    naming the parameter and what is allowed; no checkpoint written."""
    _expect(tmp_path, fragments, bindings=bindings)
    assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_gin_files_that_cannot_be_used(tmp_path):
    """A gin file that does not exist, is a folder, has a syntax error (also inside an
    included file) or an unclosed bracket: one line naming the file (and the including
    one) and the line."""
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
    """A --model_dir that is a file: refused in one line, the file untouched."""
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    _expect(tmp_path, [str(a_file), "is a file"], model_dir=a_file)
    assert a_file.read_text() == "mine"


@pytest.mark.parametrize("damage", ["junk", "truncated", "bit flip"])
def test_a_damaged_record_file_is_named(tmp_path, damage):
    """A TFRecord shard of junk, truncated, or with one bit flipped: one line naming the
    shard as damaged and saying to rewrite it."""
    train, evaluation, shard = _records(tmp_path, damage)
    line = _expect(tmp_path, [shard, "damaged"], bindings=_record_bindings(train, evaluation))
    assert "rewrite" in line


def test_records_without_an_entry_a_task_needs(tmp_path):
    """TFRecords without an entry a task reads: one line naming the entry, the source and
    what it gives."""
    train, evaluation, _ = _records(tmp_path, entries=("image",))
    _expect(
        tmp_path,
        ["needs ['depth'], which TFRecords(", "(it gives ['image'])"],
        bindings=_record_bindings(train, evaluation),
    )


@pytest.mark.slow
def test_a_corrected_run_after_a_failed_one_and_another_spelling(tmp_path, monkeypatch):
    """A run that failed on a bad value leaves nothing that blocks the corrected run; the
    same configuration spelled differently (relative paths, spaces) is recognised as
    the finished run."""
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
    """A model_dir that cannot be created, an empty one or a run that cannot be written
    (another user's read-only folder): one line each, with the system's reason."""
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
    """zoo-export and zoo-train on a bad value: exit status 1, the last line
    "zoo-<command>: <message>", no traceback, nothing of the user's overwritten."""
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


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A tiny run trained to the end (one epoch)."""
    folder = tmp_path_factory.mktemp("finished")
    gin.clear_config()
    bindings = ["zoo.experiment.train.epochs = 1"]
    train_command([_config(folder)], bindings, str(folder / "run"), say=lambda *_: None)
    return folder


@pytest.mark.slow
def test_a_second_writer_is_refused_and_readers_go_on(finished_run):
    """Two writers on one model_dir: the second is refused in one line naming the folder
    and the first one's PID; export and restore of the run go on meanwhile; the lock of
    a killed writer blocks nothing."""
    model_dir = finished_run / "run"
    holder = processes.hold_lock(model_dir)
    try:
        line = _expect(
            finished_run,
            [f"the model_dir {model_dir} is in use by another process (PID {holder.pid})"],
            files=[_config(finished_run)],
            bindings=["zoo.experiment.train.epochs = 1"],
            model_dir=model_dir,
        )
        assert line.endswith("wait for it to end, or give another model_dir.")
        experiment.restore(str(model_dir))  # readers take no lock
        # a task the run does not have: one line listing the run's tasks
        out = processes.python(
            "-m",
            "zoo.cli.export",
            f"--model_dir={model_dir}",
            "--task=dpeth",
            f"--out={finished_run / 'serving'}",
            cwd=ROOT,
        )
    finally:
        holder.send_signal(signal.SIGKILL)  # its lock file stays, its lock does not
        holder.wait()
    last = out.stderr.strip().splitlines()[-1]
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert last == "zoo-export: unknown task 'dpeth'; this run's tasks: ['depth', 'rotation']"
    assert not os.path.exists(finished_run / "serving")
    assert (model_dir / ".lock").read_text().strip() == str(holder.pid)
    gin.clear_config()
    messages = []
    train_command(
        [_config(finished_run)],
        ["zoo.experiment.train.epochs = 1"],
        str(model_dir),
        say=messages.append,
    )
    assert "finished run" in messages[0]
    assert (model_dir / ".lock").read_text() == ""  # released: no holder


def _task(config, replacement):
    config["config"]["tasks"][0] = replacement
    return json.dumps(config)


def _function(module, name):
    return {"module": module, "class_name": "function", "config": name, "registered_name": name}


_LAMBDA = {"class_name": "__lambda__", "config": {"code": "abc", "defaults": None, "closure": None}}
# (case, method.json made from the real one, what the one line says was refused)
TAMPERED = [
    ("not JSON", lambda c: "{not json", "is damaged (not JSON: Expecting property name"),
    ("empty", lambda c: "", "is damaged (not JSON: Expecting value"),
    ("a list", lambda c: "[]", "is damaged (not a Keras config"),
    (
        "an unregistered class",
        lambda c: _task(c, {"module": "zoo.tasks", "class_name": "Nope", "config": {}}),
        "refused: Could not locate class 'Nope'",
    ),
    (
        "os.system",
        lambda c: _task(c, {"module": "os", "class_name": "system", "config": "touch PWNED"}),
        "refused: Expected 'config' to be a dict for system",
    ),
    ("os.system function", lambda c: _task(c, _function("os", "system")), "function 'system'"),
    ("builtins.exec", lambda c: _task(c, _function("builtins", "exec")), "function 'exec'"),
    (
        "subprocess.Popen",
        lambda c: _task(
            c,
            {"module": "subprocess", "class_name": "Popen", "config": {"args": ["touch", "PWNED"]}},
        ),
        "refused: Could not locate class 'Popen'",
    ),
    (
        "keras.utils.get_file",
        lambda c: _task(c, _function("keras.utils", "get_file")),
        "refused: Cannot deserialize `keras.utils.get_file` because it is not a modeling function",
    ),
    (
        "a Python lambda",
        lambda c: _task(
            c, {"module": "keras.layers", "class_name": "Lambda", "config": {"function": _LAMBDA}}
        ),
        "refused: Requested the deserialization of a `Lambda` layer whose `function` is a Python",
    ),
]


@pytest.mark.parametrize("case,tamper,fragment", TAMPERED, ids=[c[0] for c in TAMPERED])
def test_a_damaged_or_tampered_method_json_is_one_line(
    finished_run, tmp_path, monkeypatch, case, tamper, fragment
):
    """A method.json that is not JSON, names an unknown class or a callable outside Keras
    and the zoo: one line naming the file and what was refused; Keras' safe mode stays
    on, so nothing it names runs."""
    run = tmp_path / "run"
    shutil.copytree(finished_run / "run", run, ignore=shutil.ignore_patterns("export", "logs"))
    config = json.loads((run / "method.json").read_text())
    (run / "method.json").write_text(tamper(config))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError) as caught:
        experiment.restore(str(run))
    line = first_line(caught.value)
    assert str(caught.value) == line and line.startswith(f"{run / 'method.json'} "), line
    assert fragment in line, line
    assert line.endswith("train the run again, or restore the file.") or "damaged" in line
    assert not os.path.exists(tmp_path / "PWNED")
