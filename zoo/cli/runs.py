"""What the training commands do after reading their flags (no flags defined here, so
that one command can run another's body)."""

import json
import os


def train_command(gin_files, gin_bindings, model_dir, overwrite=False, say=print, what=None):
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
        f"{os.path.abspath(model_dir)}: {what or ', '.join(gin_files)}"
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
