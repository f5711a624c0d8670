"""Same as the `zoo-sweep` command (see zoo/cli/sweep.py)."""

from zoo.cli.sweep import run

if __name__ == "__main__":
    run()
