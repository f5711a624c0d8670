"""Speed of zoo components next to a reference, measured side by side in one process.

Usage:
    python tools/benchmark.py trunk [--batch_size=16 --image_size=128 --steps=5 --rounds=3]
    python tools/benchmark.py synthetic [--synthetic_images=400]
    python tools/benchmark.py multitask [--steps=5 --rounds=3]
    python tools/benchmark.py doersch [--steps=5 --rounds=3]
    python tools/benchmark.py determinism [--steps=5 --rounds=3]
    python tools/benchmark.py data [--quick]
    python tools/benchmark.py da [--steps=5 --rounds=3]
    python tools/benchmark.py contrastive [--steps=5 --rounds=3]
    python tools/benchmark.py scale [--steps=5 --rounds=3]
    python tools/benchmark.py compl [--steps=5 --rounds=3]
    python tools/benchmark.py newell20 [--steps=5 --rounds=3]

`trunk`: one training step (forward, backward, SGD update) of `zoo.trunks.resnet(50, 2)`
with a global-average-pooled dense head, and of `keras.applications.ResNet50V2`
(weights=None, the same head), alternating on the same random batch. Prints images/s of
each and the ratio zoo / reference (above 1: the zoo trunk is faster).

`synthetic`: images/s of the synthetic renderer on one core (the process is pinned to
one CPU) for single 64x64 and multi 128x128, variants "----" and "TCVL", against the
targets 100 and 20 images/s.

`multitask`: `fit` steps/s of a MultiTask method with the quickstart's depth task next to
a plain keras.Model with the same trunk and head (target ratio >= 0.95); the
quickstart's input pipeline (batches/s of all its data streams) against the steps/s its
training consumes (target ratio >= 2); and the step of Ren & Lee's three dense tasks on
one batch of scenes (one trunk pass, three heads; ren_lee18/small.gin) next to the
contour task alone on the same batch (target <= 1.3x).

`da`: one step of Ren & Lee's domain adaptation (DomainAdversarial of
ren_lee18/da_conv5.gin: the trunk and heads on the synthetic batch, the trunk to conv5
on the real batch, the discriminator's update and the adversarial term) next to a step
of the same trunk and heads without adaptation (MultiTask, the same synthetic batch,
both with grad_norm balancing), traced and alternating; target <= 1.4x. Measured with
small.gin (quarter width, 96 px) and at the paper's 227 px (quarter width).

`contrastive`: one step of MoCo v2, SimCLR and DenseCL (gin_configs/contrastive/ with
small.gin: ResNet-9 at half width, 64 px, batch 32) next to a plain supervised step of
the same trunk and batch (object classification on the same scenes, one view, a
global-pooled dense head), traced and alternating; targets: MoCo v2 <= 1.6x (the key
pass has no backward pass), SimCLR <= 2.2x (two views through the trunk). BYOL's step
(both views through the online network with a backward pass, and through the target
network) next to the supervised step on as many images (twice the batch): target <= 1.6x;
its ratio to the supervised step of one view is printed beside it. The same again with
ResNet-50 v1 at quarter width (128 px, batch 16).

`compl`: CompL's composite step (gin_configs/compl22/semseg_rot.gin and
semseg_densecl.gin with small.gin: the target and the auxiliary batches of 8, the images
of one size in one trunk pass) next to a step of the target alone and a step of the
auxiliary alone on the same batches; target: composite <= 1.15x their sum. The composite
step with a trunk pass per input (one_pass = False) is printed beside it.

`newell20`: one step of each of Newell & Deng's four pretraining methods
(gin_configs/newell20/pretrain_*.gin), alone and with its four online probes (class and
pose, linear and MLP: a second trunk pass over the labelled images, detached), relative
to rotation's step alone: with small.gin, with the paper's ResNet-9 and with the
ResNet-50 with reduced pooling, and on scenes (pretrain_*_scenes.gin: per-pixel class and
depth probes) with small_scenes.gin and at 128 px, at CPU batch sizes (each printed).

`doersch`: the step time of the four-task lasso model of doersch17/lasso_pretrain.gin
(with small.gin: CPU-sized) next to the four single-task models' step times on the same
batches, side by side; the joint step should cost at most 1.1x their sum (one trunk
pass per task batch, nothing recomputed).

`data`: first prints its plan and an estimate of its length (from a few scenes rendered
and steps timed on the spot, and what the data cache already holds), then: (1) the peak
memory (RSS) of one training epoch (depth task, tiny trunk, batch 64) over 1k and over
20k synthetic scenes at 128 px, each in a fresh process, with the scenes in the data
cache (rendered first, outside the measurement; target ratio < 1.5); (2) the
quickstart's input pipeline against its training step (target >= 2); (3) the data of
doersch17/lasso_pretrain.gin at its full defaults (20k scenes at 256 px, rendered on
the fly) built and 20 batches of every task drawn, in a process measured by
`/usr/bin/time -v` (target < 4 GB); last, the time it took next to the estimate. On a
fresh 2-core machine most of it is rendering: about 10 min for the 21k scenes of (1),
about an hour for (3), whose shuffle buffers fill with 256 px scenes before the first
batch. `--quick` (CI-sized, a few minutes): (1) over 250 and 5,000 scenes at 32 px (the
same 20x range), (2), and no (3).

`scale`: (1) the quickstart's training (global batch 16) in one process on 2 cores, on
2 localhost workers of 1 core each (`strategy = "multi_worker"`), and in one process on
1 core with half the batch (what one worker computes): steps/s and images/s of each,
measured in fresh processes through the same loop (`zoo.experiment.loop`), and the share
of a 2-worker step spent beyond its own computation (communication and waiting: 1 -
half-batch step time / 2-worker step time). (2) a training step of the quickstart's trunk
and heads in float32 next to mixed_bfloat16 and mixed_float16, alternating in one
process, with the CPU's instructions that decide it (AVX-512 BF16, AMX: without them
16-bit compute is emulated and slower).

`determinism`: the quickstart's training (deterministic ops) with TensorFlow's inter-op
parallelism at 1 (`zoo.experiment.train.serial_ops = True`) next to the default. The
setting is fixed once a process has run an op, so each measurement is a fresh process
(they alternate, one at a time): steps/s over `--steps * 8` steps after the first, and
a digest of the weights at the end. Prints the median rates, their ratio, and how many
different weights each setting ended with (1: bit-identical runs).
"""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

