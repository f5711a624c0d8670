"""Same as the `zoo-make-synthetic` command (see zoo/cli/make_synthetic.py)."""

from zoo.cli.make_synthetic import run

if __name__ == "__main__":
    run()
