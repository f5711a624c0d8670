"""Pictures of zoo data, models and evaluations, written as PNG files.

Usage:
    zoo-visualize synthetic --variant=TCVL --mode=multi --out=grid.png
    zoo-visualize predictions --model_dir=runs/quickstart --out=pred.png
    zoo-visualize alphas --model_dir=runs/lasso --out=alphas.png
    zoo-visualize pretext --model_dir=runs/doersch17_rp_col  (or a VAE run)
    zoo-visualize curves --sweep_dir=sweeps/cls --out=curves.png
    zoo-visualize factors --sweep_dir=sweeps/variants --out=factors.png
    zoo-visualize neighbours --runs=runs/rl18_3tasks,runs/rl18_da_conv5 --out=nn.png
    zoo-visualize filters --model_dir=runs/rl18_da_conv5 --out=conv1.png
    zoo-visualize real --model_dir=runs/rl18_da_conv5 --out=real.png
    zoo-visualize shifted --model_dir=runs/compl_semseg_densecl --out=shifted.png
    zoo-visualize views --augmentation=moco_v2 --variant=TCVL --mode=single --out=views.png
    zoo-visualize views --model_dir=runs/contrastive_moco_v2 --out=views.png
    zoo-visualize generated --model_dir=runs/mgm --out=generated.png

`synthetic`: for `multi`, one row per scene with RGB, depth, normals, instances,
semantics and contours; for `single`, a grid of the ten classes x five pose bins; for
`motion`, both frames and the moving-pixel mask.
`predictions`: held-out scenes of a zoo-train run, each dense task's truth next to its
prediction (Ren & Lee Fig. 5).
`alphas`: the |α| of a lasso run's LassoMix, tasks x units (Doersch & Zisserman Fig. 5).
`pretext`: relative-position pairs with true and predicted labels, colorizations next to
their inputs, and a VAE's reconstructions next to its inputs, of a run's held-out data
(written in the model_dir).
`curves`: a sweep's metric and utility vs the number of labels (Newell & Deng Fig. 4).
`factors`: a sweep over variants: change in utility when a factor is added (Fig. 6).
`neighbours`: nearest neighbours of held-out photo crops among crops of the adaptation
photos in conv5 feature space, for a random trunk and each run (Ren & Lee Fig. 3).
`filters`: the first convolution's filters of a run's trunk (Ren & Lee Fig. 4).
`real`: a run's dense predictions on held-out photographs, next to the input.
`shifted`: a run's first dense task on `--num` held-out scenes of its own variant, then
the same scenes in TCVL and photo-textured P, truth next to prediction (CompL's
zero-shot robustness, Tables S.7 / S.8).
`views`: `--num` images, each next to `--views` augmented views: a contrastive run's
augmentation on its held-out images (`--model_dir`), or MoCo v2's / SimCLR's / BYOL's
(`--augmentation`) on synthetic scenes of the scene flags.
`generated`: an MGM run's generated images, one per scene class, next to its multi-task
network's predictions on them (MGM App. H).
"""

import os

from absl import app, flags

import zoo  # noqa: F401  (selects the TensorFlow backend)
import zoo.cli
from zoo.cli import synthetic_flags, user_errors

FLAGS = flags.FLAGS
synthetic_flags.define(default_mode="multi")
flags.DEFINE_integer("num", 4, "Rows: images or scenes shown (every command that shows some).")
flags.DEFINE_string("out", None, "Output PNG path (pretext: a folder).")
flags.DEFINE_string("model_dir", None, "A zoo-train model_dir (every command that shows a run).")
flags.DEFINE_string(
    "checkpoint", None, "predictions, alphas, pretext, views, generated: a checkpoint (the last)."
)
flags.DEFINE_string("sweep_dir", None, "curves, factors: a sweep directory.")
flags.DEFINE_bool("lower_is_better", False, "curves, factors: the metric is an error.")
flags.DEFINE_list("runs", None, "neighbours: zoo-train model_dirs to compare.")
flags.DEFINE_string("endpoint", "conv5", "neighbours: the layer (AlexNet name or endpoint).")
flags.DEFINE_enum(
    "augmentation", "moco_v2", ["moco_v2", "simclr", "byol", "mgm"], "views: without --model_dir."
)
flags.DEFINE_integer("views", 4, "views: augmented views per image.")