from absl import app, flags, logging  # noqa: E402

import zoo  # noqa: E402,F401  (selects the TensorFlow backend)

FLAGS = flags.FLAGS
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
flags.DEFINE_integer("batch_size", 16, "Images per step.")
flags.DEFINE_integer("image_size", 128, "Height and width of the random images.")
flags.DEFINE_integer("steps", 5, "Timed steps per model in each round.")
flags.DEFINE_integer("rounds", 3, "Alternating rounds; the median round is reported.")
flags.DEFINE_integer("warmup", 2, "Untimed steps per model before the first round.")
flags.DEFINE_integer("classes", 1000, "Width of the dense head.")
flags.DEFINE_string("child", None, "determinism, data, scale: internal, one measured process.")
flags.DEFINE_bool("quick", False, "data: CI-sized (250 vs 5000 scenes at 32 px, no part 3).")
flags.DEFINE_integer(
    "synthetic_images", 400, "Images rendered per single-mode setting (1/4 multi)."
)


def _train_step(model):
    import keras
    import tensorflow as tf

    optimizer = keras.optimizers.SGD(0.01, momentum=0.9)
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=False)
    def step(images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return step


def _models(classes, image_size):
    import keras

    from zoo.trunks import resnet

    input_shape = (image_size, image_size, 3)
    trunk = resnet(50, version=2, input_shape=input_shape)
    pooled = keras.layers.GlobalAveragePooling2D(name="avg_pool")(trunk.output["block4"])
    ours = keras.Model(trunk.input, keras.layers.Dense(classes, name="logits")(pooled))
    reference = keras.applications.ResNet50V2(
        weights=None, input_shape=input_shape, classes=classes, classifier_activation=None
    )
    return {"zoo resnet(50, 2)": ours, "keras ResNet50V2": reference}


def benchmark_trunk():
    import numpy as np
    import tensorflow as tf

    rng = np.random.default_rng(0)
    shape = (FLAGS.batch_size, FLAGS.image_size, FLAGS.image_size, 3)
    images = tf.constant(rng.random(shape, dtype=np.float32))
    labels = tf.constant(rng.integers(0, FLAGS.classes, FLAGS.batch_size))
    models = _models(FLAGS.classes, FLAGS.image_size)
    counts = {name: m.count_params() for name, m in models.items()}
    steps = {name: _train_step(m) for name, m in models.items()}
    for step in steps.values():
        for _ in range(FLAGS.warmup):
            step(images, labels).numpy()
    rates = {name: [] for name in steps}
    for r in range(FLAGS.rounds):
        order = list(steps.items())[:: 1 if r % 2 == 0 else -1]  # neither always goes first
        for name, step in order:
            start = time.perf_counter()
            for _ in range(FLAGS.steps):
                loss = step(images, labels)
            loss.numpy()
            rates[name].append(FLAGS.steps * FLAGS.batch_size / (time.perf_counter() - start))
        print(
            f"round {r + 1}/{FLAGS.rounds}: "
            + ", ".join(f"{n} {v[-1]:.1f} img/s" for n, v in rates.items()),
            flush=True,
        )
    medians = {name: statistics.median(v) for name, v in rates.items()}
    (ours, ref) = medians.values()
    print(f"\ntrain step, batch {shape}, {FLAGS.rounds} rounds x {FLAGS.steps} steps (median)")
    for name, value in medians.items():
        print(f"  {name:<20} {value:8.2f} images/s   {counts[name]:,} parameters")
    print(f"  ratio zoo / reference: {ours / ref:.3f}")


def benchmark_synthetic():
    import os

    from zoo.data.synthetic import SceneSpec, generate

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core
    targets = {"single": 100.0, "multi": 20.0}
    print(f"{'mode':<8} {'size':>5} {'variant':<8} {'images/s':>9}  target")
    for mode in ("single", "multi"):
        for variant in ("----", "TCVL"):
            spec = SceneSpec(variant=variant, mode=mode)
            generate(spec, 0)
            count = FLAGS.synthetic_images // (1 if mode == "single" else 4)
            start = time.perf_counter()
            for index in range(1, count + 1):
                generate(spec, index)
            rate = count / (time.perf_counter() - start)
            verdict = "met" if rate >= targets[mode] else "MISSED"
            print(
                f"{mode:<8} {spec.size:>5} {variant:<8} {rate:9.1f}  "
                f">= {targets[mode]:g} ({verdict})",
                flush=True,
            )


def _fit_rate(model, data, steps):
    """Steps/s of `model.fit` over `steps` steps (the compiled function already traced).

    Timed by a callback at every batch end, as a progress bar does: without one, `fit`
    here sometimes stalls for a fixed ~10 s per call (either model), which would
    measure the stall, not the step."""
    import keras

    class Clock(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times = [time.perf_counter()]

        def on_train_batch_end(self, batch, logs=None):
            self.times.append(time.perf_counter())

    clock = Clock()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False, callbacks=[clock])
    return steps / (clock.times[-1] - clock.times[0])


def _build(selected, **overrides):
    """A MultiTask of the gin-configured method on `selected` tasks, compiled."""
    import gin
    import keras

    keras.utils.set_random_seed(0)
    model = gin.get_configurable("zoo.methods.MultiTask")(tasks=selected, **overrides)
    model.compile(gin.get_bindings("zoo.experiment.train")["optimizer"])
    return model


def _step_times(feeds):
    """Best and median seconds per traced `train_step` of each (model, batch), alternating."""
    import tensorflow as tf

    fns = {name: tf.function(model.train_step) for name, (model, _) in feeds.items()}
    for name, (_, data) in feeds.items():
        fns[name](data)["loss"].numpy()  # trace and warm up
    times = {name: [] for name in feeds}
    steps = FLAGS.steps * 2
    for r in range(FLAGS.rounds):
        for name, (_, data) in list(feeds.items())[:: 1 if r % 2 == 0 else -1]:
            start = time.perf_counter()
            for _ in range(steps):
                logs = fns[name](data)
            logs["loss"].numpy()
            times[name].append((time.perf_counter() - start) / steps)
    # Best round: on a shared machine, slow rounds measure the neighbours, not the code.
    return {n: min(v) for n, v in times.items()}, {
        n: statistics.median(v) for n, v in times.items()
    }


def _parse(*files, bindings=()):
    import gin

    from zoo.cli import gin_setup

    gin.clear_config()
    gin_setup.parse([os.path.join(ROOT, "gin_configs", f) for f in files], list(bindings))


def _pipeline_against_training(tasks, batch):
    """Batches/s the input pipeline of `tasks` gives next to the steps/s training takes."""
    model = _build(tasks)
    data = model.datasets(batch)
    iterator = iter(data)
    for _ in range(20):  # rendering, caching and warm-up
        next(iterator)
    count = 200
    start = time.perf_counter()
    for _ in range(count):
        next(iterator)
    produced = count / (time.perf_counter() - start)
    _fit_rate(model, data, 3)
    consumed = _fit_rate(model, data, FLAGS.steps * 4)
    print(f"\nquickstart.gin, {len(tasks)} tasks, batch {batch} per data stream:")
    print(f"  input pipeline  {produced:8.1f} steps/s")
    print(f"  training step   {consumed:8.2f} steps/s")
    print(f"  ratio pipeline / training: {produced / consumed:.1f} (target >= 2)")


def benchmark_multitask():
    import gin
    import keras
    import tensorflow as tf

    _parse("quickstart.gin")
    tasks = gin.get_bindings("zoo.methods.MultiTask")["tasks"]
    size = gin.query_parameter("zoo.methods.MultiTask.input_size")
    batch = gin.query_parameter("zoo.experiment.train.batch_size")

    # 1. MultiTask with one task vs a plain keras.Model with the same trunk and head.
    depth = next(t for t in tasks if t.name == "depth")
    inputs, targets = next(iter(depth.pipeline("train", batch)))
    ours = _build([depth], loss_weights=None)
    keras.utils.set_random_seed(0)
    trunk = gin.get_bindings("zoo.methods.MultiTask")["trunk"](input_shape=(size, size, 3))
    plain = keras.Model(trunk.input, depth.build_head(trunk.output[ours.endpoints["depth"]], size))
    plain.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        jit_compile=False,
        loss=lambda y, out: depth.loss(y, out),
    )
    feeds = {
        "MultiTask": (ours, tf.data.Dataset.from_tensors(({"images": inputs}, {"depth": targets}))),
        "keras.Model": (plain, tf.data.Dataset.from_tensors((inputs, targets))),
    }
    rates = {name: [] for name in feeds}
    for model, data in feeds.values():
        _fit_rate(model, data.repeat(), 3)  # trace
    for r in range(FLAGS.rounds):
        for name, (model, data) in list(feeds.items())[:: 1 if r % 2 == 0 else -1]:
            rates[name].append(_fit_rate(model, data.repeat(), FLAGS.steps * 4))
    best = {name: max(v) for name, v in rates.items()}
    print(
        f"fit, depth task of quickstart.gin, batch {batch}x{size}x{size} (best and median "
        f"of {FLAGS.rounds} alternating rounds x {FLAGS.steps * 4} steps)"
    )
    for name, value in best.items():
        print(f"  {name:<16} {value:7.2f} steps/s (median {statistics.median(rates[name]):.2f})")
    ratio = best["MultiTask"] / best["keras.Model"]
    print(f"  ratio MultiTask / keras.Model: {ratio:.3f} (target >= 0.95)")

    # 2. The quickstart's input pipeline against what its training step consumes.
    _pipeline_against_training(tasks, batch)

    # 3. Ren & Lee's three dense tasks on one scene: one trunk pass, three heads.
    _parse("ren_lee18/3tasks.gin", "ren_lee18/small.gin", bindings=["NUM_SCENES = 64"])
    tasks = gin.get_bindings("zoo.methods.MultiTask")["tasks"]
    batch = gin.query_parameter("zoo.experiment.train.batch_size")
    joint = _build(tasks)
    data = next(iter(joint.datasets(batch)))
    contours = _build([t for t in tasks if t.name == "contours"], loss_weights=None)
    best, median = _step_times(
        {
            "3 tasks": (joint, data),
            "contours": (contours, (data[0], {"contours": data[1]["contours"]})),
        }
    )
    print(
        f"\nren_lee18/3tasks.gin + small.gin (AlexNet-style trunk, quarter width, 32-wide "
        f"heads) on 96 px scenes, batch {batch}: traced train_step, best of {FLAGS.rounds} "
        "alternating rounds"
    )
    for name, value in best.items():
        print(f"  {name:<10} {1000 * value:8.1f} ms/step (median {1000 * median[name]:.1f})")
    print(f"  ratio 3 tasks / contours: {best['3 tasks'] / best['contours']:.2f} (target <= 1.3)")


