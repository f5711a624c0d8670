"""Pictures of the synthetic benchmark (PNG, matplotlib)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402

from zoo.data.synthetic.objects import CLASSES  # noqa: E402
from zoo.data.synthetic.scene import POSE_BINS, SCENE_NAMES, describe, generate  # noqa: E402

_PALETTE = plt.get_cmap("tab10")


def semantic_colours(semantics):
    """RGB of a semantic map: black background, one tab10 colour per class."""
    colours = np.concatenate([[[0, 0, 0]], np.array([_PALETTE(i)[:3] for i in range(10)])])
    return colours[semantics]


def instance_colours(instances):
    rng = np.random.default_rng(0)
    colours = np.concatenate([[[0, 0, 0]], rng.uniform(0.2, 1.0, (64, 3))])
    return colours[np.where(instances > 0, (instances - 1) % 64 + 1, 0)]


def _off(ax):
    ax.set_xticks([])
    ax.set_yticks([])


def dense_grid(spec, indices, path):
    """One row per example: RGB, depth, normals, instances, semantics, contours (multi mode)."""
    columns = ("RGB", "depth (m)", "normals", "instances", "semantics", "contours")
    fig, axes = plt.subplots(
        len(indices), len(columns), figsize=(2.2 * len(columns), 2.3 * len(indices))
    )
    axes = np.atleast_2d(axes)
    present = set()
    for row, index in zip(axes, indices):
        ex = generate(spec, index)
        present |= set(np.unique(ex["semantics"]).tolist()) - {0}
        row[0].imshow(ex["image"])
        row[0].set_ylabel(f"#{index} {SCENE_NAMES[int(ex['scene'])]}", fontsize=8)
        im = row[1].imshow(ex["depth"], cmap="viridis")
        fig.colorbar(im, ax=row[1], fraction=0.046, pad=0.02)
        row[2].imshow((ex["normals"] + 1) / 2)
        row[3].imshow(instance_colours(ex["instances"]))
        row[4].imshow(semantic_colours(ex["semantics"]))
        row[5].imshow(ex["contours"], cmap="gray")
        for ax in row:
            _off(ax)
    for ax, title in zip(axes[0], columns):
        ax.set_title(title, fontsize=9)
    handles = [Patch(color=_PALETTE(c - 1), label=CLASSES[c - 1]) for c in sorted(present)]
    fig.legend(handles=handles, loc="lower center", ncol=min(5, len(handles)), fontsize=8)
    fig.suptitle(f"synthetic {spec.mode}, variant {spec.variant}, split {spec.split}")
    fig.tight_layout(rect=(0, 0.05, 1, 0.97))
    fig.savefig(path, dpi=100)
    plt.close(fig)


def class_pose_grid(spec, path, max_index=20000):
    """Single mode: one image per (class, pose bin), found by scanning indices."""
    cells = {}
    for index in range(max_index):
        desc = describe(spec, index)
        key = (desc["label"], desc["pose"])
        if key not in cells:
            cells[key] = index
            if len(cells) == len(CLASSES) * len(POSE_BINS):
                break
    fig, axes = plt.subplots(
        len(CLASSES), len(POSE_BINS), figsize=(1.6 * len(POSE_BINS) + 1, 1.6 * len(CLASSES))
    )
    for c, name in enumerate(CLASSES):
        for p, pose in enumerate(POSE_BINS):
            ax = axes[c, p]
            if (c, p) in cells:
                ax.imshow(generate(spec, cells[(c, p)])["image"])
            _off(ax)
            if p == 0:
                ax.set_ylabel(name, fontsize=9)
            if c == 0:
                ax.set_title(f"top {pose}", fontsize=9)
    fig.suptitle(f"synthetic single, variant {spec.variant}: classes x pose bins")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def motion_grid(spec, indices, path):
    """Motion mode: frame 1, frame 2, the moving-pixel mask over frame 1."""
    fig, axes = plt.subplots(len(indices), 3, figsize=(7, 2.4 * len(indices)))
    axes = np.atleast_2d(axes)
    for row, index in zip(axes, indices):
        ex = generate(spec, index)
        row[0].imshow(ex["image"])
        row[1].imshow(ex["next_image"])
        overlay = ex["image"].copy()
        overlay[ex["motion"] > 0] = 0.4 * overlay[ex["motion"] > 0] + 0.6 * np.array([1, 0, 0])
        row[2].imshow(overlay)
        for ax in row:
            _off(ax)
    for ax, title in zip(axes[0], ("frame 1", "frame 2", "moving pixels (frame 1)")):
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot(spec, path, num=4):
    """The picture of a spec's mode: dense maps, class x pose grid or motion pairs."""
    if spec.mode == "single":
        class_pose_grid(spec, path)
    elif spec.mode == "multi":
        dense_grid(spec, list(range(num)), path)
    else:
        motion_grid(spec, list(range(num)), path)
