"""Augmentations: several random views of one image (contrastive learning), and the
scale-crop-flip of a dense task's image and label maps (`ScaleCropFlip`).

A `Views` object makes `count` views of an image: a crop step gives the views' crops
(`RandomResizedCrop`: each view its own crop; `FixedOffsetCrops`: CompL's crops of one
size, the second shifted by a fixed distance from the first), then every view goes
through the same list of photometric steps with seeds of its own (`HorizontalFlip`,
`ColorJitter`, `Grayscale`, `GaussianBlur`). Every step is graph-mode TensorFlow on one
float RGB image in [0, 1] ([H, W, 3]) and takes a stateless `seed` of shape [2]: in a
`tf.data` pipeline the seeds come from the example's position, so every replica and
every resumed run sees the same views, and different examples differ.

Defaults are MoCo v2's (Chen et al. 2020; the DenseCL code): crop scale (0.2, 1), colour
jitter (0.4, 0.4, 0.4, 0.1) with probability 0.8, grayscale 0.2, Gaussian blur σ in
[0.1, 2] with probability 0.5, horizontal flip 0.5 (`moco_v2_views`); SimCLR's are the
same but for a crop scale of (0.08, 1) and jitter strength 0.8·(0.8, 0.8, 0.8, 0.2)
(`simclr_views`, Chen et al. 2020, appendix A); BYOL's differ per view (`byol_views`,
`Solarize`). Gin composes them, e.g.

    zoo.tasks.MoCo.views = @zoo.data.augment.Views()
    zoo.data.augment.Views.crop = @zoo.data.augment.FixedOffsetCrops()
    zoo.data.augment.FixedOffsetCrops.size = (48, 48)
    zoo.data.augment.FixedOffsetCrops.offset = 4
    zoo.data.augment.Views.steps = [@zoo.data.augment.HorizontalFlip(),
                                    @zoo.data.augment.ColorJitter()]
"""

import math

import gin
import keras
import tensorflow as tf

from zoo import checks
from zoo.errors import UserError


def _probability(name, p):
    if not (isinstance(p, (int, float)) and 0.0 <= p <= 1.0):
        raise UserError(f"`{name}` must be a probability in [0, 1]. Received: {p!r}")
    return float(p)


def _range(name, value, low, high):
    ok = (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, float)) for v in value)
        and low <= value[0] <= value[1] <= high
    )
    if not ok:
        raise UserError(
            f"`{name}` must be a pair (min, max) with {low} <= min <= max <= {high}. "
            f"Received: {value!r}"
        )
    return tuple(float(v) for v in value)


def _chance(seed, p):
    """True with probability `p` (a scalar bool tensor)."""
    return tf.random.stateless_uniform([], seed) < p


class Step:
    """Base of the augmentation steps: a config round trip (`get_config` returns every
    constructor argument) and a readable repr."""

    def get_config(self) -> dict:
        return dict(self._config)

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self._config.items())
        return f"{type(self).__name__}({args})"


