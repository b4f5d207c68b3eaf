"""Faiss's module-level helpers (random data, small vector kernels, id maps), in numpy.

Faiss exposes its C++ helpers through SWIG pointers: ``faiss.swig_ptr(a)`` hands
a numpy array to a function that writes into it. Here ``swig_ptr`` returns a
flat view of the array, and the functions take those views, so code written
against faiss runs unchanged. Random generators follow faiss's signatures and
ranges, not its exact streams (numpy's generator, seeded the same way).
"""

from __future__ import annotations

import numpy as np


def swig_ptr(a):
    """A flat, writable view of a C-contiguous array (what faiss's functions fill)."""
    a = np.asarray(a)
    if not a.flags.c_contiguous:
        raise ValueError("array is not C-contiguous")
    return a.reshape(-1)


def _shape(n):
    return tuple(n) if isinstance(n, (tuple, list)) else (int(n),)


def rand(n, seed=12345):
    """Uniform float32 in [0, 1); ``n`` an int or a shape."""
    return np.random.default_rng(seed).random(_shape(n), dtype=np.float32)


def randn(n, seed=12345):
    """Standard normal float32; ``n`` an int or a shape."""
    return np.random.default_rng(seed).standard_normal(_shape(n), dtype=np.float32)


def randint(n, seed=12345, vmax=None):
    """int64 in [0, vmax) (vmax default 2**31)."""
    vmax = 2 ** 31 if vmax is None else int(vmax)
    return np.random.default_rng(seed).integers(0, vmax, size=_shape(n), dtype=np.int64)


def rand_smooth_vectors(n, d, seed=1234):
    """Vectors with a decaying spectrum (compressible: most energy in few directions)."""
    rng = np.random.default_rng(seed)
    d1 = min(d, 10)
    low = rng.standard_normal((n, d1))
    basis = rng.standard_normal((d1, d))
    scale = 1.0 / np.sqrt(np.arange(1, d1 + 1))
    x = (low * scale) @ basis + 1.1 * rng.standard_normal((n, d))
    return np.ascontiguousarray(x, dtype=np.float32)


def lrand(n, seed=12345):
    return randint(n, seed)


def eval_intersection(I1, I2) -> int:
    """Sum over rows of the size of the intersection of the two id lists."""
    I1, I2 = np.asarray(I1), np.asarray(I2)
    return int(sum(np.intersect1d(a[a >= 0], b[b >= 0]).size for a, b in zip(I1, I2)))


def ranklist_intersection_size(n1, v1, n2, v2) -> int:
    """How many distinct valid (>= 0) ids appear in both lists."""
    a = np.asarray(v1)[: int(n1)]
    b = np.asarray(v2)[: int(n2)]
    return int(np.intersect1d(a[a >= 0], b[b >= 0]).size)