def benchmark_da():
    import gin
    import keras

    from zoo.methods import MultiTask

    for label, bindings in (
        ("small.gin: quarter width, 96 px", []),
        (
            "quarter width at the paper's 227 px, 64-wide heads",
            [
                "INPUT_SIZE = 227",
                "zoo.data.real_photos.size = 454",
                "zoo.tasks.Depth.head_width = 64",
                "zoo.tasks.Normals.head_width = 64",
                "zoo.tasks.Contours.head_width = 64",
            ],
        ),
    ):
        _parse(
            "ren_lee18/da_conv5.gin",
            "ren_lee18/small.gin",
            bindings=["NUM_SCENES = 64", "zoo.data.real_photos.crops_per_image = 4", *bindings],
        )
        keras.utils.set_random_seed(0)
        adapted = gin.get_configurable("zoo.methods.DomainAdversarial")()
        adapted.compile(gin.get_bindings("zoo.experiment.train")["optimizer"])
        batch = gin.query_parameter("zoo.experiment.train.batch_size")
        data = next(iter(adapted.datasets(batch)))
        synthetic = ({k: v for k, v in data[0].items() if k != "real"}, data[1])
        keras.utils.set_random_seed(0)
        plain = MultiTask(
            gin.get_configurable("zoo.trunks.alexnet"),
            list(adapted.tasks.values()),
            input_size=adapted.input_size,
            loss_balance="grad_norm",
        )
        plain.compile(keras.optimizers.Adam(1e-3))
        best, median = _step_times({"adaptation": (adapted, data), "none": (plain, synthetic)})
        print(
            f"\nren_lee18/da_conv5.gin, {label}, batch {batch} synthetic (+ {batch} real): "
            f"traced train_step, best of {FLAGS.rounds} alternating rounds"
        )
        for name, value in best.items():
            print(f"  {name:<11} {1000 * value:8.1f} ms/step (median {1000 * median[name]:.1f})")
        ratio = best["adaptation"] / best["none"]
        print(f"  ratio adaptation / none: {ratio:.2f} (target <= 1.4)")


