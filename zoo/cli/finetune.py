r"""zoo-finetune: trains a pretrained trunk on your labelled images and exports it for TF Serving.

Usage:
    zoo-finetune --source=runs/quickstart --data=photos/ --model_dir=runs/photos_ft \
        --export_base=serving --name=photos [--task=classification] [--protocol=finetune] \
        [--head=task] [--input_size=64] [--holdout=0.2 | --eval_data=held_out/] \
        [--masks=labels/] [--like=...] [--gin_file=...] [--gin_bindings=...] [--overwrite]

--source: "random" (a new ResNet-50 v1; with --like: the architecture of that source), a
zoo-train model_dir, a
checkpoint file of one, an exported trunk, or "imagenet:resnet50" .. "imagenet:resnet152v2"
(the ImageNet weights in your Keras cache). --data: a folder of images (one sub-folder
per class for classification; with --masks, a parallel folder of label or depth maps for
semantic_segmentation or depth) or a folder of TFRecords. The held-out images are
--eval_data, or a seeded --holdout share of --data.

The run is a zoo-train run of `zoo.methods.Transfer` (resumable: the same command
continues an interrupted run; its configuration is written under --model_dir). Any gin
binding refines it (e.g. --gin_bindings="zoo.experiment.train.epochs = 30"). At the end
the held-out metrics are printed and the finetuned model is exported to
<export_base>/<name>/<version>/ with the next free version number (nothing is ever
replaced) and listed in <export_base>/models.config for `tensorflow_model_server`.

Common gin knobs, with zoo-finetune's defaults (change any with --gin_bindings="..."):
zoo.experiment.train.epochs = 10, zoo.experiment.train.batch_size = 32,
zoo.experiment.train.steps_per_epoch = <one pass over the training images>,
keras.optimizers.Adam.learning_rate = 1e-4 (the optimizer is
zoo.experiment.train.optimizer = @keras.optimizers.Adam()).
"""

import json
import math
import os
import tempfile

from absl import app, flags

import zoo.cli  # noqa: F401  (quiet TensorFlow start-up)

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "source",
    None,
    "random (a new ResNet-50 v1), a model_dir, a checkpoint, an export or imagenet:resnet50.",
)
flags.DEFINE_string(
    "like", None, "With --source=random: the source whose architecture to take (for sweeps)."
)
flags.DEFINE_string("data", None, "Labelled training images: a folder, or TFRecords.")
flags.DEFINE_string("eval_data", None, "Held-out images (default: --holdout of --data).")
flags.DEFINE_float("holdout", 0.2, "Share of --data held out when --eval_data is not given.")
flags.DEFINE_string("masks", None, "semantic_segmentation / depth: folder of maps beside --data.")
flags.DEFINE_string("eval_masks", None, "The maps of --eval_data.")
flags.DEFINE_list(
    "class_names",
    None,
    "semantic_segmentation: the names of labels 0, 1, ... (comma-separated; default: "
    "<masks>/classes.txt, else the labels found in the masks).",
)
flags.DEFINE_string("task", "classification", "classification, semantic_segmentation or depth.")
flags.DEFINE_string("protocol", "finetune", "linear, lasso_linear, finetune or frozen_k.")
flags.DEFINE_string("head", "task", "task, coarse or up_projection (dense tasks).")
flags.DEFINE_integer("input_size", None, "Image size (default: the source run's, else 224).")
flags.DEFINE_string("model_dir", None, "Where the run writes everything.")
flags.DEFINE_string("export_base", None, "TF Serving model base folder.")
flags.DEFINE_string("name", None, "Model name under --export_base.")
flags.DEFINE_multi_string("gin_file", [], "Gin files refining the run.")
flags.DEFINE_multi_string("gin_bindings", [], "Gin bindings refining the run.")
flags.DEFINE_bool("overwrite", False, "Delete a run of another configuration in --model_dir.")
flags.DEFINE_enum(
    "precision",
    "float32",
    ["float32", "mixed_float16", "mixed_bfloat16"],
    "Training precision (zoo.experiment.train.precision); the export is float32 either way.",
)
flags.DEFINE_integer(
    "serve_version",
    None,
    "Label this version of --name 'stable' in models.config (default: the first export "
    "stays stable, a newer one is served as 'canary').",
)
flags.DEFINE_integer(
    "max_pixels",
    None,
    "serve_bytes refuses images whose header announces more pixels (default 40 million).",
    lower_bound=1,
)
flags.DEFINE_string(
    "serving_root",
    None,
    "The folder a model server sees --export_base as (e.g. /models in a container); "
    "models.config's base_path then starts with it. Kept for later exports.",
)

TASKS = {
    "classification": "Classification",
    "semantic_segmentation": "SemanticSegmentation",
    "depth": "Depth",
}
SERVING = "serving.json"  # in model_dir: where the run was exported


