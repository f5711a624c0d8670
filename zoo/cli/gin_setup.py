"""Gin parsing shared by the binaries: files, bindings, and messages a user can act on."""

import io
import logging
import os
import re

import gin

# A file given to gin as "<absolute path>::" is read by `_read_beside`, which resolves
# its `include` statements against the file's own folder (recursively). gin alone looks
# them up in every folder ever added to its search path, first added first: a process
# that parsed doersch17/rp.gin and then ren_lee18/depth.gin would include
# doersch17/base.gin into the second.
_MARK = "::"
_INCLUDE = re.compile(r"""^(\s*include\s+)(['"])(.+?)\2""", re.MULTILINE)


def _beside(path):
    return path.endswith(_MARK) and os.path.isfile(path[: -len(_MARK)])


def _read_beside(path):
    path = path[: -len(_MARK)]
    folder = os.path.dirname(path)
    with open(path) as f:
        text = f.read()

    def resolve(match):
        target = os.path.join(folder, match.group(3))
        if not os.path.isfile(target):
            return match.group(0)  # left to gin's search path (e.g. a package resource)
        return f"{match.group(1)}{match.group(2)}{os.path.abspath(target)}{_MARK}{match.group(2)}"

    return io.StringIO(_INCLUDE.sub(resolve, text))


gin.config.register_file_reader(_read_beside, _beside)


class _QuietIncludeSearch(logging.Filter):
    """gin tries every search path of an `include` and, on the way, logs an error for
    each path that is not a Python package resource, even when a later one is found."""

    def filter(self, record):
        return not (
            record.pathname.endswith(os.path.join("gin", "resource_reader.py"))
            and record.getMessage().startswith("Path not found")
        )


logging.getLogger().addFilter(_QuietIncludeSearch())  # gin logs on the root logger


class ConfigError(ValueError):
    """A gin file or binding that cannot be used, with the reason."""


def parse(gin_files, gin_bindings):
    """Parses gin files and bindings; unknown configurables or parameters are errors.

    A file's `include` statements are resolved against its own folder first.

    Returns:
        The text of the configuration (files then bindings), used to recognise a run.
    """
    texts = []
    for path in gin_files:
        if not os.path.exists(path):
            raise ConfigError(f"gin file {path!r} does not exist.")
        with open(path) as f:
            texts.append(f"# file: {path}\n{f.read()}")
    if gin_bindings:
        texts.append("# bindings\n" + "\n".join(gin_bindings))
    try:
        gin.parse_config_files_and_bindings(
            [os.path.abspath(p) + _MARK for p in gin_files], gin_bindings, skip_unknown=False
        )
    except (ValueError, KeyError, SyntaxError) as error:
        raise ConfigError(f"gin: {error}") from None
    return "\n".join(texts) + "\n"
