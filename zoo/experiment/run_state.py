"""What a run has done (progress.json) and whether it was asked to stop."""

import json
import os
import threading

from zoo import files
from zoo.errors import Interrupted
from zoo.experiment.checkpoints import checkpoints, epoch_of


class Progress:
    """The run's progress.json: what is done, kept across the processes of one run."""

    def __init__(self, model_dir):
        self.path = os.path.join(model_dir, "progress.json")
        self.state = {"epochs": {}}
        if os.path.exists(self.path):
            with open(self.path) as f:
                self.state = json.load(f)

    def __getitem__(self, key):
        return self.state.get(key)

    def set(self, **values):
        self.state.update(values)
        files.write_json(self.path, self.state)

    def epoch(self, epoch):
        return self.state["epochs"].get(str(epoch))

    def set_epoch(self, epoch, record):
        self.state["epochs"][str(epoch)] = record
        files.write_json(self.path, self.state)


_stop = threading.Event()


def request_stop():
    """Asks the run in progress to stop after the training step it is in (between
    stages when it is not training): `train` then raises Interrupted, every finished
    epoch kept. Safe to call from a signal handler or another thread."""
    _stop.set()


def stop_requested() -> bool:
    """Whether `request_stop()` was called and not yet acted on."""
    return _stop.is_set()


def check_stop(model_dir, where):
    if _stop.is_set():
        _stop.clear()
        done = checkpoints(model_dir)
        last = f"epoch {epoch_of(done[-1])}" if done else "none yet"
        raise Interrupted(
            f"stopped on request {where} (last checkpoint: {last}); run the same command "
            "again to resume."
        )
