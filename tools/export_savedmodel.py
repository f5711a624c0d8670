"""Exports a trained run's trunk or task as a SavedModel (same as the `zoo-export` command).

Usage:
    python tools/export_savedmodel.py --model_dir=runs/quickstart --task=depth --out=serving

(Not `tools/export.py`: Python puts a script's folder first on the import path, so a
file of that name would hide the `export` package from every program in tools/.)
"""

from zoo.cli.export import run

if __name__ == "__main__":
    run()
