"""One transfer run: a trunk, a protocol, a downstream task and a number of labels.

`transfer(...)` trains a probe (see `protocols`) on the first `num_labels` examples of
a downstream task and returns its held-out metric. Downstream tasks on the synthetic
benchmark (Newell & Deng 2020): "classification" and "pose" on `single` scenes,
"segmentation" and "depth" on `multi` scenes, supervised at the resolution of the
trunk's last feature map as the paper does (sec. 7), for any variant "----" .. "TCVL".
"""

import dataclasses
import functools

import gin
import keras
import numpy as np
import tensorflow as tf

from zoo.data.synthetic import SceneSpec
from zoo.errors import UserError
from zoo.evaluation import metrics
from zoo.evaluation.protocols import (
    coarse_targets,
    dense_probe,
    load_trunk,
    probe,
    recompute_batch_norm,
)
from zoo.losses import berhu, masked_l1
from zoo.tasks.base import rendered
from zoo.trunks import resnet

DOWNSTREAM = {
    # name: (scene mode, target entry, kind)
    "classification": ("single", "label", "global"),
    "pose": ("single", "pose", "global"),
    "segmentation": ("multi", "semantics", "labels"),
    "depth": ("multi", "depth", "depth"),
}
CLASSES = {"classification": 10, "pose": 5, "segmentation": 11, "depth": 1}
# Labelled scenes are rendered into memory (a streaming source lifts this): 50,000 at 64 px
# take 2.3 GiB of images.
MAX_LABELS = 50_000


def training_steps(num_labels, batch_size, epochs=30, min_steps=100, max_steps=20000):
    """The training-length rule: `epochs` passes over the labels, within [min, max] steps.

    Scratch and pretrained runs of the same n get the same number of steps, so they get
    the same training time (Newell & Deng).
    """
    steps = int(np.ceil(epochs * num_labels / batch_size))
    return int(np.clip(steps, min_steps, max_steps))


def _arrays(spec, num, key):
    data = rendered(spec, num)
    return data["image"], data[key]


