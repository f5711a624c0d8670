"""Measurements of synthetic-to-real adaptation (Ren & Lee 2018, sec. 4).

* `domain_gap`: per trunk layer, the held-out accuracy of a fresh logistic regression
  that tells pooled features of held-out synthetic scenes from those of held-out real
  photo crops (0.5: indistinguishable; 1.0: fully separable);
* `zero_shot`: the run's own tasks (depth, normals, contours) on the labelled real-like
  renders of factor "P" (photo textures, sensor effects), next to the synthetic test
  scenes they were trained like;
* `transfers`: few-label transfer to "P" classification and segmentation through the
  transfer suite (`zoo.evaluation.transfer`);
* `layer_probes`: frozen linear probes of every layer on "P" classification (a Table 2
  analogue);
* pictures: nearest neighbours of real query crops (Fig. 3), conv1 filters (Fig. 4),
  predictions on real photographs.

`compare` runs Table 3's rows over seeds and `comparison_table` prints them beside the
paper's numbers; `zoo.evaluation.claims` judges the paper's claims on them.
"""

import dataclasses
import json
import math
import os
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

from zoo import experiment, files
from zoo.data import sources
from zoo.data.synthetic import SceneSpec
from zoo.errors import UserError
from zoo.evaluation import plots
from zoo.evaluation.transfer import transfer
from zoo.progress import Progress
from zoo.tasks.base import pipeline
from zoo.trunks.alexnet import analogue

# -- the domain gap -----------------------------------------------------------------


def domain_classifier_accuracy(a, b, folds: int = 2, seed: int = 0) -> float:
    """Held-out accuracy of a logistic regression separating rows of `a` from rows of `b`.

    The two sets are cut to the same size (chance is 0.5), standardised on each training
    fold, and the accuracy is averaged over `folds` stratified folds.

    Args:
        a, b: [N, D] and [M, D] features.
        folds: int >= 2.
        seed: int. Seeds the subsampling and the folds.
    """
    # scikit-learn takes about a second to import; only this measure needs it
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise UserError(f"features must be [N, D] and [M, D]. Received: {a.shape}, {b.shape}")
    n = min(len(a), len(b))
    if n < folds:
        raise UserError(f"need at least {folds} examples of each domain; have {n}.")
    rng = np.random.default_rng(seed)
    a, b = a[rng.permutation(len(a))[:n]], b[rng.permutation(len(b))[:n]]
    x = np.concatenate([a, b])
    y = np.concatenate([np.zeros(n), np.ones(n)])
    scores = []
    for train, test in StratifiedKFold(folds, shuffle=True, random_state=seed).split(x, y):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        model.fit(x[train], y[train])
        scores.append(model.score(x[test], y[test]))
    return float(np.mean(scores))


def _first_task(model):
    return model.tasks[model.groups[next(iter(model.groups))][0]]


def real_heldout_source(input_size: int, num: int) -> sources.Source:
    """Crops of the held-out photographs (never trained on) at `input_size`."""
    return sources.real_crops(
        "heldout", input_size, max(1, math.ceil(num / len(sources.HELDOUT_PHOTOS)))
    )


def heldout_domains(model, num: int = 240, seed: int = 0):
    """(synthetic, real) held-out images of a method, harmonized like its inputs.

    Synthetic: the first task's held-out scenes; real: crops of the held-out photos.
    Both at the method's input size, [num, S, S, 3] each (fewer if a source is smaller).
    """
    task = _first_task(model)
    synthetic = _images(task.data_source("eval"), num)
    real = _images(real_heldout_source(model.input_size, num), num)
    return _harmonized(model, synthetic, seed, 0), _harmonized(model, real, seed, 1)


def pooled_features(trunk, images, endpoints, batch_size: int = 32) -> dict:
    """{endpoint: [N, C]} global-average-pooled features (inference mode)."""
    model = keras.Model(trunk.input, {e: trunk.output[e] for e in endpoints})
    parts = {e: [] for e in endpoints}
    for start in range(0, len(images), batch_size):
        out = model(images[start : start + batch_size], training=False)
        for e in endpoints:
            parts[e].append(keras.ops.convert_to_numpy(keras.ops.mean(out[e], axis=(1, 2))))
    return {e: np.concatenate(v) for e, v in parts.items()}


