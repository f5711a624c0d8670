"""Evaluation: metrics of the papers' tasks, the utility of pretraining, exported trunks.

`ExportedTrunk` (Keras and TensorFlow) is imported on first use, so that a sweep's
report (`zoo.evaluation.sweep`, `zoo.evaluation.plots`) loads without TensorFlow.
"""

from zoo.evaluation.utility import utility

__all__ = ["ExportedTrunk", "utility"]


def __getattr__(name):
    if name == "ExportedTrunk":
        from zoo.evaluation.exported import ExportedTrunk

        return ExportedTrunk
    raise AttributeError(f"module 'zoo.evaluation' has no attribute {name!r}")
