"""Closed-form ray intersections of analytic primitives, vectorised over rays with numpy.

Every primitive is a canonical shape placed by an affine map `p = A q + b` (q in the
canonical frame). Rays are intersected in the canonical frame, where the ray parameter
t is unchanged by the affine map, and normals go back through the inverse transpose.

Canonical shapes:

* `sphere`: |q| = 1 (an ellipsoid once A scales the axes);
* `box`: max(|q_x|, |q_y|, |q_z|) = 1;
* `frustum`: y in [-1, 1], x² + z² = r(y)² with r linear from `r0` at y = -1 to `r1`
  at y = 1, closed by caps (a cylinder has r0 = r1, a cone r1 = 0).
"""

import numpy as np

from zoo.errors import UserError

EPS = 1e-4
KINDS = ("sphere", "box", "frustum")


class Primitive:
    """A canonical shape with its placement `p = A q + b` and a material slot."""

    __slots__ = ("kind", "r0", "r1", "A", "b", "slot", "A_inv")

    def __init__(self, kind, A, b, slot=0, r0=1.0, r1=1.0):
        if kind not in KINDS:
            raise UserError(f"Primitive kind must be one of {KINDS}. Received: {kind!r}")
        self.kind = kind
        self.A = np.asarray(A, np.float64)
        self.b = np.asarray(b, np.float64)
        self.slot = slot
        self.r0, self.r1 = float(r0), float(r1)
        self.A_inv = np.linalg.inv(self.A)

    def transformed(self, M, c):
        """The primitive under `p -> M p + c`."""
        return Primitive(self.kind, M @ self.A, M @ self.b + c, self.slot, self.r0, self.r1)

    def corners(self):
        """The 8 corners of the placed canonical bounding cube (a bound of the shape)."""
        cube = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)], float)
        return cube @ self.A.T + self.b


def _sphere(o, d):
    a = np.einsum("...i,...i->...", d, d)
    half_b = np.einsum("...i,...i->...", o, d)
    c = np.einsum("...i,...i->...", o, o) - 1.0
    disc = half_b * half_b - a * c
    hit = disc >= 0
    root = np.sqrt(np.where(hit, disc, 0.0))
    t = (-half_b - root) / a
    t = np.where(hit & (t > EPS), t, np.inf)
    q = o + np.where(np.isfinite(t), t, 0.0)[..., None] * d
    return t, q


def _box(o, d):
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = 1.0 / d
        t1 = (-1.0 - o) * inv
        t2 = (1.0 - o) * inv
    lo = np.minimum(t1, t2)
    hi = np.maximum(t1, t2)
    lo = np.where(np.isnan(lo), -np.inf, lo)
    hi = np.where(np.isnan(hi), np.inf, hi)
    t_near = lo.max(axis=-1)
    t_far = hi.min(axis=-1)
    t = np.where((t_far >= t_near) & (t_near > EPS), t_near, np.inf)
    return t, None


def _box_normal(q):
    axis = np.abs(q).argmax(axis=-1)
    n = np.zeros_like(q)
    np.put_along_axis(n, axis[..., None], np.sign(np.take_along_axis(q, axis[..., None], -1)), -1)
    return n


def _frustum(o, d, r0, r1):
    a = 0.5 * (r0 + r1)
    k = 0.5 * (r1 - r0)
    ox, oy, oz = o[..., 0], o[..., 1], o[..., 2]
    dx, dy, dz = d[..., 0], d[..., 1], d[..., 2]
    ro = a + k * oy
    qa = dx * dx + dz * dz - k * k * dy * dy
    qb = 2.0 * (ox * dx + oz * dz - ro * k * dy)
    qc = ox * ox + oz * oz - ro * ro
    disc = qb * qb - 4.0 * qa * qc
    ok = (disc >= 0) & (np.abs(qa) > 1e-12)
    root = np.sqrt(np.where(ok, disc, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        t_side = np.full(np.broadcast_shapes(ox.shape, dx.shape), np.inf)
        for sign in (1.0, -1.0):  # the larger root first, so the smaller one wins
            t = (-qb - sign * root) / (2.0 * qa)
            y = oy + t * dy
            valid = ok & (t > EPS) & (np.abs(y) <= 1.0) & (a + k * y >= 0)
            t_side = np.where(valid & (t < t_side), t, t_side)
        t_cap = np.full_like(t_side, np.inf)
        for y_cap, r_cap in ((-1.0, r0), (1.0, r1)):
            if r_cap <= 0:
                continue
            t = (y_cap - oy) / dy
            x, z = ox + t * dx, oz + t * dz
            valid = (t > EPS) & (x * x + z * z <= r_cap * r_cap)
            t_cap = np.where(valid & (t < t_cap), t, t_cap)
    t = np.minimum(t_side, t_cap)
    q = o + np.where(np.isfinite(t), t, 0.0)[..., None] * d
    on_cap = t_cap < t_side
    n_side = np.stack([q[..., 0], -(a + k * q[..., 1]) * k, q[..., 2]], axis=-1)
    n_cap = np.zeros_like(q)
    n_cap[..., 1] = np.sign(q[..., 1])
    n = np.where(on_cap[..., None], n_cap, n_side)
    return t, q, n


def intersect(prim, o, d):
    """Ray parameter t (inf on a miss) and the unit normal at the hit, in the rays' frame.

    Args:
        prim: Primitive.
        o: array [3] or [N, 3]. Ray origins.
        d: array [N, 3]. Ray directions (not necessarily unit length).

    Returns:
        (t [N], normals [N, 3]); normals are garbage where t is inf.
    """
    oc = (o - prim.b) @ prim.A_inv.T
    dc = d @ prim.A_inv.T
    if prim.kind == "sphere":
        t, q = _sphere(oc, dc)
        n = q
    elif prim.kind == "box":
        t, _ = _box(oc, dc)
        q = oc + np.where(np.isfinite(t), t, 0.0)[..., None] * dc
        n = _box_normal(q)
    else:
        t, q, n = _frustum(oc, dc, prim.r0, prim.r1)
    n = n @ prim.A_inv  # inverse transpose, rows as vectors
    n /= np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
    return t, n


def occluded(prim, o, d):
    """Whether each ray hits the primitive at t > EPS (no normals: for shadow rays)."""
    oc = (o - prim.b) @ prim.A_inv.T
    dc = d @ prim.A_inv.T
    if prim.kind == "sphere":
        t, _ = _sphere(oc, dc)
    elif prim.kind == "box":
        t, _ = _box(oc, dc)
    else:
        t, _, _ = _frustum(oc, dc, prim.r0, prim.r1)
    return np.isfinite(t)


def ray_sphere_mask(o, d, center, radius):
    """Rays that pass within `radius` of `center` ahead of their origin (a cheap cull)."""
    oc = o - center
    dd = np.einsum("...i,...i->...", d, d)
    proj = np.einsum("...i,...i->...", oc, d)
    closest = np.einsum("...i,...i->...", oc, oc) - proj * proj / dd
    far_side = (proj < 0) | (np.einsum("...i,...i->...", oc, oc) <= radius * radius)
    return (closest <= radius * radius) & far_side
