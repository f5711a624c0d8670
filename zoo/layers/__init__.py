"""Small reusable Keras layers."""

from zoo.layers.discriminator import patch_discriminator
from zoo.layers.gan import ConditionalBatchNorm, ProjectionOutput, SelfAttention, spectral
from zoo.layers.lasso_mix import LassoMix
from zoo.layers.normalization import batch_norm
from zoo.layers.residual import bottleneck_unit, fc_residual_unit, patch_head
from zoo.layers.sampling import GaussianSample
from zoo.layers.up_projection import Unpool2D, up_projection, up_projection_decoder

__all__ = [
    "ConditionalBatchNorm",
    "GaussianSample",
    "LassoMix",
    "ProjectionOutput",
    "SelfAttention",
    "Unpool2D",
    "batch_norm",
    "bottleneck_unit",
    "fc_residual_unit",
    "patch_discriminator",
    "patch_head",
    "spectral",
    "up_projection",
    "up_projection_decoder",
]
