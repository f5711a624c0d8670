"""Diagnoses of results that look like bugs: the same measurement over a run's
checkpoints, under the variations that tell a bug from too little training.

Usage:
    python tools/diagnose.py contrastive --model_dir=runs/contrastive_moco_v2 \
        [--images=256 --batch_size=64 --precise=20]

`contrastive`: the two-view accuracy that `zoo-train` reports for a contrastive task
(the share of `--images` images whose second view is the nearest of all their second
views to their first), for the untrained network and after every epoch's checkpoint, on
the held-out images and on the first `--images` training images, each with

* `moving`: the query network in inference mode (BatchNorm's moving averages), as the
  run's held-out report measures it;
* `precise`: the same after precise BatchNorm over `--precise` training batches;
* `batch`: the query network in training mode (each batch's own statistics, batches of
  `--batch_size`: what the loss saw);
* `key`: the key network as training uses it (momentum tasks only; each batch of
  `--batch_size` normalised with its own statistics).

Beside them, with no network at all, `pixels`: the same accuracy of the views' pixels
downsampled to 8 x 8 (what an untrained network's embedding mostly keeps).

Prints the table, writes it as JSON and a picture of the curves to `--out` (default
<model_dir>/diagnosis/).

    python tools/diagnose.py curve --model_dir=runs/doersch17_rp [--images=128]

`curve`: every task's held-out metrics (as `zoo-train` reports them) for the untrained
network and after every epoch's checkpoint, on the held-out images and on the first
`--images` training images (the same pipeline, seeds and evaluation), with BatchNorm's
moving averages and after precise BatchNorm over `--precise` training batches.

    python tools/diagnose.py adaptation --model_dir=runs/ren_lee18_da_conv5 \
        [--steps=120,1000 --batch_size=16 --d_optimizer=sgd]

`adaptation`: Ren & Lee's discriminator D trained alone (fresh weights, the run's
architecture and optimizer) on the frozen trunk's features at the adapted layer, for
each number of `--steps`, next to the logistic regression of the domain gap on the same
held-out images. Features are taken three ways: `separate` (training mode, the
synthetic and the real batch through the trunk one after the other: what D sees in the
run), `joint` (training mode, one pass over both batches) and `inference` (moving
statistics: what the domain gap's regression sees); D is trained on one domain per
batch (`separate`, as the run does) or on both domains in one batch (`joint`). D's
held-out accuracy is read as the run reads it (training mode, one domain per batch) and
in inference mode.
"""

import json
import os
import sys

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import zoo  # noqa: E402,F401  (the TensorFlow backend)

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "A zoo-train run of a contrastive task.")
flags.DEFINE_string("out", None, "Where the table and picture go (default <model_dir>/diagnosis).")
flags.DEFINE_integer("images", 256, "Images each accuracy is measured among.", lower_bound=2)
flags.DEFINE_integer("batch_size", 64, "Batch size of the measurements.", lower_bound=2)
flags.DEFINE_integer("precise", 20, "Training batches precise BatchNorm measures.", lower_bound=1)

flags.DEFINE_list("steps", ["120", "1000"], "adaptation: D's training steps to compare.")
flags.DEFINE_enum(
    "d_optimizer",
    "sgd",
    ["sgd", "adam"],
    "adaptation: D's optimizer: da_base.gin's SGD (1e-3, momentum 0.9, weight decay 5e-4) "
    "or Adam (1e-3).",
)

MODES = ("moving", "precise", "batch", "key")


def _views(task, split, count, batch_size):
    """[count, 2, h, w, 3] views of the split's first `count` images, as the held-out
    report makes them (the eval pipeline's seeds)."""
    import numpy as np

    from zoo.tasks.base import pipeline

    if split == "train":
        _on_training_images(task, count)
    try:
        batches = [x.numpy() for x, _ in pipeline([task], "eval", batch_size, repeat=False)]
    finally:
        vars(task).pop("examples", None)
    return np.concatenate(batches)[:count]


