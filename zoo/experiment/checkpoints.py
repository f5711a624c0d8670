"""A run's checkpoints and method: finding, verifying and loading them, resuming from
the last good one, and `restore` (a run rebuilt from its method.json, without gin)."""

import hashlib
import json
import os
import re

import h5py
from absl import logging

from zoo.data.harmonize import served
from zoo.errors import DataError, MissingFile, ZooError, first_line
from zoo.methods import Method
from zoo.methods.base import deserialize, trusted_exports

_CHECKPOINT = re.compile(r"^epoch_(\d+)\.weights\.h5$")


def checkpoints(model_dir):
    """The run's complete checkpoint files, oldest first."""
    folder = os.path.join(model_dir, "checkpoints")
    if not os.path.isdir(folder):
        return []
    return [os.path.join(folder, f) for f in sorted(os.listdir(folder)) if _CHECKPOINT.match(f)]


def epoch_of(path):
    return int(_CHECKPOINT.match(os.path.basename(path)).group(1))


def sha256_of(path):
    sha = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def readable(path, digest=None):
    """None when `path` is a complete weights file (and has `digest`), else the reason."""
    if digest is not None and sha256_of(path) != digest:
        return "its content differs from what was written (sha256)"
    try:
        with h5py.File(path, "r") as f:
            f.visititems(lambda name, item: item[()] if isinstance(item, h5py.Dataset) else None)
    except (OSError, RuntimeError, ValueError) as error:
        return str(error).splitlines()[0]
    return None


def method_config(model_dir: str) -> dict:
    """A run's `method.json` (the method as a Keras config), or a DataError naming the
    file when it is not a JSON object."""
    path = os.path.join(model_dir, "method.json")
    try:
        with open(path) as f:
            config = json.load(f)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(
            f"{path} is damaged (not JSON: {error}); train the run again, or restore the "
            "file from a copy."
        ) from None
    if not isinstance(config, dict) or not isinstance(config.get("config"), dict):
        raise DataError(
            f"{path} is damaged (not a Keras config: a JSON object with a 'config' entry); "
            "train the run again, or restore the file from a copy."
        )
    return config


def _refusal(error) -> str:
    """The first sentence of the innermost cause Keras gives for refusing a config."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    return first_line(error).split(". ")[0].rstrip(" .,")


def method_harmonizer(model_dir: str) -> str:
    """The deterministic harmonizer every task of a run's method shares (read from its
    `method.json`), or "identity" (tasks differ, or theirs are training augmentations)."""
    config = method_config(model_dir)
    found = set()

    def visit(value):
        if isinstance(value, dict):
            if "harmonizer" in value and isinstance(value["harmonizer"], str):
                found.add(value["harmonizer"])
            for item in value.values():
                visit(item)
        elif isinstance(value, list):
            for item in value:
                visit(item)

    visit(config)
    return served(found)


def restore(model_dir: str, checkpoint: str | None = None) -> tuple[Method, str]:
    """Rebuilds a run's method from its `method.json` and loads a checkpoint (no gin).

    Args:
        model_dir: str. A zoo-train model_dir.
        checkpoint: str or None. A file of the run's checkpoints/ (or its name, e.g.
            "epoch_002.weights.h5"). Defaults to the last one.

    Returns:
        (Method, checkpoint path).
    """
    config = os.path.join(model_dir, "method.json")
    done = checkpoints(model_dir)
    if not os.path.exists(config) or not done:
        raise MissingFile(
            f"{model_dir} holds no trained run (needs method.json and a checkpoint in "
            "checkpoints/); train one with zoo-train first."
        )
    if checkpoint is None:
        checkpoint = done[-1]
    elif not os.path.exists(checkpoint):
        names = [os.path.basename(c) for c in done]
        if checkpoint not in names:
            raise MissingFile(
                f"checkpoint {checkpoint!r} is not in {model_dir}/checkpoints; it has {names}."
            )
        checkpoint = done[names.index(checkpoint)]
    problem = readable(checkpoint)
    if problem:
        raise DataError(
            f"checkpoint {checkpoint} cannot be read ({problem}); re-run zoo-train on "
            f"{model_dir} to set it aside and write it again, or choose an earlier one."
        )
    text = method_config(model_dir)
    try:
        with trusted_exports():  # a trunk finetuned from an export
            method = deserialize(text)
    except ZooError:  # the zoo's own message (e.g. an exported trunk that moved)
        raise
    except (ValueError, TypeError, KeyError, AttributeError, ImportError) as error:
        # Keras' safe mode refuses functions and classes outside Keras and the zoo
        raise DataError(
            f"{config} cannot be rebuilt, refused: {_refusal(error)} (a method.json names "
            "Keras and zoo classes only); train the run again, or restore the file."
        ) from None
    load_checkpoint(method, checkpoint)
    return method, checkpoint


def load_checkpoint(method: Method, path: str) -> None:
    """Loads a checkpoint into `method`, refusing (and leaving untouched) one whose
    variables are not the method's, with what to do instead of Keras' list of layers.

    Such a checkpoint is another method's, or one written before a method's variables
    moved: e.g. a `loss_balance="grad_norm"` run checkpointed before its weights moved
    into the `loss_balancer` layer (2026-12-03) does not resume in a later zoo.
    """
    try:
        method.load_weights(path)
    except ValueError as error:
        if "could not be loaded" not in str(error):
            raise
        detail = next((line for line in str(error).splitlines() if "expected" in line), str(error))
        raise DataError(
            f"checkpoint {path} does not hold this method's variables ({detail.strip()}). "
            "It was written by another method or by a zoo version whose variables were "
            "laid out differently, and is left as it is: resume it with the zoo version "
            "that wrote it, or train into a new model_dir."
        ) from None


def resume_point(model, model_dir, progress, epochs):
    """Loads the last good checkpoint into `model`; returns its epoch (0: none).

    A checkpoint that is not complete, whose digest differs from the one recorded when
    it was written, or of an epoch beyond the run's, is renamed `*.unreadable` with a
    warning; the one before is tried next.
    """
    for path in reversed(checkpoints(model_dir)):
        epoch = epoch_of(path)
        record = progress.epoch(epoch)
        problem = None
        if epoch > epochs:
            problem = f"the run has {epochs} epochs"
        else:  # no record: a run of an older zoo; its history lacks that epoch
            problem = readable(path, (record or {}).get("sha256"))
        if problem is None:
            load_checkpoint(model, path)
            return epoch
        aside = path + ".unreadable"
        os.replace(path, aside)
        logging.warning("checkpoint %s is unusable (%s); set aside as %s", path, problem, aside)
        print(f"warning: checkpoint {path} is unusable ({problem}); set aside as {aside}")
    return 0
