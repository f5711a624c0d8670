"""The zoo's error types.

A `ZooError` is a problem the user can fix from its message alone: the message is one
line naming the parameter, file or folder at fault and what is allowed. The binaries
print it as `zoo-train: <message>` and exit with status 1; every other exception keeps
its traceback (it is a bug to report). The subclasses also derive from the built-in
type a caller would expect (`ValueError`, `TypeError`, `FileNotFoundError` ...).
"""


class ZooError(Exception):
    """Base of the errors whose message alone tells the user what to change."""

    def __str__(self):  # KeyError and OSError format their arguments otherwise
        return str(self.args[0]) if self.args else ""


class UserError(ZooError, ValueError):
    """A parameter or argument outside what is allowed."""


class UserTypeError(UserError, TypeError):
    """A parameter or argument of the wrong kind."""


class ConfigError(UserError):
    """A gin file or binding that cannot be used."""


class ConfigMismatch(UserError):
    """The model_dir holds a run of another configuration."""


class MissingFile(UserError, FileNotFoundError):
    """A file or folder the user named does not exist or holds the wrong thing."""


class ExistingFile(UserError, FileExistsError):
    """An output that would overwrite the user's files."""


class NotWritable(UserError, PermissionError):
    """An output folder that cannot be written."""


class InUse(UserError):
    """A run folder another process is writing."""


class Interrupted(ZooError):
    """A run stopped on request (Ctrl-C) after a finished step; the same command resumes it."""


class DataError(UserError):
    """Data files that cannot be read: corrupt records, missing entries."""


class MissingEntry(DataError, KeyError):
    """Examples without an entry a task needs."""


class TrainingDiverged(ZooError, RuntimeError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


def first_line(error: BaseException) -> str:
    """The message of `error` without the lines gin appends ("In call to configurable ...")."""
    text = str(error).strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