def synthetic():
    from zoo.data.synthetic.plots import plot

    spec = synthetic_flags.spec()
    out = FLAGS.out or f"synthetic_{FLAGS.mode}_{FLAGS.variant.replace('-', '_')}.png"
    plot(spec, out, num=FLAGS.num)
    return out


def _restore():
    from zoo import experiment

    if not FLAGS.model_dir:
        raise app.UsageError("give --model_dir")
    model, checkpoint = experiment.restore(FLAGS.model_dir, FLAGS.checkpoint)
    return model, checkpoint


def predictions():
    from zoo.evaluation.plots import plot_run_predictions

    model, checkpoint = _restore()
    out = FLAGS.out or os.path.join(FLAGS.model_dir, "predictions.png")
    title = f"{FLAGS.model_dir}: {os.path.basename(checkpoint)}, held-out scenes"
    plot_run_predictions(model, out, num=FLAGS.num, title=title)
    return out


def alphas():
    from zoo.evaluation.plots import plot_alpha_heatmap

    model, checkpoint = _restore()
    if model.lasso is None:
        raise SystemExit(
            f"visualize: the run in {FLAGS.model_dir} has no lasso (train with "
            "zoo.methods.MultiTask.lasso_block set)."
        )
    out = FLAGS.out or os.path.join(FLAGS.model_dir, "alphas.png")
    plot_alpha_heatmap(
        model.lasso.alphas(),
        list(model.lasso.task_names),
        out,
        title=f"lasso |α| ({os.path.basename(checkpoint)})",
    )
    return out


def pretext():
    from zoo.evaluation.plots import plot_run_pretext

    model, _ = _restore()
    return ", ".join(plot_run_pretext(model, FLAGS.out or FLAGS.model_dir, num=FLAGS.num))


def _sweep_plot(plot, default_name):
    if not FLAGS.sweep_dir:
        raise app.UsageError("give --sweep_dir")
    out = FLAGS.out or os.path.join(FLAGS.sweep_dir, default_name)
    if not plot(FLAGS.sweep_dir, out, higher_is_better=not FLAGS.lower_is_better):
        raise SystemExit(f"zoo-visualize: nothing to plot in {FLAGS.sweep_dir} ({plot.__doc__})")
    return out


def curves():
    from zoo.evaluation.sweep import plot_curves

    return _sweep_plot(plot_curves, "report.png")


def factors():
    from zoo.evaluation.sweep import plot_factors

    return _sweep_plot(plot_factors, "factors.png")


def neighbours():
    from zoo.evaluation.adaptation import plot_neighbours

    if not FLAGS.runs:
        raise app.UsageError("give --runs (zoo-train model_dirs, comma-separated)")
    out = FLAGS.out or "neighbours.png"
    return plot_neighbours(FLAGS.runs, out, queries=FLAGS.num, endpoint=FLAGS.endpoint)


def filters():
    from zoo.evaluation.adaptation import plot_filters

    if not FLAGS.model_dir:
        raise app.UsageError("give --model_dir")
    return plot_filters(FLAGS.model_dir, FLAGS.out or os.path.join(FLAGS.model_dir, "conv1.png"))


def real():
    from zoo.evaluation.adaptation import plot_real_predictions

    if not FLAGS.model_dir:
        raise app.UsageError("give --model_dir")
    out = FLAGS.out or os.path.join(FLAGS.model_dir, "real_predictions.png")
    return plot_real_predictions(FLAGS.model_dir, out, num=FLAGS.num)


