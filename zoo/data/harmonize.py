"""Input harmonization: one transform applied to every task's input.

Doersch & Zisserman (2017, sec. 3.3) show that tasks which pre-process their inputs
differently let the trunk "cheat" by recognising the task from low-level statistics.
A harmonizer removes that difference by giving every task the same kind of input:

* `identity`: RGB unchanged;
* `lab_l3`: the CIE Lab lightness L / 100, replicated to three channels (the
  colorization input, also used by harmonized relative position);
* `lab`: the whole CIE Lab image as (L / 100, a / 110, b / 110) (Newell & Deng 2020,
  App. A: every method's input, so that CMC's L and ab halves are plain channels);
* `drop_color`: one random channel kept, the other two replaced by Gaussian noise
  (Doersch et al. 2015's "color dropping" for relative position);
* `replicate_channel`: one random RGB channel copied to all three (Ren & Lee 2018,
  sec. 4.1, grayscale inputs for synthetic-to-real transfer).

All functions are TensorFlow graph ops on float RGB in [0, 1] with shape [H, W, 3]
or [B, H, W, 3]; the random ones are stateless and take a `seed` of shape [2], so
the same seed gives the same output. `harmonize_dataset` feeds per-element seeds
from one integer seed, which keeps `tf.data` pipelines deterministic.
"""

import tensorflow as tf

from zoo.errors import MissingEntry, UserError

# sRGB primaries to CIE XYZ for the D65 white point, and that white point: the
# constants of skimage.color, so that zoo and skimage agree to float precision.
_XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_D65 = (0.95047, 1.0, 1.08883)
_DELTA = 6.0 / 29.0


def _srgb_to_linear(c):
    return tf.where(c <= 0.04045, c / 12.92, tf.pow((tf.maximum(c, 0.04045) + 0.055) / 1.055, 2.4))


def _linear_to_srgb(c):
    c = tf.maximum(c, 0.0)
    return tf.where(
        c <= 0.0031308, 12.92 * c, 1.055 * tf.pow(tf.maximum(c, 0.0031308), 1.0 / 2.4) - 0.055
    )


def _mix(x, matrix):
    return tf.linalg.matvec(tf.constant(matrix, x.dtype), x)


def rgb_to_lab(rgb):
    """Converts sRGB in [0, 1] to CIE Lab (D65, 2° observer).

    L lies in [0, 100]; a and b lie roughly in [-128, 128].

    Args:
        rgb: float tensor [..., 3].

    Returns:
        float tensor [..., 3] holding (L, a, b).
    """
    rgb = tf.convert_to_tensor(rgb, tf.float32)
    xyz = _mix(_srgb_to_linear(rgb), _XYZ_FROM_RGB) / tf.constant(_D65)
    f = tf.where(
        xyz > _DELTA**3,
        tf.pow(tf.maximum(xyz, _DELTA**3), 1.0 / 3.0),
        xyz / (3.0 * _DELTA**2) + 4.0 / 29.0,
    )
    fx, fy, fz = tf.unstack(f, axis=-1)
    return tf.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def lab_to_rgb(lab):
    """Converts CIE Lab (D65) to sRGB, clipped to [0, 1] (out-of-gamut colors are clipped).

    Args:
        lab: float tensor [..., 3] holding (L, a, b).

    Returns:
        float tensor [..., 3], sRGB in [0, 1].
    """
    lab = tf.convert_to_tensor(lab, tf.float32)
    l_, a, b = tf.unstack(lab, axis=-1)
    fy = (l_ + 16.0) / 116.0
    f = tf.stack([fy + a / 500.0, fy, fy - b / 200.0], axis=-1)
    xyz = tf.where(f > _DELTA, f**3, 3.0 * _DELTA**2 * (f - 4.0 / 29.0)) * tf.constant(_D65)
    rgb_from_xyz = tf.linalg.inv(tf.constant(_XYZ_FROM_RGB, tf.float64))
    linear = tf.linalg.matvec(tf.cast(rgb_from_xyz, tf.float32), xyz)
    return tf.clip_by_value(_linear_to_srgb(linear), 0.0, 1.0)


def lab_l3(rgb, seed=None):
    """Lightness L / 100 (in [0, 1]) replicated to three channels.

    Args:
        rgb: float tensor [..., 3], sRGB in [0, 1].
        seed: unused; accepted so that every harmonizer has the same signature.
    """
    del seed
    lightness = rgb_to_lab(rgb)[..., :1] / 100.0
    return tf.concat([lightness] * 3, axis=-1)


LAB_SCALE = (100.0, 110.0, 110.0)


def lab(rgb, seed=None):
    """CIE Lab (D65) scaled per channel: L / 100 in [0, 1], a / 110 and b / 110 in
    about [-1, 1].

    Args:
        rgb: float tensor [..., 3], sRGB in [0, 1].
        seed: unused; accepted so that every harmonizer has the same signature.
    """
    del seed
    return rgb_to_lab(rgb) / tf.constant(LAB_SCALE, tf.float32)


