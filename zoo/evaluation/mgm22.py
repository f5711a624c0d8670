"""MGM 2022's comparison (Tables 2-4, 9, 12): the rows of gin_configs/mgm22 at
labelled fractions and seeds, their three pixel metrics beside the paper's.

A cell is one row (`ROWS`), one labelled fraction and one seed: a zoo-train run of the
row's gin file (three, one per task, for ST) plus the grid's gin files (small.gin by
default), with `LABELLED`, the seed and the epochs bound. Every row trains its tasks for
the same `epochs`; a row with a generator trains G and D for `gan_epochs` more, between
its first (tasks alone) epoch and the joint ones, as App. B's three stages do. MGMr has
no 100 % cell: its weakly labelled images are the scenes the labelled share leaves out.

Each cell records the held-out metrics the paper reports on NYUv2 (`METRICS`: SS mIoU,
DE mean absolute error, SN mean angle) from the runs' metrics.json. `grid` runs the cells
that `<out>/results.jsonl` lacks (resumable); `report` prints the table per fraction with
the paper's numbers beside, and the seed-wise differences that the paper's claims rest
on; `plot` draws each metric against the labelled fraction per row.
`zoo.evaluation.claims` judges the claims on the records.
"""

import functools
import json
import os

import numpy as np

from zoo import files
from zoo.errors import UserError
from zoo.evaluation import sweep
from zoo.evaluation.claims import judge

CONFIG_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "gin_configs",
    "mgm22",
)
# row -> (its gin files in gin_configs/mgm22, the paper's name, trains a generator)
ROWS = {
    "st": (("st_segmentation", "st_depth", "st_normals"), "ST", False),
    "mt": (("mt",), "MT", False),
    # MT with three times the epochs: as many updates of E as MGM/G's three a step
    "mt_3x": (("mt",), "MT, 3x epochs", False),
    "mgm_g": (("mgm_g",), "MGM/G", False),
    "mgm_j": (("mgm_j",), "MGM/j", True),
    "mgm": (("mgm",), "MGM", True),
    "mgmr": (("mgmr",), "MGMr", False),
    "mgm_self": (("mgm_self",), "MGM/self", True),
    "mgm_refine": (("mgm_refine",), "MGM/refine", True),
    "mgm_recon": (("mgm_recon",), "MGM_recon", True),
    "mgm_end_to_end": (("mgm_end_to_end",), "PEoE", True),
    "mgm_separate": (("mgm_separate",), "LSeT", True),
    "dcgan": (("dcgan",), "MGM-DCGAN", True),
}
DEFAULT_ROWS = ("st", "mt", "mgm_g", "mgm_j", "mgm", "mgmr")
# task -> (metric of its metrics.json, higher is better, the paper's column)
METRICS = {
    "semantic_segmentation": ("miou", True, "SS mIoU"),
    "depth": ("mae", False, "DE mean abs. error"),
    "normals": ("mean_angle", False, "SN mean angle"),
}
# the paper's NYUv2 numbers (SS mIoU, DE mABSE, SN mAD; its Tables 2, 3, 4, 9, 12)
PAPER = {
    ("st", 1.0): (0.249, 0.748, 0.273),
    ("mt", 1.0): (0.256, 0.708, 0.283),
    ("mgm", 1.0): (0.264, 0.698, 0.255),
    ("st", 0.5): (0.230, 0.837, 0.309),
    ("mt", 0.5): (0.237, 0.819, 0.291),
    ("mgm_g", 0.5): (0.243, 0.799, 0.287),
    ("mgm_j", 0.5): (0.243, 0.763, 0.281),
    ("mgm", 0.5): (0.251, 0.734, 0.273),
    ("mgmr", 0.5): (0.258, 0.723, 0.270),
    ("mgm_self", 0.5): (0.239, 0.776, 0.279),
    ("mgm_refine", 0.5): (0.254, 0.808, 0.290),
    ("mgm_recon", 0.5): (0.241, 0.768, 0.285),
    ("mgm_end_to_end", 0.5): (0.211, 0.896, 0.301),
    ("mgm_separate", 0.5): (0.247, 0.768, 0.277),
    ("dcgan", 0.5): (0.245, 0.750, 0.285),
    ("st", 0.25): (0.199, 0.908, 0.312),
    ("mt", 0.25): (0.207, 0.874, 0.296),
    ("mgm_g", 0.25): (0.215, 0.868, 0.292),
    ("mgm_j", 0.25): (0.220, 0.860, 0.286),
    ("mgm", 0.25): (0.229, 0.844, 0.277),
    ("mgmr", 0.25): (0.231, 0.821, 0.274),
    ("st", 0.1): (0.162, 1.004, 0.337),
    ("mt", 0.1): (0.185, 0.930, 0.311),
    ("mgm", 0.1): (0.197, 0.911, 0.291),
}
DEFAULT_FRACTIONS = (1.0, 0.25)


def row_files(row: str) -> list:
    """The gin files of a row (one per run)."""
    return [os.path.join(CONFIG_DIR, f"{name}.gin") for name in ROWS[row][0]]


