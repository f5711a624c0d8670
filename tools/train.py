"""Trains the experiment a gin configuration describes (same as the `zoo-train` command).

Usage:
    python tools/train.py --gin_file=gin_configs/quickstart.gin --model_dir=runs/quickstart
"""

from zoo.cli.train import run

if __name__ == "__main__":
    run()
