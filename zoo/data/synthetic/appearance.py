"""Colours, procedural textures and lights: the factors C, T and L of Newell & Deng.

* C (colour): with "-", each class has a hue (`CLASS_HUES`) and an object's hue is
  drawn from a normal around it (σ = `HUE_SIGMA`); with "C", the hue is uniform, so
  colour says nothing about the class.
* T (texture): with "-", flat colours; with "T", a procedural solid texture (stripes,
  checks, dots, value noise, rings) in two random colours, mixed half and half with
  the object's colour (the paper mixes DTD textures with the target colour), and
  textured backgrounds.
* L (lighting): with "-", one fixed white directional light; with "L", a random
  direction, intensity and colour, and a random ambient level.
* P (photographs, optional fifth letter): textures are crops of photographs
  (`photo_texture`, mixed 70 % with the object's colour) and the image passes through
  a camera's effects (`sensor_effects`): a real-like domain that keeps every label.
"""

import colorsys
import io

import numpy as np
from PIL import Image

from zoo.data import photos

# Hues of the ten classes, 0.1 apart (36°), so that nearest-mean hue prediction is
# informative but imperfect.
CLASS_HUES = tuple((0.03 + 0.1 * k) % 1.0 for k in range(10))
HUE_SIGMA = 0.035
TEXTURES = ("stripes", "checks", "dots", "noise", "rings")


def hsv(h, s, v):
    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v))


def object_colour(rng, class_id, random_colour):
    """The object's base RGB colour and the hue it was drawn with."""
    if random_colour:
        hue = rng.random()
    else:
        hue = (CLASS_HUES[class_id] + HUE_SIGMA * rng.normal()) % 1.0
    return hsv(hue, rng.uniform(0.45, 0.9), rng.uniform(0.5, 0.95)), hue


def slot_colours(base):
    """Colours of the material slots: 0 the object colour, 1 a dark material, 2 an accent."""
    dark = 0.25 * base + 0.06
    accent = 0.55 * base + 0.45 * np.array([0.92, 0.92, 0.92])
    return np.stack([base, dark, accent])


def random_texture(rng, scale=1.0):
    """Parameters of a procedural texture (two random colours)."""
    return {
        "kind": TEXTURES[rng.integers(len(TEXTURES))],
        "frequency": rng.uniform(2.0, 6.0) / scale,
        "direction": _unit(rng.normal(size=3)),
        "colours": np.stack(
            [hsv(rng.random(), rng.uniform(0.3, 1.0), rng.uniform(0.3, 1.0)) for _ in range(2)]
        ),
        "table": rng.random(256),
        "perm": rng.permutation(256),
    }


def _unit(v):
    return v / np.linalg.norm(v)


def _value_noise(p, table, perm):
    cell = np.floor(p)
    frac = p - cell
    frac = frac * frac * (3 - 2 * frac)
    ci = cell.astype(np.int64) & 255

    def lattice(dx, dy, dz):
        index = perm[
            (perm[(perm[(ci[:, 0] + dx) & 255] + ci[:, 1] + dy) & 255] + ci[:, 2] + dz) & 255
        ]
        return table[index]

    out = 0.0
    for dx in (0, 1):
        wx = frac[:, 0] if dx else 1 - frac[:, 0]
        for dy in (0, 1):
            wy = frac[:, 1] if dy else 1 - frac[:, 1]
            for dz in (0, 1):
                wz = frac[:, 2] if dz else 1 - frac[:, 2]
                out = out + wx * wy * wz * lattice(dx, dy, dz)
    return out


def texture_mask(texture, p):
    """Pattern value in [0, 1] at points p [N, 3] (solid texture: no UV mapping needed)."""
    f, kind = texture["frequency"], texture["kind"]
    if kind == "stripes":
        return (np.sin(2 * np.pi * f * (p @ texture["direction"])) > 0).astype(float)
    if kind == "checks":
        return (np.floor(f * p).astype(np.int64).sum(axis=1) % 2).astype(float)
    if kind == "dots":
        frac = (f * p) % 1.0 - 0.5
        return (np.linalg.norm(frac, axis=1) < 0.32).astype(float)
    if kind == "noise":
        return np.clip(
            1.6 * (_value_noise(1.5 * f * p, texture["table"], texture["perm"]) - 0.5) + 0.5, 0, 1
        )
    radius = np.linalg.norm(p - (p @ texture["direction"])[:, None] * texture["direction"], axis=1)
    return (np.sin(2 * np.pi * f * radius) > 0).astype(float)


