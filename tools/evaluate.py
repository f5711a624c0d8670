"""Same as the `zoo-evaluate` command (see zoo/cli/evaluate.py)."""

from zoo.cli.evaluate import run

if __name__ == "__main__":
    run()
