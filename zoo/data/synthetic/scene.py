"""Scenes of the synthetic benchmark: specification, sampling and rendering.

`generate(spec, index)` is a pure function: it draws the scene of `index` from seeded
generators and ray casts it with numpy. Content (classes, models, layout, pose bins)
and each factor of variation (colour, texture, viewpoint, light) draw from separate
streams, so two variants of the same (seed, split, mode, index) show the same objects
in the same places and differ only in the factors that differ.

Camera frame: x right, y up, z along the optical axis; depth is camera z in metres;
normals are unit vectors in the camera frame that face the camera.
"""

import dataclasses

import gin
import numpy as np

from zoo import checks
from zoo.data.synthetic import appearance, geometry, objects
from zoo.errors import UserError, UserTypeError

MODES = ("single", "multi", "motion")
SPLITS = ("train", "test")
DEFAULT_RESOLUTION = {"single": 64, "multi": 128, "motion": 128}
POSE_BINS = ("up", "forward", "backward", "left", "right")
FACTORS = "TCVLP"  # the fifth, P, is optional in a variant string
# the four factors of Newell & Deng's variants, by letter
FACTOR_NAMES = {"T": "texture", "C": "colour", "V": "viewpoint", "L": "lighting"}

# Scene categories (MGM's weak labels): a distribution over classes and a background.
SCENES = {
    "harbor": (
        {"watercraft": 6, "airplane": 1, "bench": 2, "car": 1},
        ((0.57, 0.55, 0.5), (0.56, 0.3, 0.9)),
    ),
    "office": (
        {"chair": 4, "table": 3, "lamp": 2, "cabinet": 3},
        ((0.6, 0.15, 0.42), (0.12, 0.08, 0.85)),
    ),
    "living_room": (
        {"sofa": 4, "lamp": 2, "table": 2, "chair": 1, "cabinet": 1},
        ((0.08, 0.55, 0.5), (0.1, 0.25, 0.8)),
    ),
    "street": (
        {"car": 5, "motorcycle": 3, "bench": 1, "lamp": 1},
        ((0.0, 0.0, 0.3), (0.05, 0.3, 0.6)),
    ),
    "airfield": (
        {"airplane": 6, "car": 2, "motorcycle": 1},
        ((0.1, 0.05, 0.62), (0.58, 0.45, 0.88)),
    ),
    "park": (
        {"bench": 5, "lamp": 2, "table": 2, "motorcycle": 1},
        ((0.3, 0.6, 0.45), (0.33, 0.5, 0.3)),
    ),
    "garage": (
        {"car": 3, "motorcycle": 3, "cabinet": 3, "chair": 1},
        ((0.0, 0.0, 0.5), (0.08, 0.1, 0.55)),
    ),
}
SCENE_NAMES = tuple(SCENES)

# Camera and layout constants.
_SINGLE_FOV, _SINGLE_DISTANCE, _BACKDROP = np.radians(40), 2.9, 5.0
_MULTI_FOV, _CAMERA_HEIGHT, _PITCH, _WALL = np.radians(55), 1.7, np.radians(15), 12.0
_CANONICAL_YAW, _CANONICAL_TILT = np.radians(135), np.radians(-25)
_STRETCH_PROBABILITY = 0.3
_YAW_SIGMA = {"single": np.radians(50), "multi": np.radians(70)}


