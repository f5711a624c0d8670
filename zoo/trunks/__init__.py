"""Trunks returning dicts of named endpoints: ResNets (`zoo.trunks.resnet`) and Ren &
Lee's AlexNet-style trunk (`zoo.trunks.alexnet`)."""

from zoo.trunks.alexnet import alexnet
from zoo.trunks.resnet import DEPTHS, NORMS, STAGES, resnet, resnet9

__all__ = ["DEPTHS", "NORMS", "STAGES", "alexnet", "resnet", "resnet9"]
