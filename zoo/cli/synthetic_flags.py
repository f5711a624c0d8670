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


NAMES = ("variant", "mode", "split", "seed", "resolution")


def spec(**options):
    """The SceneSpec the flags describe, with extra SceneSpec options (an option named
    like a flag replaces it: the caller does not read that flag)."""
    from zoo.data.synthetic import SceneSpec
    from zoo.errors import UserError, first_line

    try:
        return SceneSpec(**{**{name: FLAGS[name].value for name in NAMES}, **options})
    except UserError as error:
        raise app.UsageError(first_line(error)) from None