@gin.configurable(module="zoo.data.synthetic")
@dataclasses.dataclass(frozen=True)
class SceneSpec:
    """What to render.

    Args:
        variant: str. Four characters "TCVL", each a factor letter or "-" for its easy
            setting: Texture, Colour, Viewpoint, Lighting, optionally followed by "P": a
            real-like domain whose objects and backgrounds are textured with crops of
            photographs (`zoo.data.photos.TEXTURE_PHOTOS`, replacing T's procedural
            textures) and whose images pass through sensor effects (white balance,
            vignetting, blur, noise, JPEG); every label stays as rendered. Defaults to
            "TCVL".
        mode: str. "single" (one centred object; labels class and pose bin), "multi"
            (2-6 objects; dense maps and a scene category) or "motion" (two frames of
            a multi scene and the mask of pixels that move). Defaults to "single".
        resolution: int or None. Image height and width. Defaults to 64 for single,
            128 otherwise.
        num_objects: (int, int). Inclusive range of objects in multi and motion
            scenes. Defaults to (2, 6).
        split: str. "train" or "test": which 80/20 part of each class's models is
            used. Defaults to "train".
        seed: int. Seed of the whole dataset. Defaults to 0.
        shadows: bool. Cast shadows. Defaults to True.
        supersample: bool. Average 2x2 rays per pixel for the RGB image (labels stay
            at pixel centres). Defaults to False.
    """

    variant: str = "TCVL"
    mode: str = "single"
    resolution: int | None = None
    num_objects: tuple = (2, 6)
    split: str = "train"
    seed: int = 0
    shadows: bool = True
    supersample: bool = False

    def get_config(self) -> dict:
        """The fields (Keras' serialization: tasks' configs hold specs this way)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_config(cls, config: dict) -> "SceneSpec":
        return cls(**config)

    def __post_init__(self):
        if (
            not isinstance(self.variant, str)
            or len(self.variant) not in (4, 5)
            or any(c not in (f, "-") for c, f in zip(self.variant, FACTORS))
        ):
            raise UserError(
                "SceneSpec: `variant` must be 4 characters, each the factor letter or '-' "
                f"in the order T, C, V, L (e.g. 'TCVL', '----', '-C--'), optionally followed "
                f"by P (photo textures and sensor effects: 'TCVLP'). "
                f"Received: variant={self.variant!r}"
            )
        if self.mode not in MODES:
            raise UserError(f"SceneSpec: `mode` must be one of {MODES}. Received: {self.mode!r}")
        if self.split not in SPLITS:
            raise UserError(f"SceneSpec: `split` must be one of {SPLITS}. Received: {self.split!r}")
        if self.resolution is not None and not (
            isinstance(self.resolution, int) and 16 <= self.resolution <= 1024
        ):
            raise UserError(
                "SceneSpec: `resolution` must be None or an int in [16, 1024]. "
                f"Received: {self.resolution!r}"
            )
        lo, hi = tuple(self.num_objects)
        if not (isinstance(lo, int) and isinstance(hi, int) and 1 <= lo <= hi <= 8):
            raise UserError(
                "SceneSpec: `num_objects` must be (low, high) with 1 <= low <= high <= 8. "
                f"Received: {self.num_objects!r}"
            )
        object.__setattr__(self, "num_objects", (lo, hi))

    @property
    def size(self):
        return self.resolution or DEFAULT_RESOLUTION[self.mode]

    @property
    def max_depth(self) -> float | None:
        """The farthest depth of the depth maps, in metres: where the ground meets the
        far wall (the camera looks down, so that line is the farthest along its axis).
        None for single objects, which have no depth map."""
        if self.mode == "single":
            return None
        return _WALL * np.cos(_PITCH) + _CAMERA_HEIGHT * np.sin(_PITCH)

    def has(self, factor):
        """Whether the hard setting of factor "T", "C", "V" or "L" is on."""
        return factor in self.variant


def _rot_x(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rot_z(a):
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


# Rotations that turn an object's top (+y) to each pose bin, in the camera frame.
_BIN_ROTATIONS = (
    np.eye(3),
    _rot_x(-np.pi / 2),
    _rot_x(np.pi / 2),
    _rot_z(np.pi / 2),
    _rot_z(-np.pi / 2),
)


def _streams(spec, index):
    checks.int_at_least(index, 0, "index", keyed=True)
    root = np.random.SeedSequence(
        [spec.seed, SPLITS.index(spec.split), MODES.index(spec.mode), int(index)]
    )
    # new streams go at the end: the earlier ones keep their values
    names = (
        "content",
        "colour",
        "texture",
        "view",
        "light",
        "motion",
        "background",
        "photo",
        "sensor",
    )
    return dict(zip(names, (np.random.default_rng(s) for s in root.spawn(len(names)))))


def _orientation(rng, random_view, yaw_sigma=_YAW_SIGMA["single"]):
    """Object-to-camera rotation around the canonical view (yaw 135°, top tilted 25° to us)."""
    if not random_view:
        return _rot_x(_CANONICAL_TILT) @ _rot_y(_CANONICAL_YAW)
    # Tilt and roll stay within 43° of the canonical top direction, so pose bins stay
    # unambiguous; yaw (about the top axis, ignored by the bins) varies widely.
    tilt = np.clip(_CANONICAL_TILT + rng.normal(0, np.radians(15)), np.radians(-40), np.radians(35))
    roll = np.clip(rng.normal(0, np.radians(8)), np.radians(-15), np.radians(15))
    yaw = _CANONICAL_YAW + rng.normal(0, yaw_sigma)
    return _rot_z(roll) @ _rot_x(tilt) @ _rot_y(yaw)


def _object(spec, streams, class_id, split_models):
    content = streams["content"]
    model_id = int(split_models[content.integers(len(split_models))])
    stretch = None
    if content.random() < _STRETCH_PROBABILITY:
        stretch = np.ones(3)
        stretch[content.integers(3)] = content.uniform(0.7, 1.4)
    colour, hue = appearance.object_colour(streams["colour"], class_id, spec.has("C"))
    if spec.has("P"):
        texture = appearance.photo_texture(streams["photo"])
    elif spec.has("T"):
        texture = appearance.random_texture(streams["texture"])
    else:
        texture = None
    return {
        "class_id": class_id,
        "model_id": model_id,
        "parts": objects.build(class_id, model_id, stretch),
        "colours": appearance.slot_colours(colour),
        "hue": hue,
        "texture": texture,
    }


def _background(spec, streams, base_hsv=None):
    rng = streams["background"]
    if base_hsv is None:  # single: a random backdrop colour
        colour = appearance.hsv(rng.random(), rng.uniform(0.1, 0.5), rng.uniform(0.35, 0.85))
    else:
        h, s, v = base_hsv
        colour = appearance.hsv(
            h + 0.02 * rng.normal(),
            np.clip(s + 0.08 * rng.normal(), 0, 1),
            np.clip(v + 0.06 * rng.normal(), 0.1, 1),
        )
    if spec.has("P"):
        texture = appearance.photo_texture(streams["photo"], scale=2.5)
    elif spec.has("T"):
        texture = appearance.random_texture(rng, scale=2.5)
    else:
        texture = None
    return {"colour": colour, "texture": texture}


def _place(obj, rotation, translation):
    obj["rotation"], obj["translation"] = rotation, translation
    obj["prims"] = [p.transformed(rotation, translation) for p in obj["parts"]]
    corners = np.concatenate([p.corners() for p in obj["prims"]])
    obj["center"] = translation
    obj["radius"] = np.linalg.norm(corners - translation, axis=1).max()
    return obj


def describe(spec, index):
    """Samples the scene of `index` without rendering it (cheap: labels, layout, factors).

    Returns:
        dict with "objects" (class, model, placement, materials), "background",
        "light", "focal" and the labels of the mode: "label" and "pose" for single,
        "scene" for multi and motion, "moving" (per object) for motion.
    """
    streams = _streams(spec, index)
    content = streams["content"]
    size = spec.size
    light = appearance.random_light(streams["light"]) if spec.has("L") else appearance.FIXED_LIGHT
    if spec.mode == "single":
        return _describe_single(spec, streams, light)

    scene = int(content.integers(len(SCENE_NAMES)))
    weights, (ground_hsv, wall_hsv) = SCENES[SCENE_NAMES[scene]]
    names = list(weights)
    probs = np.array([weights[n] for n in names], float)
    lo, hi = spec.num_objects
    count = int(content.integers(lo, hi + 1))
    pitch = _rot_x(-_PITCH)  # world -> camera for a camera looking down by _PITCH
    camera = np.array([0.0, _CAMERA_HEIGHT, 0.0])
    tan_half = np.tan(0.5 * _MULTI_FOV)
    placed, objs = [], []
    for _ in range(count):
        class_id = objects.CLASSES.index(names[content.choice(len(names), p=probs / probs.sum())])
        obj = _object(spec, streams, class_id, objects.model_ids(class_id, spec.split))
        scale = content.uniform(1.0, 1.4)
        for _attempt in range(200):  # evenly dispersed, not intersecting
            z = content.uniform(3.5, 10.0)
            x = content.uniform(-1, 1) * (z * tan_half * 0.8 - scale)
            # bounding spheres are loose (cube corners): 80% of their radii keeps parts apart
            if all(np.hypot(x - px, z - pz) > 0.8 * (scale + ps) for px, pz, ps in placed):
                break
        placed.append((x, z, scale))
        view = _orientation(streams["view"], spec.has("V"), yaw_sigma=_YAW_SIGMA["multi"])
        # Upright in the world (the camera's pitch shows the tops), with the viewpoint
        # factor's deviations from the canonical pose.
        world_rotation = (_rot_x(-_CANONICAL_TILT) @ view) * scale
        corners = np.concatenate([p.corners() for p in obj["parts"]]) @ world_rotation.T
        world = np.array([x, -corners[:, 1].min(), z])  # resting on the ground
        _place(obj, pitch @ world_rotation, pitch @ (world - camera))
        objs.append(obj)
    desc = {
        "mode": spec.mode,
        "objects": objs,
        "scene": scene,
        "ground": _background(spec, streams, ground_hsv),
        "wall": _background(spec, streams, wall_hsv),
        "light": dict(light, direction=pitch @ light["direction"]),
        "world_to_camera": pitch,
        "camera": camera,
        "focal": 0.5 * size / tan_half,
    }
    if spec.mode == "motion":
        desc["moving"], desc["next_objects"] = _motion(streams["motion"], objs, pitch)
    return desc


def _describe_single(spec, streams, light):
    """`describe` of a single-object scene."""
    content = streams["content"]
    class_id = int(content.integers(len(objects.CLASSES)))
    pose = int(content.integers(len(POSE_BINS)))
    obj = _object(spec, streams, class_id, objects.model_ids(class_id, spec.split))
    rotation = _BIN_ROTATIONS[pose] @ _orientation(streams["view"], spec.has("V"))
    _place(obj, rotation, np.array([0.0, 0.0, _SINGLE_DISTANCE]))
    return {
        "mode": "single",
        "objects": [obj],
        "label": class_id,
        "pose": pose,
        "background": _background(spec, streams),
        "light": dict(light),
        "world_to_camera": np.eye(3),
        "camera": np.zeros(3),
        "focal": 0.5 * spec.size / np.tan(0.5 * _SINGLE_FOV),
    }


def _motion(motion, objs, pitch):
    """(which objects move, the objects one frame later): at least one moves, each
    moving one a step on the ground and a turn about the vertical."""
    moving = motion.random(len(objs)) < 0.5
    moving[motion.integers(len(objs))] = True
    next_objects = []
    for obj, moves in zip(objs, moving):
        nxt = dict(obj)
        if moves:
            angle = motion.uniform(0, 2 * np.pi)
            step = motion.uniform(0.25, 0.6) * np.array([np.cos(angle), 0, np.sin(angle)])
            turn = pitch @ _rot_y(motion.normal(0, np.radians(15))) @ pitch.T
            _place(nxt, turn @ obj["rotation"], obj["translation"] + pitch @ step)
        next_objects.append(nxt)
    return moving, next_objects


def _rays(size, focal, supersample):
    n = size * (2 if supersample else 1)
    coords = (np.arange(n) + 0.5) / (n / size) - 0.5 * size
    u, v = np.meshgrid(coords, coords)
    d = np.stack([u / focal, -v / focal, np.ones_like(u)], axis=-1)
    return d.reshape(-1, 3), n


def _screen_box(obj, focal, size, scale):
    """Pixel rows and columns that can see the object's bounding sphere."""
    c, r = obj["center"], obj["radius"]
    if c[2] - r <= 1e-3:
        return 0, size * scale, 0, size * scale
    corners = c + r * np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)])
    u = corners[:, 0] / corners[:, 2] * focal + 0.5 * size
    v = -corners[:, 1] / corners[:, 2] * focal + 0.5 * size
    clip = lambda a: int(np.clip(a * scale, 0, size * scale))  # noqa: E731
    return clip(v.min() - 1), clip(v.max() + 2), clip(u.min() - 1), clip(u.max() + 2)


