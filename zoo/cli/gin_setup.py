"""Gin parsing shared by the binaries: files, bindings, and messages a user can act on."""

import io
import logging
import os
import re
import tokenize

import gin

import zoo.configurables  # noqa: F401  (every name a gin file can use)
from zoo.errors import ConfigError, first_line

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

    stream = io.StringIO(_INCLUDE.sub(resolve, text))
    stream.name = path  # gin's syntax errors name the file
    return stream


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


def _where(error, path=None):
    """ " (line N)", or " (in <file>, line N)" for an included file, of a syntax error."""
    filename, line = getattr(error, "filename", None), getattr(error, "lineno", None)
    if filename and path and os.path.abspath(filename) == os.path.abspath(path):
        filename = None
    parts = [p for p in (filename and f"in {filename}", line and f"line {line}") if p]
    return f" ({', '.join(parts)})" if parts else ""


def _one_line(error):
    return " ".join(str(error).strip("'\"").split())


def parse(gin_files, gin_bindings):
    """Parses gin files and bindings; unknown configurables or parameters are errors.

    A file's `include` statements are resolved against its own folder first. Errors
    name the file (or "bindings") and the line.

    Returns:
        The parsed configuration (`gin.config_str()`) after a comment naming the files
        and bindings: two spellings of one configuration give the same text apart from
        the comment, which is how a run is recognised.
    """
    for path in gin_files:
        if not os.path.exists(path):
            raise ConfigError(f"gin file {path!r} does not exist.")
        if not os.path.isfile(path):
            raise ConfigError(f"gin file {path!r} is a folder; give a .gin file.")
    for path in gin_files:
        try:
            gin.parse_config_file(os.path.abspath(path) + _MARK, skip_unknown=False)
        except SyntaxError as error:
            raise ConfigError(f"gin file {path}: {error.msg}{_where(error, path)}") from None
        except tokenize.TokenError as error:
            raise ConfigError(
                f"gin file {path} (or a file it includes): {error.args[0]} (a bracket or quote "
                "is not closed)"
            ) from None
        except (ValueError, KeyError, OSError) as error:
            raise ConfigError(f"gin file {path}: {_one_line(error)}") from None
    if gin_bindings:
        try:
            gin.parse_config(gin_bindings, skip_unknown=False)
        except SyntaxError as error:
            raise ConfigError(f"gin bindings: {error.msg}{_where(error)}") from None
        except tokenize.TokenError:
            raise ConfigError("gin bindings: a bracket or quote is not closed") from None
        except (ValueError, KeyError) as error:
            raise ConfigError(f"gin bindings: {_one_line(error)}") from None
    try:
        gin.finalize()
    except (ValueError, KeyError) as error:
        raise ConfigError(f"gin: {first_line(error)}") from None
    header = [f"# --gin_file={p}" for p in gin_files]
    header += [f"# --gin_bindings={b}" for b in gin_bindings]
    return "\n".join(header) + "\n" + gin.config_str()