def layers_of(trunk) -> list:
    """The trunk's layer-level endpoints (ResNet stages, AlexNet conv1..conv7), in order."""
    return [e for e in trunk.output if "/" not in e]


def domain_gap(model, num: int = 240, seed: int = 0, endpoints=None) -> dict:
    """{endpoint: held-out accuracy of a domain classifier} for a method's trunk.

    Args:
        model: a MultiTask / DomainAdversarial method (e.g. `zoo.experiment.restore`).
        num: int. Held-out images of each domain.
        seed: int.
        endpoints: list or None. Defaults to every layer (`layers_of`).
    """
    synthetic, real = heldout_domains(model, num, seed)
    endpoints = list(endpoints or layers_of(model.trunk))
    a = pooled_features(model.trunk, synthetic, endpoints)
    b = pooled_features(model.trunk, real, endpoints)
    return {e: domain_classifier_accuracy(a[e], b[e], seed=seed) for e in endpoints}


# -- the real-like "P" domain ---------------------------------------------------------


def photo_variant(spec: SceneSpec) -> SceneSpec:
    """The held-out real-like version of a synthetic spec: factor P on, split "test"."""
    return dataclasses.replace(spec, variant=spec.variant[:4] + "P", split="test")


def zero_shot(model, num: int = 128, batch_size: int = 32) -> dict:
    """{"synthetic": {task: metrics}, "P": {task: metrics}}: the method's tasks on the
    held-out scenes they were trained like and on their "P" (real-like) version.

    The same scenes (indices, objects, layouts) are drawn in both; only the textures and
    the camera differ, so the difference is the domain's.
    """
    out = {"synthetic": {}, "P": {}}
    for name, task in model.tasks.items():
        spec = task.source
        if not isinstance(spec, SceneSpec):
            raise UserError(
                f"zero_shot: task {name!r} was trained on {spec!r}, not on synthetic scenes."
            )
        for domain, eval_spec in (
            ("synthetic", dataclasses.replace(spec, split="test")),
            ("P", photo_variant(spec)),
        ):
            config = dict(task.get_config(), eval_examples=num)
            config["eval_source"] = eval_spec
            probe = type(task).from_config(config)
            head = model.task_model(name)
            truth, predicted = [], []
            for x, y in pipeline([probe], "eval", batch_size):
                predicted.append(keras.ops.convert_to_numpy(head(x, training=False)))
                truth.append(y[name].numpy())
            out[domain][name] = probe.evaluate(np.concatenate(truth), np.concatenate(predicted))
    return out


# Transfers to the "P" domain: name -> (task, protocol, head). As the paper's VOC and
# NYUD transfers, the whole trunk is finetuned and the head reads its last layer (conv7
# = fc7; block4 on a ResNet). At this scale a frozen linear probe of a briefly trained
# trunk stays at chance (0.09 on 10 classes, random trunk 0.09), finetuning does not.
TRANSFERS = {
    "classification": ("classification", "finetune", "task"),
    "segmentation": ("segmentation", "finetune", "task"),
}
TRANSFER_LAYER = "conv7"


def transfers(model_dir: str, endpoint: str, num_labels: int = 500, seed: int = 0, **kwargs):
    """{name: transfer result} of `TRANSFERS` from a run's trunk to "P" scenes."""

    out = {}
    for name, (task, protocol, head) in TRANSFERS.items():
        out[name] = transfer(
            model_dir,
            task=task,
            protocol=protocol,
            head=head,
            num_labels=num_labels,
            variant="TCVLP",
            endpoint=endpoint,
            seed=seed,
            **kwargs,
        )
    return out