def benchmark_contrastive():
    import gin
    import keras

    from zoo.data.synthetic import SceneSpec
    from zoo.methods import MultiTask
    from zoo.tasks import Classification

    settings = (
        ("small.gin: ResNet-9 at half width, 64 px", [], 64),
        (
            "ResNet-50 v1 at quarter width, 128 px",
            [
                "INPUT_SIZE = 128",
                "zoo.methods.MultiTask.trunk = @zoo.trunks.resnet",
                "zoo.trunks.resnet.width_multiplier = 0.25",
                "zoo.experiment.train.batch_size = 16",
            ],
            128,
        ),
    )
    for label, bindings, size in settings:
        times = {}
        runs = (("moco_v2", "moco"), ("simclr", "simclr"), ("densecl", "densecl"), ("byol", "byol"))
        for name, task in runs:
            _parse(
                f"contrastive/{name}.gin",
                "contrastive/small.gin",
                bindings=["SCENES = 64", *bindings],
            )
            keras.utils.set_random_seed(0)
            method = gin.get_configurable("zoo.methods.MultiTask")()
            method.compile(gin.get_bindings("zoo.experiment.train")["optimizer"])
            batch = gin.query_parameter("zoo.experiment.train.batch_size")
            data = next(iter(method.datasets(batch)))
            keras.utils.set_random_seed(0)
            spec = SceneSpec(variant="TCVL", mode="single", resolution=size, seed=1000)
            plain = MultiTask(
                gin.query_parameter("zoo.methods.MultiTask.trunk").scoped_configurable_fn,
                [Classification(spec, num_examples=64, eval_examples=8)],
                input_size=size,
            )
            plain.compile(gin.get_bindings("zoo.experiment.train")["optimizer"])
            feeds = {task: (method, data), "supervised": (plain, next(iter(plain.datasets(batch))))}
            if task == "byol":  # as many images through the trunk as BYOL's two views
                feeds["supervised_2x"] = (plain, next(iter(plain.datasets(2 * batch))))
            times[task] = _step_times(feeds)
        print(
            f"\ncontrastive/*.gin, {label}, batch {batch}: traced train_step, best of "
            f"{FLAGS.rounds} alternating rounds, each next to the supervised step"
        )
        for task, target in (("moco", 1.6), ("simclr", 2.2), ("densecl", None), ("byol", None)):
            best, median = times[task]
            ratio = best[task] / best["supervised"]
            goal = f" (target <= {target})" if target else ""
            print(
                f"  {task:<8} {1000 * best[task]:8.1f} ms/step (median {1000 * median[task]:.1f})"
                f"  supervised {1000 * best['supervised']:7.1f} ms  ratio {ratio:.2f}{goal}"
            )
        best, _ = times["byol"]
        print(
            f"  byol next to the supervised step on {2 * batch} images "
            f"({1000 * best['supervised_2x']:.1f} ms): ratio "
            f"{best['byol'] / best['supervised_2x']:.2f} (target <= 1.6)"
        )


def benchmark_doersch():
    import gin

    _parse("doersch17/lasso_pretrain.gin", "doersch17/small.gin")
    tasks = gin.get_bindings("zoo.methods.MultiTask")["tasks"]
    batch = gin.query_parameter("zoo.experiment.train.batch_size")
    joint = _build(tasks)
    data = next(iter(joint.datasets(batch)))
    feeds = {"joint": (joint, data)}
    for t in tasks:
        single = _build([t])
        x = {name: data[0][name] for name in single.groups}
        feeds[t.name] = (single, (x, {t.name: data[1][t.name]}))
    best, median = _step_times(feeds)
    single = sum(best[t.name] for t in tasks)
    print(
        f"doersch17 lasso_pretrain.gin + small.gin, batch {batch} per task, per-task "
        f"RMSProp, lasso on block 3 (best of {FLAGS.rounds} alternating rounds x "
        f"{FLAGS.steps * 2} steps)"
    )
    for name, value in best.items():
        label = "four tasks, one step" if name == "joint" else name
        print(f"  {label:<22} {1000 * value:8.1f} ms/step (median {1000 * median[name]:.1f})")
    print(f"  sum of the single-task steps {1000 * single:8.1f} ms")
    print(f"  ratio joint / sum: {best['joint'] / single:.3f} (target <= 1.1)")