def _embeddings(function, views, batch_size):
    """(first views' embeddings, second views') of `function` on batches of `views`."""
    import numpy as np

    first, second = [], []
    for start in range(0, len(views), batch_size):
        batch = views[start : start + batch_size]
        first.append(np.asarray(function(batch)))
        second.append(np.asarray(function(batch[:, ::-1])))  # the views swapped
    return np.concatenate(first), np.concatenate(second)


def _accuracy(first, second):
    import numpy as np

    a = first / np.linalg.norm(first, axis=-1, keepdims=True)
    b = second / np.linalg.norm(second, axis=-1, keepdims=True)
    return float(np.mean(np.argmax(a @ b.T, axis=-1) == np.arange(len(a))))


def _pixel_accuracy(views, size=8):
    """Two-view accuracy of `views`' pixels, each view downsampled to size x size."""
    import tensorflow as tf

    def flat(x):
        return tf.image.resize(x, (size, size), antialias=True).numpy().reshape(len(x), -1)

    return _accuracy(flat(views[:, 0]), flat(views[:, 1]))


def _global(outputs):
    return outputs["global"] if isinstance(outputs, dict) else outputs


def _first_view(outputs):
    """The embedding of each image's first view: MoCo's query network embeds the
    first view ([B, D]); SimCLR's embeds both ([B, 2, D])."""
    embeddings = _global(outputs)
    return embeddings[:, 0] if len(embeddings.shape) == 3 else embeddings


def _queue_accuracy(model, name, views, batch_size):
    """The training metric (the positive key ranked first), the query network in
    training mode on batches of training images, against two sets of negatives of equal
    size: the run's stored queue (keys of earlier steps' key networks, as in training:
    "stored") and keys of the other images by the current key network ("current")."""
    import numpy as np
    import tensorflow as tf

    query = model.task_model(name)
    keys = np.concatenate(
        [
            np.asarray(
                tf.math.l2_normalize(
                    _global(model.momentum.keys(name, views[i : i + batch_size])), -1
                )
            )
            for i in range(0, len(views), batch_size)
        ]
    )
    stored = np.asarray(model.momentum.queues[f"{name}/keys"])
    filled = np.asarray(model.momentum.filled[f"{name}/keys"]) > 0.5
    stored = stored[filled]
    right = {"stored": [], "current": []}
    saved = [w.numpy() for w in model.weights]
    for start in range(0, len(views), batch_size):
        rows = np.arange(start, min(start + batch_size, len(views)))
        q = np.asarray(tf.math.l2_normalize(_global(query(views[rows], training=True)), -1))
        others = np.delete(keys, rows, axis=0)
        count = min(len(others), len(stored))
        for label, negatives in (("stored", stored[:count]), ("current", others[:count])):
            positive = np.sum(q * keys[rows], -1, keepdims=True)
            scores = np.concatenate([positive, q @ negatives.T], axis=1)
            right[label].append(np.argmax(scores, axis=1) == 0)
    for weight, value in zip(model.weights, saved):
        weight.assign(value)
    return {label: float(np.mean(np.concatenate(r))) for label, r in right.items()}


def measure(model, name, views, batch_size, precise):
    """{mode: {split: accuracy}} of one network state (see the module docstring)."""
    query = model.task_model(name)
    results = {}

    def run(function):
        return {
            split: _accuracy(*_embeddings(function, v, batch_size)) for split, v in views.items()
        }

    results["moving"] = run(lambda x: _first_view(query(x, training=False)))
    if model.momentum is not None and name in model.momentum.tasks:
        results["key"] = run(lambda x: _global(model.momentum.keys(name, x[:, ::-1])))
    if model.momentum is not None and name in model.momentum.tasks:
        results["queue"] = _queue_accuracy(model, name, views["training"], batch_size)
    saved = [w.numpy() for w in model.weights]
    model.precise_batch_norm(model.datasets(batch_size), steps=precise, progress=False)
    results["precise"] = run(lambda x: _first_view(query(x, training=False)))
    results["batch"] = run(lambda x: _first_view(query(x, training=True)))  # moves statistics
    for weight, value in zip(model.weights, saved):
        weight.assign(value)
    return results


