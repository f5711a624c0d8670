r"""Transfer evaluation: one protocol run, and reports of label-count sweeps.

Usage:
    zoo-evaluate transfer --source=runs/newell20_rotation --task=classification \
        --protocol=linear --num_labels=500 [--gin_file=...] [--gin_bindings=...] \
        [--predictions=pred.png]
    zoo-evaluate report --sweep_dir=sweeps/cls [--lower_is_better]
    zoo-evaluate domain_gap --model_dir=runs/rl18_da_conv5 [--num=240]
    zoo-evaluate zero_shot --model_dir=runs/rl18_da_conv5 [--num=128]
    zoo-evaluate layer_probes --model_dir=runs/rl18_da_conv5 [--num_labels=500]
    zoo-evaluate adaptation --out=sweeps/ren_lee18 [--rows=3tasks,da_conv5,...]
        [--seeds=0,1,2] [--gin_file=gin_configs/ren_lee18/small.gin] [--num_labels=500]
    zoo-evaluate compl --out=sweeps/compl22 [--targets=semseg,depth] \
        [--auxiliaries=none,rot,moco,densecl] [--fractions=0.05,0.1,0.25,0.5,1.0] \
        [--seeds=0,1,2] [--gin_file=gin_configs/compl22/small.gin] [--ray=auto]
    zoo-evaluate newell20 --out=sweeps/newell20 [--methods=rotation,vae,cmc,amdim] \
        [--variants=TCVL,-CVL] [--tasks=classification,pose] [--counts=100,250,1000] \
        [--seeds=0,1] [--num_labels=4096] [--gin_file=gin_configs/newell20/small.gin]
        [--gin_bindings=...] [--transfer_bindings=...]
    zoo-evaluate mgm22 --out=sweeps/mgm22 [--rows=st,mt,mgm_g,mgm_j,mgm,mgmr] \
        [--fractions=1.0,0.25] [--seeds=0,1] [--epochs=20] [--gan_epochs=2] \
        [--gin_file=gin_configs/mgm22/small.gin] [--gin_bindings=...]
    zoo-evaluate claims [--paper=ren_lee18] [--claim=conv5_beats_none] [--root=claims]
        [--run] [--pages=docs/results]
    zoo-evaluate results --runs=runs/a,runs/b --out=docs/results/quickstart.md
        [--title=Quickstart]

`transfer`: trains one probe (`zoo.evaluation.transfer`, configured with gin, e.g.
gin_configs/transfer/*.gin) on n labels from a source ("random", a zoo-train model_dir,
a checkpoint file of one, or an exported trunk) and prints the held-out metrics;
--predictions writes held-out predictions next to the truth.

`report`: prints a Markdown table (method x n: mean ± std over seeds, and the utility
against the scratch baseline) and writes it as report.md next to results.jsonl, with
report.png (metric and utility vs labels). A sweep over variants gets one table and plot
per variant, a table of mean utility per variant and factors.png (Newell & Deng Fig. 6).

Synthetic-to-real adaptation (Ren & Lee 2018; `zoo.evaluation.adaptation`):
`domain_gap`: per layer of a run's trunk, the held-out accuracy of a logistic regression
telling held-out synthetic scenes from held-out real photo crops (0.5: indistinguishable).
`zero_shot`: the run's tasks on its held-out scenes and on their real-like "P" version.
`layer_probes`: frozen linear probes of every layer on "P" classification (Table 2).
`adaptation`: trains Table 3's rows (gin_configs/ren_lee18/<row>.gin + --gin_file) with
every seed, measures each (domain gap, zero-shot on P, finetuned transfer to P
classification and segmentation) and prints mean ± std beside the paper's numbers and
a line per row; resumable, results in <out>/results.jsonl and report.md.

`compl`: CompL's label-fraction grid (`zoo.evaluation.compl`): each target x auxiliary x
labelled fraction x seed a zoo-train run of gin_configs/compl22/<row>.gin + --gin_file
(small.gin by default), equal steps per cell, measured in domain and zero-shot on the
TCVL and P variants; prints mean ± std per cell and the gain over the target alone per
fraction; resumable, results in <out>/results.jsonl, report.md and gains.png. --ray runs
the cells in parallel on a Ray cluster, each holding --ray_cpus_per_cell CPUs.

`newell20`: Newell & Deng's comparison of four pretraining methods
(`zoo.evaluation.newell20`): each method x variant pretrained with
gin_configs/newell20/pretrain_<method>.gin + --gin_file (small.gin by default; its
online probes recorded), Table 1 (a linear layer on each trunk and the supervised
reference, --num_labels labels), and each --tasks sweep over --counts labels against
scratch (the transfer settings of gin_configs/newell20/classification_sweep.gin and
--transfer_bindings; --gin_bindings go to the pretraining runs). The stages on single
objects (their pretraining, Table 1, the sweeps, frozen-k) run when --tasks has
classification or pose; the stages on scenes when it has segmentation or depth. Prints
and writes <out>/report.md with the tables, curves, factor changes and the paper's
claims judged at this scale. Resumable stage by stage; --ray runs the cells on Ray.

`mgm22`: MGM 2022's comparison (`zoo.evaluation.mgm22`): each row of gin_configs/mgm22
(ST, MT, MGM/G, MGM/j, MGM, MGMr by default; the ablations by name) x labelled fraction x
seed, trained with --gin_file after the row's file (small.gin by default), every row's
tasks for --epochs epochs (a row with a generator --gan_epochs more for G and D); prints
segmentation mIoU, depth error and normal angle per fraction beside the paper's NYUv2
numbers, and the paper's comparisons seed-wise with a verdict; resumable, results in
<out>/results.jsonl, report.md and fractions.png.

`claims`: the papers' claims that the zoo tests (`zoo.evaluation.claims`), judged on the
runs under --root: prints the paper's numbers beside the zoo's with a verdict (holds,
reversed, unresolved within two standard errors, or no runs yet with the commands that
make them) and writes <pages>/<paper>.md and <pages>/claims.md (with --paper, only that
paper's section of claims.md is judged again, stamped with the command; the others keep
theirs). --run first makes the missing runs (each command resumable; hours at the
papers' CPU sizes).

`results`: a page of held-out metrics of finished zoo-train runs (e.g. one configuration
at several seeds): mean ± std over the runs and each run's own, stamped with the date,
the commit and the command.
"""

