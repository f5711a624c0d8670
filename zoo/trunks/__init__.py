"""ResNet trunks returning dicts of named endpoints (see `zoo.trunks.resnet`)."""

from zoo.trunks.resnet import DEPTHS, NORMS, STAGES, resnet, resnet9

__all__ = ["DEPTHS", "NORMS", "STAGES", "resnet", "resnet9"]
