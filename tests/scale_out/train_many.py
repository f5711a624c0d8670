"""Trains the named configurations of `configs.py` one after the other in this process,
each into <out>/<name>: on one process without TF_CONFIG, as a worker of the cluster
with it (`strategy = "multi_worker"`). Usage: python train_many.py OUT NAME..."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import gin  # noqa: E402
from configs import CONFIGS  # noqa: E402

import zoo  # noqa: E402,F401
import zoo.configurables  # noqa: E402,F401
from zoo import experiment  # noqa: E402


def main(out, names):
    cluster = bool(os.environ.get("TF_CONFIG"))
    if cluster:  # before TensorFlow runs an op
        experiment.make_strategy("multi_worker")
    for name in names:
        gin.clear_config()
        gin.parse_config(CONFIGS[name])
        if cluster:
            gin.parse_config('zoo.experiment.train.strategy = "multi_worker"')
        experiment.train(os.path.join(out, name))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
