"""Gin parsing shared by the binaries: files, bindings, and messages a user can act on."""

import os

import gin


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