def layer_probes(model_dir: str, endpoints, num_labels: int = 500, seed: int = 0, **kwargs):
    """{endpoint: accuracy} of frozen linear probes (global pooling) on "P" classification."""

    return {
        e: transfer(
            model_dir,
            task="classification",
            protocol="linear",
            num_labels=num_labels,
            variant="TCVLP",
            endpoint=e,
            seed=seed,
            **kwargs,
        )["value"]
        for e in endpoints
    }


# -- Table 3 over seeds -----------------------------------------------------------------

# Table 3 of the paper: row file -> (row, adapted layer, VOC07-CLS, VOC07-DET, VOC12-DET)
ROWS = {
    "3tasks": ("3 tasks, no DA", None, 65.6, 51.3, 47.2),
    "da_conv1": ("3 tasks, DA conv1", "conv1", 61.9, 48.7, 46.0),
    "da_conv4": ("3 tasks, DA conv4", "conv4", 63.4, 49.5, 46.3),
    "da_conv5": ("3 tasks, DA conv5", "conv5", 67.4, 52.0, 49.2),
    "da_conv6": ("3 tasks, DA conv6", "conv6", 66.9, 51.5, 48.2),
    "da_conv5_bifool": ("3 tasks, conv5, bi-fool", "conv5", 66.2, 51.3, 48.5),
    "da_conv5_more_data": ("3 tasks, conv5, 3x scenes", "conv5", 68.0, 52.6, 50.0),
}
# The table's columns: (key, header, higher is better)
COLUMNS = (
    ("d_accuracy", "D accuracy (last epoch)", False),
    ("gap_row_layer", "domain gap at the adapted layer", False),
    ("gap_adapted", "domain gap at conv5", False),
    ("gap_last", "domain gap at the last layer", False),
    ("p_contours_ods", "P contours ODS F", True),
    ("p_normals_angle", "P normals mean angle", False),
    ("p_depth_abs_rel", "P depth abs rel", False),
    ("p_classification", "P classification (finetuned)", True),
    ("p_segmentation", "P segmentation mIoU (finetuned)", True),
)


def measure_run(model_dir: str, num_labels: int = 500, seed: int = 0, gap_num: int = 240):
    """The comparison table's numbers of one trained run (see COLUMNS)."""

    model, _ = experiment.restore(model_dir)
    conv5 = analogue("conv5", model.trunk.output)
    last = analogue(TRANSFER_LAYER, model.trunk.output)
    layers = layers_of(model.trunk)
    gaps = domain_gap(model, num=gap_num, seed=seed, endpoints=layers)
    shot = zero_shot(model)
    transferred = transfers(model_dir, last, num_labels=num_labels, seed=seed)
    p = shot["P"]
    return {
        "gaps": gaps,
        "zero_shot": shot,
        "transfer": {k: v["value"] for k, v in transferred.items()},
        "gap_adapted": gaps[conv5],
        "gap_last": gaps[layers[-1]],
        "p_contours_ods": p["contours"]["ods_f_score"],
        "p_normals_angle": p["normals"]["mean_angle"],
        "p_depth_abs_rel": p["depth"]["abs_rel"],
        "p_classification": transferred["classification"]["value"],
        "p_segmentation": transferred["segmentation"]["value"],
    }


def _done(path):
    found = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if line.strip():
                    record = json.loads(line)
                    found[(record["row"], record["seed"])] = record
    return found


