"""Ten object classes built from primitives, after Newell & Deng's ShapeNet classes.

Each class has `MODELS_PER_CLASS` models: parametric variations of proportions and
parts drawn from a generator seeded by (class, model id), so a model id always denotes
the same shape. Model ids are split 80/20 into train and test by a fixed permutation
that no dataset option changes. Objects are built in a frame with y up and the front
facing +z, then centred and scaled so that their bounding sphere has radius 1
(Newell & Deng normalise scale across classes and models). Lamps and tables are
rotationally symmetric about y.

Material slots: 0 is the object's colour, 1 a dark secondary material (wheels, legs,
poles), 2 a light accent (windows, lamp shades' insides are not modelled).
"""

import numpy as np

from zoo.data.synthetic.geometry import Primitive
from zoo.errors import UserError

CLASSES = (
    "airplane",
    "bench",
    "cabinet",
    "car",
    "chair",
    "lamp",
    "sofa",
    "table",
    "watercraft",
    "motorcycle",
)
SYMMETRIC = ("lamp", "table")
MODELS_PER_CLASS = 50
TRAIN_FRACTION = 0.8
_SPLIT_SEED = 20200101


def model_ids(class_id, split):
    """Model ids of a class in a split ("train": 80%, "test": 20%), fixed for every variant."""
    order = np.random.default_rng([_SPLIT_SEED, class_id]).permutation(MODELS_PER_CLASS)
    cut = int(round(TRAIN_FRACTION * MODELS_PER_CLASS))
    if split == "train":
        return np.sort(order[:cut])
    if split == "test":
        return np.sort(order[cut:])
    raise UserError(f"`split` must be 'train' or 'test'. Received: split={split!r}")


