r"""Label-count sweep: pretrained trunks and the scratch baseline over n labels and seeds.

Usage:
    zoo-sweep --sweep_dir=sweeps/newell20_cls \
        --gin_file=gin_configs/newell20/classification_sweep.gin
    zoo-sweep --sweep_dir=sweeps/cls --task=classification --protocol=finetune \
        --method=quickstart=runs/quickstart --counts=100,250,500,1000 --seeds=0,1,2 \
        [--variants=----,T---,-C--] [--gin_bindings="zoo.evaluation.transfer.variant = '----'"]

Every (method, n, seed) cell runs `zoo.evaluation.transfer` (see gin_configs/transfer/
and gin_configs/newell20/); the grid is `zoo.evaluation.run_sweep`'s (methods, counts,
seeds, variants), and flags override it. The scratch baseline ("scratch") trains
`zoo.evaluation.transfer.builder` from random initialisation. Each cell is added to
<sweep_dir>/results.jsonl as it finishes, with a digest of the weights it started from;
re-running the same command skips finished cells, and a sweep_dir of another transfer
configuration, or of a method whose source now holds other weights, is refused. With variants, each
variant has a sub-folder and "{variant}" in a method's source is replaced by it. Then
`zoo-evaluate report --sweep_dir=...`.

With --ray=auto (a local Ray cluster) or --ray=<address> (an existing one) the cells run
in parallel, each holding --ray_cpus_per_cell CPUs (and --ray_gpus_per_cell GPUs), into
the same results file; a failed cell is retried once, then named
(zoo/cli/ray_cells.py).
"""

from absl import app, flags

import zoo  # noqa: F401  (selects the TensorFlow backend)
import zoo.cli

FLAGS = flags.FLAGS
flags.DEFINE_string("sweep_dir", None, "Where results.jsonl is kept.")
flags.DEFINE_multi_string("gin_file", [], "Gin files configuring the sweep and the transfer.")
flags.DEFINE_multi_string("gin_bindings", [], "Gin bindings.")
flags.DEFINE_string("task", None, "classification, pose, segmentation or depth.")
flags.DEFINE_string("protocol", None, "linear, lasso_linear, finetune, frozen_k or knn.")
flags.DEFINE_multi_string("method", [], "name=source: a model_dir, checkpoint or export.")
flags.DEFINE_list("counts", None, "Label counts n (default: the gin config's).")
flags.DEFINE_list("seeds", None, "Seeds per cell (default: the gin config's).")
flags.DEFINE_list("variants", None, "Dataset variants, e.g. ----,T---,TCVL.")
flags.DEFINE_string(
    "ray",
    None,
    "Run the cells in parallel on Ray (pip install -e '.[ray]'): 'auto' starts a local "
    "cluster on this machine, an address joins an existing one. Default: one by one.",
)
flags.DEFINE_integer("ray_cpus_per_cell", 1, "CPUs each cell holds on the Ray cluster.", 1)
flags.DEFINE_float("ray_gpus_per_cell", 0.0, "GPUs each cell holds on the Ray cluster.", 0.0)
flags.mark_flag_as_required("sweep_dir")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    from zoo.cli import gin_setup, user_errors
    from zoo.errors import UserError
    from zoo.evaluation.sweep import run_sweep

    bindings = list(FLAGS.gin_bindings)
    for name in ("task", "protocol"):
        if getattr(FLAGS, name):
            bindings.append(f"zoo.evaluation.transfer.{name} = {getattr(FLAGS, name)!r}")
    with user_errors("zoo-sweep"):
        gin_setup.parse(FLAGS.gin_file, bindings)
        methods = dict(_bound("methods") or {})
        for item in FLAGS.method:
            name, _, source = item.partition("=")
            if not name or not source:
                raise UserError(f"--method must be name=source. Received: {item!r}")
            methods[name] = source
        overrides = {"methods": methods}
        for name in ("counts", "seeds"):
            values = getattr(FLAGS, name)
            if values:
                if not all(v.isdigit() for v in values):
                    raise UserError(f"--{name} must be integers. Received: {values}")
                overrides[name] = [int(v) for v in values]
        if FLAGS.variants:
            overrides["variants"] = FLAGS.variants
        if FLAGS.ray:
            from zoo.cli.ray_cells import RayCells

            overrides["executor"] = RayCells(
                FLAGS.ray, FLAGS.ray_cpus_per_cell, FLAGS.ray_gpus_per_cell
            )
        run_sweep(FLAGS.sweep_dir, **overrides)


def _bound(parameter):
    import gin

    try:
        return gin.query_parameter(f"zoo.evaluation.run_sweep.{parameter}")
    except ValueError:
        return None


def run():
    zoo.cli.run(main, __name__)


if __name__ == "__main__":
    run()
