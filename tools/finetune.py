"""Same as the `zoo-finetune` command (see zoo/cli/finetune.py)."""

from zoo.cli.finetune import run

if __name__ == "__main__":
    run()
