"""A run's folder: created for a configuration, or checked to hold the same run."""

import os
import shutil

from zoo import files
from zoo.errors import ConfigMismatch, ExistingFile, NotWritable
from zoo.experiment.checkpoints import checkpoints


def _significant(config_text):
    """The configuration without comments and blank lines (what "same run" compares)."""
    lines = (line.split("#", 1)[0].rstrip() for line in config_text.splitlines())
    return "\n".join(line for line in lines if line)


def _entries(model_dir):
    """What a model_dir holds besides its lock."""
    return [n for n in os.listdir(model_dir) if n != files.LOCK]


def _holds_work(model_dir):
    """True when the run trained an epoch or finished (its files would be lost)."""
    return bool(checkpoints(model_dir)) or os.path.exists(os.path.join(model_dir, "metrics.json"))


def prepare_model_dir(model_dir, config_text, overwrite=False):
    """Creates `model_dir` for a run of `config_text`, or checks that it holds the same run.

    Runs are compared by their parsed configuration (comments and blank lines aside), so
    `config_text` should be canonical: `gin_setup.parse` returns `gin.config_str()`. A
    model_dir holding a run of another configuration that trained at least one epoch is
    refused (ConfigMismatch) unless `overwrite`, which deletes that run first; one that
    never trained (it failed before its first epoch) is simply taken over.

    Returns:
        "new" for a new run, "resume" when an unfinished run of this configuration is
        continued, "finished" when this configuration already ran to the end (its
        metrics.json exists; `overwrite` starts it again).
    """
    if os.path.exists(model_dir) and not os.path.isdir(model_dir):
        raise ExistingFile(f"--model_dir {model_dir} is a file; give a folder for the run.")
    stored_path = os.path.join(model_dir, "config.gin")
    if os.path.isfile(stored_path):
        with open(stored_path) as f:
            same = _significant(f.read()) == _significant(config_text)
        if same and not overwrite:
            if os.path.exists(os.path.join(model_dir, "metrics.json")):
                return "finished"
            _write_config(model_dir, stored_path, config_text)  # and check it can write
            return "resume"
        if not same and not overwrite and _holds_work(model_dir):
            raise ConfigMismatch(
                f"{model_dir} holds a run of another configuration (see {stored_path}). "
                "Use another --model_dir, or --overwrite to delete that run."
            )
        _empty(model_dir)
    elif os.path.isdir(model_dir) and _entries(model_dir):
        if not overwrite:
            raise ConfigMismatch(
                f"{model_dir} is not empty and holds no zoo run; use another --model_dir or "
                "--overwrite to delete its content."
            )
        _empty(model_dir)
    files.make_dirs(model_dir, "model_dir")
    _write_config(model_dir, stored_path, config_text)
    return "new"


def _write_config(model_dir, path, config_text):
    try:
        files.write_text(path, config_text)
    except OSError as error:
        raise NotWritable(
            f"cannot write in the model_dir {model_dir}: {error.strerror}; give a folder you "
            "can write."
        ) from None


def _empty(model_dir):
    """Deletes the old run in `model_dir`, keeping the lock the new one holds."""
    try:
        for name in _entries(model_dir):
            path = os.path.join(model_dir, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
    except OSError as error:
        raise NotWritable(
            f"cannot delete the old run in {model_dir}: {error.strerror}; give a folder you "
            "can write."
        ) from None