def benchmark_compl():
    import gin

    for row in ("semseg_rot", "semseg_densecl"):
        _parse(f"compl22/{row}.gin", "compl22/small.gin")
        tasks = gin.get_bindings("zoo.methods.MultiTask")["tasks"]
        batch = gin.get_bindings("zoo.experiment.train")["batch_size"]  # a macro, resolved
        joint = _build(tasks)
        data = next(iter(joint.datasets(batch)))
        feeds = {"composite": (joint, data), "two passes": (_build(tasks, one_pass=False), data)}
        for t in tasks:
            single = _build([t], loss_weights={})
            x = {name: data[0][joint.input_names[t.name]] for name in single.groups}
            feeds[t.name] = (single, (x, {t.name: data[1][t.name]}))
        best, median = _step_times(feeds)
        alone = sum(best[t.name] for t in tasks)
        print(
            f"compl22 {row}.gin + small.gin, {batch} + {batch} images (best of "
            f"{FLAGS.rounds} alternating rounds x {FLAGS.steps * 2} steps)"
        )
        for name, value in best.items():
            print(f"  {name:<24} {1000 * value:8.1f} ms/step (median {1000 * median[name]:.1f})")
        print(f"  sum of the single-task steps {1000 * alone:8.1f} ms")
        print(f"  ratio composite / sum: {best['composite'] / alone:.3f} (target <= 1.15)")
        print(f"  ratio composite / two passes: {best['composite'] / best['two passes']:.3f}")


def benchmark_mgm():
    import gin
    import keras

    from zoo.methods import MultiTask

    for label, files, bindings in (
        ("small.gin (32 px)", ["mgm22/small.gin"], []),
        ("the paper's size (128 px, SAGAN)", [], ["zoo.experiment.train.batch_size = 8"]),
    ):
        _parse("mgm22/mgm.gin", *files, bindings=bindings)
        optimizer = gin.get_bindings("zoo.experiment.train")["optimizer"]
        batch = gin.get_bindings("zoo.experiment.train")["batch_size"]
        build = gin.get_configurable("zoo.methods.MGM")
        methods = {}
        for name, stages in (("MGM joint step", (0, 0)), ("MGM stage 1 step", (1, 0))):
            keras.utils.set_random_seed(0)
            methods[name] = build(stage_epochs=stages)
            methods[name].compile(optimizer)
        joint = methods["MGM joint step"]
        keras.utils.set_random_seed(0)
        plain = MultiTask(
            gin.get_configurable("zoo.trunks.resnet"),
            list(joint.tasks.values()),
            input_size=joint.input_size,
        )
        plain.compile(keras.optimizers.Adam(1e-3))
        data = next(iter(joint.datasets(batch)))
        labelled = (data[0], {k: v for k, v in data[1].items() if k != "scene"})
        feeds = {name: (m, data) for name, m in methods.items()}
        best, median = _step_times({**feeds, "MT step": (plain, labelled)})
        print(
            f"\nmgm22/mgm.gin, {label}, batch {batch}: traced train_step, best of "
            f"{FLAGS.rounds} alternating rounds"
        )
        for name, value in best.items():
            print(f"  {name:<17} {1000 * value:9.1f} ms/step (median {1000 * median[name]:.1f})")
        print(f"  ratio joint / MT:   {best['MGM joint step'] / best['MT step']:.2f}")
        print(
            f"  ratio stage 1 / MT: {best['MGM stage 1 step'] / best['MT step']:.3f} "
            "(target <= 1.05)"
        )


NEWELL20 = ("rotation", "vae", "cmc", "amdim")


def benchmark_newell20():
    import gin

    data_size = ["NUM_IMAGES = 256", "EVAL_IMAGES = 16"]  # a few renders: the step is measured
    settings = (
        ("small.gin: ResNet-9 at half width, batch 64", "", ["newell20/small.gin"], []),
        (
            "ResNet-9 at the paper's width (64-128-256-512), batch 32 (the code's: 256-512)",
            "",
            [],
            ["zoo.experiment.train.batch_size = 32"],
        ),
        (
            "ResNet-50 with reduced pooling at full width, batch 8 (the code's: 192-384)",
            "_r50",
            [],
            ["zoo.experiment.train.batch_size = 8"],
        ),
        (
            "small_scenes.gin: 64 px scenes, half-width ResNet-9 at stride 4, batch 64",
            "_scenes",
            ["newell20/small_scenes.gin"],
            [],
        ),
        (
            "128 px scenes, the paper's ResNet-9, batch 16 (the code's dense: 32-96)",
            "_scenes",
            [],
            ["zoo.experiment.train.batch_size = 16"],
        ),
    )
    for label, suffix, extra, bindings in settings:
        times = {}
        for name in NEWELL20:
            _parse(
                f"newell20/pretrain_{name}{suffix}.gin", *extra, bindings=[*data_size, *bindings]
            )
            tasks = gin.get_bindings("zoo.methods.MultiTask")["tasks"]
            batch = gin.get_bindings("zoo.experiment.train")["batch_size"]
            probed = _build(tasks)
            data = next(iter(probed.datasets(batch)))
            alone = _build(tasks[:1])
            own = {group: data[0][group] for group in alone.groups}
            feeds = {
                name: (alone, (own, {name: data[1][name]})),
                f"{name} + probes": (probed, data),
            }
            times.update(_step_times(feeds)[0])
        print(
            f"\nnewell20 pretrain_*{suffix}.gin, {label}: traced train_step, best of "
            f"{FLAGS.rounds} alternating rounds x {FLAGS.steps * 2} steps, next to rotation's"
        )
        for name in NEWELL20:
            for key in (name, f"{name} + probes"):
                print(
                    f"  {key:<18} {1000 * times[key]:8.1f} ms/step  ratio to rotation "
                    f"{times[key] / times['rotation']:.2f}"
                )