# -- crops -----------------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.data.augment")
class RandomResizedCrop(Step):
    """Each view: a crop of a random share `scale` of the image's area and aspect ratio
    in `ratio` (log-uniform), resized to `size` (Szegedy et al. 2015's "Inception crop").

    Args:
        size: int, (height, width) or None. Output size. Defaults to None: the image's.
        scale: (min, max). Share of the area. Defaults to (0.2, 1.0) (MoCo v2).
        ratio: (min, max). Width / height. Defaults to (3/4, 4/3).
    """

    def __init__(self, size=None, scale=(0.2, 1.0), ratio=(3 / 4, 4 / 3)):
        self.size = checks.image_size(size, "size", none=True)
        self.scale = _range("scale", scale, 1e-6, 1.0)
        self.ratio = _range("ratio", ratio, 1e-3, 1e3)
        self._config = {"size": size, "scale": list(self.scale), "ratio": list(self.ratio)}

    def crop(self, image, seed):
        shape = tf.shape(image)
        height, width = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
        s = tf.unstack(tf.random.split(seed, 4))
        area = height * width * tf.random.stateless_uniform([], s[0], *self.scale)
        log_ratio = tf.random.stateless_uniform(
            [], s[1], math.log(self.ratio[0]), math.log(self.ratio[1])
        )
        aspect = tf.exp(log_ratio)
        crop_w = tf.clip_by_value(tf.round(tf.sqrt(area * aspect)), 1.0, width)
        crop_h = tf.clip_by_value(tf.round(tf.sqrt(area / aspect)), 1.0, height)
        top = tf.floor(tf.random.stateless_uniform([], s[2]) * (height - crop_h + 1.0))
        left = tf.floor(tf.random.stateless_uniform([], s[3]) * (width - crop_w + 1.0))
        # crop_and_resize maps box coordinate y to pixel y·(H − 1): the box runs from
        # the first to the last pixel centre of the crop
        y_scale, x_scale = tf.maximum(height - 1.0, 1.0), tf.maximum(width - 1.0, 1.0)
        bottom, right = top + crop_h - 1.0, left + crop_w - 1.0
        box = tf.stack([top / y_scale, left / x_scale, bottom / y_scale, right / x_scale])
        size = self.size or (image.shape[0], image.shape[1])
        out = tf.image.crop_and_resize(image[tf.newaxis], box[tf.newaxis], [0], size)[0]
        out.set_shape([*size, 3])
        return out

    def crops(self, image, seeds):
        """[count, h, w, 3]: one independent crop per seed of `seeds` [count, 2]."""
        return tf.stack([self.crop(image, s) for s in tf.unstack(seeds)])


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.data.augment")
class FixedOffsetCrops(Step):
    """CompL's crops for dense tasks (Supp. D.2): every view a `size` crop, the first at a
    random place, each next one `offset` pixels away from the previous on both axes (the
    sign of each axis drawn at random, and the shift reduced where the image ends).

    Args:
        size: int or (height, width). Crop size, at most the image's.
        offset: int >= 0. Distance in pixels on both axes. Defaults to 32 (CompL's
            semantic segmentation; depth 8, boundaries 4).
    """

    def __init__(self, size=gin.REQUIRED, offset: int = 32):
        if size is gin.REQUIRED:
            raise UserError("FixedOffsetCrops needs `size` (an int or (height, width)).")
        self.size = checks.image_size(size, "size", none=True)
        checks.int_at_least(offset, 0, "offset")
        self.offset = offset
        self._config = {"size": size, "offset": offset}

    def crops(self, image, seeds):
        h, w = self.size
        if image.shape[0] is not None and (image.shape[0] < h or image.shape[1] < w):
            raise UserError(
                f"FixedOffsetCrops: crops of {h}x{w} do not fit images of "
                f"{image.shape[0]}x{image.shape[1]}."
            )
        shape = tf.shape(image)
        room = tf.stack([shape[0] - h, shape[1] - w])  # largest top, left
        seeds = tf.unstack(seeds)
        first = tf.random.stateless_uniform([2], seeds[0], 0, tf.int32.max, tf.int32)
        corner = first % (room + 1)
        out = [tf.slice(image, tf.concat([corner, [0]], 0), [h, w, 3])]
        for seed in seeds[1:]:
            sign = tf.where(tf.random.stateless_uniform([2], seed) < 0.5, -1, 1)
            moved = corner + sign * self.offset
            # the other way where the image ends, clipped where neither way fits
            moved = tf.where((moved < 0) | (moved > room), corner - sign * self.offset, moved)
            corner = tf.clip_by_value(moved, 0, room)
            out.append(tf.slice(image, tf.concat([corner, [0]], 0), [h, w, 3]))
        views = tf.stack(out)
        views.set_shape([len(seeds), h, w, 3])
        return views


# -- a dense task's image and maps together ---------------------------------------------

