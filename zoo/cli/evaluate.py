"""Transfer evaluation: one protocol run, and reports of label-count sweeps.

Usage:
    zoo-evaluate transfer --source=runs/newell20_rotation --task=classification \
        --protocol=linear --num_labels=500 [--gin_file=...] [--gin_bindings=...] \
        [--predictions=pred.png]
    zoo-evaluate report --sweep_dir=sweeps/cls [--lower_is_better]

`transfer`: trains one probe (`zoo.evaluation.transfer`, configured with gin, e.g.
gin_configs/transfer/*.gin) on n labels from a source ("random", a zoo-train model_dir,
a checkpoint file of one, or an exported trunk) and prints the held-out metrics;
--predictions writes held-out predictions next to the truth.

`report`: prints a Markdown table (method x n: mean ± std over seeds, and the utility
against the scratch baseline) and writes it as report.md next to results.jsonl, with
report.png (metric and utility vs labels). A sweep over variants gets one table and plot
per variant, a table of mean utility per variant and factors.png (Newell & Deng Fig. 6).
"""

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("sweep_dir", None, "report: a sweep directory written by tools/sweep.py.")
flags.DEFINE_bool("lower_is_better", False, "report: the sweep's metric is an error (RMSE).")
flags.DEFINE_string("source", None, "transfer: random, a model_dir, a checkpoint or an export.")
flags.DEFINE_string("task", None, "transfer: classification, pose, segmentation or depth.")
flags.DEFINE_string("protocol", None, "transfer: linear, lasso_linear, finetune or frozen_k.")
flags.DEFINE_integer("num_labels", None, "transfer: labelled examples.")
flags.DEFINE_string("predictions", None, "transfer: PNG of held-out predictions.")
flags.DEFINE_multi_string("gin_file", [], "transfer: gin files configuring the protocol.")
flags.DEFINE_multi_string("gin_bindings", [], "transfer: gin bindings.")


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
        f"after {result['steps']} steps"
    )
    for name, value in result.items():
        if name not in ("metric", "value", "steps", "task", "trunk_params"):
            print(f"  {name:<16} {value:.4f}")
    print(f"  trunk of {result['trunk_params']:,} parameters")
    if FLAGS.predictions:
        print(f"wrote {FLAGS.predictions}")


COMMANDS = {"report": report, "transfer": transfer}


def main(argv):
    if len(argv) != 2 or argv[1] not in COMMANDS:
        raise app.UsageError(f"Usage: zoo-evaluate <{'|'.join(COMMANDS)}> [flags]")
    COMMANDS[argv[1]]()


def run():
    app.run(main)


if __name__ == "__main__":
    run()
