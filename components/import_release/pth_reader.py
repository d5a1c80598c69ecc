"""Reading PyTorch state_dict files (.pth) without PyTorch and without running pickled code.

A .pth file written by `torch.save(module.state_dict(), path)` is a Python pickle of an
OrderedDict name -> tensor, whose tensors point at raw storages kept beside the pickle:
  - zip format (PyTorch >= 1.6): <prefix>/data.pkl, the storages in <prefix>/data/<key>, the
    byte order in <prefix>/byteorder (little when absent);
  - legacy format (older PyTorch, e.g. the 1.1 the authors' release was tested with): a magic
    number, a protocol version and a system-info dict, each a small pickle, then the state_dict
    pickle, then the list of storage keys, then each storage as an int64 element count
    followed by its bytes.

A plain unpickler calls whatever global a pickle names, so a crafted .pth runs code on load.
`RestrictedUnpickler` resolves only the few globals a state_dict needs -- OrderedDict, the
tensor-rebuild functions and the storage types -- to functions of this module that build numpy
arrays; any other global is refused with `UnsafePickleError`, before anything runs.
"""
from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from components.base import UserError

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

# torch's storage classes -> the numpy element type of their data (byte order applied later).
STORAGE_DTYPES = {
    "FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2",
    "LongStorage": "i8", "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?",
}


class UnsafePickleError(UserError):
    """A .pth file names a global that a state_dict never needs."""


@dataclass(frozen=True)
class StorageType:
    """What the pickle's `torch.<X>Storage` global resolves to."""
    name: str

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(STORAGE_DTYPES[self.name])


@dataclass(frozen=True)
class StorageRef:
    """A persistent id of the pickle: which raw storage a tensor reads, and its type."""
    key: str
    type: StorageType
    numel: int


@dataclass(frozen=True)
class TensorRef:
    """A tensor of the pickle, before its storage bytes are read."""
    storage: StorageRef
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    """Stands in for torch._utils._rebuild_tensor(_v2): records where the tensor's data is."""
    if not isinstance(storage, StorageRef):
        raise pickle.UnpicklingError("a tensor whose storage is not a storage reference")
    return TensorRef(storage, int(storage_offset), tuple(int(s) for s in size),
                     tuple(int(s) for s in stride))


