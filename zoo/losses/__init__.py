"""Loss functions: pure functions of tensors, one per formula in the papers.

Every loss returns one value per example (shape [B]); the caller averages them (a model's
`train_step` uses `tf.nn.compute_average_loss` so that multi-replica training scales
correctly).
"""

from zoo.losses.adversarial import (
    bi_fool_loss,
    discriminator_loss,
    domain_cross_entropy,
    fool_loss,
    hinge_discriminator_loss,
    hinge_generator_loss,
)
from zoo.losses.contrastive import (
    alignment,
    byol,
    dense_info_nce,
    info_nce,
    nt_xent,
    uniformity,
)
from zoo.losses.dense import (
    berhu,
    class_balanced_sigmoid_ce,
    masked_l1,
    negative_cosine_normals,
    scale_invariant_log_depth,
    weighted_sigmoid_ce,
)

__all__ = [
    "alignment",
    "byol",
    "dense_info_nce",
    "info_nce",
    "nt_xent",
    "uniformity",
    "bi_fool_loss",
    "discriminator_loss",
    "domain_cross_entropy",
    "fool_loss",
    "hinge_discriminator_loss",
    "hinge_generator_loss",
    "berhu",
    "class_balanced_sigmoid_ce",
    "masked_l1",
    "negative_cosine_normals",
    "scale_invariant_log_depth",
    "weighted_sigmoid_ce",
]
