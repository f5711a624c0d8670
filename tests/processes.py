"""Child processes of the tests: a hang guard, never a deadline.

A loaded machine may run a child many times slower than an idle one; the only limit is
one that no working run comes near (an hour), and when it is hit the test fails saying
that the limit was hit (not with the child's return code -9).
"""

import os
import subprocess
import sys

import pytest

HANG_GUARD = 3600  # seconds


def run(args, env=None, **kwargs):
    """`subprocess.run(args, capture_output=True, text=True)` under the hang guard;
    `env` is added to a copy of os.environ (TensorFlow's C++ logging off)."""
    environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    environment.update(env or {})
    try:
        return subprocess.run(
            args,
            capture_output=True,
            text=True,
            env=environment,
            timeout=HANG_GUARD,
            **kwargs,
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(
            f"hang guard: {' '.join(map(str, args))[:300]} ran longer than {HANG_GUARD} s "
            f"(the limit only catches a hang). Output so far: {str(error.stderr)[-1000:]}"
        )


def python(*args, env=None, **kwargs):
    """`run` of this interpreter with `args`."""
    return run([sys.executable, *args], env=env, **kwargs)


def communicate(process):
    """`process.communicate()` under the hang guard: (return code, stdout, stderr)."""
    try:
        out, err = process.communicate(timeout=HANG_GUARD)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"hang guard: a child process ran longer than {HANG_GUARD} s")
    return process.returncode, out, err


# Holds a folder's lock (zoo.files.exclusive) as a writer does, until its stdin closes.
_HOLDER = """
import sys
from zoo import files
with files.exclusive(sys.argv[1], sys.argv[2]):
    print("held", flush=True)
    sys.stdin.read()
"""


def hold_lock(folder, what="model_dir"):
    """A child process holding `folder`'s lock, once it holds it: close its stdin to end
    it, or kill it (a killed holder's lock blocks nothing)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(folder), what],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    return holder
