"""One transfer run: a trunk source, a `zoo.tasks` task, a protocol and a number of labels.

`transfer(...)` trains `zoo.methods.Transfer` (the trunk, the task's data, loss and
metrics, the protocol's trainability and head) on the first `num_labels` examples of the
task's training source and returns its held-out metrics; protocol "knn" trains nothing
and classifies the held-out images by their pooled features' weighted nearest neighbours
among the n labelled ones (`zoo.evaluation.knn`). A task given by name is built
on the synthetic benchmark (Newell & Deng 2020) for any variant "----" .. "TCVL":
"classification" and "pose" on `single` scenes, "semantic_segmentation" (or
"segmentation") and "depth" on `multi` scenes; any other `zoo.tasks` task (on any
source: an image folder, TFRecords) can be given as an object. Labelled scenes are
rendered once into the data cache and streamed, so later runs read them again.
"""

import dataclasses

import gin
import keras
import numpy as np

import zoo.tasks
from zoo import checks
from zoo.data.sources import First
from zoo.data.synthetic import SceneSpec
from zoo.data.synthetic.io import output_signature
from zoo.data.synthetic.objects import CLASSES as OBJECT_CLASSES
from zoo.data.synthetic.scene import MODES, POSE_BINS
from zoo.errors import UserError
from zoo.evaluation import knn, plots
from zoo.evaluation.protocols import source_harmonizer, source_trunk
from zoo.methods.transfer import Transfer
from zoo.tasks.base import DenseTask, Task, pipeline
from zoo.tasks.classification import GlobalTask
from zoo.trunks.protocols import pool

# names of the synthetic downstream tasks (zoo.tasks names; "segmentation" is the short one)
ALIASES = {"segmentation": "semantic_segmentation"}


def training_steps(num_labels, batch_size, epochs=30, min_steps=100, max_steps=20000):
    """The training-length rule: `epochs` passes over the labels, within [min, max] steps.

    Scratch and pretrained runs of the same n get the same number of steps, so they get
    the same training time (Newell & Deng).
    """
    steps = int(np.ceil(epochs * num_labels / batch_size))
    return int(np.clip(steps, min_steps, max_steps))


def task_classes():
    """{name: class} of the zoo.tasks tasks a transfer can train (global and dense)."""

    found = {}
    for name in zoo.tasks.__all__:
        cls = getattr(zoo.tasks, name)
        if isinstance(cls, type) and issubclass(cls, (GlobalTask, DenseTask)):
            if cls.__name__ not in ("Rotation", "MotionSegmentation"):
                found[cls.name] = cls
    return found


def synthetic_task(name, variant, input_size, num_labels, eval_examples, seed, **kwargs):
    """The task `name` on the synthetic scenes of `variant` that give its entries."""
    classes = task_classes()
    cls = classes[ALIASES.get(name, name)]
    spec = SceneSpec(variant=variant, resolution=input_size, seed=seed)
    mode = next(
        m
        for m in MODES
        if set(cls.required) <= set(output_signature(dataclasses.replace(spec, mode=m)))
    )
    spec = dataclasses.replace(spec, mode=mode)
    return cls(spec, num_examples=num_labels, eval_examples=eval_examples, seed=seed, **kwargs)


def _labelled(task, num_labels):
    """`task` reading only the first `num_labels` examples of its training source."""
    config = task.get_config()
    train, held = task.data_source("train"), task.data_source("eval")
    config["source"], config["eval_source"] = First(train, num_labels), held
    return type(task).from_config(config)


