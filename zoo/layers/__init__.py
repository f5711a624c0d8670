"""Small reusable Keras layers."""

from zoo.layers.lasso_mix import LassoMix

__all__ = ["LassoMix"]
