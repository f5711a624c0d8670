"""Evaluation: metrics of the papers' tasks (numpy, pure functions)."""
