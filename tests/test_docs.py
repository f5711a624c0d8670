"""The README and the guides cannot drift from the code: every `zoo-*` command and gin file
they name exists, and every shell block a user would run is checked — each command's
flags are flags of that command, its gin files exist and, with its bindings, parse as
the command parses them — unless the block is marked `<!-- illustrative -->` (a server,
docker, a folder of the user's). Code the guides show is included from files that tests
run (`--8<-- "examples/..."`), never copied."""

import configparser
import glob
import os
import re
import shlex

import gin
import pytest

from zoo.cli import gin_setup

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = [os.path.join(ROOT, "README.md")] + sorted(
    glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)
)
ABSL_FLAGS = {"help", "helpfull", "helpshort", "flagfile", "verbosity", "v", "logtostderr"}
ILLUSTRATIVE = "<!-- illustrative -->"


def _commands():
    """{zoo-name: module file} of the installed commands (setup.cfg's entry points)."""
    config = configparser.ConfigParser()
    config.read(os.path.join(ROOT, "setup.cfg"))
    found = {}
    for line in config["options.entry_points"]["console_scripts"].strip().splitlines():
        name, target = (part.strip() for part in line.split("="))
        found[name] = os.path.join(ROOT, *target.split(":")[0].split(".")) + ".py"
    return found


def _flags(module_file):
    """The flags a command module defines (statically: every `flags.DEFINE_*("name"`),
    with those of the shared synthetic-scene flags when it uses them."""
    text = open(module_file).read()
    if "synthetic_flags.define" in text:
        text += open(os.path.join(ROOT, "zoo", "cli", "synthetic_flags.py")).read()
    return set(re.findall(r"DEFINE_\w+\(\s*\"(\w+)\"", text)) | ABSL_FLAGS


def _shell_blocks(path):
    """(line number, block text, illustrative?) of every ```sh block of a page."""
    text = open(path).read()
    for match in re.finditer(r"(?m)^```sh\n(.*?)^```", text, re.S):
        before = text[: match.start()].rstrip().rsplit("\n", 1)[-1]
        yield text[: match.start()].count("\n") + 1, match.group(1), before == ILLUSTRATIVE


def _command_lines(block):
    """Each command of a block as an argv, continuation lines joined, comments dropped."""
    block = block.replace("\\\n", " ")
    for line in block.splitlines():
        line = line.split(" #", 1)[0].strip()
        if line and not line.startswith("#"):
            yield shlex.split(line)


def test_every_named_command_and_gin_file_exists():
    commands = _commands()
    missing = []
    for path in PAGES:
        text = open(path).read()
        for name in set(re.findall(r"(?<![\w/-])zoo-[a-z][a-z-]*[a-z]", text)):
            if name not in commands:
                missing.append(f"{os.path.relpath(path, ROOT)}: command {name}")
        for name in set(re.findall(r"gin_configs/[\w/.{}-]*", text)):
            name = name.rstrip(".")
            if "{" in name or "<" in name:
                continue
            if not os.path.exists(os.path.join(ROOT, name.rstrip("*"))):
                missing.append(f"{os.path.relpath(path, ROOT)}: {name}")
    assert not missing, missing


MAKE_TARGETS = re.findall(r"(?m)^([a-z]+):", open(os.path.join(ROOT, "Makefile")).read())


def test_the_experiments_guide_lists_every_gin_file():
    text = open(os.path.join(ROOT, "docs", "guides", "experiments.md")).read()
    table = text[text.index("## Every gin folder") :]
    table = table[: table.index("\n## ", 5)]
    unlisted = []
    for path in sorted(glob.glob(os.path.join(ROOT, "gin_configs", "**", "*.gin"), recursive=True)):
        folder, name = os.path.split(os.path.relpath(path, ROOT))
        row = next((r for r in table.splitlines() if r.startswith(f"| `{folder}/`")), "")
        if f"`{name}`" not in row:
            unlisted.append(os.path.relpath(path, ROOT))
    assert not unlisted, unlisted


def test_the_experiments_guide_lists_every_knob_of_the_driver():
    import inspect

    from zoo.experiment import driver

    text = open(os.path.join(ROOT, "docs", "guides", "experiments.md")).read()
    table = text[text.index("## The driver's knobs") : text.index("## Every gin folder")]
    listed = re.findall(r"(?m)^\| `(\w+)` \|", table)
    parameters = inspect.signature(driver.train.__wrapped__).parameters
    assert listed == [p for p in parameters if p not in ("model_dir", "exporter")]


