"""Label-count sweeps: pretrained and scratch runs over n labels and seeds, resumable.

A sweep directory holds `results.jsonl`, one JSON line per finished cell (method, n,
seed, metric value and the task's other metrics). A cell already in the file is never
run again, so an interrupted sweep continues where it stopped; lines are appended and
flushed as each cell ends, so nothing finished is lost.

Reading and reporting a sweep needs no TensorFlow: the cells import the transfer (and
with it TensorFlow) when they run.
"""

import functools
import hashlib
import json
import math
import os
import subprocess
import sys
import time

import gin
import numpy as np

from zoo import files
from zoo.data.synthetic.scene import FACTORS, SceneSpec  # FACTORS: "TCVLP"
from zoo.errors import ConfigMismatch, MissingFile, UserError
from zoo.evaluation import results as pages
from zoo.evaluation.plots import plot_factor_changes, plot_label_curves
from zoo.evaluation.utility import utility
from zoo.progress import Progress

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


def source_identity(source):
    """What a sweep cell's result depends on in its trunk source: "random", or the
    sha256 of the weights it loads (a run's last checkpoint, a checkpoint file, an
    exported trunk's variables and graph), with the file it came from."""
    if source == "random":
        return "random"
    paths = []
    if os.path.isfile(source):
        paths = [source]
    elif os.path.exists(os.path.join(source, "method.json")):
        from zoo.experiment import checkpoints

        paths = checkpoints(source)[-1:]
    elif os.path.exists(os.path.join(source, "saved_model.pb")):
        variables = os.path.join(source, "variables")
        paths = [os.path.join(source, "saved_model.pb")] + sorted(
            os.path.join(variables, f) for f in os.listdir(variables)
        )
    if not paths:
        return f"missing:{source}"  # the cell itself will say what is wrong
    sha = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                sha.update(block)
    return f"{os.path.basename(paths[0])}:{sha.hexdigest()[:16]}"


def _transfer_cell(source, n, seed, variant=None, like=None):
    from zoo.evaluation.transfer import transfer

    extra = {"variant": variant} if variant else {}
    if source == "random" and like is not None:
        extra["like"] = like  # the scratch baseline takes the pretrained architecture
    return transfer(source, num_labels=n, seed=seed, **extra)


@gin.configurable(
    module="zoo.evaluation", denylist=["sweep_dir", "run_cell", "progress", "executor"]
)
def run_sweep(
    sweep_dir,
    methods=None,
    counts=None,
    seeds=(0, 1, 2),
    run_cell=None,
    progress=print,
    variants=None,
    max_labels=10000,
    executor=None,
):
    """Runs every missing (method, n, seed) cell and appends its result. One process at a
    time writes a sweep folder: a second one is refused (InUse, naming the first's PID).

    Args:
        sweep_dir: str. Created if missing.
        methods: dict name -> trunk source (a zoo-train model_dir, a checkpoint file or
            an exported trunk; "{variant}" in a source is replaced by the variant). The
            scratch baseline, "scratch" -> "random", is always added; it takes the
            architecture of the first method's trunk (new weights), unless
            `zoo.evaluation.transfer.builder` names another.
        counts: list of int or None. Label counts. Defaults to `label_counts(max_labels)`.
        seeds: list of int. Defaults to (0, 1, 2).
        run_cell: callable(source, n, seed[, variant=]) -> dict with "value" and "metric".
            Defaults to `zoo.evaluation.transfer` (configured with gin).
        progress: callable(str) or None. Told about each cell.
        variants: list of str or None. Dataset variants ("----" .. "TCVL"): each gets its
            own sub-folder of `sweep_dir` and is passed to `run_cell`.
        max_labels: int. Largest default count. Defaults to 10000.
        executor: callable or None. How the missing cells run: `run_serially` (None,
            the default) or `zoo.cli.ray_cells.RayCells(...)`, in parallel on a
            Ray cluster; the results file is the same either way.

    Returns:
        All results of the sweep (of the last variant, with `variants`), old and new.
    """
    methods = {SCRATCH: "random", **(methods or {})}
    if methods[SCRATCH] != "random":
        raise UserError(f"the method name {SCRATCH!r} is kept for the random-init baseline.")
    counts = list(counts) if counts else label_counts(max_labels)
    if any(not isinstance(n, int) or n < 1 for n in counts):
        raise UserError(f"`counts` must be ints >= 1. Received: {counts}")
    for variant in variants or []:
        SceneSpec(variant=variant)  # a clear error for a bad variant string, before any run
    settings = None
    if run_cell is None:
        run_cell, settings = _transfer_cell, transfer_settings()
    results = []
    for variant in variants or [None]:
        folder = os.path.join(sweep_dir, variant) if variant else sweep_dir
        if settings is not None:
            _keep_settings(folder, settings)
        sources = {m: s.replace("{variant}", variant) if variant else s for m, s in methods.items()}
        cell = functools.partial(run_cell, variant=variant) if variant else run_cell
        pretrained = [s for m, s in sources.items() if m != SCRATCH]
        if run_cell is _transfer_cell and pretrained:
            cell = functools.partial(cell, like=pretrained[0])
        results = _run_folder(folder, sources, counts, seeds, cell, progress, executor)
    return results


