r"""zoo-train: trains the experiment a gin configuration describes.

Usage:
    zoo-train --gin_file=gin_configs/quickstart.gin --model_dir=runs/quickstart \
        [--gin_file=...] [--gin_bindings="zoo.experiment.train.epochs = 2"] [--overwrite]

Re-running the same command after an interruption resumes from the last epoch; a
model_dir holding a run of another configuration is refused unless --overwrite.

Common gin knobs (--gin_bindings="...", e.g.): zoo.experiment.train.epochs = 10,
zoo.experiment.train.batch_size = 32, zoo.experiment.train.steps_per_epoch = 100,
zoo.experiment.train.optimizer = @keras.optimizers.Adam(),
keras.optimizers.Adam.learning_rate = 1e-4.
"""

from absl import app, flags

import zoo  # noqa: F401  (selects the TensorFlow backend)
import zoo.cli
from zoo.cli.runs import train_command

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("gin_file", [], "Gin files, parsed in order.")
flags.DEFINE_multi_string("gin_bindings", [], "Gin bindings, applied after the files.")
flags.DEFINE_string("model_dir", None, "Where the run writes everything.")
flags.DEFINE_bool("overwrite", False, "Delete a run of another configuration in --model_dir.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    if not FLAGS.gin_file:
        raise app.UsageError("give at least one --gin_file (e.g. gin_configs/quickstart.gin)")
    if not FLAGS.model_dir:
        raise app.UsageError("give --model_dir")
    from zoo import experiment
    from zoo.cli import user_errors

    with user_errors("zoo-train"):
        results = train_command(
            FLAGS.gin_file, FLAGS.gin_bindings, FLAGS.model_dir, FLAGS.overwrite
        )
    if results is not None:  # None: a worker that is not the chief
        print(experiment.format_report(results, FLAGS.model_dir))


def run():
    zoo.cli.run(main, __name__)


if __name__ == "__main__":
    run()