def _check_command(argv, commands):
    """What is wrong with one command of a shell block (a list of messages)."""
    program = os.path.basename(argv[0])
    if program in ("python", "python3") and argv[1] == "-c":
        try:
            compile(argv[2], "<python -c>", "exec")
        except SyntaxError as error:
            return [f"python -c: {error}"]
        return []
    if program in ("python", "python3"):
        found = os.path.exists(os.path.join(ROOT, argv[1]))
        return [] if found and argv[1].startswith(("tools/", "examples/")) else [f"no {argv[1]}"]
    if program == "make":
        return [f"no make target {t}" for t in argv[1:] if "=" not in t and t not in MAKE_TARGETS]
    if program not in commands:
        return [f"{program} is neither a zoo command nor checked: mark the block illustrative"]
    if program == "zoo-launch-local" and "--" in argv:
        # its own flags, then the launched command's after `--`
        split = argv.index("--")
        launched = next(
            (a.split("=", 1)[1] for a in argv[1:split] if a.startswith("--command=")),
            "zoo-train",
        )
        return _check_command(argv[:split], commands) + _check_command(
            [launched, *argv[split + 1 :]], commands
        )
    known = _flags(commands[program])
    problems, gin_files, bindings = [], [], []
    for arg in argv[1:]:
        if not arg.startswith("--"):
            continue
        name, _, value = arg[2:].partition("=")
        if name not in known and not (name.startswith("no") and name[2:] in known):
            problems.append(f"{program} has no flag --{name}")
        if name == "gin_file":
            gin_files.append(os.path.join(ROOT, value))
        elif name == "gin_bindings":
            bindings.append(value)
    if gin_files or bindings:
        gin.clear_config()
        try:
            gin_setup.parse(gin_files, bindings)
        except ValueError as error:
            problems.append(f"{shlex.join(argv)[:120]}: {error}")
        finally:
            gin.clear_config()
    return problems


def test_every_shell_block_is_checked_or_marked_illustrative():
    commands = _commands()
    problems, checked = [], 0
    for path in PAGES:
        for line, block, illustrative in _shell_blocks(path):
            if illustrative:
                continue
            where = f"{os.path.relpath(path, ROOT)}:{line}"
            for argv in _command_lines(block):
                for message in _check_command(argv, commands):
                    problems.append(f"{where}: {message}")
                checked += 1
    assert not problems, "\n".join(problems)
    assert checked >= 40  # the guides' commands, not an empty glob


def test_the_check_catches_drift():
    commands = _commands()
    assert _check_command(["zoo-train", "--gin_fil=x.gin"], commands) == [
        "zoo-train has no flag --gin_fil"
    ]
    wrong = _check_command(
        ["zoo-train", "--gin_file=gin_configs/quickstart.gin", "--gin_bindings=train.epoch = 4"],
        commands,
    )
    assert len(wrong) == 1 and "epoch" in wrong[0]
    assert _check_command(["zoo-visualize", "synthetic", "--variant=TCVL"], commands) == []
    assert _check_command(["python", "tools/nothing.py"], commands) == ["no tools/nothing.py"]
    assert _check_command(["make", "quickstart", "TF=gpu"], commands) == []
    assert _check_command(["make", "quikstart"], commands) == ["no make target quikstart"]
    launched = ["zoo-launch-local", "--workers=2", "--", "--gin_file=gin_configs/quickstart.gin"]
    assert _check_command(launched, commands) == []
    assert _check_command([*launched, "--epochs=2"], commands) == ["zoo-train has no flag --epochs"]
    assert "mark the block illustrative" in _check_command(["docker", "run"], commands)[0]


@pytest.mark.parametrize(
    "page, example",
    [
        ("docs/guides/methods.md", "examples/two_players.py"),
        ("docs/guides/finetune-and-serve.md", "examples/serving_client.py"),
        ("docs/guides/trunks-and-export.md", "examples/finetunable_savedmodel.py"),
    ],
)
def test_guides_include_the_examples_that_tests_run(page, example):
    text = open(os.path.join(ROOT, page)).read()
    assert f'--8<-- "{example}"' in text
    # included, not copied: no definition of the file appears in the page's own text
    code = open(os.path.join(ROOT, example)).read()
    definitions = re.findall(r"(?m)^(?:class|def) \w+.*:$", code)
    assert definitions and not [d for d in definitions if d in text]


def test_the_readme_is_short_and_links_only_to_pages_that_exist():
    text = open(os.path.join(ROOT, "README.md")).read()
    assert len(text.splitlines()) <= 200
    links = re.findall(r"\]\(((?:docs/)[^)#]+)", text)
    assert len(links) >= 15
    assert [link for link in links if not os.path.exists(os.path.join(ROOT, link))] == []
    # the entry points: every command and every gin folder, one line each
    for name in _commands():
        assert f"| `{name}` |" in text, name
    for folder in glob.glob(os.path.join(ROOT, "gin_configs", "*", "")):
        assert f"| `gin_configs/{os.path.basename(os.path.dirname(folder))}/` |" in text, folder
    # the path a new user takes to their own photos, from the README's first table
    assert "[Finetune and serve](docs/guides/finetune-and-serve.md)" in text
