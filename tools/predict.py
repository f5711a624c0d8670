"""Same as the `zoo-predict` command (see zoo/cli/predict.py)."""

from zoo.cli.predict import run

if __name__ == "__main__":
    run()
