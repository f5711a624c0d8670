"""Exports a trained run's trunk or task as a SavedModel (same as the `zoo-export` command).

Usage:
    python tools/export.py --model_dir=runs/quickstart --task=depth --out=serving
"""

import os
import sys

# This file is named like the `export` package: keep its folder off the import path.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

from zoo.cli.export import run  # noqa: E402

if __name__ == "__main__":
    run()
