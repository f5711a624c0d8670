"""zoo-evaluate's and zoo-visualize's subcommands share one set of flags: a flag that the
chosen subcommand does not read is refused, naming the subcommands that read it."""

import ast
import os

import processes
import pytest
from absl import flags

import zoo.cli
from zoo.cli import synthetic_flags

CLI = os.path.dirname(os.path.abspath(zoo.cli.__file__))


class Program:
    """A program's subcommands, the flags each lists and the flags it defines, read from
    its source (importing it would define its flags in this process)."""

    def __init__(self, name):
        with open(os.path.join(CLI, f"{name}.py")) as f:
            self.tree = ast.parse(f.read())
        self.functions = {f.name: f for f in self.tree.body if isinstance(f, ast.FunctionDef)}
        namespace = {"synthetic_flags": synthetic_flags}
        for node in self.tree.body:  # READS and the tuples it is made of
            if isinstance(node, ast.Assign) and node.targets[0].id in ("READS", "_GRID", "_RUN"):
                exec(compile(ast.Module([node], []), name, "exec"), namespace)
        self.reads = namespace["READS"]
        (commands,) = [
            n.value for n in self.tree.body if isinstance(n, ast.Assign)
            and n.targets[0].id == "COMMANDS"
        ]  # fmt: skip
        self.commands = {k.value: v.id for k, v in zip(commands.keys, commands.values)}
        self.defined = {
            node.args[0].value
            for node in ast.walk(self.tree)
            if isinstance(node, ast.Call) and ast.unparse(node.func).startswith("flags.DEFINE_")
        }
        if "synthetic_flags.define" in ast.unparse(self.tree):
            self.defined |= set(synthetic_flags.NAMES)

    def flags_read(self, function) -> set:
        """The FLAGS a subcommand's function reads, following the module's own helpers."""
        read, todo, seen = set(), [function], set()
        while todo:
            name = todo.pop()
            if name in seen or name not in self.functions:
                continue
            seen.add(name)
            for node in ast.walk(self.functions[name]):
                if isinstance(node, ast.Attribute) and getattr(node.value, "id", "") == "FLAGS":
                    read.add(node.attr)
                elif isinstance(node, ast.Subscript) and getattr(node.value, "id", "") == "FLAGS":
                    read.add(node.slice.value)
                elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                    todo.append(node.func.id)
                elif (
                    isinstance(node, ast.Call) and ast.unparse(node.func) == "synthetic_flags.spec"
                ):
                    replaced = {k.arg for k in node.keywords}  # options that replace a flag
                    read |= set(synthetic_flags.NAMES) - replaced
        return read


@pytest.mark.parametrize("name", ["evaluate", "visualize"])
def test_each_subcommand_lists_exactly_the_flags_it_reads(name):
    program = Program(name)
    assert set(program.reads) == set(program.commands)
    for command, function in program.commands.items():
        assert program.flags_read(function) == set(program.reads[command]), command
    # every flag the program defines is read by some subcommand
    assert program.defined == {name for names in program.reads.values() for name in names}


def test_a_flag_for_another_subcommand_is_refused_with_who_reads_it():
    values = flags.FlagValues()
    for name in ("source", "transfer_bindings", "seeds"):
        flags.DEFINE_string(name, None, "", flag_values=values)
    values(["zoo-evaluate", "--source=x", "--transfer_bindings=a=1", "--seeds=0"])
    reads = {
        "transfer": ("source",),
        "newell20": ("transfer_bindings", "seeds"),
        "mgm22": ("seeds",),
    }
    with pytest.raises(SystemExit) as refused:
        zoo.cli.refuse_unread_flags("zoo-evaluate", "transfer", reads, values)
    assert str(refused.value) == (
        "zoo-evaluate: transfer does not read --seeds, --transfer_bindings (--seeds is read by "
        "newell20, mgm22; --transfer_bindings is read by newell20). transfer reads: --source."
    )
    zoo.cli.refuse_unread_flags(
        "zoo-evaluate",
        "newell20",
        reads | {"newell20": ("source", "transfer_bindings", "seeds")},
        values,
    )


def test_the_program_refuses_it_before_any_work():
    run = processes.python(
        "-m", "zoo.cli.evaluate", "transfer", "--source=random", "--transfer_bindings=x = 1"
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr[-2000:]
    assert (
        run.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "zoo-evaluate: transfer does not read --transfer_bindings (--transfer_bindings is "
            "read by newell20). transfer reads: --source, --task, "
        )
    )