def _cast(desc, objs, size, supersample):
    focal = desc["focal"]
    d, n = _rays(size, focal, supersample)
    scale = n // size
    count = n * n
    depth = np.full(count, np.inf)
    normal = np.zeros((count, 3))
    instance = np.zeros(count, np.int32)
    slot = np.zeros(count, np.int8)
    # background
    if desc["mode"] == "single":
        depth[:] = _BACKDROP
        normal[:] = (0.0, 0.0, -1.0)
        plane = np.zeros(count, np.int8)
    else:
        plane = np.zeros(count, np.int8)
        rot, cam = desc["world_to_camera"], desc["camera"]
        for which, (n_world, offset) in enumerate(
            (((0.0, 1.0, 0.0), 0.0), ((0.0, 0.0, -1.0), -_WALL))
        ):
            n_cam = rot @ np.array(n_world)
            k = offset - np.dot(n_world, cam)
            with np.errstate(divide="ignore"):
                t = k / (d @ n_cam)
            better = (t > 0) & (t < depth)
            depth[better] = t[better]
            normal[better] = n_cam
            plane[better] = which
    grid = np.arange(count).reshape(n, n)
    for k, obj in enumerate(objs, start=1):
        r0, r1, c0, c1 = _screen_box(obj, focal, size, scale)
        idx = grid[r0:r1, c0:c1].ravel()
        if idx.size == 0:
            continue
        dirs = d[idx]
        best = depth[idx]
        for prim in obj["prims"]:
            t, nrm = geometry.intersect(prim, np.zeros(3), dirs)
            hit = t < best
            if hit.any():
                best = np.where(hit, t, best)
                sel = idx[hit]
                normal[sel] = nrm[hit]
                instance[sel] = k
                slot[sel] = prim.slot
        depth[idx] = best
    return d, n, depth, normal, instance, slot, plane


