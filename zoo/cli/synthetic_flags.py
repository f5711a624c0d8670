"""Flags that describe a `SceneSpec`, shared by the binaries that render synthetic scenes."""

from absl import app, flags

FLAGS = flags.FLAGS


def define(default_mode):
    """Defines --variant, --mode, --split, --seed and --resolution."""
    flags.DEFINE_string("variant", "TCVL", "Factors of variation, e.g. '----', 'TC--', 'TCVL'.")
    flags.DEFINE_enum("mode", default_mode, ["single", "multi", "motion"], "Scene mode.")
    flags.DEFINE_enum("split", "train", ["train", "test"], "Model split.")
    flags.DEFINE_integer("seed", 0, "Dataset seed.")
    flags.DEFINE_integer("resolution", None, "Image size (default: 64 single, 128 otherwise).")


def spec(**options):
    """The SceneSpec the flags describe, with extra SceneSpec options."""
    from zoo.data.synthetic import SceneSpec
    from zoo.errors import UserError, first_line

    try:
        return SceneSpec(
            variant=FLAGS.variant,
            mode=FLAGS.mode,
            split=FLAGS.split,
            seed=FLAGS.seed,
            resolution=FLAGS.resolution,
            **options,
        )
    except UserError as error:
        raise app.UsageError(first_line(error)) from None
