"""Same as the `zoo-visualize` command (see zoo/cli/visualize.py)."""

from zoo.cli.visualize import run

if __name__ == "__main__":
    run()