@gin.configurable(module="zoo.evaluation", denylist=["source", "predictions_path"])
def transfer(
    source: str,
    task: str | Task | None = None,
    protocol: str = "finetune",
    num_labels: int = 1000,
    variant: str = "TCVL",
    builder=None,
    like: str | None = None,
    input_size: int = 64,
    endpoint: str = "block4",
    pooling: str = "global",
    frozen_stages: int = 1,
    head: str = "coarse",
    lasso_block: str = "block3",
    lasso_l1: float = 1e-3,
    harmonizer: str | None = None,
    augment=None,
    dense_augment=None,
    batch_size: int = 32,
    epochs: int = 30,
    min_steps: int = 100,
    max_steps: int = 20000,
    learning_rate: float = 1e-3,
    eval_examples: int = 1000,
    seed: int = 0,
    precise_batch_norm: bool = True,
    metric: str | None = None,
    predictions_path: str | None = None,
) -> dict:
    """Trains a task on `num_labels` labels over a trunk and returns the held-out metrics.

    Args:
        source: str. "random" (from scratch), a zoo-train model_dir, a checkpoint file of
            one, or an exported trunk folder (see `protocols.load_trunk`).
        task: str or zoo.tasks.Task. A synthetic downstream task by name (see the module
            docstring), or a task object on any source (`num_labels` of its training
            examples are used, `eval_examples` and `variant` do not apply).
        protocol: str. "linear", "lasso_linear", "finetune", "frozen_k" or "knn"
            (global tasks: weighted kNN on the pooled endpoint, k = 20, T = 0.07,
            nothing trained).
        num_labels: int. Labelled training examples (the first n of the train split).
        variant: str. Factors of the synthetic data. Defaults to "TCVL".
        builder: callable or None. Trunk builder of the scratch baseline ("random").
            Defaults to None: the architecture of `like`.
        like: str or None. For "random": a source whose architecture the scratch trunk
            takes (new weights). Sweeps give the pretrained method's source.
        input_size: int. Image size. Defaults to 64.
        endpoint: str. Endpoint the head reads. Defaults to "block4".
        pooling: str. "global" or "max3x3" (global tasks). Defaults to "global".
        frozen_stages: int. k of frozen_k. Defaults to 1.
        head: str. Dense tasks: "coarse" (1x1 head at the endpoint's resolution,
            Newell & Deng sec. 7), "up_projection" (Laina et al.'s decoder, Doersch &
            Zisserman sec. 5) or "task" (the task's own decoder). Defaults to "coarse".
        lasso_block: str. The block of the lasso row of "lasso_linear". Defaults to "block3".
        lasso_l1: float. That row's L1 weight. Defaults to 1e-3.
        harmonizer: str or None. Harmonization of the downstream images. Defaults to
            None: the one the source run was pretrained with ("identity" for random
            trunks and exported ones, which harmonize inside their graph).
        augment: zoo.data.augment.Views of count 1 or None. Steps applied to the
            harmonized training images (Newell & Deng's finetuning: pad-and-crop, flip,
            colour jitter on the Lab channels, Cutout;
            gin_configs/newell20/classification_sweep.gin). For a dense task, steps
            that leave its maps where they are (jitter, Cutout). Defaults to None.
        dense_augment: zoo.data.augment.ScaleCropFlip or None. A dense task's
            training image and maps moved alike, before `augment` (Newell & Deng's
            pad-and-crop and flip; gin_configs/newell20/segmentation_sweep.gin).
            Defaults to None.
        batch_size: int. Defaults to 32.
        epochs: int. The training-length rule (`training_steps`): epochs over n labels,
        min_steps: int. ... at least this many steps,
        max_steps: int. ... and at most this many.
        learning_rate: float. Adam. Defaults to 1e-3.
        eval_examples: int. Held-out examples (test-split models). Defaults to 1000.
        seed: int. Defaults to 0.
        precise_batch_norm: bool. After training, set the trained BatchNorm layers'
            moving statistics to their average over the labelled images with the final
            weights (`Method.precise_batch_norm`); without it, short finetuning runs
            can predict chance in inference mode. Defaults to True.
        metric: str or None. The task's metric returned as "value" (what sweeps
            compare: Newell & Deng score segmentation by "pixel_accuracy"). Defaults to
            None: the task's headline, the first of its `metric_info`.
        predictions_path: str or None. Writes a PNG of held-out predictions.

    Returns:
        dict: the task's headline metric (the first of its `metric_info`: accuracy, mIoU,
        δ1) under "value", its name under "metric", "steps", "task", "trunk_params",
        "eval_examples" (the held-out examples the metrics were computed on), and every
        other metric of the task.
    """
    checks.int_at_least(num_labels, 1, "num_labels")
    keras.utils.set_random_seed(seed)
    trunk, task = _trunk_and_task(
        source,
        task,
        builder=builder,
        like=like,
        input_size=input_size,
        num_labels=num_labels,
        variant=variant,
        eval_examples=eval_examples,
        seed=seed,
        endpoint=endpoint,
        harmonizer=harmonizer,
        augment=augment,
        dense_augment=dense_augment,
    )
    metric = _metric(task, metric)
    if protocol == "knn":
        return _knn(trunk, task, pooling, batch_size, metric)
    model = Transfer(
        trunk,
        task,
        protocol=protocol,
        head=head,
        pooling=pooling,
        frozen_stages=frozen_stages,
        lasso_block=lasso_block,
        lasso_l1=lasso_l1,
    )
    task = model.task
    model.compile(keras.optimizers.Adam(learning_rate))
    steps = training_steps(num_labels, batch_size, epochs, min_steps, max_steps)
    _fit(model, task, min(batch_size, num_labels), steps, precise_batch_norm)
    result = model.heldout_metrics(64)[task.name]
    if predictions_path:
        _plot(predictions_path, model, task, source, protocol)
    return dict(
        result,
        metric=metric,
        value=result[metric],
        steps=steps,
        task=task.name,
        trunk_params=int(model.trunk.count_params()),
        eval_examples=model.heldout_examples()[task.name],
    )


