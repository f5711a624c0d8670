"""Label-count sweep: pretrained trunks and the scratch baseline over n labels and seeds.

Usage:
    python tools/sweep.py --sweep_dir=sweeps/cls --task=classification \
        --method=quickstart=runs/quickstart --counts=100,250,500,1000 --seeds=0,1,2 \
        [--gin_file=...] [--gin_bindings="zoo.evaluation.transfer.variant = '----'"]

Every (method, n, seed) cell runs `zoo.evaluation.transfer` (configured with gin; the
scratch baseline uses `zoo.evaluation.transfer.builder`, by default a ResNet-18 at half
width) and is appended to <sweep_dir>/results.jsonl as it finishes; re-running the same
command skips finished cells. Then `python tools/evaluate.py report --sweep_dir=...`.
"""

import functools
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

from absl import app, flags, logging  # noqa: E402

import zoo  # noqa: E402,F401  (selects the TensorFlow backend)

FLAGS = flags.FLAGS
flags.DEFINE_string("sweep_dir", None, "Where results.jsonl is kept.")
flags.DEFINE_string("task", "classification", "classification, pose, segmentation or depth.")
flags.DEFINE_string("protocol", "finetune", "linear, lasso_linear, finetune or frozen_k.")
flags.DEFINE_multi_string("method", [], "name=source: a zoo-train model_dir or exported trunk.")
flags.DEFINE_list("counts", ["100", "250", "500", "1000"], "Label counts n.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds per cell.")
flags.DEFINE_multi_string("gin_file", [], "Gin files configuring zoo.evaluation.transfer.")
flags.DEFINE_multi_string("gin_bindings", [], "Gin bindings.")
flags.mark_flag_as_required("sweep_dir")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    import gin

    from zoo.cli import gin_setup
    from zoo.evaluation.sweep import SCRATCH, run_sweep
    from zoo.evaluation.transfer import transfer
    from zoo.trunks import resnet

    logging.set_verbosity(logging.WARNING)
    methods = {SCRATCH: "random"}
    for item in FLAGS.method:
        name, _, source = item.partition("=")
        if not name or not source or name == SCRATCH:
            raise app.UsageError(f"--method must be name=source (not '{SCRATCH}'): {item!r}")
        methods[name] = source
    try:
        gin_setup.parse(FLAGS.gin_file, FLAGS.gin_bindings)
        counts = [int(n) for n in FLAGS.counts]
        seeds = [int(s) for s in FLAGS.seeds]
    except (gin_setup.ConfigError, ValueError) as error:
        raise SystemExit(f"sweep: {error}") from None
    if not _builder_bound():  # default scratch trunk: ResNet-18 at half width
        with gin.unlock_config():
            gin.bind_parameter(
                "zoo.evaluation.transfer.builder",
                functools.partial(resnet, 18, width_multiplier=0.5),
            )

    def run_cell(source, n, seed):
        return transfer(source, FLAGS.task, protocol=FLAGS.protocol, num_labels=n, seed=seed)

    try:
        run_sweep(FLAGS.sweep_dir, methods, counts, seeds, run_cell)
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"sweep: {error}") from None


def _builder_bound():
    import gin

    try:
        gin.query_parameter("zoo.evaluation.transfer.builder")
        return True
    except ValueError:
        return False


if __name__ == "__main__":
    app.run(main)