import os

from absl import app, flags

import zoo.cli

FLAGS = flags.FLAGS
flags.DEFINE_string("sweep_dir", None, "report: a sweep directory written by tools/sweep.py.")
flags.DEFINE_bool("lower_is_better", False, "report: the sweep's metric is an error (RMSE).")
flags.DEFINE_string("source", None, "transfer: random, a model_dir, a checkpoint or an export.")
flags.DEFINE_string("task", None, "transfer: classification, pose, segmentation or depth.")
flags.DEFINE_string("protocol", None, "transfer: linear, lasso_linear, finetune, frozen_k or knn.")
flags.DEFINE_integer(
    "num_labels", None, "transfer, layer_probes, adaptation, newell20 (Table 1): labelled examples."
)
flags.DEFINE_string("predictions", None, "transfer: PNG of held-out predictions.")
flags.DEFINE_multi_string(
    "gin_file",
    [],
    "transfer: gin files of the protocol; adaptation, compl, newell20, mgm22: gin files "
    "after each row's or method's own.",
)
flags.DEFINE_multi_string(
    "gin_bindings", [], "transfer, adaptation, compl, newell20 (pretraining), mgm22: gin bindings."
)
flags.DEFINE_string("model_dir", None, "domain_gap, zero_shot, layer_probes: a zoo-train run.")
flags.DEFINE_integer("num", None, "domain_gap, zero_shot, compl: held-out images of each domain.")
flags.DEFINE_string(
    "out", None, "adaptation, compl, newell20, mgm22: the comparison's folder; results: the page."
)
flags.DEFINE_list(
    "rows", None, "adaptation: rows of Table 3 (default: all seven); mgm22: rows of mgm22/."
)
flags.DEFINE_list("seeds", ["0", "1", "2"], "adaptation, compl, newell20, mgm22: training seeds.")
flags.DEFINE_string(
    "ray",
    None,
    "compl, newell20, mgm22: run the cells in parallel on Ray ('auto' or a cluster's address).",
)
flags.DEFINE_integer("ray_cpus_per_cell", 1, "compl, newell20, mgm22: CPUs a cell holds.", 1)
flags.DEFINE_float("ray_gpus_per_cell", 0.0, "compl, newell20, mgm22: GPUs a cell holds.", 0.0)
flags.DEFINE_list("targets", ["semseg", "depth"], "compl: semseg, depth, boundaries.")
flags.DEFINE_list(
    "auxiliaries", ["none", "rot", "moco", "densecl"], "compl: auxiliaries (none: alone)."
)
flags.DEFINE_list(
    "fractions",
    ["0.05", "0.1", "0.25", "0.5", "1.0"],
    "compl: labelled fractions; mgm22: likewise (default 1.0, 0.25).",
)
flags.DEFINE_integer("epochs", 20, "mgm22: epochs of every row's tasks.", 2)
flags.DEFINE_integer("gan_epochs", 2, "mgm22: epochs of G and D alone (rows with one).", 0)
flags.DEFINE_list("methods", ["rotation", "vae", "cmc", "amdim"], "newell20: methods.")
flags.DEFINE_list(
    "variants",
    ["TCVL", "-CVL"],
    "newell20: variants of the objects (a pair that differs in "
    "one factor gives Fig. 6's change; TCVL and -CVL differ in texture).",
)
flags.DEFINE_list(
    "tasks",
    ["classification", "pose", "segmentation", "depth"],
    "newell20: downstream tasks swept; classification or pose brings the object stages "
    "(pretraining, Table 1, frozen-k), segmentation or depth the scene stages.",
)
flags.DEFINE_list(
    "frozen_k", ["1", "2", "3"], "newell20: blocks frozen in Fig. 8's cells (empty: none)."
)
flags.DEFINE_multi_string(
    "scene_gin_file", [], "newell20: after each method's scenes file (default small_scenes.gin)."
)
flags.DEFINE_list("counts", ["100", "250", "1000"], "newell20: label counts of the sweeps.")
flags.DEFINE_multi_string(
    "transfer_bindings", [], "newell20: gin bindings of the transfer runs (Table 1, sweeps)."
)
flags.DEFINE_string("paper", None, "claims: one paper (doersch17, ren_lee18, newell20, ...).")
flags.DEFINE_string("claim", None, "claims: one claim, by id (paper/name) or name.")
flags.DEFINE_string("root", "claims", "claims: the folder of the claims' runs.")
flags.DEFINE_bool("run", False, "claims: make the runs that are missing first.")
flags.DEFINE_string("pages", "docs/results", "claims: where the results pages are written.")
flags.DEFINE_list("runs", None, "results: finished zoo-train runs of one configuration.")
flags.DEFINE_string("title", None, "results: the page's title (default: the first run's name).")