def _metric(task, metric) -> str:
    """`metric` checked against the task's metrics; the task's headline for None."""
    if metric is None:
        return next(iter(task.metric_info))
    if metric not in task.metric_info:
        raise UserError(
            f"transfer: `metric` must be one of {task.name}'s metrics "
            f"{list(task.metric_info)} or None. Received: {metric!r}"
        )
    return metric


def _knn(trunk, task, pooling, batch_size, metric) -> dict:
    """`transfer`'s result for protocol "knn": the held-out accuracy of weighted kNN on
    the pooled endpoint features of the task's labelled training examples."""
    if not isinstance(task, GlobalTask):
        raise UserError(
            f"protocol 'knn' classifies images: a global task (classification, pose). "
            f"Received {task.name!r}."
        )
    features = trunk.output[task.endpoint or list(trunk.output)[-1]]
    embed = keras.Model(trunk.input, pool(features, pooling, "knn"))
    bank, labels = knn.embedded(embed, task, "train", batch_size)
    queries, truth = knn.embedded(embed, task, "eval", batch_size)
    scores = knn.knn_scores(bank, labels, queries, task.classes)
    result = task.evaluate(truth, scores.astype("float32"))
    return dict(
        result,
        metric=metric,
        value=result[metric],
        steps=0,
        task=task.name,
        trunk_params=int(trunk.count_params()),
        eval_examples=len(truth),
    )


def _trunk_and_task(source, task, **setting):
    """The trunk (`source`'s, or a scratch one) and the downstream task on
    `num_labels` labels, harmonized as the source was pretrained unless told."""
    names = sorted(task_classes()) + sorted(ALIASES)
    if not isinstance(task, Task) and ALIASES.get(task, task) not in task_classes():
        raise UserError(f"`task` must be a zoo.tasks task or one of {names}. Received: {task!r}")
    size, like = setting["input_size"], setting["like"]
    if source == "random" and setting["builder"] is not None:
        trunk = setting["builder"](input_shape=(size, size, 3))
    else:
        if source == "random" and like is None:
            raise UserError(
                "transfer from 'random' needs the scratch trunk's architecture: `like` (a "
                "pretrained source whose architecture it takes) or `builder`."
            )
        trunk = source_trunk(source, size, like)
    pretrained_harmonizer = source_harmonizer(like if source == "random" else source)
    kwargs = {
        "endpoint": setting["endpoint"],
        "harmonizer": setting["harmonizer"] or pretrained_harmonizer,
    }
    cls = type(task) if isinstance(task, Task) else task_classes()[ALIASES.get(task, task)]
    dense = issubclass(cls, DenseTask)
    if setting["augment"] is not None:
        if not (dense or issubclass(cls, GlobalTask)):
            raise UserError(
                f"transfer: `augment` (steps on the harmonized image) is for a task of one "
                f"label per image or a dense task; {cls.__name__} is neither."
            )
        kwargs["image_augment" if dense else "augment"] = setting["augment"]
    if setting["dense_augment"] is not None:
        if not dense:
            raise UserError(
                f"transfer: `dense_augment` moves a dense task's maps with its image; "
                f"{cls.__name__} has none: give it `augment` (steps on the image) instead."
            )
        kwargs["augment"] = setting["dense_augment"]
    labels = setting["num_labels"]
    if isinstance(task, str):
        task = synthetic_task(
            task,
            setting["variant"],
            size,
            labels,
            setting["eval_examples"],
            setting["seed"],
            **kwargs,
        )
    else:
        task = _labelled(type(task).from_config({**task.get_config(), **kwargs}), labels)
    return trunk, task


def _fit(model, task, batch, steps, precise_batch_norm):
    """`steps` steps on batches of `batch` labelled examples, then (optionally) the
    BatchNorm statistics measured over one pass of them."""
    model.fit(model.datasets(batch), steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    if precise_batch_norm:
        one_pass = pipeline([task], "train", batch, repeat=False)
        name = model.input_names[task.name]
        batches = (({name: x}, {task.name: y}) for x, y in one_pass)
        model.precise_batch_norm(batches, progress=False)


def _plot(path, model, task, source, protocol):

    (x, y), *_ = pipeline([task], "eval", 6, repeat=False).take(1)
    images, truth = x.numpy(), y[task.name].numpy()
    inputs = {model.input_names[task.name]: x}
    outputs = keras.ops.convert_to_numpy(model(inputs, training=False)[task.name])
    title = f"{task.name}: {protocol} from {source}"
    if not isinstance(task, DenseTask):
        names = task.label_names.get(task.label_key) or (
            OBJECT_CLASSES if task.name == "classification" else POSE_BINS
        )
        plots.plot_labelled_images(images, truth, outputs.argmax(-1), names, path, title)
    elif task.target_resize == "nearest":
        panel = (task.name, "labels", truth, outputs.argmax(-1))
        plots.plot_predictions(images, [panel], path, title)
    else:
        depth = np.asarray(task.measured_depth(outputs))
        plots.plot_predictions(images, [(task.name, "depth", truth, depth)], path, title)
