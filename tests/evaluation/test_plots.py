import matplotlib
import numpy as np
import pytest
from PIL import Image

from zoo.evaluation.plots import (
    max_computable_utility,
    plot_alpha_heatmap,
    plot_factor_changes,
    plot_label_curves,
    plot_labelled_images,
    plot_predictions,
)


def test_max_computable_utility():
    n = [100, 1000, 10000, 100000]
    acc = [0.5, 0.7, 0.8, 0.8]  # best first reached at 10k
    np.testing.assert_allclose(max_computable_utility(n, acc, [100, 5000, 10000]), [99.0, 1.0, 0.0])
    rmse = [3.0, 2.0, 1.5, 1.6]  # lower is better: best at 10k
    assert max_computable_utility(n, rmse, 50000, higher_is_better=False) == pytest.approx(-0.8)


def test_plots_are_written(tmp_path):
    path = tmp_path / "curves.png"
    plot_label_curves(
        ([100, 1000, 10000], [0.4, 0.6, 0.7]),
        {"rotation": ([100, 1000, 10000], [0.55, 0.68, 0.72])},
        str(path),
    )
    width, height = Image.open(path).size
    assert (width, height) == (1000, 400)
    heat = tmp_path / "alpha.png"
    plot_alpha_heatmap(
        np.random.default_rng(0).normal(size=(4, 23)), ["rp", "col", "ex", "ms"], str(heat)
    )
    assert Image.open(heat).size[0] > Image.open(heat).size[1]
    with pytest.raises(ValueError, match="one row per task"):
        plot_alpha_heatmap(np.zeros((3, 5)), ["a", "b"], str(heat))


def _colors(path):
    pixels = np.asarray(Image.open(path).convert("RGB")).reshape(-1, 3)
    return {tuple(int(v) for v in c) for c in pixels}


def test_predictions_next_to_truth(tmp_path):
    n = 2
    images = np.ones((n, 16, 16, 3)) * [1.0, 0.0, 0.0]  # red inputs
    up = np.zeros((n, 8, 8, 3))
    up[..., 2] = 1.0  # normals facing the camera: drawn as (0.5, 0.5, 1)
    labels = np.full((n, 8, 8), 3)
    depth = np.linspace(1.0, 5.0, n * 64).reshape(n, 8, 8, 1)
    path = str(tmp_path / "pred.png")
    plot_predictions(
        images,
        [
            ("normals", "normals", up, up),
            ("segmentation", "labels", labels, labels),
            ("depth", "depth", depth, np.zeros_like(depth)),  # invalid prediction: grey
        ],
        path,
        title="t",
    )
    colors = _colors(path)
    assert (255, 0, 0) in colors and (127, 127, 255) in colors
    tab20 = tuple(int(round(255 * v)) for v in matplotlib.colormaps["tab20"](2)[:3])
    assert tab20 in colors  # class 3 (0 is the black background)
    assert (153, 153, 153) in colors  # 0.6 grey where depth is not positive
    width, height = Image.open(path).size
    assert width > 6 * height / n * 0.9  # 7 columns for 2 rows
    with pytest.raises(ValueError, match="kind"):
        plot_predictions(images, [("x", "flow", up, up)], path)
    with pytest.raises(ValueError, match="3 truths"):
        plot_predictions(images, [("x", "normals", np.zeros((3, 8, 8, 3)), up)], path)


def test_factor_and_label_pictures(tmp_path):
    path = str(tmp_path / "factors.png")
    plot_factor_changes(
        {"rot": {"T": [("----", "T---", 0.5), ("-C--", "TC--", 0.7)], "V": [("----", "--V-", -1)]}},
        path,
    )
    assert Image.open(path).size[0] > 300
    with pytest.raises(ValueError, match="no method"):
        plot_factor_changes({}, path)
    grid = str(tmp_path / "labels.png")
    plot_labelled_images(np.zeros((3, 8, 8, 3)), [0, 1, 2], [0, 2, 2], ["a", "b", "c"], grid)
    assert any(r - g > 120 and r - b > 120 for r, g, b in _colors(grid))  # red title: wrong