def shifted():
    from zoo.evaluation.compl import plot_shifted

    if not FLAGS.model_dir:
        raise app.UsageError("give --model_dir")
    out = FLAGS.out or os.path.join(FLAGS.model_dir, "shifted_predictions.png")
    return plot_shifted(FLAGS.model_dir, out, num=FLAGS.num)


def views():
    import numpy as np
    import tensorflow as tf

    from zoo.data import augment
    from zoo.data.sources import Synthetic
    from zoo.evaluation.plots import plot_views
    from zoo.methods import SharedTrunk
    from zoo.tasks.contrastive import TwoViewTask

    num = FLAGS.num if FLAGS.num != 4 else 8  # eight images unless --num says otherwise
    if FLAGS.model_dir:
        model, _ = _restore()
        tasks = [t for t in getattr(model, "tasks", {}).values() if isinstance(t, TwoViewTask)]
        if not isinstance(model, SharedTrunk) or not tasks:
            raise SystemExit(
                f"zoo-visualize: the run in {FLAGS.model_dir} has no contrastive task."
            )
        task = tasks[0]
        config = dict(task.views.get_config(), count=FLAGS.views)
        maker, source = augment.Views.from_config(config), task.data_source("eval")
        label = f"{FLAGS.model_dir}: {task.name}'s views of held-out images"
    else:
        make = {
            "moco_v2": augment.moco_v2_views,
            "simclr": augment.simclr_views,
            "byol": augment.byol_views,
            "mgm": augment.mgm_views,
        }
        maker = make[FLAGS.augmentation](count=FLAGS.views)
        spec = synthetic_flags.spec(split="test")
        source = Synthetic(spec, num)
        label = f"{FLAGS.augmentation} views of {spec.variant} {spec.mode} scenes"
    images = np.stack([e["image"].numpy() for e in source.examples(["image"]).take(num)])
    seeds = tf.random.split(tf.constant([0, 1], tf.int64), len(images))
    views_of = np.stack([maker(tf.constant(i), s).numpy() for i, s in zip(images, seeds)])
    out = FLAGS.out or "views.png"
    plot_views(images, views_of, out, title=label)
    return out


def generated():
    from zoo.evaluation.plots import plot_run_generated

    model, checkpoint = _restore()
    out = FLAGS.out or os.path.join(FLAGS.model_dir, "generated.png")
    title = f"{FLAGS.model_dir}: {os.path.basename(checkpoint)}, generated scenes"
    plot_run_generated(model, out, title=title)
    return out


COMMANDS = {
    "synthetic": synthetic,
    "predictions": predictions,
    "alphas": alphas,
    "pretext": pretext,
    "curves": curves,
    "factors": factors,
    "neighbours": neighbours,
    "filters": filters,
    "real": real,
    "shifted": shifted,
    "views": views,
    "generated": generated,
}


_RUN = ("model_dir", "checkpoint", "out")
# the flags each command reads (any other flag of this program is refused)
READS = {
    "synthetic": (*synthetic_flags.NAMES, "num", "out"),
    "predictions": (*_RUN, "num"),
    "alphas": _RUN,
    "pretext": (*_RUN, "num"),
    "curves": ("sweep_dir", "lower_is_better", "out"),
    "factors": ("sweep_dir", "lower_is_better", "out"),
    "neighbours": ("runs", "endpoint", "num", "out"),
    "filters": ("model_dir", "out"),
    "real": ("model_dir", "num", "out"),
    "shifted": ("model_dir", "num", "out"),
    "views": (*_RUN, "augmentation", "views", "num", "variant", "mode", "seed", "resolution"),
    "generated": _RUN,
}


def main(argv):
    if len(argv) != 2 or argv[1] not in COMMANDS:
        raise app.UsageError(f"Usage: zoo-visualize <{'|'.join(COMMANDS)}> [flags]")
    zoo.cli.refuse_unread_flags("zoo-visualize", argv[1], READS)
    with user_errors("zoo-visualize"):
        out = COMMANDS[argv[1]]()
    print(f"wrote {out}")


def run():
    zoo.cli.run(main, __name__)


if __name__ == "__main__":
    run()
