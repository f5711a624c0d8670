"""Newell & Deng's comparison of four pretraining methods (Table 1, Figs. 4-6), as a small
resumable grid: `zoo-evaluate newell20`.

Three stages, each a folder of `<out>` with a `results.jsonl` that grows cell by cell
(a finished cell is never run again; an interrupted run resumes from its checkpoint):

1. `pretrain`: each (method, variant) is a zoo-train run of
   `gin_configs/newell20/pretrain_<method>.gin` plus the grid's gin files (small.gin by
   default) with `VARIANT` bound, in `<out>/pretrain/<method>/<variant>`; its record
   holds the online probes' held-out accuracies and its objective's measures.
2. `linear`: Table 1 — a linear layer on each pretrained trunk, trained on `num_labels`
   labelled objects of its variant ("all labels" at this scale), and the supervised
   reference: the same trunk architecture trained from scratch on them (the scratch
   baseline takes the first method's architecture, the full-width trunk for CMC).
3. `sweeps`: per downstream task, the label-count sweep of every method against scratch
   on each variant (`zoo.evaluation.sweep.run_sweep`, the utility of Fig. 4/5, the
   factor changes of Fig. 6). Segmentation and depth finetune runs pretrained on
   multi-object scenes (`pretrain_scenes`, as stage 1 with pretrain_<method>_scenes.gin).
4. `frozen`: Fig. 8 — object classification finetuned with the stem and the first k
   blocks of each pretrained trunk frozen, at the sweep's label counts, on the first
   variant; compared with the classification sweep's full finetuning.

The transfer settings (input size, endpoint, training length, the finetuning
augmentation) are `zoo.evaluation.transfer`'s gin bindings:
`gin_configs/newell20/classification_sweep.gin` by default. `report` writes the tables,
the pictures and each claim of the paper marked holds / reversed / unresolved at this
scale (`zoo.evaluation.claims.judge`: a difference beyond two standard errors).
"""

import functools
import json
import math
import os
import re

import gin
import numpy as np

from zoo import files
from zoo.data.synthetic import SceneSpec
from zoo.data.synthetic.scene import FACTOR_NAMES
from zoo.errors import UserError
from zoo.evaluation import results as pages
from zoo.evaluation import sweep
from zoo.evaluation.claims import NEWELL20_BEST as PAPER_BEST  # Fig. 5's best methods
from zoo.evaluation.claims import NEWELL20_FACTORS as PAPER_FACTORS  # Fig. 6's signs
from zoo.evaluation.claims import NEWELL20_TABLE_1 as PAPER_TABLE_1  # Table 1's numbers
from zoo.evaluation.claims import judge
from zoo.evaluation.transfer import transfer

METHODS = ("rotation", "vae", "cmc", "amdim")
TASKS = ("classification", "pose", "segmentation", "depth")
# tasks on multi-object scenes: pretrained on scenes (pretrain_<method>_scenes.gin) and
# swept with their own transfer settings (<task>_sweep.gin)
DENSE = ("segmentation", "depth")
SUPERVISED = "supervised"
CONFIG_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
    "gin_configs",
    "newell20",
)


def pretrain_dir(out_dir: str, method: str, variant: str, scenes: bool = False) -> str:
    """The zoo-train run of `method` on `variant` ("{variant}": a sweep's pattern), on
    single objects or on multi-object `scenes`."""
    return os.path.join(out_dir, _stage(scenes), method, variant)


def _stage(scenes):
    return "pretrain_scenes" if scenes else "pretrain"


def _suffix(scenes):
    return "_scenes" if scenes else ""