def report():
    from zoo.cli import user_errors
    from zoo.evaluation.sweep import write_report

    if not FLAGS.sweep_dir:
        raise app.UsageError("report needs --sweep_dir")
    with user_errors("zoo-evaluate"):
        text, written = write_report(FLAGS.sweep_dir, higher_is_better=not FLAGS.lower_is_better)
    print(text)
    print("\nwrote " + ", ".join(written))


def transfer():
    import zoo  # noqa: F401  (selects the TensorFlow backend)
    from zoo.cli import gin_setup, user_errors
    from zoo.evaluation.transfer import transfer

    if not FLAGS.source:
        raise app.UsageError("transfer needs --source (and --task unless the gin config sets it)")
    kwargs = {"predictions_path": FLAGS.predictions}
    if FLAGS.task:
        kwargs["task"] = FLAGS.task
    if FLAGS.protocol:
        kwargs["protocol"] = FLAGS.protocol
    if FLAGS.num_labels is not None:
        kwargs["num_labels"] = FLAGS.num_labels
    with user_errors("zoo-evaluate"):
        gin_setup.parse(FLAGS.gin_file, FLAGS.gin_bindings)
        result = transfer(FLAGS.source, **kwargs)
    print(
        f"{result['task']} from {FLAGS.source}: {result['metric']} = {result['value']:.4f} "
        f"after {result['steps']} steps, on {result['eval_examples']} held-out examples"
    )
    for name, value in result.items():
        if name not in ("metric", "value", "steps", "task", "trunk_params", "eval_examples"):
            print(f"  {name:<16} {value:.4f}")
    print(f"  trunk of {result['trunk_params']:,} parameters")
    if FLAGS.predictions:
        print(f"wrote {FLAGS.predictions}")


