"""docs/reliability.md, rendered from the reliability tests themselves: their case tables
(what was tried) with the answer each case is checked to get, and every test's
docstring. `python tests/reliability/table.py` rewrites the page; `test_table.py` fails
when the page is not what the tests give."""

import ast
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PAGE = os.path.join(ROOT, "docs", "reliability.md")
MODULES = ("test_user_errors", "test_resume", "test_serving")


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code(text):
    return f"`{_cell(text)}`" if "`" not in str(text) else f"`` {_cell(text)} ``"


def _answer(expected):
    return "answered" if expected == "ok" else f"refused, the message containing {_code(expected)}"


def _tests(module):
    """(name, docstring) of every test function of a module, in file order."""
    with open(os.path.join(HERE, f"{module}.py")) as f:
        tree = ast.parse(f.read())
    found = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            doc = ast.get_docstring(node)
            if not doc:
                raise ValueError(f"{module}.{node.name} has no docstring to show in the page")
            found.append((node.name, " ".join(doc.split())))
    return found


def render() -> str:
    """The page's text."""
    sys.path[:0] = [p for p in (ROOT, HERE, os.path.dirname(HERE)) if p not in sys.path]
    import test_serving
    import test_user_errors

    lines = [
        "# Reliability: what was tried, and what each case gets",
        "",
        "Generated from the tests that check it (`tests/reliability/`): each row is a case",
        "a test runs, and its last column what the test asserts. `python",
        "tests/reliability/table.py` rewrites this page; `make test` fails when it is out of",
        "date. A ZooError's one line is what the commands print as `zoo-<command>:",
        "<message>` (exit status 1).",
        "",
        "## The tests",
        "",
        "| test | what it tries and checks |",
        "|---|---|",
    ]
    for module in MODULES:
        lines += [f"| `{module}.{name}` | {_cell(doc)} |" for name, doc in _tests(module)]
    lines += [
        "",
        "## Bad values in gin bindings (zoo-train)",
        "",
        "| case | binding | the one line contains |",
        "|---|---|---|",
    ]
    for case, bindings, fragments in test_user_errors.BINDINGS:
        said = ", ".join(_code(f) for f in fragments)
        lines.append(f"| {_cell(case)} | {', '.join(_code(b) for b in bindings)} | {said} |")
    lines += [
        "",
        "## A damaged or tampered method.json (restore, zoo-export, zoo-evaluate)",
        "",
        "| method.json holds | the one line names the file and contains |",
        "|---|---|",
    ]
    lines += [f"| {_cell(case)} | {_code(said)} |" for case, _, said in test_user_errors.TAMPERED]
    fixed = test_serving._float_cases(True)
    free = {name: expected for name, _, expected in test_serving._float_cases(False)}
    lines += [
        "",
        "## Requests to exported models (float images: `serving_default`, trunks' `train`)",
        "",
        f"Fixed size: a trunk or task export of {test_serving.S} x {test_serving.S} images;",
        "any size: a trunk exported without a fixed input size.",
        "",
        "| request | fixed size | any size |",
        "|---|---|---|",
    ]
    lines += [
        f"| {_cell(name)} | {_answer(expected)} | {_answer(free[name])} |"
        for name, _, expected in fixed
    ]
    lines += [
        "",
        "## Requests to `serve_bytes` (encoded files)",
        "",
        f"The task export of these cases has `max_pixels` = {test_serving.CAP}; exports",
        "default to 40 million.",
        "",
        "| request | answer |",
        "|---|---|",
    ]
    lines += [
        f"| {_cell(name)} | {_answer(expected)} |"
        for name, _, expected in test_serving._bytes_cases()
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    with open(PAGE, "w") as f:
        f.write(render())
    print(f"wrote {PAGE}")