def check(methods, variants, tasks=TASKS):
    """Raises UserError naming an unknown method, task or variant."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise UserError(f"unknown methods {unknown or '(none given)'}; methods: {list(METHODS)}")
    bad = [t for t in tasks if t not in TASKS]
    if bad:
        raise UserError(f"unknown tasks {bad}; tasks: {list(TASKS)}")
    if not variants:
        raise UserError("give at least one variant, e.g. TCVL")
    for variant in variants:
        SceneSpec(variant=variant)  # a clear message for a bad variant string


# -- 1. pretraining -----------------------------------------------------------------------


def pretrain(
    methods,
    variants,
    out_dir,
    gin_files=None,
    gin_bindings=(),
    executor=None,
    say=print,
    scenes=False,
):
    """Trains every missing (method, variant) run (module docstring, stage 1) on single
    objects, or on multi-object `scenes` for the dense tasks; returns their records.
    `gin_files` come after the method's file (default: small.gin, small_scenes.gin for
    scenes). The folder keeps the texts of the files its runs read (base.gin, every
    method's pretrain_*.gin, the extra files) and refuses others, so a new file of
    gin_configs/newell20/ keeps a grid resumable."""
    check(methods, variants)
    small = "small_scenes.gin" if scenes else "small.gin"
    gin_files = [os.path.join(CONFIG_DIR, small)] if gin_files is None else list(gin_files)
    folder = os.path.join(out_dir, _stage(scenes))
    settings = {"gin_bindings": list(gin_bindings), "gin_files": {}, "configs": {}}
    for path in gin_files:
        with open(path) as f:
            settings["gin_files"][os.path.basename(path)] = f.read()
    configs = ["base.gin", *(f"pretrain_{m}.gin" for m in METHODS)]
    if scenes:
        configs += ["scenes.gin", *(f"pretrain_{m}_scenes.gin" for m in METHODS)]
    for name in configs:
        with open(os.path.join(CONFIG_DIR, name)) as f:
            settings["configs"][name] = f.read()
    sweep.keep_grid_settings(folder, settings)
    cells = [((m, v), m, v, 0) for v in variants for m in methods]
    run = functools.partial(
        run_pretraining, out_dir, tuple(gin_files), tuple(gin_bindings), scenes=scenes
    )
    where = " scenes" if scenes else ""
    return sweep.run_grid(
        folder,
        cells,
        run,
        say,
        lambda key, r: (
            f"pretrained {key[0]} on {key[1]}{where}: probes " + _probe_text(r["probes"])
        ),
        executor,
    )


def _probe_text(probes):
    return ", ".join(f"{name} {value:.3f}" for name, value in sorted(probes.items()))


def run_pretraining(
    out_dir, gin_files, gin_bindings, method, variant, seed=0, scenes=False
) -> dict:
    """One zoo-train process of `method` on `variant`; its record: the probes' held-out
    accuracies and the objective's held-out measures."""
    model_dir = pretrain_dir(out_dir, method, variant, scenes)
    sweep.train_process(
        [os.path.join(CONFIG_DIR, f"pretrain_{method}{_suffix(scenes)}.gin"), *gin_files],
        [f'VARIANT = "{variant}"', *gin_bindings],
        model_dir,
        seed,
        f"pretraining {method} on {variant}{' scenes' * scenes}",
    )
    return pretraining_record(model_dir, method)


# each probe's score in the records: a class's accuracy, the share of pixels of the
# right class (the paper's segmentation score), depth's δ1
PROBE_SCORES = ("accuracy", "pixel_accuracy", "delta1")


def pretraining_record(model_dir, method) -> dict:
    """{"model_dir", "objective": the method's held-out measures, "probes": {probe:
    held-out score (PROBE_SCORES)}} of a finished pretraining run."""
    with open(os.path.join(model_dir, "metrics.json")) as f:
        trained = json.load(f)["trained"]
    probes = {}
    for name, measures in trained.items():
        score = next((measures[k] for k in PROBE_SCORES if k in measures), None)
        if name != method and score is not None:
            probes[name] = score
    return {"model_dir": model_dir, "objective": trained.get(method, {}), "probes": probes}


# -- 2. Table 1 -----------------------------------------------------------------------------


def linear(methods, variants, out_dir, num_labels, seeds, executor=None, say=print):
    """Table 1's cells (module docstring, stage 2): every method's linear evaluation and
    the supervised reference, per variant and seed; returns their records."""
    check(methods, variants)
    folder = os.path.join(out_dir, "linear")
    sweep.keep_grid_settings(folder, {"num_labels": num_labels, "transfer": _transfer_settings()})
    cells = [
        ((m, v, int(s)), m, v, int(s))
        for s in seeds
        for v in variants
        for m in (*methods, SUPERVISED)
    ]
    first = methods[0]
    run = functools.partial(_linear_cell, out_dir, num_labels, first)
    return sweep.run_grid(
        folder,
        cells,
        run,
        say,
        lambda key, r: f"Table 1 {key[0]} on {key[1]}, seed {key[2]}: {r['value']:.3f}",
        executor,
    )


def _transfer_settings():
    """The transfer's gin settings but its task (the sweeps bind each of theirs; Table 1
    is object classification)."""
    lines = sweep.transfer_settings().split("\n")
    kept = (line for line in lines if line.strip() and not line.startswith("#"))
    return "\n".join(line for line in kept if not re.match(r"^\S*transfer\.task = ", line))


def _linear_cell(out_dir, num_labels, first, method, variant, seed):
    common = dict(task="classification", num_labels=num_labels, variant=variant, seed=seed)
    if method == SUPERVISED:  # the architecture of the first method's trunk, all trained
        like = pretrain_dir(out_dir, first, variant)
        result = transfer("random", protocol="finetune", like=like, **common)
    else:
        result = transfer(pretrain_dir(out_dir, method, variant), protocol="linear", **common)
    return _record(result, method=method, variant=variant, seed=seed)


def _record(result, **fields):
    """A cell's record: its key's fields by name (what the claims registry selects by) and
    the transfer's value and metric."""
    return {**fields, "value": float(result["value"]), "metric": result["metric"]}


# -- 3. the sweeps ------------------------------------------------------------------------


def sweeps(methods, variants, tasks, counts, seeds, out_dir, executor=None, say=print):
    """Every task's label-count sweep of every method against scratch on each variant
    (module docstring, stage 3), with the transfer's gin settings in force (zoo-evaluate
    newell20 parses <task>_sweep.gin for a dense task); a dense task finetunes the
    scene-pretrained runs. Returns {task: folder}."""
    check(methods, variants, tasks)
    folders = {}
    for task in tasks:
        sources = {m: pretrain_dir(out_dir, m, "{variant}", task in DENSE) for m in methods}
        folder = os.path.join(out_dir, "sweeps", task)
        with gin.unlock_config():
            gin.bind_parameter("zoo.evaluation.transfer.task", task)
        sweep.run_sweep(
            folder,
            sources,
            list(counts),
            list(seeds),
            variants=list(variants),
            progress=say,
            executor=executor,
        )
        folders[task] = folder
    return folders


# -- 4. frozen-k (Fig. 8) -------------------------------------------------------------------


def frozen(methods, variants, ks, counts, seeds, out_dir, executor=None, say=print):
    """Fig. 8's cells (module docstring, stage 4): classification on the first variant
    with k = `ks` blocks frozen, per method, label count and seed; returns their
    records."""
    check(methods, variants)
    bad = [k for k in ks if k not in (1, 2, 3)]
    if bad or not ks:
        raise UserError(f"frozen-k: k must be 1, 2 or 3 (ResNet-9's blocks). Received: {ks}")
    folder = os.path.join(out_dir, "frozen")
    sweep.keep_grid_settings(folder, {"transfer": _transfer_settings()})
    variant = variants[0]
    cells = [
        ((m, variant, int(k), int(n), int(s)), m, variant, (int(k), int(n), int(s)))
        for s in seeds
        for n in counts
        for k in ks
        for m in methods
    ]
    return sweep.run_grid(
        folder,
        cells,
        functools.partial(_frozen_cell, out_dir),
        say,
        lambda key, r: (
            f"frozen {key[2]}: {key[0]} on {key[1]}, n={key[3]}, seed {key[4]}: {r['value']:.3f}"
        ),
        executor,
    )


def _frozen_cell(out_dir, method, variant, k_n_seed):
    k, n, seed = k_n_seed
    result = transfer(
        pretrain_dir(out_dir, method, variant),
        task="classification",
        protocol="frozen_k",
        frozen_stages=k,
        num_labels=n,
        variant=variant,
        seed=seed,
    )
    return _record(result, method=method, variant=variant, k=k, n=n, seed=seed)


def _finetuned(folder, variant):
    """{(method, n, seed): accuracy} of a sweep's full finetuning."""
    rows = sweep.load_results(os.path.join(folder, variant))
    return {(r["method"], r["n"], r["seed"]): r["value"] for r in rows}


def _frozen_changes(records, full, method, k, n):
    """Per seed: accuracy with k blocks frozen minus full finetuning's."""
    return [
        r["value"] - full[(method, n, r["key"][4])]
        for r in records
        if (r["key"][0], r["key"][2], r["key"][3]) == (method, k, n)
        and (method, n, r["key"][4]) in full
    ]


def frozen_table(records, folder, methods) -> str:
    """Markdown: each method's change in accuracy with k blocks frozen against full
    finetuning (mean ± std over seeds), per label count (Fig. 8's lower row)."""
    if not records:
        return ""
    variant = records[0]["key"][1]
    full = _finetuned(folder, variant)
    counts = sorted({r["key"][3] for r in records})
    ks = sorted({r["key"][2] for r in records})
    lines = [
        "| method | frozen | " + " | ".join(f"n={n}" for n in counts) + " |",
        "|---|---|" + "---|" * len(counts),
    ]
    for m in methods:
        for k in ks:
            cells = []
            for n in counts:
                mean, std = _mean_std(_frozen_changes(records, full, m, k, n))
                cell = "—" if math.isnan(mean) else f"{mean:+.3f}"
                cells.append(cell + ("" if math.isnan(std) else f" ± {std:.3f}"))
            lines.append(f"| {m} | {k} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Classification accuracy on {variant} with the stem and the first k blocks frozen, "
        "minus full finetuning's at the same n and seed (mean ± sample standard deviation "
        "over seeds).",
    ]
    return "\n".join(lines)


def frozen_claims(records, folder, methods) -> list:
    """[(claim, verdict text)] of Fig. 8: full finetuning beats the most frozen trunk with
    the most labels; with the fewest, some freezing (the best k of each method, chosen on
    these runs) beats full finetuning."""
    if not records:
        return []
    variant = records[0]["key"][1]
    full = _finetuned(folder, variant)
    counts = sorted({r["key"][3] for r in records})
    most = max(r["key"][2] for r in records)
    ks = sorted({r["key"][2] for r in records})
    out = []
    for m in methods:
        lost = _frozen_changes(records, full, m, most, counts[-1])
        if not lost:
            continue
        verdict = judge([0.0] * max(len(lost), 2), lost)
        out.append(
            (
                f"Fig. 8: {m} finetuned whole beats {most} blocks frozen (n={counts[-1]})",
                _verdict_text(verdict),
            )
        )
        gains = {k: _frozen_changes(records, full, m, k, counts[0]) for k in ks}
        best = max(ks, key=lambda k: _mean_std(gains[k])[0] if gains[k] else -math.inf)
        verdict = judge(gains[best], [0.0] * max(len(gains[best]), 2) if gains[best] else [])
        out.append(
            (
                f"Fig. 8: some freezing helps {m} with few labels (best k = {best}, n={counts[0]})",
                _verdict_text(verdict),
            )
        )
    return out


# -- the report ---------------------------------------------------------------------------


def _values(records, method, variant):
    return [r["value"] for r in records if r["key"][0] == method and r["key"][1] == variant]


def _mean_std(values):
    """(mean, sample standard deviation): NaN for no values, the std NaN for one."""
    return pages.mean_std(values)[:2]


def table_1(records, methods, variants) -> str:
    """Markdown: linear evaluation per variant and method (mean ± std over seeds, in %),
    the paper's number beside it."""
    columns = [*methods, SUPERVISED]
    lines = ["| variant | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    for variant in variants:
        cells = []
        for m in columns:
            mean, std = _mean_std(_values(records, m, variant))
            paper = PAPER_TABLE_1.get(variant, {}).get(m)
            ours = "—" if math.isnan(mean) else f"{100 * mean:.1f}"
            ours += "" if math.isnan(std) else f" ± {100 * std:.1f}"
            cells.append(ours + (f" ({paper})" if paper is not None else ""))
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Object classification accuracy (%) of a linear layer on each trunk, mean ± sample "
        "standard deviation over seeds; the paper's Table 1 (ResNet-9, all labels) in brackets."
    )
    return "\n".join(lines)


def probes_table(records, methods, variants) -> str:
    """Markdown: the online probes' held-out accuracies of each pretraining run."""
    names = sorted({p for r in records for p in r["probes"]})
    lines = [
        "| method | variant | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    by_key = {tuple(r["key"]): r for r in records}
    for variant in variants:
        for m in methods:
            r = by_key.get((m, variant))
            if r:
                cells = [f"{r['probes'].get(p, math.nan):.3f}" for p in names]
                lines.append(f"| {m} | {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mean_utilities(folder, variant, methods):
    """{method: its mean utility over n} in one sweep folder (methods without rows left out)."""
    table = sweep.summarize(sweep.load_results(os.path.join(folder, variant)))
    return {m: sweep.mean_utility(table[m]) for m in methods if table.get(m)}


def claims(pretrained, linear_records, folders, methods, variants) -> list:
    """[(claim, verdict text)] of the paper's claims that this grid measures."""
    out = []
    for task, folder in folders.items():
        for variant in variants:
            results = sweep.load_results(os.path.join(folder, variant))
            counts = sorted({r["n"] for r in results})
            if len(counts) < 2:
                continue
            for m in methods:
                few, many = (
                    list(sweep.seed_utilities(os.path.join(folder, variant), m, n).values())
                    for n in (counts[0], counts[-1])
                )
                # U > 0: against a zero utility measured as often as U was
                verdict = judge(few, [0.0] * max(len(few), 2) if few else [])
                out.append(
                    (
                        f"Fig. 4: {m} helps {task} with few labels ({variant}, "
                        f"U(n={counts[0]}) > 0)",
                        _verdict_text(verdict),
                    )
                )
                out.append(
                    (
                        f"Fig. 4: {m}'s utility falls as labels grow ({task}, {variant}, "
                        f"U(n={counts[0]}) > U(n={counts[-1]}))",
                        _verdict_text(judge(few, many)),
                    )
                )
    for variant in variants if len(methods) > 1 else ():  # one method has no ranking
        linear_means = {m: _mean_std(_values(linear_records, m, variant))[0] for m in methods}
        folder = folders.get("classification")
        if folder is None or any(math.isnan(v) for v in linear_means.values()):
            continue
        utilities = _mean_utilities(folder, variant, methods)
        if len(utilities) < len(methods):
            continue
        by_linear = sorted(methods, key=lambda m: -linear_means[m])
        by_utility = sorted(methods, key=lambda m: -np.nan_to_num(utilities[m], nan=-1e9))
        holds = "holds" if by_linear != by_utility else "reversed"
        out.append(
            (
                f"sec. 8: linear evaluation ranks the methods unlike finetuning ({variant}): "
                f"linear {' > '.join(by_linear)}; mean utility {' > '.join(by_utility)}",
                f"**{holds}** (ranks by means; not a significance test)",
            )
        )
    return out


def best_method_claims(folders, methods, variant="TCVL") -> list:
    """[(claim, verdict text)] of Fig. 5: per task, the paper's best method finetunes
    better than each other method with the fewest labels on `variant` (holds when it
    beats every one of them, reversed when one beats it, beyond two standard errors)."""
    out = []
    for task, folder in folders.items():
        best = PAPER_BEST[task]
        results = sweep.load_results(os.path.join(folder, variant))
        counts = sorted({r["n"] for r in results})
        others = [m for m in methods if m != best]
        if best not in methods or not others or not counts:
            continue

        few = {
            m: [r["value"] for r in results if r["method"] == m and r["n"] == counts[0]]
            for m in methods
        }
        verdicts = {m: judge(few[best], few[m]) for m in others}
        found = [v.verdict for v in verdicts.values()]
        if "reversed" in found:
            overall = "reversed"
        elif found and all(v == "holds" for v in found):
            overall = "holds"
        else:
            overall = "unresolved" if "no runs" not in found else "no runs"
        detail = "; ".join(
            f"{m} {v.worse[0]:.3f} ({v.verdict})" for m, v in verdicts.items() if v.worse[2]
        )
        mean = verdicts[others[0]].better[0]
        out.append(
            (
                f"Fig. 5: {best} finetunes {task} best with few labels ({variant}, n={counts[0]})",
                f"**{overall}** ({best} {mean:.3f} against {detail})",
            )
        )
    return out


def factor_claims(folder, methods) -> list:
    """[(claim, verdict text)] of Fig. 6 on one sweep folder over variants: for each pair
    of variants that differ in one factor, the change in each method's mean utility (per
    seed) has the sign the paper reports (PAPER_FACTORS)."""
    out = []
    for low, high, letter in sweep.factor_pairs(sorted(sweep.variant_dirs(folder))):
        for m in methods:
            sign = PAPER_FACTORS.get(m, {}).get(letter)
            if sign is None:
                continue
            before, after = (sweep.seed_utilities(os.path.join(folder, v), m) for v in (low, high))
            change = [after[s] - before[s] for s in sorted(after) if s in before]
            verdict = judge(change, [0.0] * max(len(change), 2) if change else [], sign > 0)
            words = "raises" if sign > 0 else "lowers"
            out.append(
                (
                    f"Fig. 6: adding {FACTOR_NAMES[letter]} ({low} → {high}) {words} {m}'s "
                    f"mean utility ({os.path.basename(os.path.normpath(folder))})",
                    _verdict_text(verdict),
                )
            )
    return out


def _verdict_text(verdict):
    if verdict.verdict == "no runs":
        return "no runs: U undefined (the pretrained value beyond the scratch curve's range)"
    error = "" if math.isnan(verdict.error) else f" ± {verdict.error:.2f}"
    seeds = min(verdict.better[2], verdict.worse[2])
    return (
        f"**{verdict.verdict}** ({verdict.better[0]:+.2f} vs {verdict.worse[0]:+.2f}, "
        f"difference {verdict.difference:+.2f}{error}; {seeds} seed{'s' * (seeds != 1)})"
    )


def members(out_dir) -> tuple:
    """(methods, variants) that the folder's pretraining stages hold runs of, methods in
    the grid's order: what a report of the folder covers, whichever part of the grid ran
    last."""
    records = [
        r for s in (False, True) for r in sweep.load_results(os.path.join(out_dir, _stage(s)))
    ]
    methods = [m for m in METHODS if any(r["key"][0] == m for r in records)]
    return methods, list(dict.fromkeys(r["key"][1] for r in records))


def report(out_dir, methods, variants) -> tuple:
    """(Markdown, files written): Table 1, the probes, the sweep report of each task the
    grid has swept (curves, utilities, factor changes) and the claims; written to
    `<out>/report.md`."""
    pretrained = sweep.load_results(os.path.join(out_dir, "pretrain"))
    linear_records = sweep.load_results(os.path.join(out_dir, "linear"))
    sections = []
    if linear_records:  # a grid of the dense tasks alone has no Table 1
        sections += ["## Table 1: linear evaluation", table_1(linear_records, methods, variants)]
    for scenes in (False, True):
        records = sweep.load_results(os.path.join(out_dir, _stage(scenes)))
        if records:
            what = "scenes" if scenes else "single objects"
            sections += [
                f"## Online probes of the pretraining runs ({what})",
                probes_table(records, methods, variants),
            ]
    written, folders = [], {}
    for task in TASKS:
        folder = os.path.join(out_dir, "sweeps", task)
        if not os.path.isdir(folder):
            continue
        text, paths = sweep.write_report(folder)
        folders[task] = folder
        written += paths
        sections += [f"## {task}: accuracy and utility against scratch", _demote(text)]
    frozen_records = sweep.load_results(os.path.join(out_dir, "frozen"))
    if frozen_records and "classification" in folders:
        sections += [
            "## Frozen-k: accuracy against full finetuning",
            frozen_table(frozen_records, folders["classification"], methods),
        ]
    verdicts = claims(pretrained, linear_records, folders, methods, variants)
    verdicts += best_method_claims(folders, methods)
    if "classification" in folders:
        verdicts += factor_claims(folders["classification"], methods)
        verdicts += frozen_claims(frozen_records, folders["classification"], methods)
    if verdicts:
        lines = ["| claim | verdict at this scale |", "|---|---|"]
        lines += [f"| {claim} | {verdict} |" for claim, verdict in verdicts]
        sections += ["## The paper's claims", "\n".join(lines)]
    text = "\n\n".join(sections)
    path = files.write_text(os.path.join(out_dir, "report.md"), text + "\n")
    return text, [path, *written]


def _demote(text):
    """A sweep report's headings one level down."""
    return "\n".join("#" + line if line.startswith("## ") else line for line in text.split("\n"))