def _input_size(source, like):
    """The input size of the source: a run's, an exported trunk's signature's, else 224
    (ImageNet's)."""
    from zoo import experiment
    from zoo.errors import UserError

    for candidate in (source, like):
        if not candidate:
            continue
        if os.path.exists(os.path.join(candidate, "saved_model.pb")):
            from zoo.evaluation.exported import signature_input_size

            size = signature_input_size(candidate)
            if isinstance(size, tuple):  # (height, width): zoo-finetune's images are square
                raise UserError(
                    f"{candidate} takes {size[0]}x{size[1]} images; zoo-finetune resizes and "
                    "crops images to a square: export the trunk of a run trained on square "
                    "images."
                )
            if size:
                return size
            continue
        run = candidate
        if os.path.isfile(candidate):
            run = os.path.dirname(os.path.dirname(os.path.abspath(candidate)))
        if os.path.exists(os.path.join(run, "method.json")):
            size = experiment.method_config(run)["config"].get("input_size")
            if isinstance(size, list):  # (height, width): zoo-finetune's images are square
                raise UserError(
                    f"{candidate} was trained on {size[0]}x{size[1]} images; zoo-finetune "
                    "resizes and crops images to a square: give its side, --input_size=S."
                )
            if size:
                return int(size)
    return 224


def _data_source(path, scope, task, size, masks, class_names=None):
    """Gin lines making `@{scope}/...` the source of `path` for `task`."""
    from zoo.errors import MissingFile

    if not os.path.exists(path):
        raise MissingFile(f"--data / --eval_data {path!r} does not exist.")
    if os.path.isdir(path) and any(f.endswith(".tfrecord") for f in os.listdir(path)):
        return f"@{scope}/zoo.data.TFRecords()", [f"{scope}/zoo.data.TFRecords.path = {path!r}"]
    lines = [
        f"{scope}/zoo.data.ImageFolder.path = {path!r}",
        f"{scope}/zoo.data.ImageFolder.size = {size}",
    ]
    if task == "classification":
        lines.append(f'{scope}/zoo.data.ImageFolder.labels = "folders"')
    else:
        from zoo.errors import UserError

        if not masks:
            raise UserError(
                f"--task={task} on an image folder needs --masks / --eval_masks (maps with "
                "the images' relative paths)."
            )
        key = "depth" if task == "depth" else "semantics"
        lines += [
            f"{scope}/zoo.data.ImageFolder.masks = {os.path.abspath(masks)!r}",
            f"{scope}/zoo.data.ImageFolder.mask_key = {key!r}",
        ]
        if class_names:
            lines.append(f"{scope}/zoo.data.ImageFolder.class_names = {list(class_names)!r}")
    return f"@{scope}/zoo.data.ImageFolder()", lines


def _count_images(path):
    from zoo.data.sources import list_images
    from zoo.errors import ZooError

    try:
        return len(list_images(path))
    except (ZooError, OSError):  # TFRecords or an unreadable folder: the default applies
        return 0


def finetune_config(
    source,
    data,
    task,
    protocol,
    head,
    input_size,
    holdout,
    eval_data,
    masks,
    eval_masks,
    like,
    class_names=None,
):
    """The gin text of a finetuning run (before the user's files and bindings)."""
    from zoo.errors import UserError
    from zoo.evaluation.protocols import source_harmonizer

    if task not in TASKS:
        raise UserError(f"--task must be one of {sorted(TASKS)}. Received: {task!r}")
    if eval_data is None and not 0.0 < holdout < 1.0:
        raise UserError(f"--holdout must be in (0, 1). Received: {holdout}")
    cls = f"zoo.tasks.{TASKS[task]}"
    if class_names and task != "semantic_segmentation":
        raise UserError(f"--class_names is for semantic_segmentation masks, not --task={task}.")
    train, lines = _data_source(
        os.path.abspath(data), "train", task, input_size, masks, class_names
    )
    if eval_data:
        held, more = _data_source(
            os.path.abspath(eval_data), "held", task, input_size, eval_masks, class_names
        )
        lines += more
    else:
        held = repr(float(holdout))
    harmonizer = source_harmonizer(like if source == "random" else source)
    batch = 32
    images = _count_images(data)
    steps = (
        max(1, math.ceil(images * (1 - (0 if eval_data else holdout)) / batch)) if images else 100
    )
    text = [
        "import zoo.data",
        "import zoo.evaluation.protocols",
        "import zoo.experiment",
        "import zoo.methods",
        "import zoo.tasks",
        "zoo.experiment.train.method = @zoo.methods.Transfer",
        "zoo.methods.Transfer.trunk = @zoo.evaluation.source_trunk()",
        f"zoo.evaluation.source_trunk.source = {source!r}",
        f"zoo.evaluation.source_trunk.input_size = {input_size}",
        f"zoo.evaluation.source_trunk.like = {like!r}",
        f"zoo.methods.Transfer.task = @{cls}()",
        f"zoo.methods.Transfer.protocol = {protocol!r}",
        f"zoo.methods.Transfer.head = {head!r}",
        f"{cls}.source = {train}",
        f"{cls}.eval_source = {held}",
        f"{cls}.harmonizer = {harmonizer!r}",
        *lines,
        "zoo.experiment.train.optimizer = @keras.optimizers.Adam()",
        "keras.optimizers.Adam.learning_rate = 1e-4",
        f"zoo.experiment.train.batch_size = {batch}",
        "zoo.experiment.train.epochs = 10",
        f"zoo.experiment.train.steps_per_epoch = {steps}",
        # one pass over the labelled images sets BatchNorm's statistics at the end
        f"zoo.experiment.train.precise_batch_norm = {steps}",
    ]
    return "\n".join(text) + "\n"


