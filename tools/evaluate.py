"""Reports of transfer evaluations.

Usage:
    python tools/evaluate.py report --sweep_dir=sweeps/cls [--lower_is_better]

`report`: prints a Markdown table (method x n: mean ± std over seeds, and the utility
against the scratch baseline), and writes it as report.md next to results.jsonl with
report.png (the metric and the utility vs the number of labels).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("sweep_dir", None, "A sweep directory written by tools/sweep.py.")
flags.DEFINE_bool("lower_is_better", False, "The sweep's metric is an error (e.g. RMSE).")


def report():
    from zoo.evaluation.plots import plot_label_curves
    from zoo.evaluation.sweep import SCRATCH, load_results, markdown_table, summarize

    results = load_results(FLAGS.sweep_dir)
    if not results:
        raise SystemExit(f"evaluate: {FLAGS.sweep_dir} holds no results.jsonl with results.")
    metric = results[0]["metric"]
    table = summarize(results, higher_is_better=not FLAGS.lower_is_better)
    text = markdown_table(table, metric)
    print(text)
    with open(os.path.join(FLAGS.sweep_dir, "report.md"), "w") as f:
        f.write(text + "\n")
    if SCRATCH in table and len(table[SCRATCH]) >= 2:
        curve = lambda rows: ([r["n"] for r in rows], [r["mean"] for r in rows])  # noqa: E731
        plot_label_curves(
            curve(table[SCRATCH]),
            {m: curve(rows) for m, rows in table.items() if m != SCRATCH},
            os.path.join(FLAGS.sweep_dir, "report.png"),
            metric_name=metric,
            higher_is_better=not FLAGS.lower_is_better,
            title=os.path.basename(os.path.normpath(FLAGS.sweep_dir)),
        )
        print(f"\nwrote report.md and report.png in {FLAGS.sweep_dir}")


COMMANDS = {"report": report}


def main(argv):
    if len(argv) != 2 or argv[1] not in COMMANDS:
        raise app.UsageError(f"Usage: evaluate.py <{'|'.join(COMMANDS)}> [flags]")
    if not FLAGS.sweep_dir:
        raise app.UsageError("give --sweep_dir")
    COMMANDS[argv[1]]()


if __name__ == "__main__":
    app.run(main)
