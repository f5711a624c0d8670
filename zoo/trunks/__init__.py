"""Trunks returning dicts of named endpoints: ResNets (`zoo.trunks.resnet`), Ren & Lee's
AlexNet-style trunk (`zoo.trunks.alexnet`), DeepLabv3+ on a trunk
(`zoo.trunks.deeplab_v3_plus`) and a trunk per group of channels
(`zoo.trunks.channel_split`)."""

from zoo.trunks.alexnet import alexnet
from zoo.trunks.deeplab import deeplab_v3_plus
from zoo.trunks.resnet import DEPTHS, NORMS, STAGES, refinement_network, resnet, resnet9
from zoo.trunks.split import channel_split

__all__ = [
    "DEPTHS",
    "NORMS",
    "STAGES",
    "alexnet",
    "channel_split",
    "deeplab_v3_plus",
    "refinement_network",
    "resnet",
    "resnet9",
]
