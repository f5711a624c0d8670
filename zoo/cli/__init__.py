"""Command-line programs (absl binaries), installed as commands: `zoo-train`,
`zoo-finetune`, `zoo-export`, `zoo-predict`, `zoo-evaluate`, `zoo-sweep`,
`zoo-visualize`, `zoo-make-synthetic` (`tools/*.py` run the same programs from a
checkout)."""

import contextlib
import os

# Every command imports this package first, before TensorFlow: its C++ start-up chatter
# stays quiet unless the user asks for it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@contextlib.contextmanager
def user_errors(command: str):
    """The commands' shared start-up and error handling: absl logging at WARNING
    (TensorFlow's SavedModel chatter), and a ZooError (the user's to fix from its message
    alone) ends the program with "<command>: <its first line>"; any other exception keeps
    its traceback. A run stopped by Ctrl-C (Interrupted) prints its message the same way
    and exits with status 130, as a shell reports an interrupted program."""
    import sys

    from absl import logging

    from zoo.errors import Interrupted, ZooError, first_line

    logging.set_verbosity(logging.WARNING)
    try:
        yield
    except Interrupted as error:
        print(f"{command}: {first_line(error)}", file=sys.stderr)
        raise SystemExit(130) from None
    except ZooError as error:
        raise SystemExit(f"{command}: {first_line(error)}") from None


def refuse_unread_flags(program: str, command: str, reads: dict, flag_values=None):
    """Ends `program` with a usage error when a flag that subcommand `command` does not
    read was given: a program's subcommands share one set of flags (`reads` maps each to
    the flags it reads), and a flag given to the wrong one would otherwise be ignored."""
    from absl import flags

    given = flag_values or flags.FLAGS
    known = sorted({name for names in reads.values() for name in names})
    unread = [name for name in known if given[name].present and name not in reads[command]]
    if unread:
        readers = "; ".join(
            f"--{name} is read by {', '.join(c for c in reads if name in reads[c])}"
            for name in unread
        )
        raise SystemExit(
            f"{program}: {command} does not read {', '.join('--' + n for n in unread)} "
            f"({readers}). {command} reads: "
            f"{', '.join('--' + n for n in reads[command]) or 'no flags'}."
        )


def run(main, module_name: str):
    """`absl.app.run(main)` for the command defined in `module_name`: `--help` prints
    that module's docstring and its flags (a console script's own module, which absl
    shows, has neither)."""
    import sys

    from absl import app, flags

    module = sys.modules[module_name]
    entry = sys.modules["__main__"]
    if entry is not module:
        entry.__doc__ = module.__doc__
        for flag in flags.FLAGS.get_flags_for_module(module_name):
            flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
    app.run(main)