def contrastive(model_dir, out, images, batch_size, precise, say=print):
    untrained = _method(model_dir, None)
    names = [n for n, t in untrained.tasks.items() if hasattr(t, "heldout_pairs")]
    if len(names) != 1:
        raise app.UsageError(f"{model_dir}: expected one contrastive task, found {names}")
    name = names[0]
    task = untrained.tasks[name]
    views = {
        "held-out": _views(task, "eval", images, batch_size),
        "training": _views(task, "train", images, batch_size),
    }
    say(f"{name}: {len(views['held-out'])} held-out and {len(views['training'])} training images")
    pixels = {split: _pixel_accuracy(v) for split, v in views.items()}
    say(f"8 x 8 pixels, no network: {pixels['held-out']:.3f}/{pixels['training']:.3f}")
    say(
        "two-view accuracy held-out/training per mode; queue: the positive key ranked "
        "first against stored/current keys"
    )
    rows = []
    for label, epoch, checkpoint in _states(model_dir):
        model = untrained if checkpoint is None else _method(model_dir, checkpoint)
        result = measure(model, name, views, batch_size, precise)
        rows.append({"state": label, "epoch": epoch, **result})
        say(
            f"{label:>22}: "
            + "  ".join(
                f"{mode} {result[mode]['held-out']:.3f}/{result[mode]['training']:.3f}"
                for mode in MODES
                if mode in result
            )
            + (
                f"  queue {result['queue']['stored']:.3f}/{result['queue']['current']:.3f}"
                if "queue" in result
                else ""
            )
        )
    os.makedirs(out, exist_ok=True)
    table = {
        "task": name,
        "images": images,
        "precise_batches": precise,
        "pixels": pixels,
        "rows": rows,
    }
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(table, f, indent=2)
    _picture(table, os.path.join(out, f"{name}.png"))
    say(f"wrote {os.path.join(out, name + '.json')} and .png")
    return table


def _picture(table, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = table["rows"]
    epochs = [r["epoch"] for r in rows]
    queue = [r for r in rows if "queue" in r and r["epoch"] > 0]  # empty before training
    figure, axes = plt.subplots(1, 3 if queue else 2, figsize=(15 if queue else 10, 4))
    for axis, split in zip(axes, ("held-out", "training")):
        for mode in MODES:
            if mode in rows[-1]:
                axis.plot(epochs, [r[mode][split] for r in rows], marker="o", label=mode)
        axis.axhline(1 / table["images"], color="grey", linestyle=":", label="chance")
        axis.axhline(table["pixels"][split], color="black", linestyle="--", label="8x8 pixels")
        axis.set_title(f"{table['task']}: two-view accuracy, {split} images")
        axis.set_xlabel("epoch")
        axis.set_ylabel(f"accuracy among {table['images']} images")
    axes[1].legend()
    if queue:
        for label, name in (("stored", "vs the stored queue"), ("current", "vs current keys")):
            values = [r["queue"][label] for r in queue]
            axes[2].plot([r["epoch"] for r in queue], values, marker="o", label=name)
        axes[2].set_title("training metric: positive key ranked first")
        axes[2].set_xlabel("epoch")
        axes[2].set_ylim(0, 1)
        axes[2].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _on_training_images(task, count):
    """Points a task's "eval" examples at its first `count` training examples (an
    instance attribute over its `examples`)."""
    original = type(task).examples.__get__(task)
    task.examples = lambda split, keys=None: original("train", keys).take(count)


def _states(model_dir):
    """(label, epoch, checkpoint or None for the untrained network) of a run."""
    from zoo import experiment

    done = experiment.checkpoints(model_dir)
    epochs = [int(os.path.basename(c).split("_")[1].split(".")[0]) for c in done]
    return [("untrained", 0, None)] + [(os.path.basename(c), e, c) for c, e in zip(done, epochs)]


def _method(model_dir, checkpoint):
    """The run's method at a checkpoint, or untrained (seed 0), compiled for measuring."""
    import keras

    from zoo import experiment
    from zoo.methods.base import deserialize

    if checkpoint is None:
        keras.utils.set_random_seed(0)
        model = deserialize(experiment.method_config(model_dir))
    else:
        model, _ = experiment.restore(model_dir, checkpoint)
    model.compile(keras.optimizers.Adam())
    return model


def curve(model_dir, out, images, batch_size, precise, say=print):
    rows = []
    for label, epoch, checkpoint in _states(model_dir):
        row = {"state": label, "epoch": epoch}
        for statistics in ("moving", "precise"):
            model = _method(model_dir, checkpoint)
            if statistics == "precise":
                model.precise_batch_norm(model.datasets(batch_size), steps=precise, progress=False)
            row[statistics] = {"held-out": model.heldout_metrics(batch_size)}
            for task in model.tasks.values():
                _on_training_images(task, images)
            row[statistics]["training"] = model.heldout_metrics(batch_size)
        rows.append(row)
        say(
            f"{label:>22}: "
            + json.dumps({k: v for k, v in row.items() if k in ("moving", "precise")})
        )
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "curve.json")
    with open(path, "w") as f:
        json.dump({"images": images, "precise_batches": precise, "rows": rows}, f, indent=2)
    say(f"wrote {path}")
    return rows


