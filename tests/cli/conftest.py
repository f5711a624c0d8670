"""Runs the binaries in tools/ as a user does: a new Python process, output captured."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def tool():
    def run(script, *args):
        return subprocess.run(
            [sys.executable, os.path.join(ROOT, "tools", script), *args],
            capture_output=True,
            text=True,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
            timeout=300,
        )

    return run
