"""Pictures of zoo data and models, written as PNG files.

Usage:
    python tools/visualize.py synthetic --variant=TCVL --mode=multi --out=grid.png

`synthetic`: for `multi`, one row per scene with RGB, depth, normals, instances,
semantics and contours; for `single`, a grid of the ten classes x five pose bins; for
`motion`, both frames and the moving-pixel mask.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

import synthetic_flags  # noqa: E402
from absl import app, flags  # noqa: E402

import zoo  # noqa: E402,F401  (selects the TensorFlow backend)

FLAGS = flags.FLAGS
synthetic_flags.define(default_mode="multi")
flags.DEFINE_integer("num", 4, "Rows (multi and motion).")
flags.DEFINE_string("out", None, "Output PNG path.")


def synthetic():
    from zoo.data.synthetic.plots import plot

    spec = synthetic_flags.spec()
    out = FLAGS.out or f"synthetic_{FLAGS.mode}_{FLAGS.variant.replace('-', '_')}.png"
    plot(spec, out, num=FLAGS.num)
    print(f"wrote {out}")


COMMANDS = {"synthetic": synthetic}


def main(argv):
    if len(argv) != 2 or argv[1] not in COMMANDS:
        raise app.UsageError(f"Usage: visualize.py <{'|'.join(COMMANDS)}> [flags]")
    COMMANDS[argv[1]]()


if __name__ == "__main__":
    app.run(main)