def _features(model, synthetic, real, mode):
    """Adapted-layer features of equal-sized synthetic and real batches, `mode` as in
    the module docstring; the trunk's weights and statistics are left as they were."""
    import numpy as np
    import tensorflow as tf

    trunk = model.adapted_trunk
    saved = [w.numpy() for w in trunk.weights]
    if mode == "inference":
        out = trunk(synthetic, training=False), trunk(real, training=False)
    elif mode == "separate":
        out = trunk(synthetic, training=True), trunk(real, training=True)
    else:
        both = trunk(tf.concat([synthetic, real], 0), training=True)
        out = both[: len(synthetic)], both[len(synthetic) :]
    for weight, value in zip(trunk.weights, saved):
        weight.assign(value)
    return tuple(np.asarray(o) for o in out)


def _optimizer(name):
    import keras

    if name == "adam":
        return keras.optimizers.Adam(1e-3)
    return keras.optimizers.SGD(1e-3, momentum=0.9, weight_decay=5e-4)  # da_base.gin's


def _train_discriminator(model, batches, steps, batching, optimizer, seed):
    """A fresh D of the run's architecture trained `steps` steps on (synthetic, real)
    feature batches."""
    import keras
    import tensorflow as tf

    from zoo.layers.discriminator import patch_discriminator
    from zoo.losses import adversarial

    keras.utils.set_random_seed(seed)
    shape = tuple(batches[0][0].shape[1:])
    discriminator = patch_discriminator(shape, model.discriminator_widths)
    optimizer = _optimizer(optimizer)
    optimizer.build(discriminator.trainable_variables)

    @tf.function
    def step(synthetic, real):
        with tf.GradientTape() as tape:
            if batching == "joint":
                logits = discriminator(tf.concat([synthetic, real], 0), training=True)
                syn_logits, real_logits = (
                    logits[: tf.shape(synthetic)[0]],
                    logits[tf.shape(synthetic)[0] :],
                )
            else:
                syn_logits = discriminator(synthetic, training=True)
                real_logits = discriminator(real, training=True)
            syn_term, real_term = adversarial.discriminator_loss(syn_logits, real_logits)
            loss = tf.reduce_mean(syn_term) + tf.reduce_mean(real_term)
        variables = discriminator.trainable_variables
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return loss

    for i in range(steps):
        synthetic, real = batches[i % len(batches)]
        step(synthetic, real)
    return discriminator