def _determinism_child(serial):
    import hashlib

    import gin
    import keras
    import tensorflow as tf

    from zoo import experiment
    from zoo.cli import gin_setup

    gin_setup.parse([os.path.join(ROOT, "gin_configs", "quickstart.gin")], [])
    if serial:
        assert experiment.run_ops_one_at_a_time("default")
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    model = gin.query_parameter("zoo.experiment.train.method").scoped_configurable_fn()
    model.compile(gin.query_parameter("zoo.experiment.train.optimizer").scoped_configurable_fn())
    data = model.datasets(16)
    model.fit(data, epochs=1, steps_per_epoch=1, verbose=0)  # traces
    steps = FLAGS.steps * 8
    start = time.perf_counter()
    model.fit(data, epochs=1, steps_per_epoch=steps, verbose=0)
    rate = steps / (time.perf_counter() - start)
    digest = hashlib.sha256(b"".join(v.numpy().tobytes() for v in model.variables))
    print(f"RESULT {rate} {digest.hexdigest()[:12]}")


def benchmark_determinism():
    import subprocess
    import sys

    if FLAGS.child:
        return _determinism_child(FLAGS.child == "serial")
    rates, digests = {"serial": [], "default": []}, {"serial": set(), "default": set()}
    for r in range(FLAGS.rounds):
        for name in rates:
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "determinism",
                    f"--child={name}",
                    f"--steps={FLAGS.steps}",
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT"))
            rate, digest = line.split()[1:]
            rates[name].append(float(rate))
            digests[name].add(digest)
        print(
            f"round {r + 1}/{FLAGS.rounds}: "
            + ", ".join(f"{n} {v[-1]:.2f} steps/s" for n, v in rates.items())
        )
    median = {n: statistics.median(v) for n, v in rates.items()}
    print(
        f"\nquickstart training, {FLAGS.steps * 8} steps per process, {FLAGS.rounds} "
        "processes per setting (median)"
    )
    for name in rates:
        print(
            f"  inter-op {'1' if name == 'serial' else 'default':<8} {median[name]:6.2f} "
            f"steps/s, {len(digests[name])} different final weights"
        )
    print(f"  ratio one-at-a-time / default: {median['serial'] / median['default']:.3f}")


def _peak_rss_mib():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# `data`: the scenes of the memory measurement (fewer and smaller with --quick)
DATA_FULL = {"sizes": (1000, 20000), "resolution": 128, "doersch_batches": 20}
DATA_QUICK = {"sizes": (250, 5000), "resolution": 32, "doersch_batches": 0}
DATA_BATCH = 64


def _data_settings():
    return DATA_QUICK if FLAGS.quick else DATA_FULL


def _data_model(num, resolution):
    """The depth task over `num` cached scenes with a tiny trunk, compiled."""
    import keras

    from zoo.data.synthetic import SceneSpec
    from zoo.methods import MultiTask
    from zoo.tasks import Depth
    from zoo.trunks import resnet9

    spec = SceneSpec(variant="TCVL", mode="multi", resolution=resolution)
    task = Depth(spec, num_examples=num, eval_examples=64, head_width=16)
    keras.utils.set_random_seed(0)
    shape = (resolution, resolution, 3)
    trunk = resnet9(width_multiplier=0.125, input_shape=shape, stop_at="block2")
    model = MultiTask(trunk, [task], input_size=resolution)
    model.compile(keras.optimizers.Adam(1e-3))
    return model


def _data_epoch_child(num):
    """One training epoch of the depth task over `num` cached scenes."""
    model = _data_model(num, _data_settings()["resolution"])
    before = _peak_rss_mib()
    steps = num // DATA_BATCH
    model.fit(model.datasets(DATA_BATCH), epochs=1, steps_per_epoch=steps, verbose=0)
    print(f"RESULT {before:.0f} {_peak_rss_mib():.0f}")


def _doersch_child():
    """Builds the data of doersch17/lasso_pretrain.gin at its full defaults and draws
    `doersch_batches` batches of every task (scenes rendered on the fly: nothing is
    cached)."""
    import gin

    count = DATA_FULL["doersch_batches"]
    _parse("doersch17/lasso_pretrain.gin", bindings=['zoo.data.Synthetic.storage = "render"'])
    tasks = gin.get_bindings("zoo.methods.MultiTask")["tasks"]
    batch = gin.query_parameter("zoo.experiment.train.batch_size")
    for task in tasks:
        start = time.perf_counter()
        shapes = [tuple(x.shape) for x, _ in task.pipeline("train", batch).take(count)]
        print(
            f"  {task.name:<22} {task.num_examples} scenes of {task.data_source('train')}: "
            f"{count} batches of {shapes[0]} in {time.perf_counter() - start:.0f} s, "
            f"peak RSS so far {_peak_rss_mib():.0f} MiB",
            flush=True,
        )


def _seconds_per_scene(spec, count=64):
    """Seconds the renderer takes per scene of `spec` (all workers): the time of `count`
    scenes beyond that of 4 (which is mostly the workers' start)."""
    from zoo.data import Synthetic

    def seconds(num):
        start = time.perf_counter()
        for _ in Synthetic(spec, num, storage="render").examples(["image", "depth"]):
            pass
        return time.perf_counter() - start

    few = seconds(4)
    return max(seconds(4 + count) - few, 1e-3) / count


