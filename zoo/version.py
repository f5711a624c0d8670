"""Which code a run or a results page was made with."""

import functools
import os
import subprocess

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@functools.cache
def code_version() -> str:
    """The commit of the zoo checkout this package is in ("<commit> + changes" when its
    `zoo/` or `export/` differ from it), or "an installed copy" outside a git checkout."""

    def git(*args):
        try:
            found = subprocess.run(["git", "-C", _ROOT, *args], capture_output=True, text=True)
        except OSError:  # no git on the machine
            return None
        return found.stdout.strip() if found.returncode == 0 else None

    commit = git("rev-parse", "--short=12", "HEAD")
    if not commit:
        return "an installed copy (no git checkout)"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", "zoo", "export")
    return f"{commit} + changes" if changed else commit
