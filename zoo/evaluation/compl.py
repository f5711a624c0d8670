"""CompL's label-fraction grids (Kanakis et al. 2022, Tables 1-3, S.7/S.8).

A cell is one target task (`TARGETS`), one auxiliary (`AUXILIARIES`: none, rotation,
MoCo, DenseCL), one labelled fraction and one seed: a zoo-train run of the row
`gin_configs/compl22/<target><suffix>.gin` plus the grid's gin files (small.gin by
default) with `FRACTION` and the seed bound, every cell the same number of steps. Each
cell is measured on the target's held-out scenes (in domain) and, zero-shot, on
shifted domains (`SHIFTS`: another synthetic variant and the photo-textured "P"), as
Tables S.7/S.8 evaluate a VOC-trained model on BDD100K and COCO.

`grid` runs the cells that `<out>/results.jsonl` lacks (resumable: a finished cell is
never run again; an interrupted run resumes from its checkpoint); `report` gives mean ±
std per cell and the gain of each auxiliary over the target alone per fraction, and
`plot_gains` draws the gain against the fraction. `zoo.evaluation.claims` judges the
paper's claims on the records.
"""

import dataclasses
import functools
import json
import math
import os

import keras
import numpy as np

from zoo import experiment, files
from zoo.data.synthetic import SceneSpec
from zoo.errors import UserError
from zoo.evaluation import sweep
from zoo.progress import Progress
from zoo.tasks.base import pipeline

# target -> (row prefix, task name, metric, higher is better, the paper's table)
TARGETS = {
    "semseg": ("semseg", "semantic_segmentation", "miou", True, "Table 2 mIoU"),
    "depth": ("depth", "depth", "rmse", False, "Table 1 RMSE"),
    "boundaries": ("boundaries", "contours", "ods_f_score", True, "Table 3 ODS F"),
}
# auxiliary -> row suffix
AUXILIARIES = {"none": "", "rot": "_rot", "moco": "_moco", "densecl": "_densecl"}
DEFAULT_FRACTIONS = (0.05, 0.1, 0.25, 0.5, 1.0)
# zero-shot domains: name -> how the training spec's variant becomes it
SHIFTS = {"TCVL": lambda v: "TCVL", "P": lambda v: v[:4] + "P"}
CONFIG_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "gin_configs",
    "compl22",
)


def row_file(target: str, auxiliary: str) -> str:
    """The gin file of one (target, auxiliary) row."""
    return os.path.join(CONFIG_DIR, TARGETS[target][0] + AUXILIARIES[auxiliary] + ".gin")


def _probe(task, variant: str, num: int):
    """The task with `num` held-out scenes of its spec in `variant` (test split)."""
    config = dict(task.get_config(), eval_examples=num, labelled_fraction=1.0)
    config["eval_source"] = dataclasses.replace(task.source, variant=variant, split="test")
    return type(task).from_config(config)


def shifted(model, task_name: str, num: int = 128, batch_size: int = 32) -> dict:
    """{domain: metrics} of the trained target task on the held-out scenes of each
    `SHIFTS` domain, zero-shot (the same scene indices as its own test split)."""
    task = model.tasks[task_name]
    spec = task.source
    if not isinstance(spec, SceneSpec):
        raise UserError(f"shifted: {task_name!r} was trained on {spec!r}, not synthetic scenes.")
    head = model.task_model(task_name)
    out = {}
    for domain, variant in SHIFTS.items():
        probe = _probe(task, variant(spec.variant), num)
        truth, predicted = [], []
        for x, y in pipeline([probe], "eval", batch_size):
            predicted.append(keras.ops.convert_to_numpy(head(x, training=False)))
            truth.append(y[task_name].numpy())
        out[domain] = probe.evaluate(np.concatenate(truth), np.concatenate(predicted))
    return out


def plot_shifted(model_dir: str, path: str, num: int = 3) -> str:
    """A PNG of a run's dense tasks on `num` held-out scenes in its own domain and in
    each `SHIFTS` domain (the same scenes, other textures and cameras): a row per scene
    and domain, the truth next to the prediction (the robustness of Tables S.7 / S.8,
    seen)."""
    from zoo.evaluation import plots

    model, _ = experiment.restore(model_dir)
    tasks = {n: t for n, t in model.tasks.items() if hasattr(t, "out_channels")}
    if not tasks:
        raise UserError(f"{model_dir} has no dense task to draw: {sorted(model.tasks)}")
    name, task = next(iter(tasks.items()))
    spec = task.source
    if not isinstance(spec, SceneSpec):
        raise UserError(f"plot_shifted: {name!r} was trained on {spec!r}, not synthetic scenes.")
    domains = {spec.variant: spec.variant, **{d: f(spec.variant) for d, f in SHIFTS.items()}}
    images, truths, predictions = [], [], []
    head = model.task_model(name)
    for variant in domains.values():
        probe = _probe(task, variant, num)
        x, y = next(iter(pipeline([probe], "eval", num)))
        outputs = probe.serving_outputs(head(x, training=False))
        key = next(k for k in plots.SERVING_KINDS if k in outputs)
        kind = plots.SERVING_KINDS[key]
        truth = y[name].numpy()
        truths.append(truth[..., 0] if kind != "normals" and truth.ndim == 4 else truth)
        predicted = keras.ops.convert_to_numpy(outputs[key])
        predictions.append(
            predicted[..., 0] if predicted.ndim == 4 and kind != "normals" else predicted
        )
        images.append(
            np.stack(
                [
                    e["image"]
                    for e in probe.data_source("eval")
                    .examples(["image"])
                    .take(num)
                    .as_numpy_iterator()
                ]
            )
        )
    title = f"{os.path.basename(os.path.normpath(model_dir))}: {name}\n{num} scenes each in "
    title += ", ".join(domains)
    plots.plot_predictions(
        np.concatenate(images),
        [(name, kind, np.concatenate(truths), np.concatenate(predictions))],
        path,
        title=title,
    )
    return path


