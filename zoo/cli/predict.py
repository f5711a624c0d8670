"""zoo-predict: runs an exported model (or a run's task) on image files.

Usage:
    zoo-predict --model=serving/photos [--out=predictions] image.jpg [image2.png ...]
    zoo-predict --model=serving/photos photos/          # every image under a folder
    zoo-predict --model=runs/quickstart --task=depth --out=predictions image.jpg

--model: an export version folder (<base>/<name>/<version>), a model folder
(<base>/<name>: its newest version), or a zoo-train / zoo-finetune model_dir (with --task
for a run of several tasks: exported to a temporary folder first). The images (JPEG, PNG,
GIF, BMP; any size; folders are searched recursively, and their files of other kinds
listed as skipped) are sent through the model's `serve_bytes` signature as a server
would, 32 at a time; a file the model refuses is named with the model's reason. Writes
<out>/predictions.json (per image: its file and every output; per-pixel maps are
summarised) and, for dense outputs, <out>/predictions.png (the first 16 images, each next
to its maps).
"""

import os
import tempfile

import numpy as np
from absl import app, flags

import zoo.cli  # noqa: F401  (quiet TensorFlow start-up)

FLAGS = flags.FLAGS
PLOTTED = 16  # images in predictions.png (predictions.json has every one)
flags.DEFINE_string("model", None, "An export (version or model folder) or a run's model_dir.")
flags.DEFINE_string("task", None, "With a model_dir of several tasks: the task to run.")
flags.DEFINE_string("out", "predictions", "Output folder.")


def export_folder(model):
    """The SavedModel folder of `model` (an export version or model folder), or None."""
    if os.path.exists(os.path.join(model, "saved_model.pb")):
        return model
    if os.path.isdir(model):
        versions = [v for v in os.listdir(model) if v.isdigit()]
        if versions:
            return os.path.join(model, max(versions, key=int))
    return None


def _summary(name, value):
    """JSON of one image's output: small values whole, maps as their statistics."""
    value = np.asarray(value)
    if value.dtype.kind in "SO":
        decode = np.vectorize(lambda b: b.decode() if isinstance(b, bytes) else str(b))
        return decode(value).tolist()
    if value.size <= 1000:
        return value.tolist()
    return {
        "shape": list(value.shape),
        "mean": float(value.mean()),
        "min": float(value.min()),
        "max": float(value.max()),
    }


def image_files(paths):
    """(image files, skipped files): `paths` as given, with every folder replaced by
    the image files under it (sorted) and its other files skipped."""
    from zoo.data.sources import IMAGE_EXTENSIONS, list_images
    from zoo.errors import MissingFile

    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        raise MissingFile(f"no such file or folder: {', '.join(missing)}")
    images, skipped = [], []
    for path in paths:
        if not os.path.isdir(path):
            images.append(path)
            continue
        found = list_images(path)
        images += found
        for root, _, names in os.walk(path):
            skipped += sorted(
                os.path.join(root, n) for n in names if not n.lower().endswith(IMAGE_EXTENSIONS)
            )
    return images, skipped


def _refusal(error):
    """The reason in an InvalidArgumentError of serve_bytes, on one line."""
    lines = [line.strip() for line in error.message.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("Graph execution", "Detected at", "["))]
    return " ".join(lines[:2])[:300] or "refused"


def predict_files(saved_model, paths, batch=32):
    """{output: array [N, ...]} of `paths` through the model's serve_bytes signature,
    `batch` files a request. Raises DataError naming every file the model refused."""
    import tensorflow as tf

    from zoo.errors import DataError

    loaded = tf.saved_model.load(saved_model)
    if "serve_bytes" not in loaded.signatures:
        raise DataError(f"{saved_model} has no serve_bytes signature (not a zoo task export).")
    serve = loaded.signatures["serve_bytes"]
    parts, refused = [], []
    for start in range(0, len(paths), batch):
        chunk = paths[start : start + batch]
        encoded = [open(p, "rb").read() for p in chunk]
        try:
            parts.append(serve(encoded=tf.constant(encoded)))
        except tf.errors.InvalidArgumentError:
            for path, data in zip(chunk, encoded):  # one by one: which files, and why
                try:
                    serve(encoded=tf.constant([data]))
                except tf.errors.InvalidArgumentError as error:
                    refused.append(f"{path} ({_refusal(error)})")
    if refused:
        raise DataError(
            f"the model refused {len(refused)} of {len(paths)} files: " + "; ".join(refused)
        )
    return {k: np.concatenate([p[k].numpy() for p in parts]) for k in parts[0]}