def _run():
    from zoo import experiment

    if not FLAGS.model_dir:
        raise app.UsageError("give --model_dir (a zoo-train run)")
    return experiment.restore(FLAGS.model_dir)[0]


def domain_gap():
    import zoo  # noqa: F401
    from zoo.cli import user_errors
    from zoo.evaluation import adaptation

    with user_errors("zoo-evaluate"):
        model = _run()
        gaps = adaptation.domain_gap(model, num=FLAGS.num or 240)
    print(f"domain classifier accuracy on held-out features of {FLAGS.model_dir}")
    print("(held-out synthetic scenes vs held-out photo crops; 0.5 = indistinguishable):")
    adapted = getattr(model, "adapt_endpoint", None)
    for endpoint, value in gaps.items():
        mark = "  <- adapted" if endpoint == adapted else ""
        print(f"  {endpoint:<10} {value:.3f}{mark}")


def zero_shot():
    import zoo  # noqa: F401
    from zoo.cli import user_errors
    from zoo.evaluation import adaptation

    with user_errors("zoo-evaluate"):
        model = _run()
        result = adaptation.zero_shot(model, num=FLAGS.num or 128)
    info = model.metric_info()
    print(f"{FLAGS.model_dir} on held-out synthetic scenes and their real-like P version:")
    print(f"  {'task':<10} {'metric':<14} {'synthetic':>10} {'P':>10}")
    for task, metrics in result["synthetic"].items():
        for name, value in metrics.items():
            direction = info.get(task, {}).get(name, ("neither", ""))[0]
            better = "" if direction == "neither" else f"  ({direction} is better)"
            p = result["P"][task][name]
            print(f"  {task:<10} {name:<14} {value:>10.3f} {p:>10.3f}{better}")


def layer_probes():
    import zoo  # noqa: F401
    from zoo.cli import user_errors
    from zoo.evaluation import adaptation

    with user_errors("zoo-evaluate"):
        model = _run()
        layers = adaptation.layers_of(model.trunk)
        result = adaptation.layer_probes(
            FLAGS.model_dir, layers, num_labels=FLAGS.num_labels or 500
        )
    print(f"frozen linear probes of {FLAGS.model_dir} on P classification (accuracy):")
    for endpoint, value in result.items():
        print(f"  {endpoint:<10} {value:.3f}")


def adaptation():
    import zoo  # noqa: F401
    from zoo import files
    from zoo.cli import user_errors
    from zoo.evaluation import adaptation as measure

    if not FLAGS.out:
        raise app.UsageError("adaptation needs --out (the comparison's folder)")
    gin_files = FLAGS.gin_file or ["gin_configs/ren_lee18/small.gin"]
    with user_errors("zoo-evaluate"):
        seeds = [int(s) for s in FLAGS.seeds]
        records = measure.compare(
            FLAGS.rows or list(measure.ROWS),
            seeds,
            FLAGS.out,
            gin_files=gin_files,
            gin_bindings=FLAGS.gin_bindings,
            num_labels=FLAGS.num_labels or 500,
        )
        text = measure.comparison_table(records)
        path = files.write_text(os.path.join(FLAGS.out, "report.md"), text + "\n")
    print(text)
    print(f"\nwrote {path}")
    print("the paper's claims on these runs: zoo-evaluate claims --paper=ren_lee18 --root=<the")
    print("folder holding ren_lee18/results.jsonl>")


def _executor():
    """RayCells for --ray, else None (the cells one after the other)."""
    if not FLAGS.ray:
        return None
    from zoo.cli.ray_cells import RayCells

    return RayCells(FLAGS.ray, FLAGS.ray_cpus_per_cell, FLAGS.ray_gpus_per_cell)


