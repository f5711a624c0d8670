import numpy as np
import pytest
from PIL import Image

from zoo.evaluation.plots import max_computable_utility, plot_alpha_heatmap, plot_label_curves


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