def merge_knn_results(Dall, Iall, keep_max=False):
    """Merge (nshard, n, k) sorted result tables into the k best per query."""
    Dall, Iall = np.asarray(Dall), np.asarray(Iall)
    nshard, n, k = Dall.shape
    D = np.ascontiguousarray(Dall.transpose(1, 0, 2).reshape(n, nshard * k))
    I = np.ascontiguousarray(Iall.transpose(1, 0, 2).reshape(n, nshard * k))  # noqa: E741
    # shards in order, each sorted: a stable sort keeps the earlier shard first on ties
    order = np.argsort(-D if keep_max else D, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(D, order, 1), np.take_along_axis(I, order, 1)


def fvec_L2sqr_ny(dis, x, y, d, ny):
    d, ny = int(d), int(ny)
    yy = np.asarray(y)[: d * ny].reshape(ny, d)
    dis[:ny] = ((np.asarray(x)[:d] - yy) ** 2).sum(1)


def fvec_inner_products_ny(ip, x, y, d, ny):
    d, ny = int(d), int(ny)
    yy = np.asarray(y)[: d * ny].reshape(ny, d)
    ip[:ny] = yy @ np.asarray(x)[:d]


def fvec_madd(n, a, bf, b, c):
    n = int(n)
    c[:n] = a[:n] + np.float32(bf) * b[:n]


def fvec_madd_and_argmin(n, a, bf, b, c) -> int:
    fvec_madd(n, a, bf, b, c)
    return int(np.argmin(c[: int(n)]))


def _pairwise_indexed(d, n, x, ix, y, iy, dis, op):
    d, n = int(d), int(n)
    xi, yi = np.asarray(ix)[:n], np.asarray(iy)[:n]
    xv = np.asarray(x).reshape(-1, d)[xi]
    yv = np.asarray(y).reshape(-1, d)[yi]
    dis[:n] = op(xv, yv)


def pairwise_indexed_L2sqr(d, n, x, ix, y, iy, dis):
    _pairwise_indexed(d, n, x, ix, y, iy, dis, lambda a, b: ((a - b) ** 2).sum(1))


def pairwise_indexed_inner_product(d, n, x, ix, y, iy, dis):
    _pairwise_indexed(d, n, x, ix, y, iy, dis, lambda a, b: (a * b).sum(1))


def vector_to_array(v):
    """faiss's SWIG vectors are plain numpy arrays here: return a copy."""
    return np.array(v, copy=True)


vector_float_to_array = vector_to_array


class MapLong2Long:
    """A dict from int64 to int64 with faiss's batch methods; missing keys give -1."""

    def __init__(self):
        self._map: dict[int, int] = {}

    def add(self, keys, vals):
        self._map.update(zip(np.asarray(keys, np.int64).tolist(), np.asarray(vals, np.int64).tolist()))

    def search(self, key) -> int:
        return self._map.get(int(key), -1)

    def search_multiple(self, keys):
        return np.array([self._map.get(k, -1) for k in np.asarray(keys, np.int64).tolist()], np.int64)


class MapInt64ToInt64:
    """Fixed-capacity int64 -> int64 table (faiss's hash table); missing keys give -1."""

    def __init__(self, capacity):
        self.capacity = int(capacity)
        self._keys = np.empty(0, np.int64)
        self._vals = np.empty(0, np.int64)

    def add(self, keys, vals):
        keys, vals = np.asarray(keys, np.int64), np.asarray(vals, np.int64)
        if self._keys.size + keys.size > self.capacity:
            raise RuntimeError("Error: hash table is full")
        allk = np.concatenate([self._keys, keys])
        allv = np.concatenate([self._vals, vals])
        order = np.argsort(allk, kind="stable")
        self._keys, self._vals = allk[order], allv[order]

    def lookup(self, keys):
        keys = np.asarray(keys, np.int64)
        if not self._keys.size:
            return np.full(keys.shape, -1, np.int64)
        pos = np.clip(np.searchsorted(self._keys, keys), 0, self._keys.size - 1)
        return np.where(self._keys[pos] == keys, self._vals[pos], -1)


class _Cvar:
    """faiss.cvar: global knobs. Recorded so that code setting them runs; nearkit's
    kernels choose their own blocking, so the BLAS threshold changes nothing."""

    def __init__(self):
        self.distance_compute_blas_threshold = 20
        self.distance_compute_blas_query_bs = 4096
        self.distance_compute_blas_database_bs = 1024
        self.distance_compute_min_k_reservoir = 100
        self.bucket_sort_verbose = 0


cvar = _Cvar()


def bucket_sort(tab, nbucket=None, nt=0):
    """(lims, perm): perm lists the positions of tab grouped by value, lims the group bounds."""
    tab = np.asarray(tab, np.int64).ravel()
    nbucket = int(tab.max()) + 1 if nbucket is None else int(nbucket)
    perm = np.argsort(tab, kind="stable").astype(np.int64)
    lims = np.zeros(nbucket + 1, np.int64)
    np.cumsum(np.bincount(tab, minlength=nbucket)[:nbucket], out=lims[1:])
    return lims, perm


def matrix_bucket_sort_inplace(tab, nbucket=None, nt=0):
    """Replace tab's entries by row numbers grouped by bucket (the old value); returns lims."""
    if not tab.flags.c_contiguous:
        raise ValueError("array is not C-contiguous")
    nrow, ncol = tab.shape
    flat = tab.reshape(-1)
    nbucket = int(flat.max()) + 1 if nbucket is None else int(nbucket)
    lims, perm = bucket_sort(flat, nbucket)
    flat[:] = (perm // ncol).astype(flat.dtype)
    return lims


class ResultHeap:
    """Accumulate (D, I) blocks and keep the k best per query (faiss.ResultHeap)."""

    def __init__(self, nq, k, keep_max=False):
        self.nq, self.k, self.keep_max = int(nq), int(k), bool(keep_max)
        pad = -np.inf if keep_max else np.inf
        self.D = np.full((self.nq, self.k), pad, np.float32)
        self.I = np.full((self.nq, self.k), -1, np.int64)  # noqa: E741

    def add_result(self, D, I):  # noqa: E741
        D = np.concatenate([self.D, np.asarray(D, np.float32)], axis=1)
        I = np.concatenate([self.I, np.asarray(I, np.int64)], axis=1)  # noqa: E741
        order = np.argsort(-D if self.keep_max else D, axis=1, kind="stable")[:, : self.k]
        self.D, self.I = np.take_along_axis(D, order, 1), np.take_along_axis(I, order, 1)

    def finalize(self):
        """Nothing left to do: the heap is kept sorted."""
