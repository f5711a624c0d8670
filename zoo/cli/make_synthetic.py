r"""Renders a synthetic benchmark dataset into TFRecord shards, with a progress bar.

Usage:
    zoo-make-synthetic --variant=TCVL --mode=single --num=50000 \
        --out_dir=data/tcvl_single_train [--split=train --shards=16 --workers=2]

Writes shards `data-00000-of-00004.tfrecord`, ... and `spec.json` to --out_dir; read them back with
`zoo.data.read_tfrecords(out_dir)`. An existing dataset is kept unless --overwrite.
"""

import os

from absl import flags

import zoo  # noqa: F401  (selects the TensorFlow backend)
import zoo.cli
from zoo.cli import synthetic_flags

FLAGS = flags.FLAGS
synthetic_flags.define(default_mode="single")
flags.DEFINE_integer("num", 1000, "Number of examples.")
flags.DEFINE_integer("shards", 4, "Number of TFRecord files.")
flags.DEFINE_integer("workers", os.cpu_count() or 1, "Rendering processes.")
flags.DEFINE_bool("supersample", False, "2x2 rays per pixel for the RGB image.")
flags.DEFINE_bool("overwrite", False, "Replace an existing dataset in --out_dir.")
flags.DEFINE_string("out_dir", None, "Output folder.")
flags.mark_flag_as_required("out_dir")


def main(argv):
    del argv
    import time

    import keras

    from zoo.cli import user_errors
    from zoo.data.synthetic import write_tfrecords
    from zoo.errors import ExistingFile, first_line

    spec = synthetic_flags.spec(supersample=FLAGS.supersample)
    print(f"rendering {FLAGS.num} examples of {spec} with {FLAGS.workers} worker(s)")
    bar = keras.utils.Progbar(FLAGS.num, unit_name="image")
    start = time.perf_counter()
    with user_errors("zoo-make-synthetic"):
        try:
            paths = write_tfrecords(
                spec,
                FLAGS.num,
                FLAGS.out_dir,
                shards=FLAGS.shards,
                workers=FLAGS.workers,
                overwrite=FLAGS.overwrite,
                progress=lambda done: bar.update(done),
            )
        except ExistingFile as error:  # the flag that replaces it
            raise ExistingFile(f"{first_line(error)} (flag: --overwrite)") from None
    seconds = time.perf_counter() - start
    print(
        f"wrote {FLAGS.num} examples to {len(paths)} shards in {FLAGS.out_dir} "
        f"({FLAGS.num / seconds:.1f} images/s)"
    )


def run():
    zoo.cli.run(main, __name__)


if __name__ == "__main__":
    run()