def check(rows, fractions, seeds, epochs, gan_epochs):
    """Refuses unknown rows, fractions outside (0, 1], no seeds, and epochs that leave
    no joint epoch after the first (tasks-alone) one."""
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise UserError(f"unknown rows {unknown}; rows: {list(ROWS)}")
    bad = [f for f in fractions if not 0.0 < f <= 1.0]
    if bad:
        raise UserError(f"fractions must be in (0, 1]. Received: {bad}")
    if not seeds:
        raise UserError("give at least one seed")
    if epochs < 2 or gan_epochs < 0:
        raise UserError(
            f"epochs must be >= 2 (one of the tasks alone, then joint ones) and gan_epochs "
            f">= 0. Received: epochs={epochs}, gan_epochs={gan_epochs}"
        )


def cells(rows, fractions, seeds) -> list:
    """(key, row, fraction, seed) of the grid, seed by seed (an interrupted grid holds
    whole seeds); MGMr has no cell at fraction 1."""
    return [
        ((r, float(f), int(s)), r, float(f), int(s))
        for s in seeds
        for f in fractions
        for r in rows
        if not (r == "mgmr" and f == 1.0)
    ]


def grid(
    rows,
    fractions,
    seeds,
    out_dir: str,
    epochs: int = 20,
    gan_epochs: int = 2,
    gin_files=None,
    gin_bindings=(),
    executor=None,
    say=print,
) -> list:
    """Trains and measures every missing cell (module docstring); returns all records.

    A cell's runs are in `out_dir/<row>/f<fraction>/seed_<k>/<gin file>`; its record
    joins `out_dir/results.jsonl`. A folder keeps the settings of its first grid
    (`settings.json`: the rows' files, the extra gin files, the bindings, the epochs) and
    refuses others.
    """
    check(rows, fractions, seeds, epochs, gan_epochs)
    gin_files = [os.path.join(CONFIG_DIR, "small.gin")] if gin_files is None else list(gin_files)
    settings = {"gin_bindings": list(gin_bindings), "epochs": epochs, "gan_epochs": gan_epochs}
    settings.update(sweep.config_texts(CONFIG_DIR, gin_files))
    sweep.keep_grid_settings(out_dir, settings)
    run = functools.partial(
        run_cell, out_dir, tuple(gin_files), tuple(gin_bindings), epochs, gan_epochs
    )

    def describe(key, record):
        row, fraction, seed = key
        values = ", ".join(f"{METRICS[t][0]} {record[t]:.3f}" for t in METRICS)
        return f"{ROWS[row][1]}, {fraction:g} of the labels, seed {seed}: {values}"

    return sweep.run_grid(out_dir, cells(rows, fractions, seeds), run, say, describe, executor)


def cell_bindings(row, fraction, epochs, gan_epochs) -> list:
    """The gin bindings of a row's cell: the labelled share, and the epochs that give
    every row `epochs` of its tasks (one alone, then joint ones for MGM's rows; "mt_3x"
    three times as many) and a row with a generator `gan_epochs` of G and D on top."""
    gan = ROWS[row][2]
    task_epochs = 3 * epochs if row == "mt_3x" else epochs
    bindings = [
        f"LABELLED = {fraction}",
        f"zoo.experiment.train.epochs = {task_epochs + (gan_epochs if gan else 0)}",
    ]
    if row not in ("st", "mt", "mt_3x"):
        bindings.append(f"zoo.methods.MGM.stage_epochs = (1, {gan_epochs if gan else 0})")
    return bindings


def run_cell(out_dir, gin_files, gin_bindings, epochs, gan_epochs, row, fraction, seed) -> dict:
    """Trains one cell's runs in zoo-train processes and returns its record: the row,
    fraction and seed, each task's metric (`METRICS`) and the runs' folders."""
    folder = os.path.join(out_dir, row, f"f{fraction:g}", f"seed_{seed}")
    bindings = [*cell_bindings(row, fraction, epochs, gan_epochs), *gin_bindings]
    record = {"row": row, "fraction": fraction, "seed": seed, "model_dirs": []}
    for path in row_files(row):
        model_dir = os.path.join(folder, os.path.splitext(os.path.basename(path))[0])
        sweep.train_process(
            [path, *gin_files],
            bindings,
            model_dir,
            seed,
            f"training {ROWS[row][1]}, fraction {fraction:g}, seed {seed}",
        )
        with open(os.path.join(model_dir, "metrics.json")) as f:
            trained = json.load(f)["trained"]
        for task, (metric, _, _) in METRICS.items():
            if task in trained:
                record[task] = float(trained[task][metric])
        record["model_dirs"].append(model_dir)
    return record


# -- the report ---------------------------------------------------------------------------


def values(records, row, fraction, task) -> dict:
    """{seed: value} of one row's metric for `task` at `fraction`."""
    return {
        r["seed"]: r[task]
        for r in records
        if r["row"] == row and r["fraction"] == fraction and task in r
    }


def _cell(found):
    found = list(found)
    if not found:
        return "—"
    std = float(np.std(found, ddof=1)) if len(found) > 1 else 0.0
    return f"{np.mean(found):.3f} ± {std:.3f} ({len(found)})"