def compare(
    rows,
    seeds,
    out_dir: str,
    gin_files=("gin_configs/ren_lee18/small.gin",),
    gin_bindings=(),
    num_labels: int = 500,
    say=print,
) -> list:
    """Trains each row of Table 3 with each seed and measures it (resumable).

    Each (row, seed) is a zoo-train run in `out_dir/<row>/seed_<k>` (a separate process;
    an interrupted run resumes), measured with `measure_run`; the records are appended
    to `out_dir/results.jsonl`, and pairs already there are not run again.

    Args:
        rows: list of keys of ROWS.
        seeds: list of ints (the runs' `zoo.experiment.train.seed`).
        out_dir: str.
        gin_files: files given after each row's file. Defaults to small.gin.
        gin_bindings: bindings added to every run.
        num_labels: labels of the transfers to "P".
        say: callable for progress lines.

    Returns:
        Every record of results.jsonl.
    """
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise UserError(f"unknown rows {unknown}; rows: {list(ROWS)}")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    config_dir = os.path.join(root, "gin_configs", "ren_lee18")
    results = os.path.join(out_dir, "results.jsonl")
    done = _done(results)
    todo = [(r, s) for r in rows for s in seeds if (r, s) not in done]
    progress = Progress(len(todo), "trained and measured rows") if todo else None
    for i, (row, seed) in enumerate(todo, start=1):
        model_dir = os.path.join(out_dir, row, f"seed_{seed}")
        command = [
            sys.executable,
            "-m",
            "zoo.cli.train",
            f"--gin_file={os.path.join(config_dir, row + '.gin')}",
            *(f"--gin_file={f}" for f in gin_files),
            f"--gin_bindings=zoo.experiment.train.seed = {seed}",
            *(f"--gin_bindings={b}" for b in gin_bindings),
            "--gin_bindings=zoo.experiment.train.verbose = 0",
            f"--model_dir={model_dir}",
        ]
        say(f"training {row} (seed {seed}) in {model_dir}")
        finished = subprocess.run(command, capture_output=True, text=True)
        if finished.returncode != 0:
            raise UserError(f"training {row} (seed {seed}) failed:\n{finished.stderr[-3000:]}")
        record = {"row": row, "seed": seed, "model_dir": model_dir}
        record.update(measure_run(model_dir, num_labels=num_labels, seed=seed))
        done[(row, seed)] = record
        # the whole file, renamed into place: a kill never leaves half a line
        files.write_text(results, "".join(json.dumps(r) + "\n" for r in done.values()))
        progress.update(i)
    return list(done.values())


def _mean_std(values):
    values = [v for v in values if v is not None and np.isfinite(v)]
    if not values:
        return math.nan, math.nan
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _derived(record):
    """Columns computed from a record: the gap at the row's own layer, D's accuracy."""

    record = dict(record)
    layer = ROWS[record["row"]][1]
    gaps = record.get("gaps", {})
    record.setdefault("gap_row_layer", gaps[analogue(layer, gaps)] if layer and gaps else math.nan)
    if "d_accuracy" not in record:
        record["d_accuracy"] = math.nan
        path = os.path.join(record.get("model_dir", ""), "metrics.json")
        if os.path.exists(path):
            with open(path) as f:
                history = json.load(f).get("history", {})
            if history.get("d_accuracy"):
                record["d_accuracy"] = history["d_accuracy"][-1]
    return record