def _data_plan(settings):
    """Prints what `data` will do and how long it should take; returns the estimate (s)."""
    import gin

    from zoo.data import cache
    from zoo.data.synthetic import SceneSpec

    print("benchmark data: the plan (estimates from a few scenes and steps timed now)")
    resolution = settings["resolution"]
    spec = SceneSpec(variant="TCVL", mode="multi", resolution=resolution)
    per_scene = _seconds_per_scene(spec)
    model = _data_model(DATA_BATCH * 3, resolution)
    data = model.datasets(DATA_BATCH)
    _fit_rate(model, data, 1)
    per_step = 1 / _fit_rate(model, data, 2)
    total = 0.0
    for num in settings["sizes"]:
        cached = cache.find(spec, num, ["image", "depth"]) is not None
        render = 0 if cached else num * per_scene
        epoch = 20 + num // DATA_BATCH * per_step  # a fresh process, then the epoch
        total += render + epoch
        where = "in the data cache" if cached else f"to render, ~{render:.0f} s"
        print(
            f"  (1) {num} scenes at {resolution} px ({where}); one epoch of "
            f"{num // DATA_BATCH} steps in a fresh process, ~{epoch:.0f} s"
        )
    _parse("quickstart.gin")
    tasks = gin.get_bindings("zoo.methods.MultiTask")["tasks"]
    quick_spec = tasks[0].data_source("train").spec
    missing = sum(
        t.num_examples + t.eval_examples
        for t in tasks[:1]
        if cache.find(quick_spec, t.num_examples, ["image"]) is None
    )
    quickstart = 60 + missing * _seconds_per_scene(quick_spec)
    total += quickstart
    print(f"  (2) the quickstart's input pipeline against its training step, ~{quickstart:.0f} s")
    if settings["doersch_batches"]:
        _parse("doersch17/lasso_pretrain.gin", bindings=['zoo.data.Synthetic.storage = "render"'])
        tasks = gin.get_bindings("zoo.methods.MultiTask")["tasks"]
        batch = gin.query_parameter("zoo.experiment.train.batch_size")
        big = tasks[0].data_source("train").spec
        per_big = _seconds_per_scene(big, 16)
        scenes = 0
        for task in tasks:
            source = task.data_source("train")
            fill = source.shuffle_buffer(task.required)  # filled before the first batch
            scenes += min(len(source), fill + settings["doersch_batches"] * batch)
        doersch = scenes * per_big
        total += doersch
        print(
            f"  (3) doersch17/lasso_pretrain.gin at full defaults: {len(tasks)} tasks, "
            f"{settings['doersch_batches']} batches of {batch} each after their shuffle "
            f"buffers fill, ~{scenes} scenes at {big.size} px rendered on the fly "
            f"({per_big * 1000:.0f} ms each), ~{doersch:.0f} s"
        )
    else:
        print("  (3) skipped with --quick (doersch17/lasso_pretrain.gin at full defaults)")
    print(f"  estimated total: ~{total / 60:.0f} min\n", flush=True)
    gin.clear_config()  # the configs parsed for the estimate bind nothing measured below
    return total


def benchmark_data():
    import subprocess
    import sys

    if FLAGS.child == "doersch":
        return _doersch_child()
    if FLAGS.child:
        return _data_epoch_child(int(FLAGS.child))
    settings = _data_settings()
    began = time.perf_counter()
    estimate = _data_plan(settings)

    # 1. Memory of a training epoch does not grow with the number of scenes.
    from zoo.data import Synthetic
    from zoo.data.synthetic import SceneSpec

    peaks = {}
    resolution = settings["resolution"]
    small, large = settings["sizes"]
    for num in settings["sizes"]:
        spec = SceneSpec(variant="TCVL", mode="multi", resolution=resolution)
        start = time.perf_counter()
        source = Synthetic(spec, num, storage="cache")
        source.examples(["image", "depth"])  # renders into the data cache once
        print(
            f"{num} scenes at {resolution} px in the data cache "
            f"({time.perf_counter() - start:.0f} s)"
        )
        start = time.perf_counter()
        quick = ["--quick"] if FLAGS.quick else []
        out = subprocess.run(
            [sys.executable, __file__, "data", f"--child={num}", *quick],
            capture_output=True,
            text=True,
            check=True,
        )
        line = next(x for x in out.stdout.splitlines() if x.startswith("RESULT"))
        before, peak = map(float, line.split()[1:])
        peaks[num] = peak
        print(
            f"  one epoch ({num // DATA_BATCH} steps of {DATA_BATCH}) in "
            f"{time.perf_counter() - start:.0f} s: peak RSS {peak:.0f} MiB ({before:.0f} MiB "
            "before the epoch)"
        )
    ratio = peaks[large] / peaks[small]
    print(f"  peak RSS ratio {large} / {small} scenes: {ratio:.2f} (target < 1.5)")

    # 2. The quickstart's input pipeline against its training step.
    import gin

    _parse("quickstart.gin")
    tasks = gin.get_bindings("zoo.methods.MultiTask")["tasks"]
    _pipeline_against_training(tasks, gin.query_parameter("zoo.experiment.train.batch_size"))

    # 3. doersch17/lasso_pretrain.gin at its full defaults (20k scenes at 256 px).
    if settings["doersch_batches"]:
        print(
            f"\ndoersch17/lasso_pretrain.gin at full defaults, {settings['doersch_batches']} "
            "batches per task:"
        )
        out = subprocess.run(
            ["/usr/bin/time", "-v", sys.executable, __file__, "data", "--child=doersch"],
            capture_output=True,
            text=True,
            check=True,
        )
        print(out.stdout.rstrip())
        peak = next(x for x in out.stderr.splitlines() if "Maximum resident set size" in x)
        print(f"  /usr/bin/time -v: {peak.strip()} (target < 4 GB)")
    taken = time.perf_counter() - began
    print(f"\nbenchmark data took {taken / 60:.1f} min (estimated {estimate / 60:.1f} min)")


SCALE_GLOBAL_BATCH = 16