def table(records, fraction) -> str:
    """Markdown: each row's three metrics at `fraction` (mean ± std (seeds)), the paper's
    NYUv2 number beside each (its units: the zoo's depth error is in metres of the
    synthetic scenes, its angle in degrees; NYUv2's are other scales)."""
    rows = [r for r in ROWS if any(x["row"] == r and x["fraction"] == fraction for x in records)]
    header = ["row", *(f"{METRICS[t][2]} {'↑' if METRICS[t][1] else '↓'}" for t in METRICS)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        paper = PAPER.get((row, fraction))
        cells = [ROWS[row][1]]
        for i, task in enumerate(METRICS):
            text = _cell(values(records, row, fraction, task).values())
            cells.append(text + (f" (paper {paper[i]:.3f})" if paper else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def difference(records, better, worse, fraction, task) -> dict:
    """{seed: better's metric minus worse's, signed so that > 0 favours `better`}."""
    mine, other = values(records, better, fraction, task), values(records, worse, fraction, task)
    sign = 1.0 if METRICS[task][1] else -1.0
    return {s: sign * (v - other[s]) for s, v in mine.items() if s in other}


# (better row, worse row, the paper's statement) that the report judges per fraction
COMPARISONS = (
    ("mgm", "st", "MGM beats ST (Table 2)"),
    ("mgm", "mt", "MGM beats MT (Table 2)"),
    ("mgm", "mgm_g", "the generator adds to MGM/G (Table 3)"),
    ("mgm", "mgm_j", "joint training beats a separately trained G (Table 3)"),
    ("mgm_g", "mt", "refinement + SimCLR beat MT without a generator (Table 3)"),
    ("mgm_g", "mt_3x", "... and beat MT given as many updates of E (a control)"),
    ("mgmr", "mgm", "real weakly labelled images do at least as well as generated (Table 2)"),
)


def comparisons(records) -> str:
    """Markdown: per comparison, fraction and task, the seed-wise advantage of the
    better row (positive = as the paper says) and the verdict of
    `zoo.evaluation.claims.judge` on the two rows' values."""
    fractions = sorted({r["fraction"] for r in records}, reverse=True)
    lines = [
        "| claim | fraction | " + " | ".join(METRICS[t][2] for t in METRICS) + " |",
        "|---|---|" + "---|" * len(METRICS),
    ]
    for better, worse, statement in COMPARISONS:
        for fraction in fractions:
            cells = []
            for task, (_, higher, _) in METRICS.items():
                found = difference(records, better, worse, fraction, task)
                if not found:
                    cells.append("—")
                    continue
                verdict = judge(
                    list(values(records, better, fraction, task).values()),
                    list(values(records, worse, fraction, task).values()),
                    higher,
                ).verdict
                cells.append(f"{np.mean(list(found.values())):+.3f} ({verdict})")
            if any(c != "—" for c in cells):
                lines.append(f"| {statement} | {fraction:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def report(records) -> str:
    """Markdown: the table per fraction, then the comparisons."""
    if not records:
        raise UserError("report: no records (run the grid first).")
    parts = []
    for fraction in sorted({r["fraction"] for r in records}, reverse=True):
        heading = f"### {fraction * 100:g} % of the scenes labelled\n"
        parts += [heading, table(records, fraction), ""]
    parts += [
        "### The paper's comparisons, seed-wise (positive = as the paper says)\n",
        comparisons(records),
        "",
        "Verdicts: `holds` when the mean difference exceeds two standard errors, "
        "`reversed` when it does so the other way, `unresolved` otherwise.",
    ]
    return "\n".join(parts)


def plot(records, path: str) -> str:
    """A PNG of each metric against the labelled fraction, a line per row (mean over
    seeds, error bars of one standard deviation)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not records:
        raise UserError("plot: no records.")
    figure, axes = plt.subplots(1, len(METRICS), figsize=(4.3 * len(METRICS), 3.4))
    for axis, (task, (_, higher, column)) in zip(axes, METRICS.items()):
        for row in (r for r in ROWS if any(x["row"] == r for x in records)):
            points = []
            for fraction in sorted({r["fraction"] for r in records}):
                found = list(values(records, row, fraction, task).values())
                if found:
                    std = float(np.std(found, ddof=1)) if len(found) > 1 else 0.0
                    points.append((fraction, float(np.mean(found)), std))
            if points:
                xs, ys, errors = zip(*points)
                axis.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=ROWS[row][1])
        axis.set_xscale("log")
        fractions = sorted({r["fraction"] for r in records})
        axis.set_xticks(fractions, [f"{f * 100:g} %" for f in fractions])
        axis.minorticks_off()
        axis.set_xlabel("labelled share of the scenes")
        axis.set_ylabel(f"{column} ({'higher' if higher else 'lower'} is better)")
        axis.set_title(task)
    handles, labels = axes[0].get_legend_handles_labels()
    figure.tight_layout(rect=(0, 0, 0.88, 1))
    figure.legend(handles, labels, loc="center right", fontsize=8)
    files.write_file(path, lambda temporary: figure.savefig(temporary, dpi=110, format="png"))
    plt.close(figure)
    return path