def transfer_settings():
    """The gin configuration that the sweep's cells run with, without the sweep's grid."""
    sections = gin.config_str().strip().split("\n\n")
    kept = [s for s in sections if not s.startswith("# Parameters for run_sweep:")]
    return "\n\n".join(kept) + "\n"


def _keep_settings(folder, settings):
    """Stores the cells' configuration with the results; refuses to mix two of them."""
    path = os.path.join(folder, "transfer.gin")
    if os.path.exists(path):
        with open(path) as f:
            if f.read() != settings:
                raise UserError(
                    f"{folder} holds results of another transfer configuration (see {path}); "
                    "use another sweep directory, or the same configuration to resume."
                )
        return
    files.make_dirs(folder, "sweep folder")
    files.write_text(path, settings)


def _run_folder(sweep_dir, methods, counts, seeds, run_cell, progress, executor):
    # one writer per folder: each record rewrites the file from the writer's own rows, so
    # a second process would drop the first one's cells
    with files.exclusive(sweep_dir, "sweep folder"):
        return _run_locked(sweep_dir, methods, counts, seeds, run_cell, progress, executor)


def _run_locked(sweep_dir, methods, counts, seeds, run_cell, progress, executor):
    rows = load_results(sweep_dir)
    identity = {m: source_identity(source) for m, source in methods.items()}
    changed = sorted(
        {
            r["method"]
            for r in rows
            if r["method"] in identity
            and r.get("source_id", identity[r["method"]]) != identity[r["method"]]
        }
    )
    if changed:
        raise ConfigMismatch(
            f"{sweep_dir} holds cells of {changed} computed from other weights than "
            f"{[methods[m] for m in changed]} hold now (the run trained further, or the name "
            "points at another run); use another --sweep_dir, or another method name."
        )
    done = {(r["method"], r["n"], r["seed"]) for r in rows}
    cells = [(m, n, s) for n in counts for m in methods for s in seeds]
    todo = [c for c in cells if c not in done]
    if progress:
        progress(f"sweep {sweep_dir}: {len(cells) - len(todo)} of {len(cells)} cells done")
    path = os.path.join(sweep_dir, "results.jsonl")
    finished = []

    def record(cell, result, seconds):
        method, n, seed = cell
        rows.append(
            {"method": method, "n": n, "seed": seed, **result, "source_id": identity[method]}
        )
        # the whole file, renamed into place: a kill never leaves half a line
        files.write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
        finished.append(cell)
        if progress:
            progress(
                f"  [{len(finished)}/{len(todo)}] {method} n={n} seed={seed}: "
                f"{result['metric']} {result['value']:.4f} ({seconds:.0f} s)"
            )

    (executor or run_serially)(run_cell, [(c, methods[c[0]], c[1], c[2]) for c in todo], record)
    return load_results(sweep_dir)