def measure(model_dir: str, target: str, num: int = 128) -> dict:
    """{"value": the target's metric in domain, "metrics": its held-out metrics,
    "shifted": {domain: metrics}, "value_<domain>": the metric on each shifted domain}
    of a finished run."""
    _, task_name, metric, _, _ = TARGETS[target]
    with open(os.path.join(model_dir, "metrics.json")) as f:
        heldout = json.load(f)["trained"][task_name]
    model, _ = experiment.restore(model_dir)
    moved = shifted(model, task_name, num)
    out = {"value": heldout[metric], "metrics": heldout, "shifted": moved}
    out.update({f"value_{domain}": moved[domain][metric] for domain in moved})
    return out


def _key(record):
    return record["target"], record["auxiliary"], record["fraction"], record["seed"]


def load(out_dir: str) -> list:
    path = os.path.join(out_dir, "results.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _check(targets, auxiliaries, fractions):
    for name, given, known in (
        ("targets", targets, TARGETS),
        ("auxiliaries", auxiliaries, AUXILIARIES),
    ):
        unknown = [g for g in given if g not in known]
        if unknown:
            raise UserError(f"unknown {name} {unknown}; {name}: {list(known)}")
    bad = [f for f in fractions if not 0.0 < f <= 1.0]
    if bad:
        raise UserError(f"fractions must be in (0, 1]. Received: {bad}")


def grid(
    targets,
    auxiliaries,
    fractions,
    seeds,
    out_dir: str,
    gin_files=None,
    gin_bindings=(),
    num: int = 128,
    executor=None,
    say=print,
) -> list:
    """Trains and measures every missing cell (module docstring); returns all records.

    Each cell is a zoo-train process in `out_dir/<target>_<auxiliary>/f<fraction>/seed_<k>`
    with `FRACTION` and `zoo.experiment.train.seed` bound (`run_cell`); its record joins
    `out_dir/results.jsonl`, rewritten whole after each cell so a kill never leaves half
    a line. `gin_files` come after the row's file (default: small.gin); a folder keeps
    the settings of its first grid (`settings.json`) and refuses others. `executor` runs
    the cells: `zoo.evaluation.sweep.run_serially` (default) or, in parallel on a Ray
    cluster, `zoo.cli.ray_cells.RayCells`.
    """
    _check(targets, auxiliaries, fractions)
    gin_files = [os.path.join(CONFIG_DIR, "small.gin")] if gin_files is None else gin_files
    _keep_settings(out_dir, gin_files, gin_bindings, num)
    results = os.path.join(out_dir, "results.jsonl")
    done = {_key(r): r for r in load(out_dir)}
    cells = [  # seed by seed: an interrupted grid holds whole seeds
        ((t, a, float(f), int(s)), (t, a), float(f), int(s))
        for s in seeds
        for t in targets
        for f in fractions
        for a in auxiliaries
        if (t, a, float(f), int(s)) not in done
    ]
    progress = Progress(len(cells), "grid cells trained and measured") if cells else None
    finished = []

    def record(key, result, seconds):
        done[key] = result
        files.write_text(results, "".join(json.dumps(r) + "\n" for r in done.values()))
        finished.append(key)
        target, auxiliary, fraction, seed = key
        say(
            f"{target} + {auxiliary}, {fraction:g} of the labels, seed {seed}: "
            f"{TARGETS[target][2]} {result['value']:.4f} ({seconds:.0f} s)"
        )
        progress.update(len(finished))

    run = functools.partial(run_cell, out_dir, tuple(gin_files), tuple(gin_bindings), num)
    (executor or sweep.run_serially)(run, cells, record)
    return list(done.values())


def _keep_settings(out_dir, gin_files, gin_bindings, num):
    """Stores what every cell is trained with (the text of gin_configs/compl22/ and of the
    extra gin files, the bindings, the held-out count) in `out_dir/settings.json`;
    refuses a grid that differs, whose cells could not be compared with the ones there."""
    settings = {"gin_bindings": list(gin_bindings), "num": num}
    settings.update(sweep.config_texts(CONFIG_DIR, gin_files))
    sweep.keep_grid_settings(out_dir, settings)


def run_cell(out_dir, gin_files, gin_bindings, num, row, fraction, seed) -> dict:
    """Trains one cell (`row` = (target, auxiliary)) in a zoo-train process and returns
    its record (`measure`)."""
    target, auxiliary = row
    model_dir = os.path.join(out_dir, f"{target}_{auxiliary}", f"f{fraction:g}", f"seed_{seed}")
    sweep.train_process(
        [row_file(target, auxiliary), *gin_files],
        [f"FRACTION = {fraction}", *gin_bindings],
        model_dir,
        seed,
        f"training {target} + {auxiliary}, fraction {fraction:g}, seed {seed}",
    )
    record = {"target": target, "auxiliary": auxiliary, "fraction": fraction, "seed": seed}
    record["model_dir"] = model_dir
    record.update(measure(model_dir, target, num))
    return record


# -- the report ---------------------------------------------------------------------------


def _values(records, target, auxiliary, fraction, domain=None):
    """{seed: value} of one cell, in domain or on a shifted domain."""
    metric = TARGETS[target][2]
    out = {}
    for r in records:
        if (r["target"], r["auxiliary"], r["fraction"]) == (target, auxiliary, fraction):
            value = r["value"] if domain is None else r["shifted"][domain][metric]
            out[r["seed"]] = float(value)
    return out


def _mean_std(values):
    values = list(values)
    if not values:
        return math.nan, math.nan
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def gains(records, target, auxiliary, domain=None) -> dict:
    """{fraction: (mean, std, seeds)} of the seed-wise gain of `auxiliary` over the
    target alone (positive = better, whichever way the metric goes)."""
    sign = 1.0 if TARGETS[target][3] else -1.0
    out = {}
    fractions = sorted({r["fraction"] for r in records if r["target"] == target})
    for fraction in fractions:
        base = _values(records, target, "none", fraction, domain)
        mine = _values(records, target, auxiliary, fraction, domain)
        diffs = [sign * (mine[s] - base[s]) for s in mine if s in base]
        if diffs:
            out[fraction] = (*_mean_std(diffs), len(diffs))
    return out


def report(records) -> str:
    """Markdown: per target, a table of mean ± std per (auxiliary, fraction) in domain and
    on each shifted domain, then the gain over the target alone per fraction."""
    lines = []
    for target in (t for t in TARGETS if any(r["target"] == t for r in records)):
        mine = [r for r in records if r["target"] == target]
        fractions = sorted({r["fraction"] for r in mine})
        auxiliaries = [a for a in AUXILIARIES if any(r["auxiliary"] == a for r in mine)]
        _, _, metric, higher, table = TARGETS[target]
        direction = "higher" if higher else "lower"
        lines.append(f"### {target} ({metric}, {direction} is better; the paper's {table})\n")
        for domain in (None, *SHIFTS):
            where = "in domain" if domain is None else f"zero-shot on {domain}"
            lines.append(f"{where}:\n")
            header = ["auxiliary", *(f"{f:g}" for f in fractions)]
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            for auxiliary in auxiliaries:
                cells = [auxiliary]
                for fraction in fractions:
                    values = _values(mine, target, auxiliary, fraction, domain).values()
                    mean, std = _mean_std(values)
                    cells.append(
                        "—" if math.isnan(mean) else f"{mean:.3f} ± {std:.3f} ({len(values)})"
                    )
                lines.append("| " + " | ".join(cells) + " |")
            lines.append("")
        lines.append("gain over the target alone (seed-wise, positive = better):\n")
        header = ["auxiliary", *(f"{f:g}" for f in fractions)]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for auxiliary in (a for a in auxiliaries if a != "none"):
            found = gains(mine, target, auxiliary)
            cells = [auxiliary]
            for fraction in fractions:
                mean, std, _ = found.get(fraction, (math.nan, math.nan, 0))
                cells.append("—" if math.isnan(mean) else f"{mean:+.3f} ± {std:.3f}")
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def plot_gains(records, path: str) -> str:
    """A PNG of each auxiliary's gain over the target alone against the labelled
    fraction (log scale), one panel per target, error bars of one standard deviation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = [t for t in TARGETS if any(r["target"] == t for r in records)]
    if not targets:
        raise UserError("plot_gains: no records.")
    figure, axes = plt.subplots(1, len(targets), figsize=(4.5 * len(targets), 3.4), squeeze=False)
    for axis, target in zip(axes[0], targets):
        for auxiliary in (a for a in AUXILIARIES if a != "none"):
            found = gains(records, target, auxiliary)
            if found:
                xs = sorted(found)
                axis.errorbar(
                    xs,
                    [found[x][0] for x in xs],
                    yerr=[found[x][1] for x in xs],
                    marker="o",
                    capsize=3,
                    label=auxiliary,
                )
        axis.axhline(0.0, color="grey", lw=0.8)
        axis.set_xscale("log")
        axis.set_xlabel("labelled fraction")
        axis.set_ylabel(f"gain in {TARGETS[target][2]} over {target} alone (+: better)")
        axis.set_title(target)
        axis.legend(fontsize=8)
    figure.tight_layout()
    files.write_file(path, lambda temporary: figure.savefig(temporary, dpi=110, format="png"))
    plt.close(figure)
    return path