def _shade(desc, objs, d, depth, normal, instance, slot, plane, shadows):
    light = desc["light"]
    points = d * depth[:, None]  # z of d is 1, so t is depth
    albedo = np.zeros_like(points)
    background = instance == 0
    if desc["mode"] == "single":
        surfaces = [(background, desc["background"])]
    else:
        surfaces = [
            (background & (plane == 0), desc["ground"]),
            (background & (plane == 1), desc["wall"]),
        ]
    world = (points @ desc["world_to_camera"]) + desc["camera"]
    for mask, style in surfaces:
        if not mask.any():
            continue
        albedo[mask] = style["colour"]
        if style["texture"] is not None:
            albedo[mask] = appearance.textured(style["colour"], style["texture"], world[mask], 0.6)
    for k, obj in enumerate(objs, start=1):
        mask = instance == k
        if not mask.any():
            continue
        colours = obj["colours"][slot[mask]]
        if obj["texture"] is not None:
            local = (points[mask] - obj["translation"]) @ np.linalg.inv(obj["rotation"]).T
            textured = appearance.textured(colours, obj["texture"], local)
            keep_dark = (slot[mask] == 1)[:, None]
            colours = np.where(keep_dark, colours, textured)
        albedo[mask] = colours
    direction = light["direction"] / np.linalg.norm(light["direction"])
    lambert = np.clip(normal @ direction, 0.0, None)
    if shadows:
        lit = lambert > 0
        idx = np.flatnonzero(lit)
        origins = points[idx] + 1e-3 * normal[idx]
        dirs = np.broadcast_to(direction, origins.shape)
        blocked = np.zeros(idx.size, bool)
        for obj in objs:
            near = geometry.ray_sphere_mask(origins, dirs, obj["center"], obj["radius"])
            near &= ~blocked
            if not near.any():
                continue
            sub = np.flatnonzero(near)
            for prim in obj["prims"]:
                hit = geometry.occluded(prim, origins[sub], dirs[sub])
                blocked[sub[hit]] = True
        lambert[idx[blocked]] = 0.0
    shading = light["ambient"] + lambert[:, None] * light["colour"]
    return np.clip(albedo * shading, 0.0, 1.0)