def _discriminator_accuracy(discriminator, synthetic, real, batch_size, training):
    """Share of patches D puts in the right domain, over held-out feature batches of one
    domain each (training: each batch's own BatchNorm statistics, as the run reads it)."""
    import numpy as np

    right = []
    for start in range(0, len(synthetic), batch_size):
        syn = np.asarray(discriminator(synthetic[start : start + batch_size], training=training))
        rea = np.asarray(discriminator(real[start : start + batch_size], training=training))
        right += [(syn > 0).ravel(), (rea < 0).ravel()]
    return float(np.mean(np.concatenate(right)))


def adaptation(model_dir, out, steps_list, batch_size, optimizer="sgd", say=print):
    import numpy as np

    from zoo import experiment
    from zoo.evaluation import adaptation as measures

    model, checkpoint = experiment.restore(model_dir)
    if not hasattr(model, "adapted_trunk"):
        raise app.UsageError(f"{model_dir} is not a DomainAdversarial run")
    layer = model.adapt_endpoint
    say(f"{checkpoint}: a fresh D at {layer}, trained with {optimizer}")
    # training batches: 64 of the run's own stream (synthetic and real)
    batches = []
    for inputs, _ in model.datasets(batch_size).take(64):
        batches.append((inputs[model.group].numpy(), inputs["real"].numpy()))
    synthetic, real = measures.heldout_domains(model, 240)
    count = min(len(synthetic), len(real)) // batch_size * batch_size
    synthetic, real = synthetic[:count], real[:count]
    rows = []
    for mode in ("separate", "joint", "inference"):
        train = [_features(model, s, r, mode) for s, r in batches]
        held = [
            _features(model, synthetic[i : i + batch_size], real[i : i + batch_size], mode)
            for i in range(0, count, batch_size)
        ]
        held_syn = np.concatenate([h[0] for h in held])
        held_real = np.concatenate([h[1] for h in held])
        gap = measures.domain_classifier_accuracy(
            held_syn.mean(axis=(1, 2)), held_real.mean(axis=(1, 2))
        )
        for batching in ("separate", "joint"):
            for steps in steps_list:
                d = _train_discriminator(model, train, steps, batching, optimizer, seed=0)
                row = {
                    "features": mode,
                    "d_batches": batching,
                    "steps": steps,
                    "regression": gap,
                    "d_as_run": _discriminator_accuracy(d, held_syn, held_real, batch_size, True),
                    "d_inference": _discriminator_accuracy(
                        d, held_syn, held_real, batch_size, False
                    ),
                }
                rows.append(row)
                say(
                    f"features {mode:>9}, D batches {batching:>8}, {steps:>5} steps: "
                    f"D {row['d_as_run']:.3f} (as the run reads it), {row['d_inference']:.3f} "
                    f"(inference); regression on pooled features {gap:.3f}"
                )
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"discriminator_{optimizer}.json")
    with open(path, "w") as f:
        table = {"checkpoint": checkpoint, "layer": layer, "optimizer": optimizer, "rows": rows}
        json.dump(table, f, indent=2)
    say(f"wrote {path}")
    return rows


def main(argv):
    commands = ("contrastive", "curve", "adaptation")
    if len(argv) != 2 or argv[1] not in commands:
        raise app.UsageError(f"usage: diagnose.py {{{'|'.join(commands)}}} --model_dir=<run>")
    if not FLAGS.model_dir:
        raise app.UsageError("give --model_dir")
    out = FLAGS.out or os.path.join(FLAGS.model_dir, "diagnosis")
    if argv[1] == "contrastive":
        contrastive(FLAGS.model_dir, out, FLAGS.images, FLAGS.batch_size, FLAGS.precise)
    elif argv[1] == "curve":
        curve(FLAGS.model_dir, out, FLAGS.images, FLAGS.batch_size, FLAGS.precise)
    else:
        steps = [int(s) for s in FLAGS.steps]
        adaptation(FLAGS.model_dir, out, steps, FLAGS.batch_size, FLAGS.d_optimizer)


if __name__ == "__main__":
    app.run(main)
