"""MATLAB files as the datasets' own tools write them.

BP4D's 2DFeatures are MATLAB v7.3 files, i.e. HDF5 behind a 512-byte MATLAB header (the HDF5
"userblock"). A 1 x N struct array `fit` is an HDF5 group whose field `pred` is an HDF5 dataset of
N object references, each pointing into the `#refs#` group at one matrix. HDF5 is row-major and
MATLAB column-major, so MATLAB stores an r x c matrix as an HDF5 dataset of shape (c, r): a 49 x 2
landmark matrix (one row per point, columns x, y) appears in h5py as shape (2, 49). An empty
matrix (`[]`) is stored as its dimensions (uint64 [0, 0]) with the attribute MATLAB_empty = 1.

DISFA's landmark files are ordinary (v5) MAT-files that scipy.io reads and writes directly.

Pixel coordinates written by MATLAB tools are 1-based; this project is 0-based throughout.
"""
import h5py
import numpy as np
import scipy.io

MATLAB_V73_HEADER_BYTES = 512
_V73_HEADER_TEXT = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, written by pipeline.sources. HDF5 schema 1.00 ."


def from_matlab_pixels(points) -> np.ndarray:
    """1-based MATLAB pixel coordinates -> 0-based float32."""
    return (np.asarray(points, np.float64) - 1.0).astype(np.float32)


def to_matlab_pixels(points) -> np.ndarray:
    """0-based pixel coordinates -> 1-based float64, as MATLAB tools write them."""
    return np.asarray(points, np.float64) + 1.0


def write_v73_struct_field(path, struct: str, field: str, matrices) -> None:
    """Write `struct(k).field = matrices[k]` (k = 1..N) as MATLAB's `save -v7.3` lays it out.

    `matrices` holds 2-D arrays in MATLAB's orientation (rows x columns), or None for `[]`.
    """
    with h5py.File(path, "w", userblock_size=MATLAB_V73_HEADER_BYTES, libver="earliest") as f:
        refs = f.create_group("#refs#")
        references = []
        for k, matrix in enumerate(matrices):
            if matrix is None or np.size(matrix) == 0:
                target = refs.create_dataset(f"e{k}", data=np.zeros(2, np.uint64))
                target.attrs["MATLAB_empty"] = np.uint8(1)
            else:
                target = refs.create_dataset(f"e{k}", data=np.asarray(matrix, np.float64).T)
            target.attrs["MATLAB_class"] = np.bytes_("double")
            references.append(target.ref)
        group = f.create_group(struct)
        group.attrs["MATLAB_class"] = np.bytes_("struct")
        group.attrs.create("MATLAB_fields", _field_names([field]),
                           dtype=h5py.vlen_dtype(np.dtype("S1")))
        # A 1 x N struct array: each field is MATLAB N x 1 ... stored reversed, HDF5 shape (N, 1).
        group.create_dataset(field, data=np.array(references, dtype=h5py.ref_dtype).reshape(-1, 1))
    with open(path, "r+b") as f:
        f.write(_v73_header())


def read_v73_struct_field(path, struct: str, field: str) -> list[np.ndarray | None]:
    """Every `struct(k).field` in MATLAB's orientation (rows x columns), None where empty.

    Raises OSError/KeyError/ValueError when the file is not such a file; callers turn that into
    their own message.
    """
    with h5py.File(path, "r") as f:
        references = f[struct][field]
        if references.dtype != h5py.ref_dtype:
            raise ValueError(f"{struct}/{field} holds {references.dtype}, not object references")
        matrices = []
        # C-order over the HDF5 shape is MATLAB's linear (column-major) order over its reversed shape.
        for reference in references[()].reshape(-1):
            target = f[reference]
            if target.attrs.get("MATLAB_empty", 0) or target.size == 0:
                matrices.append(None)
            else:
                matrices.append(np.asarray(target[()]).T)
        return matrices


def write_v5_matrix(path, name: str, matrix) -> None:
    scipy.io.savemat(path, {name: np.asarray(matrix, np.float64)})


def read_v5_matrix(path, name: str) -> np.ndarray:
    """One variable of a v5 MAT-file; KeyError when the file lacks it."""
    return np.asarray(scipy.io.loadmat(path, variable_names=[name])[name])


def _v73_header() -> bytes:
    # MATLAB's MAT-file header: 116 bytes of text, 8 bytes subsystem offset, version 0x0200
    # (v7.3), endian indicator "IM" (little-endian), then zeros up to the HDF5 superblock.
    text = _V73_HEADER_TEXT.ljust(116, b" ")
    header = text + b"\x00" * 8 + (0x0200).to_bytes(2, "little") + b"IM"
    return header.ljust(MATLAB_V73_HEADER_BYTES, b"\x00")


def _field_names(names):
    # MATLAB lists a struct's field names as variable-length arrays of single characters.
    listed = np.empty(len(names), dtype=object)
    for i, name in enumerate(names):
        listed[i] = np.frombuffer(name.encode(), dtype="S1")
    return listed
