"""Label-count sweeps: pretrained and scratch runs over n labels and seeds, resumable.

A sweep directory holds `results.jsonl`, one JSON line per finished cell (method, n,
seed, metric value and the task's other metrics). A cell already in the file is never
run again, so an interrupted sweep continues where it stopped; lines are appended and
flushed as each cell ends, so nothing finished is lost.
"""

import json
import math
import os

import numpy as np

from zoo.evaluation.utility import utility

DEFAULT_COUNTS = (100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 200000)
SCRATCH = "scratch"


def label_counts(dataset_size, counts=DEFAULT_COUNTS):
    """The sweep's n: the default counts up to the dataset size, and the size itself."""
    chosen = [n for n in counts if n < dataset_size]
    return chosen + [dataset_size]


def load_results(sweep_dir):
    """The finished cells of a sweep (a list of dicts)."""
    path = os.path.join(sweep_dir, "results.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def run_sweep(sweep_dir, methods, counts, seeds, run_cell, progress=print):
    """Runs every missing (method, n, seed) cell and appends its result.

    Args:
        sweep_dir: str. Created if missing.
        methods: dict name -> trunk source ("random" for the scratch baseline, which
            should be named "scratch").
        counts: list of int. Label counts.
        seeds: list of int.
        run_cell: callable(source, n, seed) -> dict with "value" and "metric".
        progress: callable(str) or None. Told about each cell.

    Returns:
        All results of the sweep, old and new.
    """
    os.makedirs(sweep_dir, exist_ok=True)
    done = {(r["method"], r["n"], r["seed"]) for r in load_results(sweep_dir)}
    cells = [(m, n, s) for n in counts for m in methods for s in seeds]
    todo = [c for c in cells if c not in done]
    if progress:
        progress(f"sweep {sweep_dir}: {len(cells) - len(todo)} of {len(cells)} cells done")
    with open(os.path.join(sweep_dir, "results.jsonl"), "a") as f:
        for i, (method, n, seed) in enumerate(todo, start=1):
            result = run_cell(methods[method], n, seed)
            row = {"method": method, "n": n, "seed": seed, **result}
            f.write(json.dumps(row) + "\n")
            f.flush()
            if progress:
                progress(
                    f"  [{i}/{len(todo)}] {method} n={n} seed={seed}: "
                    f"{result['metric']} {result['value']:.4f}"
                )
    return load_results(sweep_dir)


def summarize(results, higher_is_better=True):
    """Per method and n: mean and std over seeds, and the utility against "scratch".

    Returns:
        dict method -> list of rows {n, mean, std, seeds, utility, reason}, sorted by n.
    """
    by_method = {}
    for r in results:
        by_method.setdefault(r["method"], {}).setdefault(r["n"], []).append(r["value"])
    table = {}
    for method, cells in by_method.items():
        table[method] = [
            {"n": n, "mean": float(np.mean(v)), "std": float(np.std(v)), "seeds": len(v)}
            for n, v in sorted(cells.items())
        ]
    scratch = table.get(SCRATCH)
    for method, rows in table.items():
        for row in rows:
            row["utility"], row["reason"] = math.nan, "no scratch baseline"
            if scratch and method != SCRATCH and len(scratch) >= 2:
                row["utility"], row["reason"] = utility(
                    [r["n"] for r in scratch],
                    [r["mean"] for r in scratch],
                    row["n"],
                    row["mean"],
                    higher_is_better,
                )
            elif method == SCRATCH:
                row["utility"], row["reason"] = 0.0, ""
    return table


def markdown_table(table, metric_name):
    """Method x n table of mean ± std over seeds and the utility (— where undefined)."""
    counts = sorted({row["n"] for rows in table.values() for row in rows})
    lines = [
        f"| method | {' | '.join(f'n={n}' for n in counts)} |",
        "|---|" + "---|" * len(counts),
    ]
    for method, rows in sorted(table.items(), key=lambda kv: (kv[0] != SCRATCH, kv[0])):
        by_n = {row["n"]: row for row in rows}
        cells = []
        for n in counts:
            row = by_n.get(n)
            if row is None:
                cells.append("")
                continue
            cell = f"{row['mean']:.3f} ± {row['std']:.3f}"
            if method != SCRATCH:
                u = row["utility"]
                cell += f" (U {u:.2f})" if np.isfinite(u) else " (U —)"
            cells.append(cell)
        lines.append(f"| {method} | {' | '.join(cells)} |")
    lines.append("")
    lines.append(
        f"{metric_name}, mean ± std over seeds; U = n̂/n − 1 against scratch "
        "(— : the pretrained value is beyond the scratch curve's range)."
    )
    return "\n".join(lines)
