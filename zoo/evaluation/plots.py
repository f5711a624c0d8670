"""Plots of transfer results (PNG, matplotlib): label curves, utility, lasso weights."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from zoo.evaluation.utility import utility  # noqa: E402


def max_computable_utility(scratch_n, scratch_metric, n, higher_is_better=True):
    """Largest utility that can be computed at each n: n_best / n − 1.

    n_best is the label count at which the scratch curve reaches its best value; a
    larger utility would need a scratch run with more labels than were trained (Newell
    & Deng grey that region out).
    """
    sign = 1.0 if higher_is_better else -1.0
    xs, ys = np.asarray(scratch_n, float), sign * np.asarray(scratch_metric, float)
    order = np.argsort(xs)
    best = xs[order][int(np.argmax(np.maximum.accumulate(ys[order])))]
    return best / np.asarray(n, float) - 1.0


def plot_label_curves(
    scratch, methods, path, metric_name="accuracy", higher_is_better=True, title=None
):
    """Metric vs labels (log x) with the scratch baseline, and utility vs labels (Fig. 4).

    Args:
        scratch: (n [K], metric [K]). The model trained from scratch.
        methods: dict name -> (n [M], metric [M]). Finetuned pretrained models.
        path: str. Output PNG.
        metric_name: str. Y label of the left panel. Defaults to "accuracy".
        higher_is_better: bool. Defaults to True.
        title: str or None.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    s_n, s_metric = (np.asarray(a, float) for a in scratch)
    left.plot(s_n, s_metric, "k--o", label="scratch")
    all_n = [s_n]
    for name, (n, metric) in methods.items():
        n = np.asarray(n, float)
        all_n.append(n)
        left.plot(n, metric, "-o", label=name)
        u, _ = utility(s_n, s_metric, n, metric, higher_is_better)
        right.plot(n, u, "-o", label=name)
    grid = np.geomspace(min(a.min() for a in all_n), max(a.max() for a in all_n), 200)
    ceiling = max_computable_utility(s_n, s_metric, grid, higher_is_better)
    top = max(1.0, np.nanmax(right.get_ylim()[1]))
    right.fill_between(
        grid, np.minimum(ceiling, top), top, color="0.85", zorder=0, label="cannot be computed"
    )
    right.set_ylim(min(-0.5, right.get_ylim()[0]), top)
    right.axhline(0.0, color="k", lw=0.8)
    for ax, ylabel in ((left, metric_name), (right, "utility  n̂/n − 1")):
        ax.set_xscale("log")
        ax.set_xlabel("labelled examples")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_alpha_heatmap(alphas, task_names, path, title="lasso weights |α|"):
    """|α| of a LassoMix as a heat map: rows are tasks, columns residual units (Doersch Fig. 5)."""
    alphas = np.abs(np.asarray(alphas, float))
    if alphas.ndim != 2 or alphas.shape[0] != len(task_names):
        raise ValueError(
            f"alphas must be [tasks, units] with one row per task name; got shape "
            f"{alphas.shape} for {len(task_names)} tasks."
        )
    fig, ax = plt.subplots(figsize=(0.35 * alphas.shape[1] + 2, 0.5 * len(task_names) + 1.2))
    image = ax.imshow(alphas, cmap="magma", vmin=0.0, vmax=max(alphas.max(), 1e-9), aspect="auto")
    ax.set_yticks(range(len(task_names)), task_names)
    ax.set_xticks(range(alphas.shape[1]), [str(m + 1) for m in range(alphas.shape[1])], fontsize=7)
    ax.set_xlabel("residual unit (shallow → deep)")
    fig.colorbar(image, ax=ax, fraction=0.03)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
