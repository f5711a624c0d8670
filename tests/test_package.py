import os
import sys

import processes
import pytest


def _run(code, **env):
    environment = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    environment.update(env, TF_CPP_MIN_LOG_LEVEL="3")
    return processes.run([sys.executable, "-c", code], env=environment)


@pytest.mark.slow
def test_import_selects_tensorflow_backend():
    result = _run("import zoo, keras; print(keras.backend.backend())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "tensorflow"


@pytest.mark.slow
def test_other_backend_in_environment_is_refused():
    result = _run("import zoo", KERAS_BACKEND="numpy")
    assert result.returncode != 0
    assert "KERAS_BACKEND='numpy'" in result.stderr and "tensorflow" in result.stderr


@pytest.mark.slow
def test_keras_already_imported_with_other_backend_is_refused():
    # Keras' other backends need packages not installed here: stand in a keras module
    # whose active backend is "jax".
    fake = (
        "import sys, types; keras = types.ModuleType('keras'); "
        "keras.backend = types.SimpleNamespace(backend=lambda: 'jax'); "
        "sys.modules['keras'] = keras; import zoo"
    )
    result = _run(fake)
    assert result.returncode != 0
    assert "already imported with backend 'jax'" in result.stderr


def test_the_guides_example_of_a_method_trains_both_players():
    """examples/two_players.py, which the guide "Methods, and adding one" includes
    (tests/test_docs.py), run as a script: both players train."""
    import runpy

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    path = os.path.join(root, "examples", "two_players.py")
    history = runpy.run_path(path)["main"]().history
    assert set(history) == {"g_loss", "d_loss"} and len(history["d_loss"]) == 3
    assert history["d_loss"][-1] < history["d_loss"][0]


def _sizes(path):
    """(kind, name, lines, lines without the docstring) of every function and class."""
    import ast

    tree = ast.parse(open(path).read())
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            lines = node.end_lineno - node.lineno + 1
            docstring = ast.get_docstring(node, clean=False)
            first = node.body[0]
            doc_lines = first.end_lineno - first.lineno + 1 if docstring is not None else 0
            kind = "class" if isinstance(node, ast.ClassDef) else "function"
            yield kind, node.name, lines, lines - doc_lines


def test_functions_and_method_classes_stay_small():
    """No function in zoo/ over 80 lines of code (its docstring not counted: a binary's
    documented arguments are not code), no class in zoo/methods/ over 250 lines."""
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "zoo")
    found = {"function": 0, "class": 0}
    too_long = []
    for folder, _, files in os.walk(root):
        for file in (f for f in files if f.endswith(".py")):
            path = os.path.join(folder, file)
            in_methods = os.path.basename(folder) == "methods"
            for kind, name, lines, code in _sizes(path):
                found[kind] += 1
                if kind == "function" and code > 80:
                    too_long.append(f"{path}: {name} has {code} lines of code (limit 80)")
                if kind == "class" and in_methods and lines > 250:
                    too_long.append(f"{path}: class {name} has {lines} lines (limit 250)")
    assert found["function"] > 500 and found["class"] > 50  # the walk saw the package
    assert not too_long, "\n".join(too_long)


def test_gin_names_of_keras_objects_come_from_zoo_configurables():
    """Importing the driver registers no Keras object with gin; `zoo.configurables`
    (what the binaries import) registers them and every zoo configurable."""
    code = (
        "import gin, zoo.experiment\n"
        "binding = 'zoo.experiment.train.optimizer = @keras.optimizers.SGD()'\n"
        "try:\n"
        "    gin.parse_config(binding)\n"
        "except ValueError as error:\n"
        "    print('refused:', 'keras.optimizers.SGD' in str(error))\n"
        "import zoo.configurables\n"
        "gin.parse_config(binding)\n"
        "gin.parse_config('zoo.evaluation.run_sweep.seeds = [1]')\n"
        "print('parsed')\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split("\n")[:2] == ["refused: True", "parsed"]
