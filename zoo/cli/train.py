"""zoo-train: trains the experiment a gin configuration describes.

Usage:
    zoo-train --gin_file=gin_configs/quickstart.gin --model_dir=runs/quickstart \
        [--gin_file=...] [--gin_bindings="zoo.experiment.train.epochs = 2"] [--overwrite]

Re-running the same command after an interruption resumes from the last epoch; a
model_dir holding a run of another configuration is refused unless --overwrite.
"""

import json
import os

from absl import app, flags, logging

import zoo  # noqa: F401  (selects the TensorFlow backend)

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("gin_file", [], "Gin files, parsed in order.")
flags.DEFINE_multi_string("gin_bindings", [], "Gin bindings, applied after the files.")
flags.DEFINE_string("model_dir", None, "Where the run writes everything.")
flags.DEFINE_bool("overwrite", False, "Delete a run of another configuration in --model_dir.")


def train_command(gin_files, gin_bindings, model_dir, overwrite=False, say=print):
    """What `zoo-train` does after reading its flags; returns the run's results.

    Raises a ZooError for anything the user can fix from its message.
    """
    from zoo import experiment
    from zoo.cli import gin_setup

    config = gin_setup.parse(gin_files, gin_bindings)
    if _bound("serial_ops", False):  # before TensorFlow runs its first op
        experiment.run_ops_one_at_a_time(_bound("strategy", "auto"))
    state = experiment.prepare_model_dir(model_dir, config, overwrite)
    if state == "finished":
        with open(os.path.join(model_dir, "metrics.json")) as f:
            results = json.load(f)
        say(
            f"{model_dir} holds a finished run of this configuration "
            "(--overwrite trains it again).\n"
        )
        return results
    say(
        f"{'resuming' if state == 'resume' else 'starting'} the run in "
        f"{os.path.abspath(model_dir)}: {', '.join(gin_files)}"
    )
    results = experiment.train(model_dir)
    say("")
    return results


def _bound(parameter, default):
    import gin

    try:
        return gin.query_parameter(f"zoo.experiment.train.{parameter}")
    except ValueError:
        return default


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    if not FLAGS.gin_file:
        raise app.UsageError("give at least one --gin_file (e.g. gin_configs/quickstart.gin)")
    if not FLAGS.model_dir:
        raise app.UsageError("give --model_dir")
    from zoo import experiment
    from zoo.errors import ZooError, first_line

    logging.set_verbosity(logging.WARNING)  # TensorFlow's SavedModel chatter
    try:
        results = train_command(
            FLAGS.gin_file, FLAGS.gin_bindings, FLAGS.model_dir, FLAGS.overwrite
        )
    except ZooError as error:  # the user's to fix, from the message alone
        raise SystemExit(f"zoo-train: {first_line(error)}") from None
    print(experiment.format_report(results, FLAGS.model_dir))


def run():
    app.run(main)


if __name__ == "__main__":
    run()
