"""Plots of transfer results (PNG, matplotlib): label curves, utility, change of utility
across dataset factors, lasso weights, and predictions next to ground truth.

TensorFlow and the tasks are imported by the pictures that need them: a sweep's report
(`zoo-evaluate report`, `zoo-visualize curves`) draws without loading TensorFlow.
"""

import matplotlib

matplotlib.use("Agg")

import os

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from zoo import files  # noqa: E402
from zoo.data.synthetic.scene import FACTOR_NAMES  # noqa: E402
from zoo.errors import UserError
from zoo.evaluation.utility import utility  # noqa: E402


def _save(fig, path, title=None, **title_kwargs):
    """Adds the figure title, writes the PNG and frees the figure."""
    if title:
        fig.suptitle(title, **title_kwargs)
    fig.tight_layout()
    files.write_file(path, lambda temporary: fig.savefig(temporary, dpi=100))
    plt.close(fig)


def _titled_grid(pictures, titles, correct, path, cols, cell, title=None, fontsize=8):
    """Pictures in a grid of `cols` columns, each titled (in red where not `correct`)."""
    cols = min(cols, len(pictures))
    rows = int(np.ceil(len(pictures) / cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(cell[0] * cols, cell[1] * rows + 0.3), squeeze=False
    )
    for ax in axes.ravel():
        ax.axis("off")
    for ax, picture, text, right in zip(axes.ravel(), pictures, titles, correct):
        ax.imshow(np.clip(picture, 0.0, 1.0))
        ax.set_title(text, fontsize=fontsize, color="k" if right else "tab:red")
    _save(fig, path, title, fontsize=10)


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
    _save(fig, path, title)


def plot_alpha_heatmap(alphas, task_names, path, title="lasso weights |α|"):
    """|α| of a LassoMix as a heat map: rows are tasks, columns residual units (Doersch Fig. 5)."""
    alphas = np.abs(np.asarray(alphas, float))
    if alphas.ndim != 2 or alphas.shape[0] != len(task_names):
        raise UserError(
            f"alphas must be [tasks, units] with one row per task name; got shape "
            f"{alphas.shape} for {len(task_names)} tasks."
        )
    width = max(6.0, 0.35 * alphas.shape[1] + 2.5)
    fig, ax = plt.subplots(figsize=(width, 0.5 * len(task_names) + 1.4))
    image = ax.imshow(alphas, cmap="magma", vmin=0.0, vmax=max(alphas.max(), 1e-9), aspect="auto")
    ax.set_yticks(range(len(task_names)), task_names)
    ax.set_xticks(range(alphas.shape[1]), [str(m + 1) for m in range(alphas.shape[1])], fontsize=7)
    ax.set_xlabel("residual unit (shallow → deep)")
    fig.colorbar(image, ax=ax, fraction=0.03)
    ax.set_title(title)
    _save(fig, path)


def plot_factor_changes(changes, path, title="change in utility when a factor is added"):
    """Change in utility across dataset pairs that differ in one factor (Newell & Deng Fig. 6).

    Args:
        changes: dict method -> dict factor letter -> list of (from variant, to variant,
            change); see `zoo.evaluation.sweep.factor_changes`.
        path: str. Output PNG.
        title: str.
    """
    methods = sorted(changes)
    if not methods:
        raise UserError("plot_factor_changes: no method has a pair of variants to compare.")
    factors = [f for f in FACTOR_NAMES if any(changes[m].get(f) for m in methods)]
    fig, ax = plt.subplots(figsize=(2.0 + 1.6 * len(factors), 4))
    width = 0.8 / len(methods)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for j, method in enumerate(methods):
        color = colors[j % len(colors)]
        for i, factor in enumerate(factors):
            pairs = changes[method].get(factor, [])
            if not pairs:
                continue
            x = i - 0.4 + width * (j + 0.5)
            values = np.array([c for _, _, c in pairs], float)
            ax.bar(x, values.mean(), width * 0.9, color=color, alpha=0.45, label=method)
            ax.scatter(np.full(len(values), x), values, color=color, s=14, zorder=3)
    ax.axhline(0.0, color="k", lw=0.8)
    ax.set_xticks(range(len(factors)), [f"+{FACTOR_NAMES[f]} ({f})" for f in factors])
    ax.set_ylabel("Δ utility (dots: dataset pairs, bar: mean)")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    ax.set_title(title)
    _save(fig, path)


DENSE_KINDS = ("depth", "normals", "contours", "labels")


def _show(ax, kind, array, reference=None):
    """One dense map: depth (viridis, range of `reference`'s valid pixels, invalid grey),
    normals ((n + 1) / 2 as RGB, zero normals grey), contours (probability, grey scale) or
    labels (one colour per class, 0 = background black)."""
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if kind == "depth":
        ref = np.asarray(reference if reference is not None else array)
        ref = ref[..., 0] if ref.ndim == 3 else ref
        valid = ref[ref > 0]
        lo, hi = (valid.min(), valid.max()) if valid.size else (0.0, 1.0)
        cmap = matplotlib.colormaps["viridis_r"]
        cmap = cmap.with_extremes(bad="0.6")
        ax.imshow(np.ma.masked_where(array <= 0, array), cmap=cmap, vmin=lo, vmax=hi)
    elif kind == "normals":
        norm = np.linalg.norm(array, axis=-1, keepdims=True)
        rgb = np.where(norm > 1e-6, (array / np.maximum(norm, 1e-6) + 1.0) / 2.0, 0.6)
        ax.imshow(np.clip(rgb, 0.0, 1.0))
    elif kind == "contours":
        ax.imshow(array, cmap="gray_r", vmin=0.0, vmax=1.0)
    elif kind == "labels":
        cmap = matplotlib.colormaps["tab20"].copy()
        colors = np.concatenate([[[0.0, 0.0, 0.0, 1.0]], cmap(np.arange(20))])
        ax.imshow(colors[np.asarray(array, int) % 21])
    else:
        raise UserError(f"`kind` must be one of {DENSE_KINDS}. Received: {kind!r}")


def plot_predictions(images, panels, path, title=None):
    """Input images next to ground truth and prediction of dense tasks (Ren & Lee Fig. 5).

    Args:
        images: [N, H, W, 3] floats in [0, 1]. One row per image.
        panels: list of (task name, kind, truth [N, h, w(, C)], prediction [N, h, w(, C)]);
            kind is "depth", "normals", "contours" (probabilities) or "labels" (class ids).
            Two columns per panel: truth, prediction.
        path: str. Output PNG.
        title: str or None.
    """
    images = np.asarray(images)
    for name, kind, truth, prediction in panels:
        if kind not in DENSE_KINDS:
            raise UserError(f"panel {name!r}: `kind` must be one of {DENSE_KINDS}, not {kind!r}")
        if len(truth) != len(images) or len(prediction) != len(images):
            raise UserError(
                f"panel {name!r}: {len(truth)} truths and {len(prediction)} predictions for "
                f"{len(images)} images."
            )
    rows, cols = len(images), 1 + 2 * len(panels)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows + 0.4), squeeze=False)
    for r in range(rows):
        axes[r, 0].imshow(np.clip(images[r], 0.0, 1.0))
        for p, (name, kind, truth, prediction) in enumerate(panels):
            _show(axes[r, 1 + 2 * p], kind, truth[r])
            _show(axes[r, 2 + 2 * p], kind, prediction[r], reference=truth[r])
            if r == 0:
                axes[r, 1 + 2 * p].set_title(f"{name}\ntruth", fontsize=8)
                axes[r, 2 + 2 * p].set_title(f"{name}\nprediction", fontsize=8)
    axes[0, 0].set_title("input", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    _save(fig, path, title, fontsize=10)


def plot_labelled_images(images, truth, predicted, class_names, path, title=None):
    """A grid of images titled with the true and predicted class (red when wrong)."""
    truth, predicted = [int(t) for t in truth], [int(p) for p in predicted]
    _titled_grid(
        np.asarray(images),
        [f"{class_names[t]}\n→ {class_names[p]}" for t, p in zip(truth, predicted)],
        [t == p for t, p in zip(truth, predicted)],
        path,
        cols=8,
        cell=(1.5, 1.7),
        title=title,
        fontsize=7,
    )


# serving output of a dense task -> how it is drawn
SERVING_KINDS = {
    "depth": "depth",
    "normals": "normals",
    "contour_probability": "contours",
    "moving_probability": "contours",
    "classes": "labels",
}


def plot_run_predictions(model, path, num=4, title=None):
    """Held-out predictions of every dense task of a MultiTask method next to the truth.

    Args:
        model: zoo.methods.MultiTask (e.g. from `zoo.experiment.restore`).
        path: str. Output PNG.
        num: int. Examples (rows). Defaults to 4.
        title: str or None.

    Returns:
        The names of the tasks drawn (global tasks have no map and are left out).
    """
    images, panels = None, []
    for name, task in model.tasks.items():
        inputs, truth = next(iter(task.pipeline("eval", num)))
        outputs = task.serving_outputs(model.task_model(name)(inputs, training=False))
        key = next((k for k in SERVING_KINDS if k in outputs), None)
        if key is None or outputs[key].shape.rank < 3:
            continue  # a global task
        if images is None:  # the raw images: the eval pipeline keeps the source's order
            raw = next(iter(task.examples("eval").batch(num)))
            images = raw["image"].numpy()
        panels.append((name, SERVING_KINDS[key], truth.numpy(), outputs[key].numpy()))
    if not panels:
        raise UserError(f"the model has no dense task to draw: {sorted(model.tasks)}")
    plot_predictions(images, panels, path, title)
    return [p[0] for p in panels]


def plot_run_generated(model, path, title=None):
    """MGM's generated images, one row per scene class, each next to M's predictions on
    it (MGM App. H). Row k is G's image for class k from the code of a held-out scene of
    that class (of the first 256; the first scene when none is of that class).

    Args:
        model: zoo.methods.MGM with a generator.
        path: str. Output PNG.
        title: str or None. Rows are labelled with their scene class.

    Returns:
        The scene names of the rows.
    """
    import tensorflow as tf

    from zoo.data.synthetic import SCENE_NAMES

    if getattr(model, "generator", None) is None:
        raise UserError("the run has no generator to draw (an MGM run with `generator`).")
    inputs, targets = next(iter(model.datasets(256, "eval")))
    scenes = targets["scene"].numpy()
    classes = model.scene_classes
    rows = [
        int(np.flatnonzero(scenes == k)[0]) if (scenes == k).any() else 0 for k in range(classes)
    ]
    fake = model.generate(tf.gather(inputs[model.group], rows), tf.range(classes), seed=(0, 0))
    outputs = model.network({model.group: fake}, training=False)
    panels = []
    for name, task in model.tasks.items():
        served = task.serving_outputs(outputs[name])
        key = next((k for k in SERVING_KINDS if k in served), None)
        if key is not None and served[key].shape.rank >= 3:
            panels.append((name, SERVING_KINDS[key], served[key].numpy()))
    first = next(iter(model.tasks.values()))
    names = list(first.label_names.get("scene") or SCENE_NAMES)[:classes]
    title = title or "generated scenes and the multi-task network's predictions"
    plot_outputs(fake.numpy(), panels, path, title, row_labels=names, first="generated")
    return names


def plot_patch_pairs(pairs, labels, predicted, path, title=None):
    """Relative-position pairs on their 3x3 grid: the centre patch, the second patch in
    the cell its label names; the title gives the true and the predicted cell (red when
    wrong).

    Args:
        pairs: [N, 2, P, P, 3] floats in [0, 1].
        labels, predicted: [N] ints in 0..7 (zoo.tasks.relative_position.NEIGHBOURS).
        path: str. Output PNG.
    """
    from zoo.tasks.relative_position import NEIGHBOURS

    pairs = np.asarray(pairs)
    labels, predicted = [int(t) for t in labels], [int(p) for p in predicted]
    names = ["↖", "↑", "↗", "←", "→", "↙", "↓", "↘"]
    p = pairs.shape[2]
    canvases = []
    for pair, label in zip(pairs, labels):
        canvas = np.ones((3 * p + 4, 3 * p + 4, 3))
        for (r, c), patch in (((1, 1), pair[0]), (NEIGHBOURS[label], pair[1])):
            canvas[r * (p + 2) : r * (p + 2) + p, c * (p + 2) : c * (p + 2) + p] = patch
        canvases.append(canvas)
    _titled_grid(
        canvases,
        [f"truth {names[t]}  predicted {names[q]}" for t, q in zip(labels, predicted)],
        [t == q for t, q in zip(labels, predicted)],
        path,
        cols=4,
        cell=(2.3, 2.5),
        title=title,
    )


def plot_colorization(images, predicted, path, title=None):
    """Rows of: the lightness input, the true colours, the predicted colours.

    Args:
        images: [N, H, W, 3] true RGB in [0, 1].
        predicted: [N, H, W, 3] RGB from the predicted ab and the true lightness.
    """
    from zoo.data.harmonize import lab_l3

    images = np.asarray(images)
    gray = lab_l3(images).numpy()
    columns = (("input (L)", gray), ("truth", images), ("prediction", predicted))
    _plot_image_columns(columns, path, title, width=5.0, margin=0.4)


def _plot_image_columns(columns, path, title, width, margin):
    """A row per image, a titled column per (name, [N, H, W, 3] RGB) of `columns`."""
    count = len(columns[0][1])
    fig, axes = plt.subplots(
        count, len(columns), figsize=(width, 1.7 * count + margin), squeeze=False
    )
    for r in range(count):
        for c, (name, pictures) in enumerate(columns):
            axes[r, c].imshow(np.clip(pictures[r], 0.0, 1.0))
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(name, fontsize=8)
    _save(fig, path, title, fontsize=10)


def as_rgb(images, harmonizer: str) -> np.ndarray:
    """Harmonized images (or a reconstruction of them) shown as RGB in [0, 1]: Lab
    (`lab`) converted back, anything else clipped."""
    images = np.asarray(images, np.float32)
    if harmonizer == "lab":
        from zoo.data.harmonize import LAB_SCALE, lab_to_rgb

        images = lab_to_rgb(images * np.asarray(LAB_SCALE, np.float32)).numpy()
    return np.clip(images, 0.0, 1.0)


def plot_reconstructions(images, reconstructions, path, title=None):
    """Rows of an image next to its reconstruction (a VAE's), both RGB in [0, 1]."""
    columns = (("input", images), ("reconstruction", reconstructions))
    _plot_image_columns(columns, path, title, width=3.6, margin=0.5)


def plot_run_pretext(model, folder, num=8):
    """Pictures of a run's pretext tasks on held-out data: the relative-position pairs
    with true and predicted labels (relative_position.png), colorizations next to their
    inputs (colorization.png) and a VAE's reconstructions next to its inputs at the
    reconstruction's size (vae.png).

    Returns:
        The paths written.
    """
    import tensorflow as tf

    from zoo.data.harmonize import rgb_to_lab
    from zoo.tasks.colorization import Colorization, annealed_mean, colorize
    from zoo.tasks.relative_position import RelativePosition
    from zoo.tasks.vae import VAE

    written = []
    for name, task in model.tasks.items():
        network = model.task_model(name)
        if isinstance(task, RelativePosition):
            # the patches as the trunk sees them (after the task's harmonizer)
            inputs, labels = next(iter(task.pipeline("eval", num)))
            predicted = network(inputs, training=False).numpy().argmax(-1)
            path = os.path.join(folder, f"{name}.png")
            plot_patch_pairs(inputs.numpy(), labels.numpy(), predicted, path, title=name)
            written.append(path)
        elif isinstance(task, Colorization):
            inputs, _ = next(iter(task.pipeline("eval", num)))
            rgb = next(iter(task.examples("eval").batch(num)))["image"]
            ab = annealed_mean(network(inputs, training=False), task.centres)
            predicted = colorize(rgb_to_lab(tf.cast(rgb, tf.float32))[..., 0], ab).numpy()
            path = os.path.join(folder, f"{name}.png")
            plot_colorization(rgb.numpy(), predicted, path, title=f"{name} (annealed mean)")
            written.append(path)
        elif isinstance(task, VAE):
            inputs, targets = next(iter(task.pipeline("eval", num)))
            reconstructed = network(inputs, training=False)["reconstruction"]
            path = os.path.join(folder, f"{name}.png")
            plot_reconstructions(
                as_rgb(targets, task.harmonizer),
                as_rgb(reconstructed, task.harmonizer),
                path,
                title=f"{name}: held-out images, μ decoded",
            )
            written.append(path)
    if not written:
        raise UserError(
            f"the run has no relative position, colorization or VAE task: {list(model.tasks)}"
        )
    return written


def plot_neighbours(queries, database, features, path, k=4, title=None):
    """Nearest neighbours of query images in several feature spaces (Ren & Lee Fig. 3).

    Args:
        queries: [Q, H, W, 3] images in [0, 1].
        database: [N, H, W, 3] images searched.
        features: dict {name: (query features [Q, D], database features [N, D])}, one
            block of `k` columns per name (cosine similarity).
        path: str. Output PNG.
        k: int. Neighbours per query and space.
        title: str or None.
    """
    queries, database = np.asarray(queries), np.asarray(database)
    names = list(features)
    cols = 1 + k * len(names)
    fig, axes = plt.subplots(
        len(queries), cols, figsize=(1.3 * cols, 1.3 * len(queries) + 0.5), squeeze=False
    )
    for j, name in enumerate(names):
        q, d = (np.asarray(f, np.float64) for f in features[name])
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
        d = d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)
        nearest = np.argsort(-(q @ d.T), axis=1)[:, :k]
        for r in range(len(queries)):
            for i in range(k):
                ax = axes[r, 1 + j * k + i]
                ax.imshow(np.clip(database[nearest[r, i]], 0, 1))
                if r == 0 and i == 0:
                    ax.set_title(name, fontsize=8, loc="left")
    for r in range(len(queries)):
        axes[r, 0].imshow(np.clip(queries[r], 0, 1))
    axes[0, 0].set_title("query", fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    _save(fig, path, title, fontsize=10)


def plot_filters(kernels, path, title=None, cols=16):
    """First-layer filters [kh, kw, 3, F] as small RGB images, each scaled to [0, 1]
    (Ren & Lee Fig. 4)."""
    kernels = np.asarray(kernels, np.float64)
    if kernels.ndim != 4 or kernels.shape[2] != 3:
        raise UserError(f"`kernels` must be [kh, kw, 3, F]. Received shape {kernels.shape}")
    count = kernels.shape[-1]
    cols = min(cols, count)
    rows = int(np.ceil(count / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(0.6 * cols, 0.6 * rows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= count:
            ax.axis("off")
            continue
        k = kernels[..., i]
        span = k.max() - k.min()
        ax.imshow((k - k.min()) / span if span > 0 else np.zeros_like(k) + 0.5)
    _save(fig, path, title, fontsize=10)


def plot_outputs(images, panels, path, title=None, row_labels=None, first="input"):
    """Inputs next to predicted maps, without ground truth (e.g. real photographs).

    Args:
        images: [N, H, W, 3] floats in [0, 1].
        panels: list of (name, kind, prediction [N, h, w(, C)]); kind as `plot_predictions`.
        path: str. Output PNG.
        title: str or None.
        row_labels: N strings or None. Written left of each row.
        first: str. The title of the images' column. Defaults to "input".
    """
    images = np.asarray(images)
    rows, cols = len(images), 1 + len(panels)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows + 0.4), squeeze=False)
    for r in range(rows):
        axes[r, 0].imshow(np.clip(images[r], 0.0, 1.0))
        for p, (name, kind, prediction) in enumerate(panels):
            _show(axes[r, 1 + p], kind, prediction[r])
            if r == 0:
                axes[r, 1 + p].set_title(name, fontsize=8)
        if row_labels is not None:
            axes[r, 0].set_ylabel(row_labels[r], fontsize=8)
    axes[0, 0].set_title(first, fontsize=8)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    _save(fig, path, title, fontsize=10)


def plot_views(images, views, path, title=None):
    """Each image (a row) next to its augmented views.

    Args:
        images: float [N, H, W, 3] in [0, 1].
        views: float [N, V, h, w, 3] in [0, 1].
        path: str. The PNG written.
        title: str or None.
    """
    images, views = np.asarray(images), np.asarray(views)
    rows, count = views.shape[0], views.shape[1]
    fig, axes = plt.subplots(
        rows, count + 1, figsize=(1.4 * (count + 1), 1.4 * rows + 0.4), squeeze=False
    )
    for i in range(rows):
        axes[i, 0].imshow(np.clip(images[i], 0.0, 1.0))
        for j in range(count):
            axes[i, j + 1].imshow(np.clip(views[i, j], 0.0, 1.0))
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, 0].set_title("image", fontsize=8)
    for j in range(count):
        axes[0, j + 1].set_title(f"view {j + 1}", fontsize=8)
    _save(fig, path, title, fontsize=9)
