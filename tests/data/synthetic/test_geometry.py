import numpy as np

from zoo.data.synthetic import geometry
from zoo.data.synthetic.objects import box, cylinder, ellipsoid, frustum


def test_sphere_hit_distance_and_normal():
    prim = ellipsoid((0, 0, 5), (1, 1, 1))
    d = np.array([[0.0, 0.0, 1.0], [0.1, 0.0, 1.0], [1.0, 0.0, 1.0]])
    t, n = geometry.intersect(prim, np.zeros(3), d)
    assert t[0] == np.float64(4.0)
    np.testing.assert_allclose(n[0], [0, 0, -1])
    # ray x = 0.1 z meets x² + (z - 5)² = 1 at the smaller root
    z = (10 - np.sqrt(100 - 4 * 1.01 * 24)) / (2 * 1.01)
    np.testing.assert_allclose(t[1], z, rtol=1e-12)
    assert np.isinf(t[2])


def test_ellipsoid_normal_is_gradient():
    prim = ellipsoid((0, 0, 0), (2, 1, 1))
    o = np.array([[3.0, 0.5, 0.0]])
    t, n = geometry.intersect(prim, o, np.array([[-1.0, 0.0, 0.0]]))
    x = 3 - t[0]
    np.testing.assert_allclose(x**2 / 4 + 0.25, 1.0)
    gradient = np.array([x / 4, 0.5, 0.0])
    np.testing.assert_allclose(n[0], gradient / np.linalg.norm(gradient), atol=1e-12)


def test_box_faces():
    prim = box((0, 0, 4), (1, 2, 0.5))
    d = np.array([[0.0, 0.0, 1.0], [0.0, 0.9 / 3.5, 1.0]])
    t, n = geometry.intersect(prim, np.zeros(3), d)
    np.testing.assert_allclose(t, [3.5, 3.5])
    np.testing.assert_allclose(n, [[0, 0, -1], [0, 0, -1]])
    t, n = geometry.intersect(prim, np.array([0.0, 5.0, 4.0]), np.array([[0.0, -1.0, 0.0]]))
    np.testing.assert_allclose(t, [3.0])
    np.testing.assert_allclose(n[0], [0, 1, 0])


def test_cylinder_side_and_cap():
    prim = cylinder((0, 0, 0), 0.5, 1.0)  # axis y, radius 0.5, y in [-1, 1]
    t, n = geometry.intersect(prim, np.array([0.0, 0.0, -3.0]), np.array([[0.0, 0.0, 1.0]]))
    np.testing.assert_allclose(t, [2.5])
    np.testing.assert_allclose(n[0], [0, 0, -1])
    t, n = geometry.intersect(prim, np.array([0.2, 4.0, 0.0]), np.array([[0.0, -1.0, 0.0]]))
    np.testing.assert_allclose(t, [3.0])
    np.testing.assert_allclose(n[0], [0, 1, 0])
    t, _ = geometry.intersect(prim, np.array([0.6, 4.0, 0.0]), np.array([[0.0, -1.0, 0.0]]))
    assert np.isinf(t[0])


def test_cone_slant_normal():
    prim = frustum((0, 0, 0), 1.0, 0.0, 1.0)  # radius 1 at y = -1, apex at y = 1
    t, n = geometry.intersect(prim, np.array([0.0, 0.0, -3.0]), np.array([[0.0, 0.0, 1.0]]))
    np.testing.assert_allclose(t, [2.5])  # radius 0.5 at y = 0
    np.testing.assert_allclose(n[0], np.array([0, 0.5, -1]) / np.sqrt(1.25), atol=1e-12)


def test_occlusion_and_sphere_cull():
    prim = ellipsoid((0, 2, 0), (0.5, 0.5, 0.5))
    o = np.zeros((2, 3))
    d = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    np.testing.assert_array_equal(geometry.occluded(prim, o, d), [True, False])
    np.testing.assert_array_equal(
        geometry.ray_sphere_mask(o, d, np.array([0.0, 2.0, 0.0]), 0.6), [True, False]
    )