def train_process(gin_files, gin_bindings, model_dir, seed, what):
    """Trains a grid cell in a zoo-train process (`gin_files` in order, then the seed,
    the `gin_bindings` and verbose 0); raises UserError naming `what` with the end of
    its stderr when it fails."""
    command = [
        sys.executable,
        "-m",
        "zoo.cli.train",
        *(f"--gin_file={f}" for f in gin_files),
        f"--gin_bindings=zoo.experiment.train.seed = {seed}",
        *(f"--gin_bindings={b}" for b in gin_bindings),
        "--gin_bindings=zoo.experiment.train.verbose = 0",
        f"--model_dir={model_dir}",
    ]
    finished = subprocess.run(command, capture_output=True, text=True)
    if finished.returncode != 0:
        raise UserError(f"{what} failed ({model_dir}):\n{finished.stderr[-3000:]}")


def run_serially(run_cell, cells, record):
    """Runs `run_cell(source, n, seed)` for each (key, source, n, seed) of `cells` in this
    process, one after the other, calling `record(key, result, seconds)` after each
    (a sweep's executor; `zoo.cli.ray_cells.RayCells` runs them in parallel)."""
    for key, source, n, seed in cells:
        start = time.perf_counter()
        result = run_cell(source, n, seed)
        record(key, result, time.perf_counter() - start)


def run_grid(folder, cells, run, say, describe, executor=None):
    """Runs the missing `cells` ((key, a, b, c) with `run(a, b, c)` -> record) with
    `executor` (`run_serially` by default), keeping `folder/results.jsonl` whole after
    each (each record under its key, `describe(key, record)` said when it lands);
    returns every record. One process at a time writes a folder (files.exclusive)."""
    with files.exclusive(folder, "grid folder"):
        return _run_grid_locked(folder, cells, run, say, describe, executor)


def _run_grid_locked(folder, cells, run, say, describe, executor):
    path = os.path.join(folder, "results.jsonl")
    done = {tuple(r["key"]): r for r in load_results(folder)}
    todo = [c for c in cells if tuple(c[0]) not in done]
    progress = Progress(len(todo), f"{os.path.basename(folder)} cells") if todo else None
    finished = []

    def record(key, result, seconds):
        done[tuple(key)] = {"key": list(key), **result}
        files.write_text(path, "".join(json.dumps(r) + "\n" for r in done.values()))
        finished.append(key)
        say(f"{describe(key, result)} ({seconds:.0f} s)")
        progress.update(len(finished))

    (executor or run_serially)(run, todo, record)
    return list(done.values())


def config_texts(config_dir, gin_files) -> dict:
    """{"rows": {file: text} of a paper's gin folder (the rows and what they include),
    "gin_files": {file: text} of the gin files given after them}: what a grid's cells
    are trained with, for `keep_grid_settings`."""
    out = {"gin_files": {}, "rows": {}}
    for key, paths in (
        ("gin_files", list(gin_files)),
        ("rows", [os.path.join(config_dir, n) for n in sorted(os.listdir(config_dir))]),
    ):
        for path in paths:
            with open(path) as f:
                out[key][os.path.basename(path)] = f.read()
    return out


def keep_grid_settings(folder, settings):
    """Stores a grid's settings in `folder/settings.json`; refuses a folder whose cells
    were made with other settings."""
    path = os.path.join(folder, "settings.json")
    if os.path.exists(path):
        with open(path) as f:
            if json.load(f) != settings:
                raise UserError(
                    f"{folder} holds cells made with other settings (see {path}); use another "
                    "--out, or the same settings to resume."
                )
        return
    files.make_dirs(folder, "grid folder")
    files.write_json(path, settings)


