"""Tasks: a data pipeline, a head, a loss, metrics and serving outputs each (see `base`)."""

from zoo.tasks.base import Task
from zoo.tasks.classification import Classification
from zoo.tasks.contours import Contours
from zoo.tasks.depth import Depth
from zoo.tasks.normals import Normals
from zoo.tasks.pose import Pose
from zoo.tasks.rotation import Rotation
from zoo.tasks.semantic_segmentation import SemanticSegmentation

__all__ = [
    "Classification",
    "Contours",
    "Depth",
    "Normals",
    "Pose",
    "Rotation",
    "SemanticSegmentation",
    "Task",
]
