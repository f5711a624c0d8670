"""Tasks: a data pipeline, a head, a loss, metrics and serving outputs each (see `base`)."""

from zoo.tasks.base import Task
from zoo.tasks.byol import BYOL
from zoo.tasks.classification import Classification
from zoo.tasks.colorization import Colorization
from zoo.tasks.contours import Contours
from zoo.tasks.contrastive import DenseCL, MoCo, SimCLR
from zoo.tasks.depth import Depth
from zoo.tasks.exemplar import Exemplar
from zoo.tasks.infomax import AMDIM, CMC
from zoo.tasks.momentum import MomentumSchedule, MomentumTask
from zoo.tasks.motion_segmentation import MotionSegmentation
from zoo.tasks.normals import Normals
from zoo.tasks.pose import Pose
from zoo.tasks.probe import Probe
from zoo.tasks.relative_position import RelativePosition
from zoo.tasks.rotation import Rotation
from zoo.tasks.scene import SceneClassification
from zoo.tasks.semantic_segmentation import SemanticSegmentation
from zoo.tasks.vae import VAE

__all__ = [
    "AMDIM",
    "BYOL",
    "CMC",
    "Classification",
    "Colorization",
    "Contours",
    "DenseCL",
    "Depth",
    "Exemplar",
    "MoCo",
    "MomentumSchedule",
    "MomentumTask",
    "MotionSegmentation",
    "Normals",
    "Pose",
    "Probe",
    "RelativePosition",
    "Rotation",
    "SceneClassification",
    "SemanticSegmentation",
    "SimCLR",
    "Task",
    "VAE",
]
