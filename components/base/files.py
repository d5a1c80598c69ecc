"""The framework's file system layer: local paths and URLs (gs://, ram://, ...) alike.

A local path goes through `os` (atomic renames, fsync); anything with a scheme goes through
TensorFlow's file systems (`tf.io.gfile`: gs:// built in, s3:// and hdfs:// with tensorflow-io,
ram:// in memory), imported only then so that reading a contract never loads TensorFlow. An
object store has no rename-into-place, but writing one object is atomic there, so a JSON file
is written directly. Paths are strings; a URL keeps its `scheme://` (pathlib would fold it).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import shutil
from typing import Any, Iterator

from components.base.errors import UserError

_CHUNK = 1 << 20


def is_remote(path: str | os.PathLike) -> bool:
    return "://" in os.fspath(path)


def normalise(path: str | os.PathLike) -> str:
    """An absolute local path, or a URL without a trailing slash."""
    text = os.fspath(path)
    return text.rstrip("/") if is_remote(text) else os.path.abspath(text)


def join(folder: str | os.PathLike, *names: str) -> str:
    folder = os.fspath(folder)
    if is_remote(folder):
        return "/".join([folder.rstrip("/"), *names])
    return os.path.join(folder, *names)


def name_of(path: str | os.PathLike) -> str:
    return os.fspath(path).rstrip("/").rsplit("/", 1)[-1]


def _gfile():
    import tensorflow as tf
    return tf.io.gfile


def exists(path: str | os.PathLike) -> bool:
    return _gfile().exists(os.fspath(path)) if is_remote(path) else os.path.exists(path)


def isdir(path: str | os.PathLike) -> bool:
    return _gfile().isdir(os.fspath(path)) if is_remote(path) else os.path.isdir(path)


def isfile(path: str | os.PathLike) -> bool:
    return exists(path) and not isdir(path)


def listdir(folder: str | os.PathLike) -> list[str]:
    """The names in `folder` ([] when it does not exist)."""
    if not isdir(folder):
        return []
    if is_remote(folder):
        return sorted(name.rstrip("/") for name in _gfile().listdir(os.fspath(folder)))
    return sorted(os.listdir(folder))


def walk_files(folder: str | os.PathLike) -> Iterator[str]:
    """Every file under `folder`, as a path relative to it with "/" separators, sorted."""
    folder = os.fspath(folder)
    walker = _gfile().walk(folder) if is_remote(folder) else os.walk(folder)
    found = []
    for directory, _, names in walker:
        relative = directory[len(folder):].strip("/").replace(os.sep, "/")
        found += [f"{relative}/{n}" if relative else n for n in names]
    return iter(sorted(found))


def makedirs(folder: str | os.PathLike) -> None:
    if is_remote(folder):
        _gfile().makedirs(os.fspath(folder))
    else:
        os.makedirs(folder, exist_ok=True)


def remove(path: str | os.PathLike) -> None:
    """Delete a file or a whole folder (nothing when it is not there)."""
    if is_remote(path):
        gfile = _gfile()
        if gfile.isdir(os.fspath(path)):
            gfile.rmtree(os.fspath(path))
        elif gfile.exists(os.fspath(path)):
            gfile.remove(os.fspath(path))
    elif os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def replace(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Move `source` to `target`, replacing a file there (one rename on a local disk)."""
    if not is_remote(source):
        os.replace(source, target)
        return
    gfile = _gfile()
    if not gfile.isdir(os.fspath(source)):
        gfile.rename(os.fspath(source), os.fspath(target), overwrite=True)
        return
    remove(target)   # an object store has no folders to rename: copy file by file
    copy_tree(source, target)
    gfile.rmtree(os.fspath(source))


def copy_tree(source: str | os.PathLike, target: str | os.PathLike) -> None:
    """Copy every file under `source` to the same place under `target` (either may be a URL)."""
    for relative in walk_files(source):
        destination = join(target, *relative.split("/"))
        makedirs(join(target, *relative.split("/")[:-1]))
        if is_remote(source) or is_remote(destination):
            _gfile().copy(join(source, relative), destination, overwrite=True)
        else:
            shutil.copy2(join(source, relative), destination)


def read_bytes(path: str | os.PathLike) -> bytes:
    if is_remote(path):
        if not _gfile().exists(os.fspath(path)):  # as open() says it for a local path
            raise FileNotFoundError(os.fspath(path))
        with _gfile().GFile(os.fspath(path), "rb") as f:
            return f.read()
    with open(path, "rb") as f:
        return f.read()


def size(path: str | os.PathLike) -> int:
    return _gfile().stat(os.fspath(path)).length if is_remote(path) else os.path.getsize(path)


def stream_sha256(stream) -> str:
    """Hex sha256 of a binary stream read to its end."""
    digest = hashlib.sha256()
    while chunk := stream.read(_CHUNK):
        digest.update(chunk)
    return digest.hexdigest()


def sha256(path: str | os.PathLike) -> str:
    opener = _gfile().GFile(os.fspath(path), "rb") if is_remote(path) else open(path, "rb")
    with opener as f:
        return stream_sha256(f)


def write_json_atomic(path: str | os.PathLike, value: Any) -> None:
    """Write JSON so that a reader never sees half of it: on a local disk via a temp file in the
    same folder and an atomic rename; an object store writes one object atomically."""
    text = json.dumps(value, indent=2, sort_keys=True, default=json_default) + "\n"
    path = os.fspath(path)
    if is_remote(path):
        makedirs(path.rsplit("/", 1)[0])
        with _gfile().GFile(path, "w") as f:
            f.write(text)
        return
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    # os.open applies the umask to 0o666 (like any file Beam or Keras writes); mkstemp's 0o600
    # would leave completion records unreadable to the group.
    tmp = os.path.join(folder, f".{os.path.basename(path)}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_json(path: str | os.PathLike, what: str = "file") -> Any:
    """Read JSON; a missing or unreadable file is a `UserError` naming it."""
    try:
        return json.loads(read_bytes(path))
    except FileNotFoundError:
        raise UserError(f"{what} {os.fspath(path)} does not exist") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{what} {os.fspath(path)} is not valid JSON ({e}); delete it and re-run "
                        "the stage that writes it") from None


def canonical_hash(value: Any) -> str:
    """sha256 of the canonical JSON form of `value`."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=json_default)
    return hashlib.sha256(text.encode()).hexdigest()


def json_default(value):
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if dataclasses.is_dataclass(value):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")