def summarize(results, higher_is_better=True):
    """Per method and n: mean and sample standard deviation over seeds (NaN for one seed),
    and the utility against "scratch".

    Returns:
        dict method -> list of rows {n, mean, std, seeds, utility, reason}, sorted by n.
    """
    by_method = {}
    for r in results:
        by_method.setdefault(r["method"], {}).setdefault(r["n"], []).append(r["value"])
    table = {}
    for method, cells in by_method.items():
        table[method] = [
            dict(zip(("mean", "std", "seeds"), pages.mean_std(v)), n=n)
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
            cell = f"{row['mean']:.3f}" + (f" ± {row['std']:.3f}" if row["seeds"] > 1 else "")
            if method != SCRATCH:
                u = row["utility"]
                cell += f" (U {u:.2f})" if np.isfinite(u) else " (U —)"
            cells.append(cell)
        lines.append(f"| {method} | {' | '.join(cells)} |")
    lines.append("")
    lines.append(
        f"{metric_name}, mean ± sample standard deviation over seeds; U = n̂/n − 1 against scratch "
        "(— : the pretrained value is beyond the scratch curve's range)."
    )
    return "\n".join(lines)


def mean_utility(rows):
    """Mean of a method's utilities over the n where it is defined (NaN if none is)."""
    values = [row["utility"] for row in rows if np.isfinite(row["utility"])]
    return float(np.mean(values)) if values else math.nan


def cell_utilities(folder, method, higher_is_better=True) -> dict:
    """{(n, seed): the utility of `method`'s cell} in one sweep folder, each cell against
    the mean scratch curve (only where the utility is defined)."""
    results = load_results(folder)
    rows = summarize([r for r in results if r["method"] == SCRATCH]).get(SCRATCH, [])
    if len(rows) < 2:
        return {}
    ns, means = [x["n"] for x in rows], [x["mean"] for x in rows]
    out = {}
    for r in results:
        if r["method"] == method:
            u, _ = utility(ns, means, r["n"], r["value"], higher_is_better)
            if np.isfinite(u):
                out[(r["n"], r["seed"])] = float(u)
    return out


def seed_utilities(folder, method, n=None, higher_is_better=True) -> dict:
    """{seed: `method`'s utility at `n`, or (n=None) its mean over the n where it is
    defined} in one sweep folder (`cell_utilities`)."""
    by_seed = {}
    for (cell_n, seed), u in sorted(cell_utilities(folder, method, higher_is_better).items()):
        if n is None or cell_n == n:
            by_seed.setdefault(seed, []).append(u)
    return {seed: float(np.mean(values)) for seed, values in by_seed.items()}


def variant_dirs(sweep_dir):
    """{variant: folder} of a sweep over dataset variants (sub-folders named like "T-V-")."""
    found = {}
    if os.path.isdir(sweep_dir):
        for name in sorted(os.listdir(sweep_dir)):
            folder = os.path.join(sweep_dir, name)
            if (
                len(name) in (4, 5)
                and all(c in ("-", FACTORS[i]) for i, c in enumerate(name))
                and os.path.exists(os.path.join(folder, "results.jsonl"))
            ):
                found[name] = folder
    return found


def factor_changes(utilities):
    """Change in utility between variants that differ in one factor (Newell & Deng Fig. 6).

    Args:
        utilities: dict variant -> dict method -> utility (e.g. `mean_utility`).

    Returns:
        dict method -> dict factor letter -> list of (variant without the factor,
        variant with it, utility with − utility without), for every such pair where
        both utilities are finite.
    """
    changes = {}
    for low, high, letter in factor_pairs(utilities):
        for method, u_low in utilities[low].items():
            u_high = utilities[high].get(method, math.nan)
            if np.isfinite(u_low) and np.isfinite(u_high):
                changes.setdefault(method, {}).setdefault(letter, []).append(
                    (low, high, float(u_high - u_low))
                )
    return changes


def factor_pairs(variants):
    """[(variant without a factor, variant with it, the factor's letter)] of the pairs of
    `variants` that differ in exactly one factor, e.g. ("-CVL", "TCVL", "T")."""
    pairs = []
    for low in variants:
        for i, letter in enumerate(low):
            if letter != "-":
                continue
            pairs += [
                (low, high, high[i])
                for high in variants
                if high[i] != "-" and high[:i] + "-" + high[i + 1 :] == low
            ]
    return pairs


def plot_curves(sweep_dir, path, higher_is_better=True):
    """The metric and the utility vs labels of one sweep folder (see `plots.plot_label_curves`).

    Returns:
        False when there is no scratch curve of two or more n to compare with.
    """

    results = load_results(sweep_dir)
    table = summarize(results, higher_is_better)
    if SCRATCH not in table or len(table[SCRATCH]) < 2:
        return False

    def curve(rows):
        return [r["n"] for r in rows], [r["mean"] for r in rows]

    plot_label_curves(
        curve(table[SCRATCH]),
        {m: curve(rows) for m, rows in table.items() if m != SCRATCH},
        path,
        metric_name=results[0]["metric"],
        higher_is_better=higher_is_better,
        title=os.path.basename(os.path.normpath(sweep_dir)),
    )
    return True


def variant_utilities(sweep_dir, higher_is_better=True):
    """{variant: {method: mean utility over n}} of a sweep over dataset variants."""
    utilities = {}
    for variant, folder in variant_dirs(sweep_dir).items():
        table = summarize(load_results(folder), higher_is_better)
        utilities[variant] = {m: mean_utility(rows) for m, rows in table.items() if m != SCRATCH}
    return utilities


def plot_factors(sweep_dir, path, higher_is_better=True):
    """Newell & Deng Fig. 6 for a sweep over variants. Returns False if no pair differs
    in exactly one factor with finite utilities on both sides."""

    changes = factor_changes(variant_utilities(sweep_dir, higher_is_better))
    if not changes:
        return False
    plot_factor_changes(changes, path)
    return True


def write_report(sweep_dir, higher_is_better=True):
    """Writes report.md and the plots of a sweep (or of a sweep over variants).

    A plain sweep gets report.png (metric and utility vs labels). A sweep over variants
    (sub-folders named by variant) gets one section and one report.png per variant, a
    table of mean utility per variant and factors.png (change in utility per factor).

    Returns:
        (Markdown text, list of files written).
    """
    variants = variant_dirs(sweep_dir)
    folders = variants or {None: sweep_dir}
    sections, written = [], []
    for variant, folder in folders.items():
        results = load_results(folder)
        if not results:
            continue
        text = markdown_table(summarize(results, higher_is_better), results[0]["metric"])
        if plot_curves(folder, os.path.join(folder, "report.png"), higher_is_better):
            written.append(os.path.join(folder, "report.png"))
        sections.append(f"## variant {variant}\n\n{text}" if variant else text)
    if not sections:
        raise MissingFile(f"{sweep_dir} holds no results.jsonl with results.")
    if variants:
        utilities = variant_utilities(sweep_dir, higher_is_better)
        methods = sorted({m for by in utilities.values() for m in by})
        lines = [
            "## mean utility over n, per variant",
            "",
            f"| variant | {' | '.join(methods)} |",
            "|---|" + "---|" * len(methods),
        ]
        for variant, by in utilities.items():
            cells = [f"{by.get(m, math.nan):.2f}" for m in methods]
            lines.append(f"| {variant} | {' | '.join(cells).replace('nan', '—')} |")
        sections.append("\n".join(lines))
        if plot_factors(sweep_dir, os.path.join(sweep_dir, "factors.png"), higher_is_better):
            written.append(os.path.join(sweep_dir, "factors.png"))
    text = "\n\n".join(sections)
    files.write_text(os.path.join(sweep_dir, "report.md"), text + "\n")
    return text, [os.path.join(sweep_dir, "report.md")] + written
