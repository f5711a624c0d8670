"""Runs the binaries in tools/ as a user does: a new Python process, output captured."""

import os

import processes
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def tool():
    def run(script, *args):
        return processes.python(os.path.join(ROOT, "tools", script), *args)

    return run