def _precision_binding():
    """--precision as a binding (none for float32: configurations of earlier runs stay the
    same)."""
    if FLAGS.precision == "float32":
        return []
    return [f'zoo.experiment.train.precision = "{FLAGS.precision}"']


def finetune_command(say=print):
    """What zoo-finetune does after reading its flags; returns (results, export path),
    (None, None) on a worker of a multi-worker run that is not the chief."""
    for flag in ("source", "data", "model_dir", "export_base", "name"):
        if not getattr(FLAGS, flag):
            raise app.UsageError(f"give --{flag}")
    from export import export_model, set_serving  # TensorFlow: after the flag checks
    from zoo import experiment, files
    from zoo.cli.runs import train_command
    from zoo.errors import ExistingFile, UserError

    if os.path.isfile(FLAGS.export_base):
        raise ExistingFile(f"--export_base {FLAGS.export_base} is a file; give a folder.")
    if FLAGS.source == "random":
        from zoo.evaluation.protocols import RANDOM_TRUNK

        say(
            f"--source=random: new weights in the architecture of {FLAGS.like}"
            if FLAGS.like
            else f"--source=random: a new {RANDOM_TRUNK} (--like=<run> takes another one)"
        )
    size = FLAGS.input_size or _input_size(FLAGS.source, FLAGS.like)
    if size < 8:
        raise UserError(f"--input_size must be >= 8. Received: {size}")
    text = finetune_config(
        FLAGS.source,
        FLAGS.data,
        FLAGS.task,
        FLAGS.protocol,
        FLAGS.head,
        size,
        FLAGS.holdout,
        FLAGS.eval_data,
        FLAGS.masks,
        FLAGS.eval_masks,
        FLAGS.like,
        FLAGS.class_names,
    )
    if FLAGS.task == "semantic_segmentation" and FLAGS.masks and os.path.isdir(FLAGS.masks):
        from zoo.data.sources import semantic_classes

        names, origin = semantic_classes(FLAGS.masks, class_names=FLAGS.class_names)
        shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        say(f"semantic_segmentation: {len(names)} classes ({shown}) from {origin}")
    with tempfile.TemporaryDirectory() as folder:
        generated = os.path.join(folder, "finetune.gin")
        with open(generated, "w") as f:
            f.write(text)
        what = f"{FLAGS.task} on {FLAGS.data} from {FLAGS.source} ({FLAGS.protocol})"
        results = train_command(
            [generated, *FLAGS.gin_file],
            [*_precision_binding(), *FLAGS.gin_bindings],
            FLAGS.model_dir,
            FLAGS.overwrite,
            say,
            what=", ".join([what, *FLAGS.gin_file]),
        )
    if results is None:  # a worker of a multi-worker run: the chief exports
        return None, None
    record = os.path.join(FLAGS.model_dir, SERVING)
    path = None
    if os.path.exists(record):
        with open(record) as f:
            path = json.load(f)["export"]
        if os.path.isdir(path):
            say(f"this run is already exported to {path}")
        else:
            path = None
    if path is None:
        model, _ = experiment.restore(FLAGS.model_dir)
        path = export_model(
            model, model.task.name, FLAGS.export_base, FLAGS.name, max_pixels=FLAGS.max_pixels
        )
        files.write_json(record, {"export": os.path.abspath(path)})
    if FLAGS.serve_version is not None or FLAGS.serving_root is not None:
        stable = FLAGS.serve_version
        set_serving(FLAGS.export_base, FLAGS.name if stable else None, stable, FLAGS.serving_root)
    return results, path


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    from zoo.cli import user_errors

    with user_errors("zoo-finetune"):
        results, path = finetune_command()
    if results is None:  # a worker of a multi-worker run that is not the chief
        return
    from zoo import experiment

    print(experiment.format_report(results, FLAGS.model_dir))
    base = os.path.abspath(FLAGS.export_base)
    config = os.path.join(base, "models.config")
    print(f"\nexported to {path}\nserve it with:")
    if FLAGS.serving_root:
        root = FLAGS.serving_root.rstrip("/")
        print(
            f"  docker run -p 8500:8500 -p 8501:8501 -v {base}:{root} tensorflow/serving "
            f"--model_config_file={root}/models.config"
        )
    else:
        print(
            "  tensorflow_model_server --port=8500 --rest_api_port=8501 "
            f"--model_config_file={config}"
        )


def run():
    zoo.cli.run(main, __name__)


if __name__ == "__main__":
    run()