def compl():
    from zoo import files
    from zoo.cli import user_errors
    from zoo.evaluation import compl as grid

    if not FLAGS.out:
        raise app.UsageError("compl needs --out (the grid's folder)")
    with user_errors("zoo-evaluate"):
        records = grid.grid(
            FLAGS.targets,
            FLAGS.auxiliaries,
            [float(f) for f in FLAGS.fractions],
            [int(s) for s in FLAGS.seeds],
            FLAGS.out,
            gin_files=FLAGS.gin_file or None,
            gin_bindings=FLAGS.gin_bindings,
            num=FLAGS.num or 128,
            executor=_executor(),
        )
        text = grid.report(records)
        path = files.write_text(os.path.join(FLAGS.out, "report.md"), text + "\n")
        picture = grid.plot_gains(records, os.path.join(FLAGS.out, "gains.png"))
    print(text)
    print(f"wrote {path} and {picture}")
    print("the paper's claims on these runs: zoo-evaluate claims --paper=compl22 --root=<the")
    print("folder holding compl22/results.jsonl>")


def _newell20_objects(grid, global_tasks, seeds, counts):
    """The grid's stages on single objects: pretraining, Table 1, the sweeps, frozen-k."""
    from zoo.cli import gin_setup

    # Table 1 and the global tasks' sweeps, with the transfer settings of
    # classification_sweep.gin
    gin_setup.parse(
        [os.path.join(grid.CONFIG_DIR, "classification_sweep.gin")], FLAGS.transfer_bindings
    )
    grid.pretrain(
        FLAGS.methods,
        FLAGS.variants,
        FLAGS.out,
        gin_files=FLAGS.gin_file or None,
        gin_bindings=FLAGS.gin_bindings,
        executor=_executor(),
    )
    grid.linear(
        FLAGS.methods, FLAGS.variants, FLAGS.out, FLAGS.num_labels or 4096, seeds, _executor()
    )
    grid.sweeps(FLAGS.methods, FLAGS.variants, global_tasks, counts, seeds, FLAGS.out, _executor())
    if FLAGS.frozen_k and "classification" in global_tasks:
        ks = [int(k) for k in FLAGS.frozen_k]
        grid.frozen(FLAGS.methods, FLAGS.variants, ks, counts, seeds, FLAGS.out, _executor())


def newell20():
    import gin

    from zoo.cli import gin_setup, user_errors
    from zoo.evaluation import newell20 as grid

    if not FLAGS.out:
        raise app.UsageError("newell20 needs --out (the comparison's folder)")
    seeds, counts = [int(s) for s in FLAGS.seeds], [int(n) for n in FLAGS.counts]
    dense = [t for t in FLAGS.tasks if t in grid.DENSE]
    with user_errors("zoo-evaluate"):
        grid.check(FLAGS.methods, FLAGS.variants, FLAGS.tasks)
        global_tasks = [t for t in FLAGS.tasks if t not in dense]
        if global_tasks:
            _newell20_objects(grid, global_tasks, seeds, counts)
        # scenes: the dense tasks, each with the transfer settings of its <task>_sweep.gin
        if dense:
            grid.pretrain(
                FLAGS.methods,
                FLAGS.variants,
                FLAGS.out,
                gin_files=FLAGS.scene_gin_file or None,
                gin_bindings=FLAGS.gin_bindings,
                executor=_executor(),
                scenes=True,
            )
        for task in dense:
            gin.clear_config()
            gin_setup.parse(
                [os.path.join(grid.CONFIG_DIR, f"{task}_sweep.gin")], FLAGS.transfer_bindings
            )
            grid.sweeps(
                FLAGS.methods, FLAGS.variants, [task], counts, seeds, FLAGS.out, _executor()
            )
        # every method and variant of the folder, with those of earlier parts
        text, written = grid.report(FLAGS.out, *grid.members(FLAGS.out))
    print(text)
    print("\nwrote " + ", ".join(written))


def claims():
    from zoo.cli import user_errors
    from zoo.evaluation import claims as registry
    from zoo.evaluation import results

    with user_errors("zoo-evaluate"):
        chosen = registry.select(FLAGS.paper, FLAGS.claim)
        if FLAGS.run:
            registry.run(chosen, FLAGS.root)
        print(registry.table(chosen, FLAGS.root))
        missing = [c for c in chosen if registry.judge_claim(c, FLAGS.root).verdict == "no runs"]
        if missing:
            print(
                f"\n{len(missing)} of {len(chosen)} claims have no runs in {FLAGS.root} yet; "
                "--run makes them (each paper's page lists the commands)."
            )
        command = results.command_line()
        papers = [p for p in registry.PAPERS.values() if FLAGS.paper in (None, p.key) and p.claims]
        written = [
            results.write_page(
                os.path.join(FLAGS.pages, f"{p.key}.md"),
                f"{p.title}: claims and runs",
                registry.paper_page(p, FLAGS.root),
                command,
            )
            for p in papers
            if FLAGS.claim is None
        ]
        overview = os.path.join(FLAGS.pages, "claims.md")
        previous = ""
        if FLAGS.paper and os.path.exists(overview):  # the other papers' sections stay
            with open(overview) as f:
                previous = f.read()
        body = registry.overview(FLAGS.root, FLAGS.paper, previous, command)
        written.append(results.write_page(overview, "Claims of the papers", body, command))
    print("\nwrote " + ", ".join(written))


