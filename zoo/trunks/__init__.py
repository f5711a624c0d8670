"""Trunks returning dicts of named endpoints: ResNets (`zoo.trunks.resnet`) and Ren &
Lee's AlexNet-style trunk (`zoo.trunks.alexnet`)."""

from zoo.trunks.alexnet import alexnet
from zoo.trunks.deeplab import deeplab_v3_plus
from zoo.trunks.resnet import DEPTHS, NORMS, STAGES, resnet, resnet9

__all__ = ["DEPTHS", "NORMS", "STAGES", "alexnet", "deeplab_v3_plus", "resnet", "resnet9"]
