"""Evaluation: metrics of the papers' tasks and the utility of pretraining (numpy)."""

from zoo.evaluation.utility import utility

__all__ = ["utility"]
