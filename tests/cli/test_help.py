"""Every installed zoo-* command answers --help with its own text and flags, and a flag
error before TensorFlow is imported."""

import ast
import configparser
import os
import sys

import processes
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_SETUP = configparser.ConfigParser()
_SETUP.read(os.path.join(ROOT, "setup.cfg"))
COMMANDS = {
    line.split("=")[0].strip(): line.split("=")[1].strip().split(":")[0]
    for line in _SETUP["options.entry_points"]["console_scripts"].strip().splitlines()
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_help_prints_the_commands_own_flags(command):
    path = os.path.join(ROOT, *COMMANDS[command].split(".")) + ".py"
    tree = ast.parse(open(path).read())
    own = sorted(  # the first argument of every flags.DEFINE_*(...) of the module
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr.startswith("DEFINE_")
    )
    assert own, command
    script = os.path.join(os.path.dirname(sys.executable), command)
    out = processes.run([script, "--help"])  # absl exits 1 after the help
    first_line = ast.get_docstring(tree).splitlines()[0]
    assert out.stdout.startswith(first_line), out.stdout[:300]
    missing = [n for n in own if f"--{n}:" not in out.stdout and f"--[no]{n}:" not in out.stdout]
    assert not missing, (command, missing)
    if command in ("zoo-train", "zoo-finetune"):
        assert "zoo.experiment.train.epochs" in out.stdout
        assert "keras.optimizers.Adam.learning_rate" in out.stdout
    # a flag error is answered before TensorFlow is imported (no TensorFlow start-up)
    bad = processes.run(
        [sys.executable, "-X", "importtime", script, "--no_such_flag"], env={"PYTHONWARNINGS": ""}
    )
    assert bad.returncode != 0 and "no_such_flag" in bad.stderr
    assert "| tensorflow\n" not in bad.stderr and "tensorflow.python" not in bad.stderr