def _scale_child(kind):
    """Steps/s of the quickstart's training in this process: `kind` "one" (global batch,
    this process's cores), "half" (half the batch) or "worker" (a worker of TF_CONFIG's
    cluster, the global batch shared); through the zoo's loop after a traced epoch."""
    import keras
    import tensorflow as tf

    from zoo import experiment
    from zoo.experiment import loop

    strategy = experiment.make_strategy("multi_worker" if kind == "worker" else "default")
    _parse("quickstart.gin")
    import gin

    keras.utils.set_random_seed(0)
    batch = SCALE_GLOBAL_BATCH // (2 if kind == "half" else 1)
    with strategy.scope():
        model = gin.query_parameter("zoo.experiment.train.method").scoped_configurable_fn()
        model.compile(keras.optimizers.SGD(0.01))
    data = loop.replica_batches(model.datasets, batch, strategy)
    times = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    steps = FLAGS.steps * 4
    loop.fit(
        model,
        data,
        strategy,
        initial_epoch=0,
        epochs=2,
        steps_per_epoch=steps,
        callbacks=[Timer()],
        verbose=0,
    )
    del tf
    print(f"RESULT {steps / times[-1]}")


def _scale_processes():
    """Median steps/s of each setting over FLAGS.rounds rounds of fresh processes."""
    import subprocess
    import sys

    from zoo.cli.launch_local import cluster_env, free_ports

    def child(kind, cores, env=None):
        return subprocess.Popen(
            [sys.executable, __file__, "scale", f"--child={kind}", f"--steps={FLAGS.steps}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=dict(os.environ, **(env or {})),
            preexec_fn=lambda: os.sched_setaffinity(0, cores),
        )

    def rate(process):
        out, err = process.communicate()
        if process.returncode:
            raise RuntimeError(err[-2000:])
        return float(next(x for x in out.splitlines() if x.startswith("RESULT")).split()[1])

    cores = sorted(os.sched_getaffinity(0))[:2]
    rates = {"one": [], "workers": [], "half": []}
    for r in range(FLAGS.rounds):
        rates["one"].append(rate(child("one", cores)))
        ports = free_ports(2)
        workers = [child("worker", [c], cluster_env(ports, i)) for i, c in enumerate(cores)]
        rates["workers"].append(min(rate(w) for w in workers))
        rates["half"].append(rate(child("half", cores[:1])))
        print(
            f"round {r + 1}/{FLAGS.rounds}: "
            + ", ".join(f"{n} {v[-1]:.2f} steps/s" for n, v in rates.items()),
            flush=True,
        )
    return {n: statistics.median(v) for n, v in rates.items()}, len(cores)


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            flags_line = next(line for line in f if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown (no /proc/cpuinfo)"
    present = set(flags_line.split(":", 1)[1].split())
    wanted = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile")
    return ", ".join(f"{f} {'yes' if f in present else 'no'}" for f in wanted)


def _precision_steps():
    """Seconds per traced train step of the quickstart's method in each precision."""
    import gin
    import keras

    from zoo.experiment.runtime import precision_policy

    _parse("quickstart.gin")
    feeds = {}
    for precision in ("float32", "mixed_bfloat16", "mixed_float16"):
        keras.utils.set_random_seed(0)
        with precision_policy(precision):
            model = gin.query_parameter("zoo.experiment.train.method").scoped_configurable_fn()
            model.compile(keras.optimizers.SGD(0.01))
            feeds[precision] = (model, next(iter(model.datasets(SCALE_GLOBAL_BATCH))))
    return _step_times(feeds)


def benchmark_scale():
    if FLAGS.child:
        return _scale_child(FLAGS.child)
    rates, cores = _scale_processes()
    print(
        f"\nquickstart training, global batch {SCALE_GLOBAL_BATCH}, {FLAGS.steps * 4} timed "
        f"steps per process, {FLAGS.rounds} rounds (median)"
    )
    labels = {
        "one": f"one process, {cores} cores",
        "workers": "2 workers x 1 core",
        "half": "one process, 1 core, half batch",
    }
    for name, value in rates.items():
        batch = SCALE_GLOBAL_BATCH // (2 if name == "half" else 1)
        print(f"  {labels[name]:<32} {value:6.2f} steps/s {value * batch:8.1f} images/s")
    print(f"  ratio 2 workers / one process: {rates['workers'] / rates['one']:.3f}")
    share = 1 - rates["workers"] / rates["half"]
    print(f"  share of a 2-worker step beyond its own computation: {share:.0%}")
    best, median = _precision_steps()
    print(f"\nCPU: {_cpu_flags()}")
    print(f"quickstart train step, batch {SCALE_GLOBAL_BATCH} (best of {FLAGS.rounds} rounds)")
    for name, seconds in best.items():
        print(
            f"  {name:<16} {seconds * 1000:8.1f} ms/step (median {median[name] * 1000:.1f})"
            f"   x{seconds / best['float32']:.2f} of float32"
        )


BENCHMARKS = {
    "scale": benchmark_scale,
    "data": benchmark_data,
    "da": benchmark_da,
    "contrastive": benchmark_contrastive,
    "trunk": benchmark_trunk,
    "synthetic": benchmark_synthetic,
    "multitask": benchmark_multitask,
    "doersch": benchmark_doersch,
    "compl": benchmark_compl,
    "newell20": benchmark_newell20,
    "mgm": benchmark_mgm,
    "determinism": benchmark_determinism,
}


def main(argv):
    if len(argv) != 2 or argv[1] not in BENCHMARKS:
        raise app.UsageError(f"Usage: benchmark.py <{'|'.join(BENCHMARKS)}> [flags]")
    logging.set_verbosity(logging.ERROR)  # gin's include search, tf.function retrace notes
    BENCHMARKS[argv[1]]()


if __name__ == "__main__":
    app.run(main)
