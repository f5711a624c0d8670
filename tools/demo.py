"""Tour of the zoo's foundation: harmonized photos -> ResNet trunk -> lasso-mixed block-3 units.

Builds Doersch & Zisserman's trunk (ResNet-v2 cut at block 3, stride 8 by atrous
convolution; narrow by default so it runs in seconds on a CPU), feeds it photographs
that scikit-image ships, harmonized to Lab lightness, prints every endpoint with its
shape and stride, mixes the block-3 units for the four pretext tasks with `LassoMix`,
adds a row for an evaluation task, and prints the α matrix, its row norms and the
lasso penalty.

Usage:
    python tools/demo.py [--depth=101 --width_multiplier=0.125 --image_size=96]
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

from absl import app, flags  # noqa: E402

import zoo  # noqa: E402,F401  (selects the TensorFlow backend)

FLAGS = flags.FLAGS
flags.DEFINE_enum("depth", "101", ["26", "50", "101", "152"], "ResNet-v2 depth.")
flags.DEFINE_float("width_multiplier", 0.125, "Trunk width (1.0 = the paper's ResNet-101).")
flags.DEFINE_integer("image_size", 96, "Photos are resized and centre-cropped to this size.")
flags.DEFINE_list("tasks", ["rp", "col", "ex", "ms"], "Names of the α rows.")
flags.DEFINE_string("harmonizer", "lab_l3", "identity | lab_l3 | drop_color | replicate_channel")
flags.DEFINE_float("l1", 1e-3, "Lasso penalty weight.")


def _print_alpha(mix, title):
    import numpy as np

    alpha = mix.alphas()
    print(f"\n{title}  (rows: tasks, columns: block-3 units 1..{alpha.shape[1]})")
    for name, row in zip(mix.task_names, alpha):
        cells = " ".join(f"{v:+.2f}" for v in row)
        print(f"  {name:>4} |α|₂={np.linalg.norm(row):.3f}  {cells}")
    penalty = mix.l1 * np.abs(alpha).sum()
    print(f"  lasso penalty l1·Σ|α| = {mix.l1:g} x {np.abs(alpha).sum():.3f} = {penalty:.5f}")


def main(argv):
    del argv
    import keras
    import tensorflow as tf

    from zoo.data import harmonize_dataset, harmonizer, skimage_photos
    from zoo.layers import LassoMix
    from zoo.trunks import resnet

    keras.utils.set_random_seed(0)
    photos = skimage_photos(size=FLAGS.image_size)
    photos = harmonize_dataset(photos, harmonizer(FLAGS.harmonizer), seed=0)
    batch = next(iter(photos.batch(64)))
    images = batch["image"]
    names = [p.decode().rsplit("/", 1)[-1] for p in batch["path"].numpy()]
    print(
        f"{len(names)} photos from scikit-image ({', '.join(names)}), "
        f"{FLAGS.image_size}px, harmonizer={FLAGS.harmonizer}"
    )

    depth = int(FLAGS.depth)
    trunk = resnet(
        depth, version=2, stop_at="block3", output_stride=8, width_multiplier=FLAGS.width_multiplier
    )
    endpoints = trunk(images, training=False)
    print(
        f"\nresnet({depth}, version=2, stop_at='block3', output_stride=8, "
        f"width_multiplier={FLAGS.width_multiplier}): {trunk.count_params():,} parameters"
    )
    print(f"  {'endpoint':<16} {'shape':<22} stride")
    for key, value in endpoints.items():
        stride = FLAGS.image_size / value.shape[1]
        print(f"  {key:<16} {str(tuple(value.shape)):<22} {stride:g}")

    keys = [k for k in endpoints if k.startswith("block3/unit_")]
    units = [endpoints[k] for k in keys]
    mix = LassoMix(FLAGS.tasks, l1=FLAGS.l1, init="uniform", name="lasso")
    mixed = mix(units)
    print(
        f"\nLassoMix over {len(keys)} block-3 units -> "
        + ", ".join(f"{k}: {tuple(v.shape)}" for k, v in mixed.items())
    )
    _print_alpha(mix, "α at initialisation (uniform 1/√M)")

    # Evaluation tasks get rows of their own on the same (frozen) units.
    mix.add_tasks(["eval"], init="last")
    check = mix(units)["eval"]
    print(
        f"\nadd_tasks(['eval'], init='last'): the eval row reads block3/unit_{len(units)} "
        f"(max |difference| {float(tf.reduce_max(tf.abs(check - units[-1]))):.1e})"
    )
    _print_alpha(mix, "α with the evaluation row")


if __name__ == "__main__":
    app.run(main)