def _rot_x(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_z(angle):
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


_AXIS = {"y": np.eye(3), "x": _rot_z(-np.pi / 2), "z": _rot_x(np.pi / 2)}


def box(center, half, slot=0):
    return Primitive("box", np.diag(half), center, slot)


def ellipsoid(center, radii, slot=0):
    return Primitive("sphere", np.diag(radii), center, slot)


def sphere(center, radius, slot=0):
    return ellipsoid(center, (radius,) * 3, slot)


def frustum(center, r0, r1, half_height, axis="y", slot=0, rotation=None):
    """A capped frustum of radii r0 (at -axis) and r1 (at +axis); r0 = r1 is a cylinder."""
    radius = max(r0, r1)
    scale = np.diag([radius, half_height, radius])
    frame = _AXIS[axis] if rotation is None else rotation
    return Primitive("frustum", frame @ scale, center, slot, r0 / radius, r1 / radius)


def cylinder(center, radius, half_height, axis="y", slot=0, rotation=None):
    return frustum(center, radius, radius, half_height, axis, slot, rotation)


def capsule(center, radius, half_length, axis="y", slot=0):
    """A cylinder closed by two hemispheres (three primitives)."""
    offset = _AXIS[axis] @ np.array([0.0, half_length, 0.0])
    center = np.asarray(center, float)
    return [
        cylinder(center, radius, half_length, axis, slot),
        sphere(center + offset, radius, slot),
        sphere(center - offset, radius, slot),
    ]


def _airplane(r):
    length, radius = r.uniform(3.0, 4.2), r.uniform(0.2, 0.32)
    span, chord = r.uniform(1.4, 2.1), r.uniform(0.28, 0.5)
    wing_z = r.uniform(-0.1, 0.3)
    parts = [
        ellipsoid((0, 0, 0), (radius, radius, length / 2)),
        box((0, -0.3 * radius, wing_z), (span, 0.035, chord)),
        box((0, radius + 0.28, -length / 2 + 0.3), (0.03, r.uniform(0.28, 0.45), 0.24)),
        box((0, 0.1, -length / 2 + 0.3), (r.uniform(0.5, 0.8), 0.03, 0.17)),
    ]
    if r.random() < 0.7:
        for side in (-1, 1):
            parts += capsule((side * span * 0.45, -radius, wing_z + 0.1), 0.13, 0.3, "z", 1)
    return parts


def _bench(r):
    width, depth, height = r.uniform(0.8, 1.3), r.uniform(0.18, 0.3), r.uniform(0.38, 0.5)
    parts = [box((0, height, 0), (width, 0.045, depth))]
    if r.random() < 0.5:  # two slab legs
        for side in (-1, 1):
            parts.append(box((side * (width - 0.08), height / 2, 0), (0.04, height / 2, depth), 1))
    else:  # four thin legs
        for sx in (-1, 1):
            for sz in (-1, 1):
                parts.append(
                    box(
                        (sx * (width - 0.08), height / 2, sz * (depth - 0.04)),
                        (0.035, height / 2, 0.035),
                        1,
                    )
                )
    if r.random() < 0.75:
        back_h = r.uniform(0.12, 0.22)
        parts.append(box((0, height + 0.28, -depth + 0.03), (width, back_h, 0.03)))
        for side in (-1, 1):
            parts.append(
                box((side * (width - 0.1), height + 0.14, -depth + 0.03), (0.03, 0.16, 0.03), 1)
            )
    return parts


def _cabinet(r):
    width, height, depth = r.uniform(0.35, 0.7), r.uniform(1.0, 2.0), r.uniform(0.25, 0.4)
    parts = [
        box((0, height / 2 + 0.05, 0), (width, height / 2, depth)),
        box((0, 0.03, 0), (width - 0.03, 0.03, depth - 0.03), 1),
    ]
    if r.random() < 0.5:  # doors with handles
        doors = 1 if width < 0.5 else 2
        door_w = width / doors
        for i in range(doors):
            x = -width + door_w * (2 * i + 1)
            parts.append(
                box(
                    (x, height / 2 + 0.05, depth + 0.01),
                    (door_w - 0.02, height / 2 - 0.03, 0.012),
                    2,
                )
            )
            hx = x + (door_w - 0.08) * (1 if i == 0 else -1)  # next to the inner edge
            parts.append(sphere((hx, height / 2 + 0.05, depth + 0.05), 0.035, 1))
    else:  # drawers
        drawers = int(r.integers(3, 6))
        drawer_h = height / drawers
        for i in range(drawers):
            y = 0.05 + drawer_h * (i + 0.5)
            parts.append(box((0, y, depth + 0.01), (width - 0.03, drawer_h / 2 - 0.02, 0.012), 2))
            parts.append(box((0, y, depth + 0.04), (0.12, 0.015, 0.02), 1))
    return parts


def _car(r):
    length, width = r.uniform(1.8, 2.4), r.uniform(0.75, 0.9)
    body_h, cabin_h = r.uniform(0.2, 0.3), r.uniform(0.18, 0.28)
    wheel = r.uniform(0.28, 0.36)
    cabin_len, cabin_z = r.uniform(0.7, 1.1), r.uniform(-0.35, 0.05)
    base = wheel + body_h * 0.3
    parts = [
        box((0, base + body_h, 0), (width, body_h, length)),
        box((0, base + 2 * body_h + cabin_h, cabin_z), (width - 0.08, cabin_h, cabin_len)),
        box(
            (0, base + 2 * body_h + cabin_h, cabin_z),
            (width - 0.06, cabin_h * 0.7, cabin_len - 0.12),
            2,
        ),
    ]
    for sx in (-1, 1):
        for sz in (-1, 1):
            parts.append(
                cylinder((sx * (width - 0.05), wheel, sz * length * 0.65), wheel, 0.12, "x", 1)
            )
        parts.append(sphere((sx * (width - 0.2), base + body_h * 1.2, length), 0.08, 2))
    return parts


def _chair(r):
    width, depth, seat = r.uniform(0.22, 0.32), r.uniform(0.22, 0.32), r.uniform(0.4, 0.5)
    back_h = r.uniform(0.35, 0.6)
    parts = [box((0, seat, 0), (width, 0.035, depth))]
    for sx in (-1, 1):
        for sz in (-1, 1):
            parts.append(
                box(
                    (sx * (width - 0.03), seat / 2, sz * (depth - 0.03)),
                    (0.025, seat / 2, 0.025),
                    1,
                )
            )
    if r.random() < 0.5:
        parts.append(box((0, seat + back_h / 2 + 0.03, -depth + 0.02), (width, back_h / 2, 0.025)))
    else:  # slatted back
        for sx in (-1, 0, 1):
            parts.append(
                box(
                    (sx * (width - 0.04), seat + back_h / 2, -depth + 0.02),
                    (0.025, back_h / 2, 0.02),
                    1,
                )
            )
        parts.append(box((0, seat + back_h, -depth + 0.02), (width, 0.06, 0.025)))
    if r.random() < 0.3:
        for sx in (-1, 1):
            parts.append(box((sx * width, seat + 0.2, 0), (0.025, 0.025, depth), 1))
    return parts


def _lamp(r):
    height, base = r.uniform(1.0, 1.6), r.uniform(0.14, 0.26)
    bottom, top, shade_h = r.uniform(0.2, 0.36), r.uniform(0.08, 0.2), r.uniform(0.15, 0.26)
    parts = [
        frustum((0, 0.04, 0), base, base * r.uniform(0.6, 1.0), 0.04, slot=1),
        cylinder((0, height / 2, 0), 0.025, height / 2, slot=1),
        frustum((0, height, 0), bottom, top, shade_h),
    ]
    if r.random() < 0.4:
        parts.append(sphere((0, height * 0.45, 0), r.uniform(0.06, 0.1), 1))
    return parts


def _sofa(r):
    width, depth = r.uniform(0.9, 1.4), r.uniform(0.38, 0.5)
    arm_h = r.uniform(0.45, 0.62)
    parts = [
        box((0, 0.26, 0), (width, 0.16, depth)),
        box((0, 0.47, 0.04), (width - 0.16, 0.06, depth - 0.06), 2),
        box((0, 0.62, -depth + 0.12), (width, r.uniform(0.25, 0.35), 0.12)),
    ]
    for sx in (-1, 1):
        parts.append(box((sx * (width - 0.08), arm_h / 2 + 0.1, 0), (0.1, arm_h / 2, depth)))
        for sz in (-1, 1):
            parts.append(
                box((sx * (width - 0.08), 0.05, sz * (depth - 0.06)), (0.04, 0.05, 0.04), 1)
            )
    return parts


def _table(r):
    height, radius = r.uniform(0.6, 0.8), r.uniform(0.45, 0.8)
    parts = [
        cylinder((0, height, 0), radius, 0.03),
        cylinder((0, height / 2, 0), r.uniform(0.04, 0.08), height / 2, slot=1),
        frustum((0, 0.04, 0), r.uniform(0.25, 0.42), 0.08, 0.04, slot=1),
    ]
    if r.random() < 0.3:  # a second, lower tier
        parts.append(cylinder((0, height * 0.45, 0), radius * 0.6, 0.02))
    return parts


def _watercraft(r):
    length, beam, draft = r.uniform(1.6, 2.4), r.uniform(0.35, 0.55), r.uniform(0.25, 0.35)
    parts = [
        ellipsoid((0, 0, 0), (beam, draft, length)),
        box((0, draft * 0.5, -length * 0.1), (beam * 0.9, 0.03, length * 0.7), 2),
    ]
    if r.random() < 0.5:  # sailing boat: mast and sail
        mast_h = r.uniform(1.2, 1.8)
        parts.append(cylinder((0, mast_h / 2, 0.2), 0.03, mast_h / 2, slot=1))
        parts.append(box((0, mast_h * 0.55, -0.25), (0.015, mast_h * 0.4, 0.42), 2))
    else:  # motor boat: cabin and funnel
        cabin = r.uniform(0.3, 0.6)
        parts.append(box((0, draft + 0.15, -0.2), (beam * 0.7, 0.18, cabin)))
        parts.append(frustum((0, draft + 0.45, -0.3), 0.12, 0.09, 0.15, slot=1))
    return parts


def _motorcycle(r):
    wheel, base = r.uniform(0.28, 0.36), r.uniform(0.55, 0.75)
    lean = r.uniform(0.3, 0.5)
    parts = [
        cylinder((0, wheel, base), wheel, 0.06, "x", 1),
        cylinder((0, wheel, -base), wheel, 0.06, "x", 1),
        ellipsoid((0, wheel + 0.35, 0.1), (0.16, 0.15, r.uniform(0.3, 0.45))),
        box((0, wheel + 0.42, -0.3), (0.13, 0.04, r.uniform(0.22, 0.32)), 1),
        box((0, wheel + 0.08, 0), (0.12, 0.14, 0.22), 1),
        cylinder((0, wheel + 0.35, base - 0.15), 0.03, 0.42, slot=1, rotation=_rot_x(lean)),
        *capsule((0, wheel + 0.72, base - 0.32), 0.025, r.uniform(0.25, 0.35), "x", 1),
    ]
    return parts


BUILDERS = dict(
    zip(
        CLASSES,
        (_airplane, _bench, _cabinet, _car, _chair, _lamp, _sofa, _table, _watercraft, _motorcycle),
    )
)


def normalize(parts):
    """Centres the parts on their bounding box and scales their bounding sphere to radius 1."""
    corners = np.concatenate([p.corners() for p in parts])
    center = 0.5 * (corners.min(0) + corners.max(0))
    radius = np.linalg.norm(corners - center, axis=1).max()
    scale = np.eye(3) / radius
    return [p.transformed(scale, -center / radius) for p in parts]


def build(class_id, model_id, stretch=None):
    """The primitives of a model, normalised; `stretch` (3,) scales the axes before that.

    Args:
        class_id: int. Index into CLASSES.
        model_id: int. In [0, MODELS_PER_CLASS).
        stretch: array [3] or None. Per-axis stretching (Newell & Deng's augmentation).
    """
    if not 0 <= class_id < len(CLASSES):
        raise UserError(f"class_id must be in [0, {len(CLASSES)}). Received: {class_id}")
    if not 0 <= model_id < MODELS_PER_CLASS:
        raise UserError(f"model_id must be in [0, {MODELS_PER_CLASS}). Received: {model_id}")
    rng = np.random.default_rng([class_id, model_id, 7])
    parts = BUILDERS[CLASSES[class_id]](rng)
    if stretch is not None:
        parts = [p.transformed(np.diag(stretch), np.zeros(3)) for p in parts]
    return normalize(parts)