@gin.configurable(module="zoo.evaluation", denylist=["source", "predictions_path"])
def transfer(
    source: str,
    task: str | None = None,
    protocol: str = "finetune",
    num_labels: int = 1000,
    variant: str = "TCVL",
    builder=None,
    input_size: int = 64,
    endpoint: str = "block4",
    pooling: str = "global",
    frozen_stages: int = 1,
    decoder: str = "coarse",
    depth_loss: str = "l1",
    batch_size: int = 32,
    epochs: int = 30,
    min_steps: int = 100,
    max_steps: int = 20000,
    learning_rate: float = 1e-3,
    eval_examples: int = 1000,
    seed: int = 0,
    precise_batch_norm: bool = True,
    predictions_path: str | None = None,
) -> dict:
    """Trains a probe on `num_labels` labels and returns the held-out metric.

    Args:
        source: str. "random" (from scratch with `builder`), a zoo-train model_dir, or
            an exported trunk folder (see `protocols.load_trunk`).
        task: str. "classification", "pose", "segmentation" or "depth".
        protocol: str. "linear", "lasso_linear", "finetune" or "frozen_k".
        num_labels: int. Labelled training examples (the first n of the train split).
        variant: str. Factors of the synthetic data. Defaults to "TCVL".
        builder: callable or None. Trunk builder for "random" (the scratch baseline:
            give it the pretrained trunk's architecture). Defaults to a ResNet-18 at
            half width.
        input_size: int. Image size. Defaults to 64.
        endpoint: str. Endpoint the head reads. Defaults to "block4".
        pooling: str. "global" or "max3x3" (global tasks). Defaults to "global".
        frozen_stages: int. k of frozen_k. Defaults to 1.
        decoder: str. Dense tasks: "coarse" (1x1 head at the endpoint's resolution,
            Newell & Deng sec. 7) or "up_projection" (Laina et al.'s decoder, Doersch &
            Zisserman sec. 5). Defaults to "coarse".
        depth_loss: str. "l1" (Newell & Deng) or "berhu" (reverse Huber, Laina et al.;
            Doersch & Zisserman). Defaults to "l1".
        batch_size: int. Defaults to 32.
        epochs, min_steps, max_steps: the training-length rule (`training_steps`).
        learning_rate: float. Adam. Defaults to 1e-3.
        eval_examples: int. Held-out examples (test-split models). Defaults to 1000.
        seed: int. Defaults to 0.
        precise_batch_norm: bool. After training, set the trained BatchNorm layers'
            moving statistics to their average over the labelled images with the final
            weights (`protocols.recompute_batch_norm`); without it, short finetuning runs
            can predict chance in inference mode. Defaults to True.
        predictions_path: str or None. Writes a PNG of held-out predictions: dense
            maps next to the truth, or images titled with true and predicted labels.

    Returns:
        dict: the metric ("accuracy", "pixel_accuracy" or "delta1") under "value", its
        name under "metric", "steps", "task", and the other metrics of the task.
    """
    if task not in DOWNSTREAM:
        raise UserError(f"`task` must be one of {sorted(DOWNSTREAM)}. Received: {task!r}")
    if depth_loss not in DEPTH_LOSSES:
        raise UserError(f"`depth_loss` must be one of {DEPTH_LOSSES}. Received: {depth_loss!r}")
    if not (isinstance(num_labels, int) and not isinstance(num_labels, bool) and num_labels >= 1):
        raise UserError(f"`num_labels` must be an int >= 1. Received: {num_labels!r}")
    if num_labels > MAX_LABELS:
        raise UserError(
            f"`num_labels` must be at most {MAX_LABELS} (the labelled scenes are rendered "
            f"into memory: {num_labels} at {input_size} px would take "
            f"{num_labels * input_size**2 * 3 * 4 / 2**30:.1f} GiB). Received: {num_labels}"
        )
    keras.utils.set_random_seed(seed)
    mode, key, kind = DOWNSTREAM[task]
    spec = SceneSpec(variant=variant, mode=mode, resolution=input_size, seed=seed)
    x_train, y_train = _arrays(spec, num_labels, key)
    x_eval, y_eval = _arrays(dataclasses.replace(spec, split="test"), eval_examples, key)

    if builder is None:
        builder = functools.partial(resnet, 18, width_multiplier=0.5)
    trunk = load_trunk(source, builder, input_shape=(input_size, input_size, 3))
    if kind == "global":
        model = probe(
            trunk,
            protocol,
            CLASSES[task],
            endpoint=endpoint,
            pooling=pooling,
            frozen_stages=frozen_stages,
        )
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    else:
        model = dense_probe(
            trunk,
            protocol,
            CLASSES[task],
            endpoint=endpoint,
            decoder=decoder,
            frozen_stages=frozen_stages,
        )
        size = model.output.shape[1]
        y_train = coarse_targets(y_train, size, kind).numpy()
        y_eval = coarse_targets(y_eval, size, kind).numpy()
        if kind == "depth":
            y_train, y_eval = y_train[..., None], y_eval[..., None]
            loss = DEPTH_LOSSES[depth_loss]
        else:
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss, jit_compile=False)
    steps = training_steps(num_labels, batch_size, epochs, min_steps, max_steps)
    batch = min(batch_size, num_labels)
    data = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(num_labels, seed=seed)
        .repeat()
        .batch(batch)
    )
    model.fit(data, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    if precise_batch_norm:
        recompute_batch_norm(model, x_train, batch)
    outputs = model.predict(x_eval, batch_size=64, verbose=0)
    if kind == "global":
        result = {"accuracy": metrics.accuracy(outputs, y_eval)}
        name = "accuracy"
    elif kind == "labels":
        result = metrics.segmentation_metrics(outputs.argmax(-1), y_eval, CLASSES[task])
        name = "pixel_accuracy"
    else:
        result = metrics.depth_metrics(outputs, y_eval)
        name = "delta1"
    if predictions_path:
        _plot(predictions_path, task, kind, x_eval[:6], y_eval[:6], outputs[:6], source, protocol)
    return dict(result, metric=name, value=result[name], steps=steps, task=task)


def _l1_depth(y, out):
    return masked_l1(out, y, y > 0)


def _berhu_depth(y, out):
    return berhu(out, y, y > 0)


DEPTH_LOSSES = {"l1": _l1_depth, "berhu": _berhu_depth}


def _plot(path, task, kind, images, truth, outputs, source, protocol):
    from zoo.data.synthetic.objects import CLASSES as OBJECT_CLASSES
    from zoo.data.synthetic.scene import POSE_BINS
    from zoo.evaluation import plots

    title = f"{task}: {protocol} from {source}"
    if kind == "global":
        names = OBJECT_CLASSES if task == "classification" else POSE_BINS
        plots.plot_labelled_images(images, truth, outputs.argmax(-1), names, path, title)
    elif kind == "labels":
        panel = (task, "labels", truth, outputs.argmax(-1))
        plots.plot_predictions(images, [panel], path, title)
    else:
        plots.plot_predictions(images, [(task, "depth", truth, outputs)], path, title)