def model_name(saved_model):
    """ "<name> version <v>" of an export in TF Serving's layout, else its folder."""
    version, name = os.path.basename(saved_model), os.path.basename(os.path.dirname(saved_model))
    return f"{name} version {version}" if version.isdigit() and name else saved_model


def _plot(paths, outputs, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    maps = {
        k: v for k, v in outputs.items() if v.ndim == 4 or (v.ndim == 3 and v.dtype.kind in "iu")
    }
    if not maps:
        return None
    rows, cols = len(paths), 1 + len(maps)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows), squeeze=False)
    for i, image_path in enumerate(paths):
        axes[i, 0].imshow(Image.open(image_path).convert("RGB"))
        axes[i, 0].set_title(os.path.basename(image_path), fontsize=8)
        for j, (name, value) in enumerate(maps.items(), start=1):
            shown = value[i]
            if shown.ndim == 3 and shown.shape[-1] == 3:  # normals in [-1, 1]
                axes[i, j].imshow((shown + 1) / 2)
            elif shown.ndim == 3 and shown.shape[-1] > 3:  # per-class probabilities
                axes[i, j].imshow(shown.argmax(-1), cmap="tab20", interpolation="nearest")
            else:
                im = axes[i, j].imshow(np.squeeze(shown), cmap="viridis")
                fig.colorbar(im, ax=axes[i, j], fraction=0.046)
            axes[i, j].set_title(name, fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    fig.tight_layout()
    from zoo import files

    files.write_file(path, lambda temporary: fig.savefig(temporary, dpi=80, format="png"))
    plt.close(fig)
    return path


def predict_command(model, task, out, paths, say=print):
    """What zoo-predict does; returns the written files and the rows."""
    from zoo import files
    from zoo.errors import MissingFile, UserError

    if not paths:
        raise UserError("give one or more image files or folders after the flags.")
    paths, skipped = image_files(paths)
    if skipped:
        say(f"skipped {len(skipped)} files that are not images: {', '.join(skipped[:5])}")
    if not paths:
        raise UserError("no image file (JPEG, PNG, GIF, BMP) among the files and folders given.")
    saved = export_folder(model)
    name = saved and model_name(saved)
    with tempfile.TemporaryDirectory() as folder:
        if saved is None:
            if not os.path.exists(os.path.join(model, "method.json")):
                raise MissingFile(
                    f"--model {model!r} is neither an export (a folder with saved_model.pb, "
                    "or one of numbered versions) nor a zoo-train model_dir."
                )
            from export import export_model
            from zoo import experiment

            method, _ = experiment.restore(model)
            names = method.image_tasks()
            if task is None and len(names) > 1:
                raise UserError(f"{model} has the tasks {names}; choose one with --task.")
            saved = export_model(method, task or names[0], folder, "model")
            name = f"task {task or names[0]} of the run {model} (exported for this prediction)"
        say(f"model {name}: {len(paths)} images")
        outputs = predict_files(saved, paths)
    rows = [
        {"file": p, **{k: _summary(k, v[i]) for k, v in sorted(outputs.items())}}
        for i, p in enumerate(paths)
    ]
    written = [files.write_json(os.path.join(out, "predictions.json"), rows)]
    shown = min(len(paths), PLOTTED)
    picture = _plot(
        paths[:shown],
        {k: v[:shown] for k, v in outputs.items()},
        os.path.join(out, "predictions.png"),
    )
    return written + ([picture] if picture else []), rows


def main(argv):
    if not FLAGS.model:
        raise app.UsageError("give --model")
    from zoo.cli import user_errors

    with user_errors("zoo-predict"):
        written, rows = predict_command(FLAGS.model, FLAGS.task, FLAGS.out, argv[1:])
    for row in rows:
        label = row.get("label")
        print(f"{row['file']}: {label[0] if isinstance(label, list) else label or ''}".rstrip(": "))
    print("wrote " + ", ".join(written))


def run():
    zoo.cli.run(main, __name__)


if __name__ == "__main__":
    run()
