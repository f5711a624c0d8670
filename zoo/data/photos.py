"""The photographs installed with scikit-image and scikit-learn (never downloaded).

NumPy and PIL only: the renderer's worker processes read the texture photographs of the
"P" factor from here without importing TensorFlow.
"""

import functools
import importlib.util
import os

import numpy as np
from PIL import Image

from zoo.errors import MissingFile, UserError

# Photographs installed with scikit-image (skimage/data) and scikit-learn
# (sklearn/datasets/images), never downloaded: name -> (package, file).
PHOTOS = {
    "astronaut": ("skimage", "astronaut.png"),
    "chelsea": ("skimage", "chelsea.png"),
    "coffee": ("skimage", "coffee.png"),
    "hubble_deep_field": ("skimage", "hubble_deep_field.jpg"),
    "ihc": ("skimage", "ihc.png"),
    "motorcycle_left": ("skimage", "motorcycle_left.png"),
    "motorcycle_right": ("skimage", "motorcycle_right.png"),
    "retina": ("skimage", "retina.jpg"),
    "rocket": ("skimage", "rocket.jpg"),
    "china": ("sklearn", "china.jpg"),
    "flower": ("sklearn", "flower.jpg"),
    # grayscale photographs, replicated to three channels
    "brick": ("skimage", "brick.png"),
    "camera": ("skimage", "camera.png"),
    "coins": ("skimage", "coins.png"),
    "grass": ("skimage", "grass.png"),
    "gravel": ("skimage", "gravel.png"),
    "moon": ("skimage", "moon.png"),
}
COLOR_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "hubble_deep_field",
    "ihc",
    "motorcycle_left",
    "motorcycle_right",
    "retina",
    "rocket",
)
# The real domain of Ren & Lee's adaptation (`real_photos`): photographs of scenes and
# objects for training, others held out (never trained on; the stereo pair of
# motorcycles stays on one side), and texture-like photographs kept for the textures
# of the labelled real-like renders (SceneSpec factor "P"): three disjoint sets.
ADAPTATION_PHOTOS = ("astronaut", "camera", "chelsea", "china", "coffee", "coins", "rocket")
HELDOUT_PHOTOS = ("flower", "motorcycle_left", "motorcycle_right")
TEXTURE_PHOTOS = ("brick", "grass", "gravel", "hubble_deep_field", "ihc", "moon", "retina")


def photo_path(name: str) -> str:
    """The file of photograph `name` (a key of `PHOTOS`)."""
    if name not in PHOTOS:
        raise UserError(f"unknown photo name {name!r}; known: {sorted(PHOTOS)}")
    package, file = PHOTOS[name]
    if package == "skimage":
        return os.path.join(skimage_data_dir(), file)
    return os.path.join(_package_dir("sklearn", "scikit-learn"), "datasets", "images", file)


def _package_dir(module: str, distribution: str) -> str:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise MissingFile(
            f"The photo sources read the photographs installed with {distribution}; install "
            f"it with `pip install {distribution}`."
        )
    return os.path.dirname(spec.origin)


def skimage_data_dir() -> str:
    """scikit-image's folder of sample photographs."""
    return os.path.join(_package_dir("skimage", "scikit-image"), "data")


@functools.cache
def load_photo(name: str) -> np.ndarray:
    """Photograph `name` as float32 RGB in [0, 1], [H, W, 3] (cached per process)."""
    path = photo_path(name)
    if not os.path.exists(path):
        raise MissingFile(
            f"{path} is missing; reinstall scikit-image and scikit-learn, which install it."
        )
    with Image.open(path) as image:
        array = np.asarray(image.convert("RGB"), np.float32) / 255.0
    array.setflags(write=False)
    return array