# label maps: resized with the nearest pixel and padded with `pad_label`
LABEL_MAPS = ("semantics", "instances")


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.data.augment")
class ScaleCropFlip(Step):
    """DeepLab's training augmentation of a dense task (CompL's target images, sec. 4):
    one random scale, crop and flip applied alike to the image and every map of the
    example (depth, normals, semantics, contours, ...), so labels stay aligned.

    The example is resized by a factor drawn from `scales` (the image bilinearly, maps
    with the nearest pixel), padded by `pad` x its size on every side (Newell & Deng's
    pad-and-crop of dense tasks), padded at the bottom and right where it is still
    smaller than the output (the image and depth with 0 — depth 0 is "unknown" — label
    maps with `pad_label`), cropped to the output size at a random place, and mirrored
    with probability `flip` (normals' x component negated). The output size is `size`, or
    the example's own; with a `size`, held-out examples are cropped (and padded) to it
    at their centre, unscaled and unmirrored (`heldout`): NYUD's 425x560 crops of
    480x640 images, or of a square synthetic render.

    Args:
        scales: sequence of floats > 0. Defaults to 0.5, 0.75, ..., 2.0.
        flip: float. Probability of the mirror. Defaults to 0.5.
        pad_label: int. Label of padded pixels in label maps; a segmentation task
            should ignore it (`SemanticSegmentation.ignore_label`). Defaults to 255.
        size: int, (height, width) or None. The output's size. Defaults to None: the
            example's.
        pad: float in [0, 1). Margin added on every side of the scaled example, as a
            fraction of its size (0.125: res / 8). Defaults to 0.0.
    """

    def __init__(
        self,
        scales=(0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0),
        flip=0.5,
        pad_label=255,
        size=None,
        pad: float = 0.0,
    ):
        scales = tuple(float(x) for x in scales)
        if not scales or min(scales) <= 0:
            raise UserError(f"ScaleCropFlip: `scales` must be factors > 0. Received: {scales}")
        self.scales, self.flip = scales, _probability("flip", flip)
        checks.int_at_least(pad_label, 0, "pad_label", "ScaleCropFlip")
        self.pad_label = pad_label
        self.size = checks.image_size(size, "size", "ScaleCropFlip", none=True)
        self._config = {"scales": list(scales), "flip": self.flip, "pad_label": pad_label}
        self.pad = checks.number_in(pad, "pad", 0, 1, "ScaleCropFlip", high_open=True)
        # absent when unset: earlier configs stay as they were
        if self.size is not None:
            self._config["size"] = list(self.size)
        if self.pad:
            self._config["pad"] = self.pad

    def __call__(self, example: dict, seed) -> dict:
        """The example with its image and maps ([H, W] or [H, W, C] of the image's H, W,
        which must be static) augmented alike; other entries unchanged."""
        height, width = _static_size(example)
        draw, place, mirror = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
        pick = tf.random.stateless_uniform([], draw, 0, len(self.scales), tf.int32)
        scale = tf.gather(tf.constant(self.scales), pick)
        size = tf.cast(tf.round(scale * tf.constant([height, width], tf.float32)), tf.int32)
        margin = tf.cast(tf.round(self.pad * tf.cast(size, tf.float32)), tf.int32)
        out_size = self.size or (height, width)
        room = tf.maximum(size + 2 * margin, out_size) - out_size  # largest top, left
        corner = tf.random.stateless_uniform([2], place, 0, tf.int32.max, tf.int32) % (room + 1)
        return self._each_map(example, size, corner, _chance(mirror, self.flip), margin)

    def heldout(self, example: dict) -> dict:
        """A held-out example cropped and padded to `size` at its centre (unchanged
        without a `size`)."""
        height, width = _static_size(example)
        if self.size is None or self.size == (height, width):
            return example
        corner = tf.maximum([(height - self.size[0]) // 2, (width - self.size[1]) // 2], 0)
        return self._each_map(example, [height, width], corner, tf.constant(False), [0, 0])

    def _each_map(self, example, size, corner, flipped, margin):
        """The image and every map of its size resized to `size`, padded by `margin`
        [2] on every side and then to the output size, cropped there at `corner` and
        mirrored where `flipped`."""
        height, width = _static_size(example)
        out_h, out_w = self.size or (height, width)
        out = dict(example)
        for key, value in example.items():
            if value.shape.rank not in (2, 3) or tuple(value.shape[:2]) != (height, width):
                continue
            x = value if value.shape.rank == 3 else value[..., tf.newaxis]
            method = "bilinear" if key == "image" else "nearest"
            x = tf.cast(tf.image.resize(x, size, method=method), x.dtype)
            fill = tf.cast(self.pad_label if key in LABEL_MAPS else 0, x.dtype)
            border = [[margin[0], margin[0]], [margin[1], margin[1]], [0, 0]]
            x = tf.pad(x, border, constant_values=fill)
            pad = tf.maximum([out_h, out_w] - tf.shape(x)[:2], 0)
            x = tf.pad(x, [[0, pad[0]], [0, pad[1]], [0, 0]], constant_values=fill)
            x = tf.slice(x, tf.concat([corner, [0]], 0), [out_h, out_w, -1])
            if key == "normals":
                mirrored = x[:, ::-1] * tf.constant([-1.0, 1.0, 1.0], x.dtype)
            else:
                mirrored = x[:, ::-1]
            x = tf.where(flipped, mirrored, x)
            x = tf.ensure_shape(x, [out_h, out_w, value.shape[-1] if value.shape.rank == 3 else 1])
            out[key] = x if value.shape.rank == 3 else x[..., 0]
        return out


def _static_size(example):
    height, width = example["image"].shape[:2]
    if height is None or width is None:
        raise UserError("ScaleCropFlip needs images of a static size (e.g. a sized source).")
    return height, width


# -- photometric steps -------------------------------------------------------------------


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.data.augment")
class HorizontalFlip(Step):
    """Mirrors the image left-right with probability `p`. Defaults to 0.5."""

    def __init__(self, p: float = 0.5):
        self.p = _probability("p", p)
        self._config = {"p": self.p}

    def __call__(self, image, seed):
        return tf.cond(_chance(seed, self.p), lambda: image[:, ::-1], lambda: image)


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.data.augment")
class ColorJitter(Step):
    """With probability `p`: brightness, contrast, saturation and hue changes, in this
    order, each by a random factor (torchvision's ColorJitter ranges: brightness and
    contrast and saturation factors in [1 − s, 1 + s], hue shift in [−h, h] turns).

    Args:
        brightness: float >= 0. Defaults to 0.4.
        contrast: float >= 0. Defaults to 0.4.
        saturation: float >= 0. Defaults to 0.4.
        hue: float in [0, 0.5]. Defaults to 0.1.
        p: float. Defaults to 0.8.
    """

    def __init__(self, brightness=0.4, contrast=0.4, saturation=0.4, hue=0.1, p=0.8):
        strengths = (("brightness", brightness), ("contrast", contrast), ("saturation", saturation))
        for name, value in strengths:
            if not (isinstance(value, (int, float)) and value >= 0):
                raise UserError(f"`{name}` must be a number >= 0. Received: {value!r}")
        if not (isinstance(hue, (int, float)) and 0 <= hue <= 0.5):
            raise UserError(f"`hue` must be a number in [0, 0.5]. Received: {hue!r}")
        self.brightness, self.contrast = float(brightness), float(contrast)
        self.saturation, self.hue = float(saturation), float(hue)
        self.p = _probability("p", p)
        self._config = {
            "brightness": self.brightness,
            "contrast": self.contrast,
            "saturation": self.saturation,
            "hue": self.hue,
            "p": self.p,
        }

    def _factor(self, seed, strength):
        return tf.random.stateless_uniform([], seed, max(0.0, 1.0 - strength), 1.0 + strength)

    def jitter(self, image, seed):
        s = tf.unstack(tf.random.split(seed, 4))
        image = image * self._factor(s[0], self.brightness)
        image = tf.clip_by_value(image, 0.0, 1.0)
        mean = tf.reduce_mean(tf.image.rgb_to_grayscale(image))
        image = tf.clip_by_value((image - mean) * self._factor(s[1], self.contrast) + mean, 0, 1)
        image = tf.image.adjust_saturation(image, self._factor(s[2], self.saturation))
        if self.hue > 0:
            shift = tf.random.stateless_uniform([], s[3], -self.hue, self.hue)
            image = tf.image.adjust_hue(image, shift)
        return tf.clip_by_value(image, 0.0, 1.0)

    def __call__(self, image, seed):
        chance, seed = tf.unstack(tf.random.split(seed, 2))
        return tf.cond(_chance(chance, self.p), lambda: self.jitter(image, seed), lambda: image)


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.data.augment")
class Grayscale(Step):
    """With probability `p` (default 0.2), the image's luma replicated to 3 channels, or
    with `mode="mean"` the channels' mean (Newell & Deng's code, on Lab inputs).

    Args:
        p: float. Defaults to 0.2.
        mode: str. "luma" (ITU-R 601 weights of RGB) or "mean". Defaults to "luma".
    """

    def __init__(self, p: float = 0.2, mode: str = "luma"):
        self.p = _probability("p", p)
        self.mode = checks.one_of(mode, ("luma", "mean"), "mode", "Grayscale")
        self._config = {"p": self.p}
        if mode != "luma":  # absent otherwise: earlier configs stay as they were
            self._config["mode"] = mode

    def __call__(self, image, seed):
        if self.mode == "mean":
            mean = tf.reduce_mean(image, axis=-1, keepdims=True)
            gray = lambda: tf.broadcast_to(mean, tf.shape(image))  # noqa: E731
        else:
            gray = lambda: tf.image.grayscale_to_rgb(tf.image.rgb_to_grayscale(image))  # noqa: E731
        return tf.cond(_chance(seed, self.p), gray, lambda: image)


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.data.augment")
class ChannelJitter(Step):
    """With probability `p`, each channel c scaled by 2^N(0, scale²) and shifted by
    N(0, shift²) (Newell & Deng's colour jitter, as the authors' code draws it, on the
    Lab channels their inputs are; unclipped).

    Args:
        scale: float >= 0. Standard deviation of the log2 scale. Defaults to 0.25.
        shift: float >= 0. Standard deviation of the shift. Defaults to 0.25.
        p: float. Defaults to 0.8.
    """

    def __init__(self, scale: float = 0.25, shift: float = 0.25, p: float = 0.8):
        self.scale = checks.number_in(scale, "scale", low=0, who="ChannelJitter")
        self.shift = checks.number_in(shift, "shift", low=0, who="ChannelJitter")
        self.p = _probability("p", p)
        self._config = {"scale": self.scale, "shift": self.shift, "p": self.p}

    def __call__(self, image, seed):
        draw, scale_seed, shift_seed = tf.unstack(tf.random.split(seed, 3))
        channels = tf.shape(image)[-1:]
        factor = tf.pow(2.0, self.scale * tf.random.stateless_normal(channels, scale_seed))
        offset = self.shift * tf.random.stateless_normal(channels, shift_seed)
        jittered = image * factor + offset
        return tf.where(_chance(draw, self.p), jittered, image)


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.data.augment")
class Cutout(Step):
    """A square of side `fraction` x the image's shorter side, at a random place inside
    the image, set to 0 (DeVries & Taylor 2017; Newell & Deng use res / 4).

    Args:
        fraction: float in (0, 1]. Defaults to 0.25.
    """

    def __init__(self, fraction: float = 0.25):
        self.fraction = checks.number_in(fraction, "fraction", 0, 1, "Cutout", low_open=True)
        self._config = {"fraction": self.fraction}

    def __call__(self, image, seed):
        shape = tf.shape(image)
        side = tf.maximum(
            1,
            tf.cast(
                tf.round(self.fraction * tf.cast(tf.reduce_min(shape[:2]), tf.float32)), tf.int32
            ),
        )
        room = shape[:2] - side + 1
        corner = tf.random.stateless_uniform([2], seed, 0, tf.int32.max, tf.int32) % room
        rows = tf.range(shape[0])[:, tf.newaxis]
        cols = tf.range(shape[1])[tf.newaxis, :]
        inside = (
            (rows >= corner[0])
            & (rows < corner[0] + side)
            & (cols >= corner[1])
            & (cols < corner[1] + side)
        )
        return tf.where(inside[..., tf.newaxis], tf.zeros_like(image), image)


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.data.augment")
class PadCrop(Step):
    """The image padded with zeros by `pad` x its height on every side and cropped back
    to its size at a random place; with probability `unchanged` it is kept as it is
    (the authors' code adds a quarter as many uncropped choices as crop places, so
    about 0.2).

    Args:
        pad: float in [0, 1). Defaults to 0.125 (res / 8).
        unchanged: float. Defaults to 0.2.
    """

    def __init__(self, pad: float = 0.125, unchanged: float = 0.2):
        self.pad = checks.number_in(pad, "pad", 0, 1, "PadCrop", high_open=True)
        self.unchanged = _probability("unchanged", unchanged)
        self._config = {"pad": self.pad, "unchanged": self.unchanged}

    def __call__(self, image, seed):
        keep, place = tf.unstack(tf.random.split(seed, 2))
        shape = tf.shape(image)
        margin = tf.cast(tf.round(self.pad * tf.cast(shape[0], tf.float32)), tf.int32)
        padded = tf.pad(image, [[margin, margin], [margin, margin], [0, 0]])
        corner = tf.random.stateless_uniform([2], place, 0, tf.int32.max, tf.int32) % (
            2 * margin + 1
        )
        cropped = tf.slice(padded, tf.concat([corner, [0]], 0), shape)
        return tf.where(_chance(keep, self.unchanged), image, cropped)


def gaussian_kernel(sigma, radius: int):
    """Normalised 1-D Gaussian weights [2·radius + 1] of standard deviation `sigma`."""
    x = tf.cast(tf.range(-radius, radius + 1), tf.float32)
    weights = tf.exp(-0.5 * tf.square(x / tf.maximum(sigma, 1e-6)))
    return weights / tf.reduce_sum(weights)


def gaussian_blur(image, sigma, radius: int):
    """[H, W, 3] blurred by a separable Gaussian of `sigma` px (edges reflected)."""
    kernel = gaussian_kernel(sigma, radius)
    padded = tf.pad(
        image[tf.newaxis], [[0, 0], [radius, radius], [radius, radius], [0, 0]], "REFLECT"
    )
    rows = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, 3, 1])
    cols = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, 3, 1])
    out = tf.nn.depthwise_conv2d(padded, rows, [1, 1, 1, 1], "VALID")
    out = tf.nn.depthwise_conv2d(out, cols, [1, 1, 1, 1], "VALID")
    return out[0]


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.data.augment")
class GaussianBlur(Step):
    """With probability `p`, a Gaussian blur of σ drawn from `sigma` in units of
    `sigma_unit` pixels (MoCo v2 / SimCLR: σ in [0.1, 2.0] px at 224 px, with a kernel of
    10 % of the image). The kernel radius covers 3σ, at most a third of the image.

    Args:
        sigma: (min, max). Defaults to (0.1, 2.0).
        p: float. Defaults to 0.5.
        reference_size: int or None. Image size at which `sigma` is given: σ scales with
            the image (a 2 px blur at 224 px is 0.57 px at 64 px). Defaults to 224; None
            keeps σ in pixels.
        radius: int or None. The kernel's radius in pixels (MGM's code: a 3x3 kernel,
            radius 1). Defaults to None: 3σ.
    """

    def __init__(
        self,
        sigma=(0.1, 2.0),
        p: float = 0.5,
        reference_size: int | None = 224,
        radius: int | None = None,
    ):
        self.sigma = _range("sigma", sigma, 0.0, 1e3)
        self.p = _probability("p", p)
        checks.int_at_least(reference_size, 1, "reference_size", none=True)
        checks.int_at_least(radius, 1, "radius", "GaussianBlur", none=True)
        self.reference_size, self.radius = reference_size, radius
        self._config = {"sigma": list(self.sigma), "p": self.p, "reference_size": reference_size}
        if radius is not None:  # absent otherwise: earlier configs stay as they were
            self._config["radius"] = radius

    def __call__(self, image, seed):
        size = image.shape[0]
        scale = 1.0 if self.reference_size is None else size / self.reference_size
        radius = self.radius or int(math.ceil(3 * self.sigma[1] * scale))
        radius = max(1, min(radius, (size - 1) // 3))
        chance, seed = tf.unstack(tf.random.split(seed, 2))
        sigma = tf.random.stateless_uniform([], seed, *self.sigma) * scale
        return tf.cond(
            _chance(chance, self.p), lambda: gaussian_blur(image, sigma, radius), lambda: image
        )


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.data.augment")
class Solarize(Step):
    """With probability `p`, every value at or above `threshold` inverted (x ↦ 1 − x),
    the others kept (BYOL, Grill et al. 2020, appendix B: threshold 0.5).

    Args:
        threshold: float in [0, 1]. Defaults to 0.5.
        p: float. Defaults to 0.2.
    """

    def __init__(self, threshold: float = 0.5, p: float = 0.2):
        self.threshold = checks.number_in(threshold, "threshold", 0, 1)
        self.p = _probability("p", p)
        self._config = {"threshold": self.threshold, "p": self.p}

    def solarize(self, image):
        return tf.where(image < self.threshold, image, 1.0 - image)

    def __call__(self, image, seed):
        return tf.cond(_chance(seed, self.p), lambda: self.solarize(image), lambda: image)


# -- views ---------------------------------------------------------------------------------


def _deserialized(value):
    if isinstance(value, dict) and "class_name" in value:
        return keras.saving.deserialize_keras_object(value)
    return value


@keras.saving.register_keras_serializable(package="zoo")
@gin.configurable(module="zoo.data.augment")
class Views(Step):
    """`count` augmented views of one image: the crop step, then `steps` on each view,
    then the view's own steps (`per_view`).

    Args:
        crop: RandomResizedCrop, FixedOffsetCrops or None (the whole image). Defaults to
            RandomResizedCrop() (MoCo v2's).
        steps: list of steps applied in order to each view. Defaults to MoCo v2's
            (ColorJitter, Grayscale, GaussianBlur, HorizontalFlip).
        count: int >= 1. Defaults to 2 (one: a single augmented image, CMC's).
        per_view: None or `count` lists of steps, the i-th applied after `steps` to the
            i-th view only (BYOL's asymmetric views: blur with probability 1.0 and 0.1,
            solarization with 0.0 and 0.2). Defaults to None.
    """

    def __init__(self, crop="default", steps=None, count: int = 2, per_view=None):
        crop = RandomResizedCrop() if crop == "default" else _deserialized(crop)
        if steps is None:
            steps = [ColorJitter(), Grayscale(), GaussianBlur(), HorizontalFlip()]
        steps = [_deserialized(s) for s in steps]
        if crop is not None and not hasattr(crop, "crops"):
            raise UserError(
                "`crop` must be a RandomResizedCrop, a FixedOffsetCrops or None. "
                f"Received: {crop!r}"
            )
        bad = [s for s in steps if not callable(s)]
        if bad:
            raise UserError(f"`steps` must be augmentation steps (callables). Received: {bad}")
        checks.int_at_least(count, 1, "count")
        if per_view is not None:
            if not (isinstance(per_view, (list, tuple)) and len(per_view) == count):
                raise UserError(
                    f"`per_view` must be None or {count} lists of steps (one per view). "
                    f"Received: {per_view!r}"
                )
            per_view = [[_deserialized(s) for s in own] for own in per_view]
            bad = [s for own in per_view for s in own if not callable(s)]
            if bad:
                raise UserError(f"`per_view` must hold augmentation steps. Received: {bad}")
        self.crop, self.steps, self.count = crop, list(steps), count
        self.per_view = per_view
        self._config = {
            "crop": None if crop is None else keras.saving.serialize_keras_object(crop),
            "steps": [keras.saving.serialize_keras_object(s) for s in self.steps],
            "count": count,
        }
        if per_view is not None:  # absent otherwise: configs of views without stay as they were
            self._config["per_view"] = [
                [keras.saving.serialize_keras_object(s) for s in own] for own in per_view
            ]

    def output_size(self, input_size) -> tuple:
        """(height, width) of a view of an `input_size` image (an int or (height, width))."""
        size = getattr(self.crop, "size", None)
        return tuple(size) if size else checks.image_size(input_size)

    def __call__(self, image, seed):
        """[count, h, w, 3] views of `image` [H, W, 3]."""
        crop_seed, step_seed = tf.unstack(tf.random.split(seed, 2))
        crop_seeds = tf.random.split(crop_seed, self.count)
        if self.crop is None:
            crops = tf.stack([image] * self.count)
        else:
            crops = self.crop.crops(image, crop_seeds)
        views = []
        for i, (crop, view_seed) in enumerate(
            zip(tf.unstack(crops), tf.unstack(tf.random.split(step_seed, self.count)))
        ):
            steps = self.steps + (self.per_view[i] if self.per_view else [])
            seeds = tf.unstack(tf.random.split(view_seed, max(1, len(steps))))
            for step, s in zip(steps, seeds):
                crop = step(crop, s)
            views.append(crop)
        return tf.stack(views)


def moco_v2_views(count: int = 2) -> Views:
    """MoCo v2's augmentation (the defaults of every step)."""
    return Views(RandomResizedCrop(), count=count)


def simclr_views(count: int = 2) -> Views:
    """SimCLR's augmentation (Chen et al. 2020, appendix A, colour strength 0.8)."""
    return Views(
        RandomResizedCrop(scale=(0.08, 1.0)),
        [
            ColorJitter(0.8 * 0.8, 0.8 * 0.8, 0.8 * 0.8, 0.8 * 0.2),
            Grayscale(),
            GaussianBlur(),
            HorizontalFlip(),
        ],
        count=count,
    )


def mgm_views(count: int = 2) -> Views:
    """The SimCLR augmentation of MGM's code (its self-supervision on real and generated
    images): crops of 8-100 % of the image, colour jitter (0.8, 0.8, 0.8, 0.2) with
    probability 0.8, grayscale 0.2, a 3x3 Gaussian blur of σ in [0.01, 1] px with
    probability 0.5, flip."""
    return Views(
        RandomResizedCrop(scale=(0.08, 1.0)),
        [
            ColorJitter(0.8, 0.8, 0.8, 0.2),
            Grayscale(),
            GaussianBlur(sigma=(0.01, 1.0), reference_size=None, radius=1),
            HorizontalFlip(),
        ],
        count=count,
    )


def byol_views(count: int = 2) -> Views:
    """BYOL's augmentation (Grill et al. 2020, appendix B, table 6): crops of 8-100 % of
    the image, flip, colour jitter (0.4, 0.4, 0.2, 0.1) with probability 0.8, grayscale
    0.2; then the first view blurred always and never solarized, the second blurred with
    probability 0.1 and solarized with 0.2 (so `count` must be 2)."""
    if count != 2:
        raise UserError(
            f"BYOL's views are two (the first always blurred, the second sometimes "
            f"solarized); received count={count!r}."
        )
    return Views(
        RandomResizedCrop(scale=(0.08, 1.0)),
        [HorizontalFlip(), ColorJitter(0.4, 0.4, 0.2, 0.1), Grayscale()],
        per_view=[
            [GaussianBlur(p=1.0), Solarize(p=0.0)],
            [GaussianBlur(p=0.1), Solarize(p=0.2)],
        ],
    )
