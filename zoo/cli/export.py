"""zoo-export: writes a trained run's trunk or one of its tasks as a SavedModel.

Usage:
    zoo-export --model_dir=runs/quickstart --out=exports/trunk
    zoo-export --model_dir=runs/quickstart --task=depth --out=serving [--name=depth --version=N]

Without --task, the trunk (serving_default + train endpoints, for transfer and
TFSMLayer finetuning). With --task, that task for TF Serving in <out>/<name>/<version>/
(serving_default on float images, serve_bytes on JPEG/PNG strings, refusing files over
--max_pixels). The weights are the run's last checkpoint; the method is rebuilt from
its method.json.
"""

import os

from absl import app, flags

import zoo  # noqa: F401  (selects the TensorFlow backend)
import zoo.cli

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "A run written by zoo-train.")
flags.DEFINE_string("out", None, "Output folder (the model base folder with --task).")
flags.DEFINE_string("task", None, "Export this task for serving instead of the trunk.")
flags.DEFINE_string("name", None, "Served model name (default: the task name).")
flags.DEFINE_integer("version", None, "Served model version (default: the next free one).")
flags.DEFINE_string("harmonizer", None, "identity or lab_l3 (default: the run's).")
flags.DEFINE_bool("overwrite", False, "Replace an existing export.")
flags.DEFINE_integer(
    "max_pixels",
    None,
    "serve_bytes refuses images whose header announces more pixels (default 40 million).",
    lower_bound=1,
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    if not FLAGS.model_dir or not FLAGS.out:
        raise app.UsageError("give --model_dir and --out")
    if FLAGS.max_pixels is not None and FLAGS.task is None:
        raise app.UsageError("--max_pixels is for a --task export (its serve_bytes)")
    from export import export_model, export_trunk
    from zoo import experiment
    from zoo.cli import user_errors
    from zoo.errors import UserError

    with user_errors("zoo-export"):
        if os.path.isfile(FLAGS.out):
            raise UserError(f"--out {FLAGS.out} is a file; give a folder for the export.")
        if FLAGS.version is not None and FLAGS.version < 1:
            raise UserError(f"--version must be >= 1. Received: {FLAGS.version}")
        model, checkpoint = experiment.restore(FLAGS.model_dir)
        harmonizer = FLAGS.harmonizer or model.serving_harmonizer(FLAGS.task)
        if FLAGS.task is None:
            path = export_trunk(model.trunk, FLAGS.out, harmonizer, overwrite=FLAGS.overwrite)
        else:
            path = export_model(
                model,
                FLAGS.task,
                FLAGS.out,
                FLAGS.name or FLAGS.task,
                FLAGS.version,
                harmonizer,
                overwrite=FLAGS.overwrite,
                max_pixels=FLAGS.max_pixels,
            )
    what = "trunk" if FLAGS.task is None else f"task {FLAGS.task!r}"
    print(f"exported the {what} of {checkpoint} to {path}")


def run():
    zoo.cli.run(main, __name__)


if __name__ == "__main__":
    run()