def _contours(instance):
    """Pixels whose 4-neighbourhood holds another instance id (both sides of a boundary)."""
    edge = np.zeros(instance.shape, bool)
    vertical = instance[1:, :] != instance[:-1, :]
    horizontal = instance[:, 1:] != instance[:, :-1]
    edge[1:, :] |= vertical
    edge[:-1, :] |= vertical
    edge[:, 1:] |= horizontal
    edge[:, :-1] |= horizontal
    return edge


def render(desc, size, shadows=True, supersample=False, objs=None):
    """Ray casts a described scene: image [S, S, 3] and per-pixel maps at pixel centres."""
    objs = desc["objects"] if objs is None else objs
    d, n, depth, normal, instance, slot, plane = _cast(desc, objs, size, False)
    if supersample:
        d2, n2, *maps = _cast(desc, objs, size, True)
        rgb = _shade(desc, objs, d2, *maps, shadows)
        image = rgb.reshape(size, 2, size, 2, 3).mean(axis=(1, 3))
    else:
        image = _shade(desc, objs, d, depth, normal, instance, slot, plane, shadows)
        image = image.reshape(size, size, 3)
    classes = np.array([0] + [o["class_id"] + 1 for o in objs], np.int32)
    instance = instance.reshape(size, size)
    return {
        "image": image.astype(np.float32),
        "depth": depth.reshape(size, size).astype(np.float32),
        "normals": normal.reshape(size, size, 3).astype(np.float32),
        "instances": instance,
        "semantics": classes[instance],
    }


