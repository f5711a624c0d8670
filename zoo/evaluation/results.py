"""Results pages: Markdown generated from runs, each stamped with how it was made.

A results page is never edited by hand: a command writes it from the runs'
`metrics.json` or a sweep's / comparison's `results.jsonl`, and its first lines say the
date, the commit of the code that wrote it and the command, so a number on the page
can be traced to what produced it and made again.
"""

import datetime
import json
import math
import os
import shlex
import sys

import numpy as np

from zoo import files
from zoo.errors import MissingFile, UserError
from zoo.version import code_version


def mean_std(values):
    """(mean, sample standard deviation, count) of the finite values; (nan, nan, 0) if none."""
    values = [float(v) for v in values if v is not None and np.isfinite(v)]
    if not values:
        return math.nan, math.nan, 0
    std = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
    return float(np.mean(values)), std, len(values)


def format_stats(stats, digits: int = 3) -> str:
    """ "0.312 ± 0.004 (3)" from (mean, std, count); one value alone, "—" for none."""
    mean, std, count = stats
    if count == 0:
        return "—"
    if count == 1:
        return f"{mean:.{digits}f} (1)"
    return f"{mean:.{digits}f} ± {std:.{digits}f} ({count})"


def format_mean_std(values, digits: int = 3) -> str:
    """`format_stats` of the finite values."""
    return format_stats(mean_std(values), digits)


def command_line(argv=None) -> str:
    """The command that is running, as a user would type it."""
    argv = list(sys.argv if argv is None else argv)
    argv[0] = os.path.basename(argv[0])
    if argv[0] in ("__main__.py", "evaluate.py"):
        argv[0] = "zoo-evaluate"
    return shlex.join(argv)


def stamp(command: str, today=None) -> str:
    """The lines that head every generated page."""
    today = today or datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    return (
        f"*Generated on {today} by the code at commit `{code_version()}` with "
        f"`{command}`. Do not edit: run the command again.*\n"
    )


def write_page(path: str, title: str, body: str, command: str) -> str:
    """Writes a generated page (the stamp, then `body`) and returns its path."""
    return files.write_text(path, f"# {title}\n\n{stamp(command)}\n{body.rstrip()}\n")


def _metrics(model_dir):
    path = os.path.join(model_dir, "metrics.json")
    if not os.path.exists(path):
        raise MissingFile(f"{model_dir} has no metrics.json: is it a finished zoo-train run?")
    with open(path) as f:
        return json.load(f)


def runs_table(model_dirs) -> str:
    """Markdown: every held-out metric of same-configuration runs (e.g. seeds), untrained
    and trained, as mean ± std over the runs, then each run's own trained values."""
    if not model_dirs:
        raise UserError("give at least one run (--model_dir).")
    runs = [_metrics(d) for d in model_dirs]
    names = [os.path.basename(os.path.normpath(d)) for d in model_dirs]
    header = ["task", "metric", "untrained", "trained", *names, "meaning"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    first = runs[0]
    for task, metrics in first["trained"].items():
        for name in metrics:
            untrained = [r["untrained"].get(task, {}).get(name) for r in runs]
            trained = [r["trained"].get(task, {}).get(name) for r in runs]
            info = first.get("metric_info", {}).get(task, {}).get(name, ["neither", ""])
            meaning = info[1] + ("" if info[0] == "neither" else f" ({info[0]} is better)")
            meaning = meaning.replace("|", "\\|")  # a table cell
            each = ["—" if v is None else f"{v:.3f}" for v in trained]
            cells = [task, name, format_mean_std(untrained), format_mean_std(trained), *each]
            lines.append("| " + " | ".join([*cells, meaning]) + " |")
    codes = sorted({r.get("code", "not recorded") for r in runs})
    seconds = [r.get("seconds") for r in runs]
    steps = [len(r.get("history", {}).get("loss", [])) for r in runs]
    lines += [
        "",
        f"Held-out examples per task: {first.get('examples', {})}. Epochs per run: {steps}; "
        f"training seconds per run: {[round(s) for s in seconds if s is not None]}. "
        f"Code the runs were finished with: {', '.join(codes)}.",
    ]
    return "\n".join(lines)