def comparison_table(records) -> str:
    """Markdown: one line per row of Table 3 that has records, with mean ± std over seeds
    of every COLUMNS entry and the paper's numbers (its claims are judged by
    `zoo.evaluation.claims`)."""
    by_row = {}
    for record in records:
        record = _derived(record)
        by_row.setdefault(record["row"], []).append(record)
    header = ["row", "seeds", *(c[1] for c in COLUMNS), "paper VOC07-CLS / 07-DET / 12-DET"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in (r for r in ROWS if r in by_row):
        cells = [ROWS[row][0], str(len(by_row[row]))]
        for key, _, _ in COLUMNS:
            mean, std = _mean_std([r.get(key) for r in by_row[row]])
            cells.append("—" if math.isnan(mean) else f"{mean:.3f} ± {std:.3f}")
        cells.append(" / ".join(f"{v:.1f}" for v in ROWS[row][2:]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# -- pictures -----------------------------------------------------------------------------


def _harmonized(model, images, seed=0, stream=7):
    """`images` through the method's harmonizer, seeded by (seed, stream)."""

    task = _first_task(model)
    seeds = tf.random.split(tf.constant([seed, stream], tf.int64), len(images))
    return np.stack([task.harmonize(tf.constant(i), s).numpy() for i, s in zip(images, seeds)])


def _images(source, num):
    return np.stack([e["image"].numpy() for e in source.examples(["image"]).take(num)])


def plot_neighbours(model_dirs, path, queries: int = 6, k: int = 4, endpoint: str = "conv5"):
    """Nearest neighbours of held-out photo crops among crops of the adaptation photos in
    the `endpoint` feature space (flattened maps, cosine) of each run, and of a randomly
    initialised trunk of the first run's architecture (Ren & Lee Fig. 3).

    Args:
        model_dirs: dict {name: zoo-train model_dir} or list of model_dirs.
        path: str. Output PNG.
        queries, k: int. Query rows and neighbours per run.
        endpoint: str. A trunk endpoint or AlexNet layer (its ResNet analogue).
    """

    if not isinstance(model_dirs, dict):
        model_dirs = _short_names(model_dirs)
    if not model_dirs:
        raise UserError("plot_neighbours: give at least one run.")
    models = {name: experiment.restore(d)[0] for name, d in model_dirs.items()}
    first = next(iter(models.values()))
    size = first.input_size
    query_images = _images(real_heldout_source(size, queries), queries)
    query_images = query_images[:: max(1, len(query_images) // queries)][:queries]
    database = _images(
        sources.real_crops("train", size, crops_per_image=24),
        10**6,
    )
    keras.utils.set_random_seed(0)
    random_trunk = keras.models.clone_model(first.trunk)
    trunks = {"random": (random_trunk, first), **{n: (m.trunk, m) for n, m in models.items()}}
    features = {}
    for name, (trunk, model) in trunks.items():
        layer = analogue(endpoint, trunk.output)
        flat = keras.Model(trunk.input, keras.layers.Flatten()(trunk.output[layer]))
        features[f"{name} ({layer})"] = (
            flat.predict(_harmonized(model, query_images), verbose=0),
            flat.predict(_harmonized(model, database), verbose=0, batch_size=64),
        )
    plots.plot_neighbours(
        query_images,
        database,
        features,
        path,
        k=k,
        title=f"nearest neighbours of held-out photo crops ({endpoint} features)",
    )
    return path


def _short_names(paths) -> dict:
    """{name: path}: the shortest trailing parts of the paths that tell them apart."""
    parts = [os.path.normpath(p).split(os.sep) for p in paths]
    for depth in range(1, max(len(p) for p in parts) + 1):
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names):
            return dict(zip(names, paths))
    raise UserError(f"the same run is given twice: {list(paths)}")


def first_filters(trunk) -> np.ndarray:
    """The kernel [kh, kw, 3, F] of the trunk's first convolution."""
    for layer in trunk.layers:
        if isinstance(layer, keras.layers.Conv2D) and layer.kernel.shape[2] == 3:
            return keras.ops.convert_to_numpy(layer.kernel)
    raise UserError(f"{trunk.name} has no convolution on RGB inputs.")


def plot_filters(model_dir: str, path: str):
    """The first convolution's filters of a run's trunk (Ren & Lee Fig. 4)."""

    model, _ = experiment.restore(model_dir)
    plots.plot_filters(first_filters(model.trunk), path, title=f"conv1 of {model_dir}")
    return path


def plot_real_predictions(model_dir: str, path: str, num: int = 6):
    """A run's dense predictions on held-out photo crops (real images, no ground truth)."""

    model, _ = experiment.restore(model_dir)
    images = _images(real_heldout_source(model.input_size, num * 3), num * 3)[::3][:num]
    inputs = _harmonized(model, images)
    panels = []
    for name, task in model.tasks.items():
        outputs = task.serving_outputs(model.task_model(name)(inputs, training=False))
        for key, kind in plots.SERVING_KINDS.items():
            if key in outputs and outputs[key].shape.rank >= 3:
                panels.append((name, kind, keras.ops.convert_to_numpy(outputs[key])))
                break
    if not panels:
        raise UserError(f"{model_dir} has no dense task to draw: {sorted(model.tasks)}")
    plots.plot_outputs(images, panels, path, title=f"{model_dir} on held-out photographs")
    return path