def generate(spec, index):
    """Renders example `index` of `spec`: a dict of numpy arrays (same inputs, same bytes).

    single: image [S, S, 3] float32 in [0, 1], label (class, int32), pose (bin, int32),
        model (model id, int32).
    multi: image, depth [S, S] float32 (metres), normals [S, S, 3] float32 (unit, camera
        frame), instances [S, S] int32 (0 = background, 1..K), semantics [S, S] int32
        (0 = background, class + 1), contours [S, S] uint8 (instance boundaries),
        scene (int32).
    motion: image (frame 1), next_image (frame 2), motion [S, S] uint8 (pixels of frame 1
        on a moving object), scene (int32).
    """
    if not isinstance(spec, SceneSpec):
        raise UserTypeError(f"`spec` must be a SceneSpec. Received: {type(spec).__name__}")
    desc = describe(spec, index)
    size = spec.size
    maps = render(desc, size, spec.shadows, spec.supersample)
    if spec.has("P"):
        sensor = _streams(spec, index)["sensor"]
        maps["image"] = appearance.sensor_effects(maps["image"], sensor)
    if spec.mode == "single":
        obj = desc["objects"][0]
        return {
            "image": maps["image"],
            "label": np.int32(desc["label"]),
            "pose": np.int32(desc["pose"]),
            "model": np.int32(obj["model_id"]),
        }
    if spec.mode == "multi":
        out = {k: maps[k] for k in ("image", "depth", "normals", "instances", "semantics")}
        out["contours"] = _contours(maps["instances"]).astype(np.uint8)
        out["scene"] = np.int32(desc["scene"])
        return out
    nxt = render(desc, size, spec.shadows, spec.supersample, objs=desc["next_objects"])
    if spec.has("P"):
        nxt["image"] = appearance.sensor_effects(nxt["image"], sensor)
    moving_ids = np.flatnonzero(desc["moving"]) + 1
    return {
        "image": maps["image"],
        "next_image": nxt["image"],
        "motion": np.isin(maps["instances"], moving_ids).astype(np.uint8),
        "scene": np.int32(desc["scene"]),
    }


def generate_job(job):
    """generate(*job) for worker processes (this module imports numpy only)."""
    spec, index = job
    return generate(spec, index)