def textured(colour, texture, p, mix=0.5):
    """Colour [3] or [N, 3] mixed with the texture's pattern colours at points p (a
    photo texture: its own mix with the photograph's colours)."""
    if texture["kind"] == "photo":
        return (1 - texture["mix"]) * colour + texture["mix"] * _photo_colours(texture, p)
    m = texture_mask(texture, p)[:, None]
    pattern = (1 - m) * texture["colours"][0] + m * texture["colours"][1]
    return (1 - mix) * colour + mix * pattern


def photo_texture(rng, scale=1.0):
    """A crop of a texture photograph, tiled over a plane through the surface points:
    the photo, two orthonormal axes, pixels per unit, an offset."""
    name = photos.TEXTURE_PHOTOS[rng.integers(len(photos.TEXTURE_PHOTOS))]
    axis = _unit(rng.normal(size=3))
    helper = np.array([1.0, 0.0, 0.0]) if abs(axis[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = _unit(np.cross(axis, helper))
    v = np.cross(axis, u)
    return {
        "kind": "photo",
        "photo": name,
        "axes": np.stack([u, v]),
        "pixels_per_unit": rng.uniform(60.0, 160.0) / scale,
        "offset": rng.uniform(0, 512, size=2),
        "mix": 0.7,
    }


def _photo_colours(texture, p):
    image = photos.load_photo(texture["photo"])
    h, w = image.shape[:2]
    uv = (p @ texture["axes"].T) * texture["pixels_per_unit"] + texture["offset"]
    rows = np.floor(uv[:, 1]).astype(np.int64) % h
    cols = np.floor(uv[:, 0]).astype(np.int64) % w
    return image[rows, cols]


def _blur(image, sigma):
    radius = max(1, int(np.ceil(2.5 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps /= taps.sum()
    out = image
    for axis in (0, 1):
        padded = np.pad(out, [(radius, radius) if a == axis else (0, 0) for a in range(3)], "edge")
        n = out.shape[axis]
        out = sum(t * np.take(padded, np.arange(k, k + n), axis=axis) for k, t in enumerate(taps))
    return out


def sensor_effects(image, rng):
    """A camera's effects on a rendered image [S, S, 3] in [0, 1]: white balance (gains
    0.85-1.15 per channel), vignetting (up to 35 % darker corners), Gaussian blur (σ
    0.3-1.2 px), Gaussian noise (σ 0.005-0.03) and JPEG compression (quality 30-90)."""
    size = image.shape[0]
    out = image * rng.uniform(0.85, 1.15, size=3)
    coords = (np.arange(size) + 0.5) / size - 0.5
    radius2 = (coords[:, None] ** 2 + coords[None, :] ** 2) / 0.5
    out = out * (1 - rng.uniform(0.05, 0.35) * radius2)[..., None]
    out = _blur(out, rng.uniform(0.3, 1.2))
    out = out + rng.normal(0, rng.uniform(0.005, 0.03), size=out.shape)
    pixels = (np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=int(rng.integers(30, 91)))
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB"), np.float32) / 255.0


# Fixed light (variant "---" + "-"): from the upper left, on the camera's side.
FIXED_LIGHT = {
    "direction": _unit(np.array([-0.45, 0.8, -0.55])),
    "colour": np.array([1.0, 1.0, 1.0]),
    "ambient": 0.35,
}


def random_light(rng):
    """A random light: direction above the horizon, intensity 0.6-1.3, tinted colour."""
    azimuth = rng.uniform(0, 2 * np.pi)
    elevation = rng.uniform(np.radians(15), np.radians(80))
    direction = np.array(
        [
            np.cos(elevation) * np.cos(azimuth),
            np.sin(elevation),
            np.cos(elevation) * np.sin(azimuth),
        ]
    )
    tint = hsv(rng.random(), rng.uniform(0.0, 0.35), 1.0)
    return {
        "direction": direction,
        "colour": rng.uniform(0.6, 1.3) * tint / tint.max(),
        "ambient": rng.uniform(0.2, 0.45),
    }
