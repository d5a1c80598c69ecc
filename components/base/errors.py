"""Errors a user can cause and fix: the command line prints their message alone, no traceback."""
from __future__ import annotations

import os

# Characters Beam's FileSystems.match/delete and its file sinks read as wildcards (and
# TensorFlow's file listing too); a path holding one cannot be passed to them as data.
GLOB_CHARACTERS = "*?["


class UserError(Exception):
    """An error the user can cause and fix; the CLI prints the message alone, no traceback."""


class IncompleteArtifactError(UserError):
    """An input folder is missing or has no completion record."""


class ArtifactMismatchError(UserError):
    """A folder belongs to something else (another dataset or stage, not an artifact at all)."""


class ParameterError(UserError):
    """A parameter is unknown, missing or of the wrong type."""


class FolderBusyError(UserError):
    """Another process holds the folder's lock."""


def require_literal_path(path: str | os.PathLike, what: str = "output folder") -> None:
    """Refuse a path that the file APIs downstream would read as a wildcard pattern.

    Beam's file sinks use the output path both as a literal (the files they create) and as a
    pattern (the earlier shards they delete), so escaping cannot work: `exp*` would delete the
    shards of `exp1/` and `exp2/`. The path is refused instead, before anything is touched."""
    text = os.fspath(path)
    found = "".join(c for c in GLOB_CHARACTERS if c in text)
    if found:
        raise UserError(f"{what} {text!r} contains {' '.join(found)}, which Beam and TensorFlow "
                        "read as wildcards (it would match, and delete, files of other folders); "
                        "choose a path without * ? [ (rename the folder)")