def results_page():
    from zoo.cli import user_errors
    from zoo.evaluation import results

    if not FLAGS.runs or not FLAGS.out:
        raise app.UsageError("results needs --runs (finished zoo-train runs) and --out")
    with user_errors("zoo-evaluate"):
        body = results.runs_table(FLAGS.runs)
        title = FLAGS.title or os.path.basename(os.path.normpath(FLAGS.runs[0]))
        path = results.write_page(FLAGS.out, title, body, results.command_line())
    print(body)
    print(f"\nwrote {path}")


def mgm22():
    from zoo import files
    from zoo.cli import user_errors
    from zoo.evaluation import mgm22 as grid

    if not FLAGS.out:
        raise app.UsageError("mgm22 needs --out (the comparison's folder)")
    given = FLAGS["fractions"].present
    fractions = [float(f) for f in FLAGS.fractions] if given else grid.DEFAULT_FRACTIONS
    with user_errors("zoo-evaluate"):
        records = grid.grid(
            FLAGS.rows or grid.DEFAULT_ROWS,
            fractions,
            [int(s) for s in FLAGS.seeds],
            FLAGS.out,
            epochs=FLAGS.epochs,
            gan_epochs=FLAGS.gan_epochs,
            gin_files=FLAGS.gin_file or None,
            gin_bindings=FLAGS.gin_bindings,
            executor=_executor(),
        )
        text = grid.report(records)
        path = files.write_text(os.path.join(FLAGS.out, "report.md"), text + "\n")
        picture = grid.plot(records, os.path.join(FLAGS.out, "fractions.png"))
    print(text)
    print(f"wrote {path} and {picture}")


COMMANDS = {
    "report": report,
    "transfer": transfer,
    "domain_gap": domain_gap,
    "zero_shot": zero_shot,
    "layer_probes": layer_probes,
    "adaptation": adaptation,
    "compl": compl,
    "newell20": newell20,
    "mgm22": mgm22,
    "claims": claims,
    "results": results_page,
}


_GRID = (
    "out",
    "seeds",
    "gin_file",
    "gin_bindings",
    "ray",
    "ray_cpus_per_cell",
    "ray_gpus_per_cell",
)
# the flags each command reads (any other flag of this program is refused)
READS = {
    "report": ("sweep_dir", "lower_is_better"),
    "transfer": (
        "source", "task", "protocol", "num_labels", "predictions", "gin_file", "gin_bindings",
    ),
    "domain_gap": ("model_dir", "num"),
    "zero_shot": ("model_dir", "num"),
    "layer_probes": ("model_dir", "num_labels"),
    "adaptation": ("out", "rows", "seeds", "gin_file", "gin_bindings", "num_labels"),
    "compl": (*_GRID, "targets", "auxiliaries", "fractions", "num"),
    "newell20": (
        *_GRID, "methods", "variants", "tasks", "counts", "num_labels", "frozen_k",
        "scene_gin_file", "transfer_bindings",
    ),
    "mgm22": (*_GRID, "rows", "fractions", "epochs", "gan_epochs"),
    "claims": ("paper", "claim", "root", "run", "pages"),
    "results": ("runs", "out", "title"),
}  # fmt: skip


def main(argv):
    if len(argv) != 2 or argv[1] not in COMMANDS:
        raise app.UsageError(f"Usage: zoo-evaluate <{'|'.join(COMMANDS)}> [flags]")
    zoo.cli.refuse_unread_flags("zoo-evaluate", argv[1], READS)
    COMMANDS[argv[1]]()


def run():
    zoo.cli.run(main, __name__)


if __name__ == "__main__":
    run()
