"""Same as the `zoo-launch-local` command (see zoo/cli/launch_local.py)."""

from zoo.cli.launch_local import run

if __name__ == "__main__":
    run()