def _rebuild_parameter(data, *_ignored):
    """Stands in for torch._utils._rebuild_parameter: a Parameter is its tensor."""
    return data


ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): StorageType(name) for name in STORAGE_DTYPES},
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles a state_dict; refuses every global outside ALLOWED_GLOBALS."""

    def __init__(self, file, source: str):
        super().__init__(file)
        self.source = source

    def find_class(self, module, name):
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.source} was not loaded: its pickle names the global {module}.{name}, "
                "which a PyTorch state_dict never needs (only tensors, storages and ordered "
                "dicts). The file is not a weights file as the authors' training scripts save "
                "them, or it was tampered with; download it again from the authors' release"
            ) from None

    def persistent_load(self, pid):
        # ("storage", type, key, location, numel) in the zip format; the legacy format adds
        # view metadata, None for every tensor PyTorch >= 0.4 writes.
        if (not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage"
                or not isinstance(pid[1], StorageType) or (len(pid) == 6 and pid[5] is not None)):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        return StorageRef(str(pid[2]), pid[1], int(pid[4]))


def _unpickle(data: bytes | io.BufferedIOBase, source: str):
    file = io.BytesIO(data) if isinstance(data, bytes) else data
    return RestrictedUnpickler(file, source).load()


def read_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """name -> numpy array of a .pth state_dict file (zip or legacy format)."""
    path = Path(path)
    try:
        if zipfile.is_zipfile(path):
            return _read_zip(path)
        with open(path, "rb") as f:
            return _read_legacy(f, path)
    except UserError:
        raise
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, TypeError,
            KeyError, struct.error) as e:
        raise UserError(f"{path} is not a readable PyTorch state_dict file ({type(e).__name__}: "
                        f"{str(e)[:200]}); it is truncated or not one of the release's .pth "
                        "files: download it again") from None


def _read_zip(path: Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pickles) != 1:
            raise UserError(f"{path} is a zip file but not a PyTorch save (no single data.pkl "
                            "inside); pass the release's .pth files")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = "little"
        if f"{prefix}byteorder" in names:
            byteorder = archive.read(f"{prefix}byteorder").decode().strip()
        state = _unpickle(archive.read(pickles[0]), str(path))

        def storage_bytes(ref: StorageRef) -> bytes:
            return archive.read(f"{prefix}data/{ref.key}")

        return _materialise(state, storage_bytes, byteorder, path)


def _read_legacy(f, path: Path) -> dict[str, np.ndarray]:
    source = str(path)
    if _unpickle(f, source) != LEGACY_MAGIC:
        raise UserError(f"{path} is neither a zip nor a legacy PyTorch save (wrong magic "
                        "number); pass the release's .pth files")
    if _unpickle(f, source) != LEGACY_PROTOCOL:
        raise UserError(f"{path}: unsupported legacy PyTorch save protocol")
    info = _unpickle(f, source)
    byteorder = "little" if not isinstance(info, dict) or info.get("little_endian", True) else "big"
    state = _unpickle(f, source)
    keys = _unpickle(f, source)
    refs = {ref.key: ref for ref in _storage_refs(state)}
    blobs = {}
    for key in keys:
        (count,) = struct.unpack("<q", f.read(8))  # torch writes the element count little-endian
        ref = refs.get(str(key))
        itemsize = ref.type.dtype.itemsize if ref else 0
        if ref is None or count != ref.numel:
            raise UserError(f"{path}: storage {key} does not match the tensors that use it; "
                            "the file is damaged: download it again")
        blobs[str(key)] = f.read(count * itemsize)
    return _materialise(state, lambda ref: blobs[ref.key], byteorder, path)


def _storage_refs(state) -> list[StorageRef]:
    if not isinstance(state, dict):
        return []
    return [v.storage for v in state.values() if isinstance(v, TensorRef)]


def _materialise(state, storage_bytes, byteorder: str, path: Path) -> dict[str, np.ndarray]:
    if not isinstance(state, dict):
        raise UserError(f"{path} holds a {type(state).__name__}, not a state_dict (name -> "
                        "tensor); pass the module files the release's training scripts save")
    order = "<" if byteorder == "little" else ">"
    arrays = {}
    for name, value in state.items():
        if not isinstance(value, TensorRef):
            raise UserError(f"{path}: entry {name!r} is a {type(value).__name__}, not a tensor")
        ref = value.storage
        dtype = ref.type.dtype.newbyteorder(order)
        data = storage_bytes(ref)
        if len(data) != ref.numel * dtype.itemsize:
            raise UserError(f"{path}: the storage of tensor {name!r} holds {len(data)} bytes, "
                            f"expected {ref.numel * dtype.itemsize}; the file is damaged")
        flat = np.frombuffer(data, dtype=dtype)
        arrays[str(name)] = _view(flat, value, name, path).astype(dtype.newbyteorder("="))
    return arrays


def _view(flat: np.ndarray, tensor: TensorRef, name, path) -> np.ndarray:
    """The tensor's elements: `shape` read from `flat` at `offset` with element `stride`s."""
    if any(s < 0 for s in tensor.shape + tensor.stride) or tensor.offset < 0:
        raise UserError(f"{path}: tensor {name!r} has a negative size, stride or offset")
    if 0 in tensor.shape:
        return np.zeros(tensor.shape, flat.dtype)
    last = tensor.offset + sum((n - 1) * s for n, s in zip(tensor.shape, tensor.stride))
    if last >= flat.size:
        raise UserError(f"{path}: tensor {name!r} reads past the end of its storage; "
                        "the file is damaged")
    start = flat[tensor.offset:]
    view = np.lib.stride_tricks.as_strided(
        start, shape=tensor.shape, strides=[s * flat.itemsize for s in tensor.stride],
        writeable=False)
    return np.array(view)
