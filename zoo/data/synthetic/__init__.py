"""Embedded synthetic scene benchmark (Newell & Deng 2020, Ren & Lee 2018): see `scene`."""

from zoo.data.synthetic.objects import CLASSES
from zoo.data.synthetic.scene import POSE_BINS, SCENE_NAMES, SceneSpec, describe, generate

__all__ = ["CLASSES", "POSE_BINS", "SCENE_NAMES", "SceneSpec", "describe", "generate"]
