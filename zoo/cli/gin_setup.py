"""Gin parsing shared by the binaries: files, bindings, and messages a user can act on."""

import logging
import os

import gin


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

    Each file's folder is on the search path of its `include` statements.

    Returns:
        The text of the configuration (files then bindings), used to recognise a run.
    """
    texts = []
    for path in gin_files:
        if not os.path.exists(path):
            raise ConfigError(f"gin file {path!r} does not exist.")
        gin.add_config_file_search_path(os.path.dirname(os.path.abspath(path)))
        with open(path) as f:
            texts.append(f"# file: {path}\n{f.read()}")
    if gin_bindings:
        texts.append("# bindings\n" + "\n".join(gin_bindings))
    try:
        gin.parse_config_files_and_bindings(gin_files, gin_bindings, skip_unknown=False)
    except (ValueError, KeyError, SyntaxError) as error:
        raise ConfigError(f"gin: {error}") from None
    return "\n".join(texts) + "\n"
