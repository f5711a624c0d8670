"""Evaluation: metrics of the papers' tasks, the utility of pretraining, exported trunks."""

from zoo.evaluation.exported import ExportedTrunk
from zoo.evaluation.utility import utility

__all__ = ["ExportedTrunk", "utility"]