def identity(rgb, seed=None):
    """Returns the image unchanged (as float32)."""
    del seed
    return tf.convert_to_tensor(rgb, tf.float32)


def _channel_choice(rgb, seed):
    """One-hot [..., 1, 1, 3] mask of a uniformly drawn channel per image."""
    batch_shape = tf.shape(rgb)[:-3]
    channel = tf.random.stateless_uniform(batch_shape, seed, maxval=3, dtype=tf.int32)
    onehot = tf.one_hot(channel, 3, dtype=rgb.dtype)
    return onehot[..., tf.newaxis, tf.newaxis, :]


def _check_image(rgb, fn):
    rgb = tf.convert_to_tensor(rgb, tf.float32)
    if rgb.shape.rank is not None and (rgb.shape.rank not in (3, 4) or rgb.shape[-1] != 3):
        raise UserError(
            f"{fn}: expected float RGB of shape [H, W, 3] or [B, H, W, 3]. "
            f"Received shape {rgb.shape}."
        )
    return rgb


def drop_color(rgb, seed, noise_scale=0.01):
    """Keeps one random channel and replaces the other two by Gaussian noise.

    Doersch, Gupta & Efros (2015): the dropped channels become noise with a standard
    deviation of about 1/100 that of the kept channel. Here the noise is centred on
    the kept channel's mean, so the image stays in the [0, 1] range of the trunk input.

    Args:
        rgb: float tensor [H, W, 3] or [B, H, W, 3], sRGB in [0, 1].
        seed: int tensor of shape [2]. Stateless seed.
        noise_scale: float. Noise std as a fraction of the kept channel's std.
            Defaults to 0.01.
    """
    rgb = _check_image(rgb, "drop_color")
    seeds = tf.random.split(tf.cast(seed, tf.int64), 2)
    keep = _channel_choice(rgb, seeds[0])
    kept = tf.reduce_sum(rgb * keep, axis=-1, keepdims=True)
    mean, var = tf.nn.moments(kept, axes=[-3, -2, -1], keepdims=True)
    noise = tf.random.stateless_normal(tf.shape(rgb), seeds[1])
    noise = mean + noise * noise_scale * tf.sqrt(var)
    return keep * rgb + (1.0 - keep) * noise


def replicate_channel(rgb, seed):
    """Copies one random RGB channel to all three channels.

    Args:
        rgb: float tensor [H, W, 3] or [B, H, W, 3], sRGB in [0, 1].
        seed: int tensor of shape [2]. Stateless seed.
    """
    rgb = _check_image(rgb, "replicate_channel")
    keep = _channel_choice(rgb, seed)
    kept = tf.reduce_sum(rgb * keep, axis=-1, keepdims=True)
    return tf.concat([kept] * 3, axis=-1)


HARMONIZERS = {
    "identity": identity,
    "lab_l3": lab_l3,
    "lab": lab,
    "drop_color": drop_color,
    "replicate_channel": replicate_channel,
}
# the deterministic ones, which a serving graph can apply (the random ones are training
# augmentations; served models see the plain image)
SERVING_HARMONIZERS = ("identity", "lab_l3", "lab")


def served(harmonizers) -> str:
    """The harmonizer a served model applies for inputs that `harmonizers` (names) were
    trained with: the one they all share when deterministic, else "identity"."""
    used = set(harmonizers)
    return used.pop() if len(used) == 1 and next(iter(used)) in SERVING_HARMONIZERS else "identity"


def harmonizer(method="identity"):
    """Returns the harmonization function `f(rgb, seed) -> rgb` that pipelines apply.

    Experiments choose it with each task's `harmonizer` argument (e.g.
    `zoo.tasks.Depth.harmonizer = "lab_l3"`, or one macro for every task).

    Args:
        method: str. One of "identity", "lab_l3", "lab", "drop_color",
            "replicate_channel".
            Defaults to "identity".
    """
    if method not in HARMONIZERS:
        raise UserError(
            f"harmonizer: `method` must be one of {sorted(HARMONIZERS)}. Received: {method!r}"
        )
    return HARMONIZERS[method]


def harmonize_dataset(dataset, fn, seed, key="image"):
    """Applies `fn(image, seed)` to every element's `key`, with a distinct stateless seed each.

    Args:
        dataset: tf.data.Dataset of dicts.
        fn: callable. A harmonizer, e.g. `harmonizer("lab_l3")`.
        seed: int. Seed of the whole pass; the same seed gives the same output.
        key: str. Dict key of the image. Defaults to "image".
    """
    seeds = tf.data.Dataset.random(seed=seed).batch(2)

    def apply(element, element_seed):
        if key not in element:
            raise MissingEntry(
                f"harmonize_dataset: elements have no {key!r} entry; keys: {sorted(element)}"
            )
        element = dict(element)
        element[key] = fn(element[key], element_seed)
        return element

    return tf.data.Dataset.zip(dataset, seeds).map(apply, num_parallel_calls=tf.data.AUTOTUNE)
