"""zoo-predict: runs an exported model (or a run's task) on image files.

Usage:
    zoo-predict --model=serving/photos [--out=predictions] image.jpg [image2.png ...]
    zoo-predict --model=runs/quickstart --task=depth --out=predictions image.jpg

--model: an export version folder (<base>/<name>/<version>), a model folder
(<base>/<name>: its newest version), or a zoo-train / zoo-finetune model_dir (with --task
for a run of several tasks: exported to a temporary folder first). The images (JPEG, PNG,
GIF, BMP; any size) are sent through the model's `serve_bytes` signature as a server
would. Writes <out>/predictions.json (per image: its file and every output; per-pixel
maps are summarised) and, for dense outputs, <out>/predictions.png (each image next to
its maps).
"""

import os
import tempfile

import numpy as np
from absl import app, flags

import zoo.cli  # noqa: F401  (quiet TensorFlow start-up)

FLAGS = flags.FLAGS
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


def predict_files(saved_model, paths):
    """{output: array [N, ...]} of `paths` through the model's serve_bytes signature."""
    import tensorflow as tf

    from zoo.errors import DataError, MissingFile

    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise MissingFile(f"no such image file: {missing}")
    loaded = tf.saved_model.load(saved_model)
    if "serve_bytes" not in loaded.signatures:
        raise DataError(f"{saved_model} has no serve_bytes signature (not a zoo task export).")
    encoded = [open(p, "rb").read() for p in paths]
    try:
        out = loaded.signatures["serve_bytes"](encoded=tf.constant(encoded))
    except tf.errors.InvalidArgumentError as error:
        raise DataError(f"the model refused the files: {error.message.splitlines()[0]}") from None
    return {k: v.numpy() for k, v in out.items()}


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


def predict_command(model, task, out, paths):
    """What zoo-predict does; returns the written files."""
    from zoo import files
    from zoo.errors import MissingFile, UserError

    if not paths:
        raise UserError("give one or more image files after the flags.")
    saved = export_folder(model)
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
        outputs = predict_files(saved, paths)
    rows = [
        {"file": p, **{k: _summary(k, v[i]) for k, v in sorted(outputs.items())}}
        for i, p in enumerate(paths)
    ]
    written = [files.write_json(os.path.join(out, "predictions.json"), rows)]
    picture = _plot(paths, outputs, os.path.join(out, "predictions.png"))
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
    app.run(main)


if __name__ == "__main__":
    run()
