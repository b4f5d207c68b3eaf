"""A Faiss look-alike on top of nearkit: ``from nearkit.compat import faiss``.

What it covers, where it deliberately differs and what it lacks: docs/compat.md.
In short: faiss's conventions (``(D, I)``, squared L2, padding with -1 /
float32 max, range results in faiss's order, RuntimeErrors), the common index
classes and factory strings (Flat, HNSW over flat or coded storage, IVF with
flat / SQ / PQ codes and flat or HNSW quantizers, SQ4/6/8, PQ of any nbits,
Refine, IDMap), id selectors through SearchParameters, ParameterSpace,
clone_index, IVF internals (quantizer, invlists, search_preassigned,
merge_from), and read_index of faiss's own files for the main index types.

Deliberate differences: errors that faiss raises as bare ``AssertionError``
are raised as ``FaissAssertionError`` (an AssertionError that is also a
ValueError, with a message); ``k`` may be a numpy integer; nearkit indexes
(other than IndexIDMap) refuse duplicate ids; ntotal / d / is_trained are read-only.
"""

from __future__ import annotations

import re
import sys
import warnings

import numpy as np

from .. import _validate
from .. import io as _io
from ..errors import FormatError
from ..indexes import INDEX_KINDS
from ..indexes import from_file as _nk_from_file
from ..indexes.factory import index_factory as _nk_factory
from ..indexes.base import Index as _NkIndex
from ..indexes.flat import Flat as _Flat
from ..indexes.hnsw import HNSW as _HNSW
from ..indexes.ivf import IVF as _IVF
from ..kmeans import assign as _km_assign
from ..kmeans import kmeans as _kmeans
from . import _faiss_codecs as _codecs
from ._faiss_kmeans import faiss_kmeans as _faiss_kmeans
from ._faiss_transforms import (  # noqa: F401 - faiss's stand-alone transforms
    HadamardRotation, LinearTransform, MatrixStats, NormalizationTransform, PCAMatrix,
    RandomRotationMatrix, Vector, VectorTransform,
    copy_array_to_vector, downcast_VectorTransform)
from ._faiss_utils import (  # noqa: F401 - re-exported as faiss's module-level helpers
    MapInt64ToInt64, MapLong2Long, cvar, eval_intersection, fvec_inner_products_ny,
    fvec_L2sqr_ny, fvec_madd, fvec_madd_and_argmin, lrand, merge_knn_results,
    pairwise_indexed_inner_product, pairwise_indexed_L2sqr, rand, rand_smooth_vectors, randint,
    randn, ranklist_intersection_size, swig_ptr, vector_float_to_array, vector_to_array,
    ResultHeap, bucket_sort, matrix_bucket_sort_inplace)

from .. import __version__  # noqa: E402,F401 - nearkit's version, "x.y.z" like faiss's

METRIC_INNER_PRODUCT = 0
METRIC_L2 = 1
METRIC_L1 = 2  # named for code that refers to them; indexes support L2 and inner product only
METRIC_Linf = 3
_FLT_MAX = np.float32(np.finfo(np.float32).max)


class FaissAssertionError(AssertionError, ValueError):
    """Where faiss asserts (k <= 0, wrong width): an AssertionError with a message."""


def _metric_name(metric) -> str:
    if metric == METRIC_L2:
        return "l2"
    if metric == METRIC_INNER_PRODUCT:
        return "ip"
    raise RuntimeError(f"Error: metric {metric!r} is not supported (only METRIC_L2 and METRIC_INNER_PRODUCT)")


def _as_x(x, d: int) -> np.ndarray:
    """faiss's input rule: an object with a 2-D .shape whose width is d; any dtype/strides."""
    n, dx = x.shape  # AttributeError for lists, ValueError for 1-D, as in faiss
    if dx != d:
        raise FaissAssertionError(f"vectors have dimension {dx}, index has d={d}")
    return np.ascontiguousarray(x, dtype=np.float32)


def _as_k(k) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
        raise TypeError(f"k must be an integer, got {type(k).__name__}")
    if k <= 0:
        raise FaissAssertionError(f"k must be > 0, got {k}")
    return int(k)


def _as_ids(ids, n: int) -> np.ndarray:
    if ids.ndim != 1 or ids.shape[0] != n:  # AttributeError for lists, as faiss
        raise FaissAssertionError("not same nb of vectors as ids")
    return np.ascontiguousarray(ids).astype(np.int64, copy=False)


# -- selectors and search parameters -----------------------------------------------

class IDSelector:
    """Base of the id selectors: ``is_member(ids) -> bool array``."""

    def is_member(self, ids: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def this(self):  # faiss's SWIG handle; selectors are plain Python objects here
        return _Owned()


class IDSelectorRange(IDSelector):
    """Ids with imin <= id < imax."""

    def __init__(self, imin, imax, assume_sorted=False):
        self.imin, self.imax = int(imin), int(imax)
        self.assume_sorted = bool(assume_sorted)

    def is_member(self, ids: np.ndarray) -> np.ndarray:
        return (ids >= self.imin) & (ids < self.imax)

    def find_sorted_ids_bounds(self, n, ids, jmin, jmax) -> None:
        """For sorted ids: the slice [jmin, jmax) of those inside the range (written into
        the one-element arrays jmin / jmax, as faiss's pointers)."""
        a = np.asarray(ids)[: int(n)]
        jmin[0] = np.searchsorted(a, self.imin, "left")
        jmax[0] = max(int(jmin[0]), int(np.searchsorted(a, self.imax, "left")))


class IDSelectorBatch(IDSelector):
    """Ids in a given set: ``IDSelectorBatch(ids)`` or faiss's ``(n, ids)``."""

    def __init__(self, ids, *rest):
        arr = np.asarray(ids if not rest else rest[0], dtype=np.int64).ravel()
        self.ids = arr[: int(ids)] if rest else arr

    def is_member(self, ids: np.ndarray) -> np.ndarray:
        return np.isin(ids, self.ids)


class IDSelectorArray(IDSelectorBatch):
    """Ids in a given array (faiss scans it; same membership as IDSelectorBatch)."""


class IDSelectorBitmap(IDSelector):
    """Id i is a member when bit i of the packed (little-endian bit order) uint8 bitmap is set."""

    def __init__(self, bitmap, *rest):
        arr = np.asarray(bitmap if not rest else rest[0], dtype=np.uint8).ravel()
        self.bits = np.unpackbits(arr, bitorder="little").astype(bool)

    def is_member(self, ids: np.ndarray) -> np.ndarray:
        ids = np.asarray(ids, np.int64)
        inside = (ids >= 0) & (ids < self.bits.size)
        out = np.zeros(ids.shape, bool)
        out[inside] = self.bits[ids[inside]]
        return out


class IDSelectorNot(IDSelector):
    def __init__(self, sel):
        self.sel = sel

    def is_member(self, ids):
        return ~self.sel.is_member(ids)


class IDSelectorAnd(IDSelector):
    def __init__(self, lhs, rhs):
        self.lhs, self.rhs = lhs, rhs

    def is_member(self, ids):
        return self.lhs.is_member(ids) & self.rhs.is_member(ids)


class IDSelectorOr(IDSelectorAnd):
    def is_member(self, ids):
        return self.lhs.is_member(ids) | self.rhs.is_member(ids)


class IDSelectorXOr(IDSelectorAnd):
    def is_member(self, ids):
        return self.lhs.is_member(ids) ^ self.rhs.is_member(ids)


class IDSelectorTranslated(IDSelector):
    """A selector on an IndexIDMap's external ids, applied to its internal ids."""

    def __init__(self, id_map, sel):
        self.sel = sel
        self._ext = id_map._ext if isinstance(id_map, IndexIDMap) else np.asarray(id_map, np.int64)

    def is_member(self, ids):
        ids = np.asarray(ids, np.int64)
        return self.sel.is_member(self._ext[ids])


class IDSelectorAll(IDSelector):
    def is_member(self, ids):
        return np.ones(np.shape(ids), bool)


class SearchParameters:
    def __init__(self, sel=None, **kw):
        self.sel = sel
        for key, value in kw.items():
            setattr(self, key, value)


class SearchParametersIVF(SearchParameters):
    def __init__(self, nprobe=None, sel=None, **kw):
        super().__init__(sel=sel, **kw)
        self.nprobe = nprobe


IVFSearchParameters = SearchParametersIVF  # faiss's older name


class SearchParametersPQ(SearchParameters):
    def __init__(self, sel=None, polysemous_ht=0, search_type=None, **kw):
        super().__init__(sel=sel, **kw)
        self.polysemous_ht, self.search_type = polysemous_ht, search_type




class SearchParametersHNSW(SearchParameters):
    def __init__(self, efSearch=None, sel=None, **kw):
        super().__init__(sel=sel, **kw)
        self.efSearch = efSearch


class IndexRefineSearchParameters(SearchParameters):
    def __init__(self, k_factor=None, base_index_params=None, sel=None, **kw):
        super().__init__(sel=sel, **kw)
        self.k_factor = k_factor
        self.base_index_params = base_index_params


# -- the common index wrapper ----------------------------------------------------------

class Index:
    """Base of every compat index: faiss conventions around a nearkit index."""

    _fourcc = "Index"

    def __init__(self, d: int, metric=METRIC_L2):
        self._d = int(d)
        self._metric_type = int(metric)
        self._metric = _metric_name(metric)
        self._nk = None  # the nearkit index

    # read-only attributes (writable in faiss; deliberately not here)
    @property
    def d(self) -> int:
        return self._d

    @property
    def ntotal(self) -> int:
        return len(self._nk) if self._nk is not None else 0

    @property
    def is_trained(self) -> bool:
        return True

    @property
    def metric_type(self) -> int:
        return self._metric_type

    def train(self, x) -> None:
        _as_x(x, self._d)

    def __deepcopy__(self, memo):
        """clone_index: nearkit indexes are copied through their file image."""
        import copy

        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            new.__dict__[key] = _copy_nk(value) if isinstance(value, _NkIndex) else copy.deepcopy(value, memo)
        return new

    # ids: faiss numbers added vectors ntotal, ntotal + 1, ...
    def add(self, x) -> None:
        """Adds vectors to the index (ids are ntotal, ntotal + 1, ...)."""
        x = _as_x(x, self._d)
        self._require_trained("add")
        if x.shape[0]:
            self._put(x, np.arange(self.ntotal, self.ntotal + x.shape[0], dtype=np.int64))

    def add_with_ids(self, x, ids) -> None:
        x = _as_x(x, self._d)
        ids = _as_ids(ids, x.shape[0])
        self._require_trained("add")
        if x.shape[0]:
            self._put(x, ids)

    def _put(self, x, ids):
        """Store vectors under ids (indexes that code vectors themselves override it)."""
        self._nk.add(x, ids)

    def _require_trained(self, what: str) -> None:
        if not self.is_trained:
            raise RuntimeError(f"Error: 'is_trained' failed: the index must be trained before {what}")

    def _search_params(self, params) -> dict:
        return {}

    def _filter(self, params):
        sel = getattr(params, "sel", None) if params is not None else None
        if sel is None:
            return None
        labels = self._labels()
        return labels[sel.is_member(labels)]

    def _labels(self) -> np.ndarray:
        labels = self._nk._slot_labels()
        return labels[labels >= 0]

    def _to_faiss(self, ids, dist):
        dist = np.array(dist, dtype=np.float32, copy=True)
        pad = ids < 0
        if self._metric == "ip":
            dist = 1.0 - dist
            dist[pad] = -_FLT_MAX
        else:
            dist[pad] = _FLT_MAX
        return np.ascontiguousarray(dist), np.ascontiguousarray(ids, dtype=np.int64)

    def search(self, x, k, *, params=None, D=None, I=None):  # noqa: E741 - faiss's names
        """Search for the k nearest: returns (D, I), both (n, k)."""
        x = _as_x(x, self._d)
        k = _as_k(k)
        n = x.shape[0]
        _validate.check_k(k, self.ntotal, n)  # a padded result past the stored count is bounded
        if n == 0 or self.ntotal == 0:
            self._require_trained("search")
            dist = np.full((n, k), -_FLT_MAX if self._metric == "ip" else _FLT_MAX, np.float32)
            ids = np.full((n, k), -1, np.int64)
        else:
            self._require_trained("search")
            flt = self._filter(params)
            kw = self._search_params(params)
            if flt is not None:
                kw["filter"] = flt
            ids, dist = self._nk_search(x, k, **kw)
            dist, ids = self._to_faiss(ids, dist)
        return _fill(D, I, dist, ids)

    def _nk_search(self, x, k, **kw):
        return self._nk.search(x, k, **kw)

    def range_search(self, x, thresh, *, params=None):
        """(lims uint64 (n+1), D, I): results with distance < thresh (L2) or similarity > thresh (IP)."""
        x = _as_x(x, self._d)
        n = x.shape[0]
        lims = np.zeros(n + 1, np.uint64)
        if n == 0 or self.ntotal == 0:
            return lims, np.empty(0, np.float32), np.empty(0, np.int64)
        radius = float(thresh) if self._metric == "l2" else 1.0 - float(thresh)
        flt = self._filter(params)
        if isinstance(self._nk, _Flat) and not self._search_params(params):
            lim, ids, dist = self._nk.search_radius(x, radius, filter=flt)
            dist, ids = self._to_faiss(ids, dist)
            return _scan_order(lim.astype(np.uint64), dist, ids)
        # Approximate indexes: widen k until the k-th result falls outside the radius.
        all_d, all_i = [], []
        kw = self._search_params(params)
        if flt is not None:
            kw["filter"] = flt
        for row in x:
            k = min(64, self.ntotal)
            while True:
                ids, dist = self._nk.search(row, k, **kw)
                inside = (ids >= 0) & (dist < radius)
                if not inside.all() or k >= self.ntotal:
                    break
                k = min(2 * k, self.ntotal)
            dd, ii = self._to_faiss(ids[inside], dist[inside])
            all_d.append(dd)
            all_i.append(ii)
        lims[1:] = np.cumsum([a.shape[0] for a in all_i])
        return _scan_order(lims, np.concatenate(all_d).astype(np.float32),
                           np.concatenate(all_i).astype(np.int64))

    def assign(self, x, k):
        return self.search(x, k)[1]

    # IndexIDMap drives its inner index through these (internal ids it chooses)
    def _add_internal(self, x, ids):
        self._require_trained("add")
        self._put(x, ids)

    def _remove_internal(self, ids):
        self._nk.remove(ids)

    def sa_code_size(self) -> int:
        return 4 * self._d

    def search_and_reconstruct(self, x, k, *, params=None, D=None, I=None, R=None):  # noqa: E741
        """search, plus the stored (decoded) vector of each result (zeros for -1)."""
        dist, ids = self.search(x, k, params=params, D=D, I=I)
        rec = self.reconstruct_batch(np.maximum(ids.ravel(), 0)).reshape(ids.shape + (self._d,))
        rec[ids < 0] = 0
        if R is not None:
            R[...] = rec
            rec = R
        return dist, ids, rec

    def reconstruct_batch(self, keys) -> np.ndarray:
        keys = np.asarray(keys, np.int64).ravel()
        if not keys.size:
            return np.empty((0, self._d), np.float32)
        return np.stack([self.reconstruct(int(k)) for k in keys])

    def get_distance_computer(self):
        """A callable giving the distance from a set query to a stored vector (by id)."""
        return _DistanceComputer(self)

    get_FlatCodesDistanceComputer = get_distance_computer

    def __reduce__(self):
        """Pickling goes through serialize_index, as faiss's."""
        return (deserialize_index, (serialize_index(self),))

    def remove_ids(self, sel) -> int:
        """Remove by id array or IDSelector; returns the number removed."""
        if isinstance(sel, IDSelector):
            labels = self._labels()
            ids = labels[sel.is_member(labels)]
        else:
            if sel.ndim != 1:  # AttributeError for lists, as faiss
                raise FaissAssertionError("ids must be 1-D")
            ids = np.asarray(sel).astype(np.int64)
        ids = ids[ids >= 0]
        return self._nk.remove(ids) if ids.size and self.ntotal else 0

    def reset(self) -> None:
        if self.ntotal:
            self._nk.remove(self._labels())

    def reconstruct(self, key) -> np.ndarray:
        raise RuntimeError("Error: reconstruct not implemented for this type of index")

    def reconstruct_n(self, n0=0, ni=-1) -> np.ndarray:
        ni = self.ntotal - n0 if ni < 0 else ni
        return np.stack([self.reconstruct(i) for i in range(n0, n0 + ni)]) if ni else np.empty((0, self._d), np.float32)


class _Owned:
    """faiss's SWIG ``.this`` handle: objects here always own themselves."""

    def own(self, *value) -> bool:
        return True


class _DistanceComputer:
    """faiss's DistanceComputer: ``set_query(x)``, then ``dc(i)`` is the index's distance to id i."""

    this = _Owned()

    def __init__(self, index):
        self._index, self._q = index, None

    def set_query(self, x):
        self._q = np.asarray(x, np.float32).reshape(-1)[: self._index.d]

    def __call__(self, i) -> float:
        v = self._index.reconstruct(int(i))
        if self._index.metric_type == METRIC_INNER_PRODUCT:
            return float(np.dot(v, self._q))
        return float(((v - self._q) ** 2).sum())

    def symmetric_dis(self, i, j) -> float:
        a, b = self._index.reconstruct(int(i)), self._index.reconstruct(int(j))
        return float(np.dot(a, b)) if self._index.metric_type == METRIC_INNER_PRODUCT else float(((a - b) ** 2).sum())


class _PreTransformDistanceComputer(_DistanceComputer):
    def __init__(self, index):
        super().__init__(index.index)
        self._outer = index

    def set_query(self, x):
        x = np.asarray(x, np.float32).reshape(-1)[: self._outer.d]
        self._q = self._outer.apply_chain(x[None, :])[0]


def _copy_nk(nk):
    if isinstance(nk, _IVF) and not nk.is_trained:
        return _IVF(nk.dim, nk.metric, nlist=nk.nlist, codec=nk._codec_name, transform=nk.transform_name,
                    refine=nk.refine, nprobe=nk.nprobe, k_factor=nk.k_factor)
    img = nk.image()
    return INDEX_KINDS[img.kind]._from_sections(img.dim, img.metric, img.params, img.sections)


def _scan_order(lims, dist, ids):
    """faiss lists range results in scan order, not by distance: for a flat index
    that is ascending position (= id); nearkit sorts by distance, so reorder by id."""
    if ids.size:
        row = np.repeat(np.arange(lims.shape[0] - 1), np.diff(lims).astype(np.int64))
        order = np.lexsort((ids, row))
        dist, ids = dist[order], ids[order]
    return lims, np.ascontiguousarray(dist), np.ascontiguousarray(ids)


def _fill(D, I, dist, ids):  # noqa: E741
    if D is not None:
        if D.shape != dist.shape or D.dtype != np.float32:
            raise TypeError("D must be a float32 array of shape (n, k)")
        D[...] = dist
        dist = D
    if I is not None:
        if I.shape != ids.shape or I.dtype != np.int64:
            raise TypeError("I must be an int64 array of shape (n, k)")
        I[...] = ids
        ids = I
    return dist, ids


# -- flat ------------------------------------------------------------------------------

class IndexFlat(Index):
    def __init__(self, d, metric=METRIC_L2):
        super().__init__(d, metric)
        self._nk = _Flat(self._d, self._metric)

    def add_with_ids(self, x, ids):
        raise RuntimeError("Error: add_with_ids not implemented for this type of index (wrap it in IndexIDMap)")

    def remove_ids(self, sel) -> int:
        removed = super().remove_ids(sel)
        if removed:  # faiss compacts the storage: ids become positions again
            vecs = np.array(self._nk.vectors)
            order = np.argsort(self._nk.slot_labels(), kind="stable")
            self._nk = _Flat(self._d, self._metric)
            if vecs.shape[0]:
                self._nk.add(vecs[order])
        return removed

    def reconstruct(self, key) -> np.ndarray:
        key = int(key)
        if not 0 <= key < self.ntotal:
            raise RuntimeError(f"Error: 'key < ntotal' failed: key {key}, ntotal {self.ntotal}")
        pos = int(np.flatnonzero(self._nk.slot_labels() == key)[0])
        return np.array(self._nk.vectors[pos])

    @property
    def codes(self) -> np.ndarray:
        """The stored vectors as bytes (faiss's IndexFlat.codes)."""
        return self.reconstruct_n().view(np.uint8).ravel()

    def sync_l2norms(self) -> None:
        """faiss caches norms for IndexFlatL2; nearkit keeps them in step on every add."""

    def clear_l2norms(self) -> None:
        """See sync_l2norms."""

    def reconstruct_n(self, n0=0, ni=-1) -> np.ndarray:
        ni = self.ntotal - n0 if ni < 0 else ni
        if n0 < 0 or n0 + ni > self.ntotal:
            raise RuntimeError(f"Error: 'ni + i0 <= ntotal' failed")
        order = np.argsort(self._nk.slot_labels(), kind="stable")
        return np.ascontiguousarray(np.asarray(self._nk.vectors)[order[n0:n0 + ni]])


class IndexFlatL2(IndexFlat):
    def __init__(self, d):
        super().__init__(d, METRIC_L2)


class IndexFlatIP(IndexFlat):
    def __init__(self, d):
        super().__init__(d, METRIC_INNER_PRODUCT)


# -- HNSW ------------------------------------------------------------------------------

class _HNSWParams:
    def __init__(self, owner):
        self._owner = owner

    @property
    def efSearch(self) -> int:
        return self._owner._ef_search

    @efSearch.setter
    def efSearch(self, v):
        self._owner._ef_search = int(v)

    @property
    def efConstruction(self) -> int:
        return self._owner._ef_construction

    @efConstruction.setter
    def efConstruction(self, v):
        self._owner._ef_construction = int(v)
        if self._owner.ntotal == 0:
            self._owner._new_graph()

    @property
    def M(self) -> int:
        return self._owner._M

    def nb_neighbors(self, level) -> int:
        """Links per node: 2 * M on level 0, M above (as faiss)."""
        return 2 * self._owner._M if int(level) == 0 else self._owner._M

    @property
    def is_similarity(self) -> bool:
        return self._owner._metric == "ip"


class IndexHNSWFlat(Index):
    def __init__(self, d, M, metric=METRIC_L2):
        super().__init__(d, metric)
        self._M, self._ef_construction, self._ef_search = int(M), 40, 16
        self.hnsw = _HNSWParams(self)
        self._new_graph()

    def _new_graph(self):
        from ..indexes.hnsw import HNSW

        # faiss walks the graph on the float vectors: so does this (nearkit's default walk
        # on 8-bit codes finds other neighbours at faiss's small efSearch)
        self._nk = HNSW(self._d, self._metric, M=self._M, ef_construction=self._ef_construction,
                        ef_search=self._ef_search, walk="float")

    def _search_params(self, params) -> dict:
        ef = getattr(params, "efSearch", None) if params is not None else None
        return {"ef": int(ef) if ef else self._ef_search}

    def search(self, x, k, *, params=None, D=None, I=None):  # noqa: E741
        k = _as_k(k)
        if params is None:  # the search list is max(efSearch, k), as in faiss
            params = SearchParametersHNSW(efSearch=max(self._ef_search, k))
        elif getattr(params, "efSearch", None):
            params.efSearch = max(params.efSearch, k)
        return super().search(x, k, params=params, D=D, I=I)

    def _nk_search(self, x, k, filter=None, ef=None):
        """With a selector, faiss walks the same graph and keeps the allowed nodes, so the
        allowed results of the unfiltered search come first, in order. Here: the
        unfiltered walk (same ef, so the same path) filtered; when it holds fewer than k
        allowed nodes, the rest come from nearkit's filtered search, beyond the walk's
        last distance (results stay sorted)."""
        if filter is None:
            return self._nk.search(x, k, ef=ef)
        allowed = np.asarray(filter, np.int64)
        ef = max(int(ef or self._ef_search), k)
        walk_ids, walk_d = self._nk.search(x, min(ef, self.ntotal), ef=ef)
        ids = np.full((x.shape[0], k), -1, np.int64)
        dist = np.full((x.shape[0], k), np.inf, np.float32)
        for i in range(x.shape[0]):
            keep = (walk_ids[i] >= 0) & np.isin(walk_ids[i], allowed)
            wi, wd = walk_ids[i][keep][:k], walk_d[i][keep][:k]
            ids[i, :wi.size], dist[i, :wi.size] = wi, wd
            rest = np.setdiff1d(allowed, wi, assume_unique=False)
            if wi.size < k and rest.size:
                fi, fd = self._nk.search(x[i], k, filter=rest, ef=ef)
                ok = (fi >= 0) & (fd >= (wd[-1] if wd.size else -np.inf))
                fi, fd = fi[ok][: k - wi.size], fd[ok][: k - wi.size]
                ids[i, wi.size:wi.size + fi.size], dist[i, wi.size:wi.size + fi.size] = fi, fd
        return ids, dist

    def add_with_ids(self, x, ids):
        raise RuntimeError("Error: add_with_ids not implemented for this type of index (wrap it in IndexIDMap)")

    def reset(self):
        self._new_graph()

    def _stored(self):
        """(vectors, labels) as held by the graph (the graph's own copy)."""
        sec = self._nk._sections()
        return sec["vectors"], sec["labels"]

    def reconstruct(self, key) -> np.ndarray:
        key = int(key)
        vectors, labels = self._stored()
        hit = np.flatnonzero(labels == key)
        if not 0 <= key < self.ntotal or not hit.size:
            raise RuntimeError(f"Error: 'key < ntotal' failed: key {key}, ntotal {self.ntotal}")
        return np.array(vectors[hit[0]])

    def reconstruct_n(self, n0=0, ni=-1) -> np.ndarray:
        vectors, labels = self._stored()
        ni = self.ntotal - n0 if ni < 0 else ni
        order = np.argsort(labels, kind="stable")
        return np.ascontiguousarray(vectors[order][n0:n0 + ni])

    @property
    def storage(self):
        """The stored vectors as an IndexFlat (a copy: adding to it does not change the graph)."""
        flat = IndexFlat(self._d, self._metric_type)
        if self.ntotal:
            flat.add(self.reconstruct_n())
        return flat


class _HNSWCodec(IndexHNSWFlat):
    """HNSW over coded vectors (faiss's IndexHNSWSQ / IndexHNSWPQ): the graph is built
    on the decoded vectors, so its distances are faiss's (to the decoded vectors)."""

    def _init_storage(self, storage):
        self._storage = storage

    @property
    def storage(self):
        return self._storage

    @property
    def is_trained(self) -> bool:
        return self._storage.is_trained

    def train(self, x) -> None:
        self._storage.train(x)

    def add(self, x) -> None:
        """Adds vectors to the index (ids are ntotal, ntotal + 1, ...)."""
        x = _as_x(x, self._d)
        self._require_trained("add")
        if x.shape[0]:
            start = self._storage.ntotal
            self._storage.add(x)
            decoded = self._storage.reconstruct_n(start, x.shape[0])
            self._nk.add(decoded, np.arange(start, start + x.shape[0], dtype=np.int64))

    def reset(self):
        self._storage.reset()
        self._new_graph()

    def reconstruct(self, key):
        return self._storage.reconstruct(key)


class IndexHNSWSQ(_HNSWCodec):
    def __init__(self, d, qtype, M, metric=METRIC_L2):
        super().__init__(d, M, metric)
        self._init_storage(IndexScalarQuantizer(d, qtype, metric))


class IndexHNSWPQ(_HNSWCodec):
    def __init__(self, d, pq_m, M, pq_nbits=8, metric=METRIC_L2):
        super().__init__(d, M, metric)
        self._init_storage(IndexPQ(d, pq_m, pq_nbits, metric))


# -- IVF, PQ, SQ (all nearkit.IVF underneath) ---------------------------------------------

class _IVFBased(Index):
    """Shared behaviour of the quantised indexes.

    Most run on a nearkit IVF codec. Codecs nearkit's IVF lacks (SQ4/6, uniform, bf16,
    PQ with nbits other than 8, SQ by residual) run in "decoded" mode: ``_dcodec`` (a
    faiss codec from _faiss_codecs) codes each vector, by residual to its list's
    centroid when ``_dres``, and the list keeps the decoded vector in a flat nearkit
    IVF. Distances to decoded vectors are what faiss computes from the codes.
    """

    _dcodec = None  # faiss codec of decoded mode (None: a nearkit IVF codec)
    _dres = False  # decoded mode codes residuals to the list centroid
    _nprobe_bad = None  # an nprobe <= 0 set by the user: faiss refuses it at search time
    _direct_map = 0  # DirectMap type: reconstruct(key) needs one, as in faiss

    def _init_nk(self, **kw):
        kw.setdefault("nprobe", 1)  # faiss's default (nearkit's own is about sqrt(nlist))
        self._nk = _IVF(self._d, self._metric, **kw)

    def _init_decoded(self, nlist, codec, by_residual):
        self._dcodec, self._dres = codec, bool(by_residual)
        self._init_nk(nlist=int(nlist), codec="flat")

    @property
    def is_trained(self) -> bool:
        return self._nk.is_trained and (self._dcodec is None or self._dcodec.is_trained)

    def _put(self, x, ids):
        if self._dcodec is None:
            self._nk.add(x, ids)
            return
        ivf = self._nk
        x, _ = ivf._vectors(x)  # nearkit's checks (width, NaN / inf)
        lists = ivf._assign(x)  # the list of the original vector, as faiss
        cents = ivf._centroids[lists] if self._dres else 0.0
        dec = self._dcodec.decode(self._dcodec.encode(np.ascontiguousarray(x - cents, np.float32)))
        dec = np.ascontiguousarray(dec + cents, np.float32)
        with ivf._lock.write():
            ivf._add(x, _validate.as_ids(ids), encoded=(lists, dec.view(np.uint8).reshape(len(dec), -1)))

    def _train_decoded(self, x):
        """Train the faiss codec on what it will code (residuals when by_residual)."""
        ivf = self._nk
        if self._dres:
            x = x - ivf._centroids[ivf._assign(x)]
        x = np.ascontiguousarray(x, np.float32)
        if isinstance(self._dcodec, _codecs.PQCodec):
            self._dcodec.train(x, seed=ivf.seed)
        else:
            self._dcodec.train(x)

    def train(self, x) -> None:
        x = _as_x(x, self._d)
        ivf = self._nk
        n = x.shape[0]
        if n < ivf.nlist:
            raise RuntimeError(
                f"Error: 'n >= nlist' failed: Number of training points ({n}) should be at least "
                f"as large as number of clusters ({ivf.nlist})")
        if ivf._pq is not None and n < ivf._pq.ksub:
            raise RuntimeError(
                f"Error: Number of training points ({n}) should be at least as large as number "
                f"of clusters ({ivf._pq.ksub})")
        if ivf.nlist > 1 and n < 39 * ivf.nlist:
            print(f"WARNING clustering {n} points to {ivf.nlist} centroids: please provide at "
                  f"least {39 * ivf.nlist} training points", file=sys.stderr)
        shared = self._shared_centroids()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if self.ntotal:  # faiss would keep stale codes; re-training here starts empty
                self._init_nk(**self._nk_kwargs())
            if "_cp" in self.__dict__:
                self._nk.niter, self._nk.seed = int(self._cp.niter), int(self._cp.seed)
            # faiss's own k-means (its random numbers too) gives the lists faiss would
            # make; nearkit's k-means then only needs its starting point (niter 0).
            faiss_kmeans = shared is None and self._nk.nlist > 1 and not self._nk.transform_name
            niter = self._nk.niter
            if faiss_kmeans:
                self._nk.niter = 0
            try:
                self._nk.train(x)
            finally:
                self._nk.niter = niter
            if faiss_kmeans:
                shared = self._faiss_centroids(x)
            if shared is not None:  # keep the pre-trained quantizer's centroids (shared quantizer)
                self._use_centroids(shared, x)
            if self._dcodec is not None:
                self._train_decoded(x)
        self._after_train()

    def _faiss_centroids(self, x):
        cp = self.cp
        return _faiss_kmeans(x, self._nk.nlist, niter=int(cp.niter), seed=int(cp.seed),
                             inner_product=self._metric == "ip", spherical=bool(cp.spherical),
                             max_points_per_centroid=int(cp.max_points_per_centroid))

    def _use_centroids(self, cents, x):
        ivf = self._nk
        ivf._centroids = cents
        if ivf._pq is not None and ivf.by_residual:
            xt = ivf._apply_transform(x)
            ivf._pq.train(xt - cents[ivf._assign(xt)], seed=ivf.seed)
        ivf._searcher = None

    def _after_train(self):
        q = self.__dict__.get("quantizer")
        if q is not None and self._nk.nlist > 1 and q.ntotal != self._nk.nlist:
            q.reset()
            q.add(self._nk._centroids)

    def _shared_centroids(self):
        """The centroids of a quantizer that already holds nlist vectors (shared, pre-trained)."""
        q = self.__dict__.get("quantizer")
        ivf = self._nk
        if q is None or ivf.nlist <= 1 or q.ntotal != ivf.nlist or ivf.transform_name:
            return None
        return np.ascontiguousarray(q.reconstruct_n(0, ivf.nlist), dtype=np.float32)

    def _adopt_quantizer(self):
        """faiss: an IVF whose quantizer is trained and full counts as trained (flat/SQfp16 codecs)."""
        cents = self._shared_centroids()
        untrained_codec = self._dcodec is not None and not self._dcodec.is_trained
        if cents is not None and self._nk.codec in ("flat", "fp16") and not untrained_codec:
            self._nk._centroids = cents
            self._nk._searcher = None

    @property
    def cp(self):
        if "_cp" not in self.__dict__:
            self._cp = ClusteringParameters()
            self._cp.spherical = self._metric == "ip"  # as faiss's factory: IP lists are spherical
        return self._cp

    @property
    def invlists(self):
        return InvertedLists(self)

    @property
    def by_residual(self) -> bool:
        return self._dres if self._dcodec is not None else bool(self._nk.by_residual)

    @by_residual.setter
    def by_residual(self, value):
        value = bool(value)
        if value == self.by_residual:
            return
        if self.ntotal:
            raise RuntimeError("Error: by_residual can only change while the index is empty")
        if self._dcodec is not None:
            self._dres = value
            return
        codec = {"sq8": lambda: _codecs.SQCodec(self._d, ScalarQuantizer.QT_8bit),
                 "fp16": lambda: _codecs.SQCodec(self._d, ScalarQuantizer.QT_fp16),
                 "pq8": lambda: _codecs.PQCodec(self._d, self._nk.pq_m, 8)}.get(self._nk.codec)
        if codec is None or self._nk.transform_name:
            raise RuntimeError(f"Error: by_residual={value} is not supported for this codec "
                               f"(nearkit's {self._nk.codec} is fixed at {bool(self._nk.by_residual)})")
        # switch to decoded mode (keeps the coarse centroids; the codec is trained anew)
        cents, nprobe = self._nk._centroids, self._nk.nprobe
        self._init_decoded(self._nk.nlist, codec(), value)
        self._nk.nprobe = nprobe
        if cents is not None:
            self._nk._centroids = cents

    def range_search_preassigned(self, x, radius, assign, centroid_dis=None, *, params=None):
        """range_search restricted to the lists given per query in ``assign``."""
        x = _as_x(x, self._d)
        self._require_trained("search")
        assign = np.asarray(assign, np.int64)
        inv = self.invlists
        out_d, out_i, counts = [], [], []
        for i in range(x.shape[0]):
            lists = [int(l) for l in assign[i] if l >= 0]
            cand = np.concatenate([inv._slots(l) for l in lists]) if lists else np.empty(0, np.int64)
            sel = getattr(params, "sel", None) if params is not None else None
            if sel is not None:
                cand = cand[sel.is_member(cand)]
            if cand.size:
                p = SearchParametersIVF(nprobe=self._nk.nlist, sel=IDSelectorBatch(cand))
                _, dd, ii = Index.range_search(self, x[i:i + 1], radius, params=p)
            else:
                dd, ii = np.empty(0, np.float32), np.empty(0, np.int64)
            out_d.append(dd)
            out_i.append(ii)
            counts.append(ii.size)
        lims = np.zeros(x.shape[0] + 1, np.uint64)
        lims[1:] = np.cumsum(counts)
        return lims, np.concatenate(out_d).astype(np.float32), np.concatenate(out_i).astype(np.int64)

    def search_preassigned(self, x, k, assign, centroid_dis=None, *, params=None, D=None, I=None):  # noqa: E741
        """Search only the lists given per query in ``assign`` (n, nprobe)."""
        x = _as_x(x, self._d)
        k = _as_k(k)
        self._require_trained("search")
        assign = np.asarray(assign, np.int64)
        dist = np.full((x.shape[0], k), -_FLT_MAX if self._metric == "ip" else _FLT_MAX, np.float32)
        ids = np.full((x.shape[0], k), -1, np.int64)
        inv = self.invlists
        allowed_sel = self._filter(params)
        for i in range(x.shape[0]):
            lists = [int(l) for l in assign[i] if l >= 0]
            cand = np.concatenate([inv._slots(l) for l in lists]) if lists else np.empty(0, np.int64)
            if allowed_sel is not None:
                cand = cand[np.isin(cand, allowed_sel)]
            if cand.size:
                ii, dd = self._nk.search(x[i:i + 1], k, filter=cand, nprobe=self._nk.nlist)
                dist[i], ids[i] = self._to_faiss(ii[0], dd[0])
        return _fill(D, I, dist, ids)

    def merge_from(self, other, add_id=0) -> None:
        """Move other's vectors into this index (ids shifted by add_id); other ends empty."""
        if other.d != self.d or other.metric_type != self.metric_type:
            raise RuntimeError("Error: merge_from: incompatible indexes (d or metric differ)")
        if not isinstance(other, _IVFBased) or other._nk.nlist != self._nk.nlist:
            raise RuntimeError("Error: merge_from: the other index must be an IVF with the same nlist")
        if other.ntotal:
            labels = other._labels()
            new_ids = labels + int(add_id)
            if self.ntotal and np.isin(new_ids, self._labels()).any():
                raise RuntimeError("Error: merge_from: ids overlap (nearkit IVF indexes hold unique ids; "
                                   "pass add_id to shift them)")
            if self._dcodec is not None and other._dcodec is not None:
                lists, codes, ids, _ = other._nk._unpacked()  # decoded vectors stay in their lists
                with self._nk._lock.write():
                    self._nk._add(None, ids + int(add_id), encoded=(lists, codes))
            else:
                self._nk.add(other._nk.reconstruct(labels), new_ids)
        other.reset()

    def set_direct_map_type(self, kind) -> None:
        """Allow (or not) reconstruct by id. nearkit can always find an id; the flag is kept
        so that reconstruct() refuses without it, as faiss does."""
        if int(kind) not in (DirectMap.NoMap, DirectMap.Array, DirectMap.Hashtable):
            raise RuntimeError(f"Error: unknown direct map type {kind}")
        self._direct_map = int(kind)

    def make_direct_map(self, new_maintain=True) -> None:
        """See set_direct_map_type."""
        self._direct_map = DirectMap.Array if new_maintain else DirectMap.NoMap

    @property
    def direct_map(self):
        return _DirectMapView(self._direct_map)

    def reconstruct_n(self, n0=0, ni=-1) -> np.ndarray:
        """The vectors of ids n0 .. n0 + ni - 1 (faiss scans the lists: no direct map needed)."""
        ni = self.ntotal - n0 if ni < 0 else ni
        if not ni:
            return np.empty((0, self._d), np.float32)
        try:
            return self._nk.reconstruct(np.arange(n0, n0 + ni, dtype=np.int64))
        except KeyError as exc:
            raise RuntimeError(f"Error: reconstruct_n: {exc}") from None

    def search_and_reconstruct(self, x, k, *, params=None, D=None, I=None, R=None):  # noqa: E741
        """search plus the decoded vector of each result (faiss reads them from the lists)."""
        dist, ids = self.search(x, k, params=params, D=D, I=I)
        rec = np.zeros(ids.shape + (self._d,), np.float32)
        found = ids >= 0
        if found.any():
            rec[found] = self._nk.reconstruct(ids[found])
        if R is not None:
            R[...] = rec
            rec = R
        return dist, ids, rec

    def copy_subset_to(self, other, subset_type, a1, a2) -> None:
        """Copy part of this IVF's entries (codes as they are) into ``other`` (same training):
        0 ids in [a1, a2); 1 id % a1 == a2; 2 entries [a1, a2) in list order;
        3 lists l with l % a1 == a2; 4 lists in [a1, a2)."""
        if not isinstance(other, _IVFBased) or other._nk.nlist != self._nk.nlist:
            raise RuntimeError("Error: copy_subset_to: the other index must be an IVF with the same nlist")
        if not self.ntotal:
            return
        lists, codes, ids, refine = self._nk._unpacked()
        t, a1, a2 = int(subset_type), int(a1), int(a2)
        if t == 0:
            keep = (ids >= a1) & (ids < a2)
        elif t == 1:
            keep = ids % a1 == a2
        elif t == 2:
            order = np.arange(ids.size)
            keep = (order >= a1) & (order < a2)
        elif t == 3:
            keep = lists % a1 == a2
        elif t == 4:
            keep = (lists >= a1) & (lists < a2)
        else:
            raise RuntimeError(f"Error: copy_subset_to: unknown subset type {t}")
        if other.ntotal:
            ol, oc, oi, orf = other._nk._unpacked()
            lists, codes, ids = (np.concatenate([ol, lists[keep]]), np.concatenate([oc, codes[keep]]),
                                 np.concatenate([oi, ids[keep]]))
            refine = np.concatenate([orf, refine[keep]]) if refine is not None else None
        else:
            lists, codes, ids = lists[keep], codes[keep], ids[keep]
            refine = refine[keep] if refine is not None else None
        if other._nk._centroids is None:
            other._nk._centroids = self._nk._centroids
        other._nk._rebuild_from(lists, codes, ids, refine)

    def check_ids_sorted(self) -> bool:
        inv = self.invlists
        return all(np.all(np.diff(inv.get_ids(l)) >= 0) for l in range(inv.nlist))

    def _nk_kwargs(self) -> dict:
        ivf = self._nk
        return dict(nlist=ivf.nlist, codec=ivf._codec_name, transform=ivf.transform_name,
                    refine=ivf.refine, nprobe=ivf.nprobe, k_factor=ivf.k_factor)

    @property
    def nprobe(self) -> int:
        return self._nk.nprobe

    @nprobe.setter
    def nprobe(self, v):
        v = int(v)
        if v <= 0:  # faiss stores it and refuses it when searching
            self._nprobe_bad = v
            return
        self._nprobe_bad = None
        self._nk.nprobe = v

    @property
    def nlist(self) -> int:
        return self._nk.nlist

    @property
    def code_size(self) -> int:
        return self._dcodec.code_size if self._dcodec is not None else self._nk.code_size

    def _search_params(self, params) -> dict:
        out = {}
        base = getattr(params, "base_index_params", None)
        nprobe = getattr(params, "nprobe", None) or getattr(base, "nprobe", None)
        if not nprobe and self._nprobe_bad is not None:
            raise RuntimeError("Error: 'nprobe > 0' failed")
        if params is None:
            return out
        if nprobe:
            out["nprobe"] = int(nprobe)
        kf = getattr(params, "k_factor", None)
        if kf:
            out["k_factor"] = max(1, int(round(kf)))
        return out

    def reset(self):
        self._nk.reset()

    def reconstruct(self, key) -> np.ndarray:
        if self._direct_map == DirectMap.NoMap:
            raise RuntimeError("Error: direct map not initialized: call make_direct_map() or "
                               "set_direct_map_type() first (as in faiss)")
        try:
            return self._nk.reconstruct([int(key)])[0]
        except KeyError as exc:
            raise RuntimeError(f"Error: key {int(key)} not found ({exc})") from None


class DirectMap:
    NoMap, Array, Hashtable = 0, 1, 2


class _DirectMapView:
    def __init__(self, kind):
        self.type = kind

    def no(self) -> bool:
        return self.type == DirectMap.NoMap


class _IterationStats:
    def __init__(self, obj, imbalance):
        self.obj, self.imbalance_factor, self.time, self.time_search, self.nsplit = obj, imbalance, 0.0, 0.0, 0


class Clustering:
    """faiss.Clustering: weighted Lloyd k-means whose assignment step searches ``index``
    (reset and filled with the centroids each iteration, as faiss does); ``nredo``
    restarts keep the best objective (largest for inner-product indexes)."""

    def __init__(self, d, k, cp=None):
        self.d, self.k = int(d), int(k)
        base = cp if cp is not None else ClusteringParameters()
        for key, value in vars(base).items():
            setattr(self, key, value)
        if cp is None:
            self.niter = 25
        self.decode_block_size = 32768
        self.centroids = Vector()
        self.iteration_stats = _Stats()

    def train(self, x, index, weights=None):
        x = np.ascontiguousarray(_as_x(x, self.d), np.float32)
        n, k = x.shape[0], self.k
        if n < k:
            raise RuntimeError(f"Error: 'nx >= k' failed: Number of training points ({n}) should be at "
                               f"least as large as number of clusters ({k})")
        w = np.ones(n) if weights is None else np.asarray(weights, np.float64).ravel()
        if n > k * self.max_points_per_centroid and weights is None:
            keep = np.sort(np.random.default_rng(self.seed).choice(n, k * self.max_points_per_centroid,
                                                                   replace=False))
            x, w, n = x[keep], w[keep], keep.size
        maximize = index.metric_type == METRIC_INNER_PRODUCT
        init = self.centroids.array.reshape(-1, self.d) if self.centroids.size() else None
        best = None
        for redo in range(max(1, int(self.nredo))):
            rng = np.random.default_rng(int(self.seed) + 15486557 * redo)
            cents = (init.copy() if init is not None and init.shape[0] == k
                     else x[rng.choice(n, k, replace=False)].copy())
            stats = []
            for _ in range(int(self.niter)):
                index.reset()
                index.add(cents)
                D, I = index.search(x, 1)
                labels = I[:, 0]
                sizes = np.bincount(labels, minlength=k)
                stats.append(_IterationStats(float((D[:, 0] * w).sum()),
                                             float((sizes ** 2).sum() * k / (n * n))))
                sums = np.zeros((k, self.d))
                np.add.at(sums, labels, x * w[:, None])
                wsum = np.bincount(labels, weights=w, minlength=k)
                full = wsum > 0
                cents[full] = (sums[full] / wsum[full, None]).astype(np.float32)
                for c in np.flatnonzero(~full):  # empty cluster: split the largest one
                    big = int(np.argmax(sizes))
                    cents[c] = cents[big] * (1 + 1e-5 * rng.standard_normal(self.d)).astype(np.float32)
                if self.spherical:
                    norms = np.linalg.norm(cents, axis=1, keepdims=True)
                    norms[norms == 0] = 1
                    cents = (cents / norms).astype(np.float32)
                if self.int_centroids:
                    cents = np.rint(cents).astype(np.float32)
                if len(stats) > 1:  # faiss 1.15: stop once the objective stops changing
                    prev, obj = float(np.float32(stats[-2].obj)), float(np.float32(stats[-1].obj))
                    change = abs(prev - obj) / abs(prev) if prev else float("inf")  # faiss: floats
                    if change <= float(self.early_stop_threshold):
                        break
            final = stats[-1].obj if stats else 0.0
            if best is None or (final > best[0] if maximize else final < best[0]):
                best = (final, cents.copy(), stats)
        copy_array_to_vector(best[1].ravel(), self.centroids)
        self.iteration_stats = _Stats(best[2])
        index.reset()
        index.add(best[1])

    def train_encoded(self, codes, codec, index, weights=None):
        self.train(codec.sa_decode(codes), index, weights=weights)


class _Stats(list):
    """faiss's std::vector of iteration statistics: ``size()`` and ``at(i)``."""

    def size(self):
        return len(self)

    def at(self, i):
        return self[int(i)]


class IndexShards(Index):
    """Search several indexes and merge their results (faiss.IndexShards); add() fills
    the shards in turn, with successive ids when ``successive_ids``."""

    def __init__(self, *args, successive_ids=True, threaded=False):
        """``IndexShards(threaded=False, successive_ids=True)`` or ``IndexShards(d, threaded,
        successive_ids)``, as faiss's overloads."""
        d = None
        if args and not isinstance(args[0], (bool, np.bool_)):
            d, args = int(args[0]), args[1:]
        if len(args) > 0:
            threaded = bool(args[0])
        if len(args) > 1:
            successive_ids = bool(args[1])
        super().__init__(d or 1, METRIC_L2)
        self._d_set = d is not None
        self.shards, self.successive_ids = [], bool(successive_ids)

    def add_shard(self, index) -> None:
        if not self._d_set:
            self._d, self._metric_type = index.d, index.metric_type
            self._metric = _metric_name(index.metric_type)
            self._d_set = True
        elif index.d != self._d:
            raise RuntimeError("Error: shards must have the same dimension")
        self.shards.append(index)

    def remove_shard(self, index) -> None:
        self.shards = [s for s in self.shards if s is not index]

    def at(self, i):
        return self.shards[int(i)]

    def count(self) -> int:
        return len(self.shards)

    @property
    def ntotal(self) -> int:
        return sum(s.ntotal for s in self.shards)

    @property
    def is_trained(self) -> bool:
        return all(s.is_trained for s in self.shards)

    def train(self, x) -> None:
        x = _as_x(x, self._d)
        for s in self.shards:
            s.train(x)

    def add(self, x) -> None:
        self.add_with_ids(x, None)

    def add_with_ids(self, x, ids) -> None:
        """Rows split evenly over the shards in order, as faiss; with successive_ids only
        one add() into empty shards (faiss's rule), else ids given or numbered from ntotal."""
        x = _as_x(x, self._d)
        n, nshard = x.shape[0], len(self.shards)
        if not nshard:
            raise RuntimeError("Error: IndexShards has no shard to add to")
        if self.successive_ids:
            if ids is not None:
                raise RuntimeError("Error: It makes no sense to pass in ids and request them to be shifted")
            if self.ntotal:
                raise RuntimeError("Error: when adding to IndexShards with successive_ids, only add() "
                                   "in a single pass is supported")
        elif ids is None:
            ids = np.arange(self.ntotal, self.ntotal + n, dtype=np.int64)
        if ids is not None:
            ids = _as_ids(ids, n)
        for i, s in enumerate(self.shards):
            i0, i1 = i * n // nshard, (i + 1) * n // nshard
            if ids is None:
                s.add(x[i0:i1])
            else:
                s.add_with_ids(x[i0:i1], ids[i0:i1])

    def reset(self) -> None:
        for s in self.shards:
            s.reset()

    def search(self, x, k, *, params=None, D=None, I=None):  # noqa: E741
        x = _as_x(x, self._d)
        k = _as_k(k)
        dists, idss, base = [], [], 0
        for shard in self.shards:
            dd, ii = shard.search(x, k, params=params)
            if self.successive_ids:
                ii = np.where(ii >= 0, ii + base, -1)
                base += shard.ntotal
            dists.append(dd)
            idss.append(ii)
        dist, ids = merge_knn_results(np.stack(dists), np.stack(idss),
                                      keep_max=self._metric == "ip")
        return _fill(D, I, np.ascontiguousarray(dist), np.ascontiguousarray(ids))


class IndexReplicas(Index):
    """The same index held several times (faiss.IndexReplicas): train and add go to
    every replica, the queries of a search are split among them."""

    def __init__(self, *args):
        d = None
        if args and not isinstance(args[0], (bool, np.bool_)):
            d = int(args[0])
        super().__init__(d or 1, METRIC_L2)
        self._d_set = d is not None
        self.replicas = []

    def add_replica(self, index) -> None:
        if not self._d_set:
            self._d, self._metric_type = index.d, index.metric_type
            self._metric = _metric_name(index.metric_type)
            self._d_set = True
        elif index.d != self._d:
            raise RuntimeError("Error: replicas must have the same dimension")
        if self.replicas and index.ntotal != self.replicas[0].ntotal:
            raise RuntimeError("Error: a new replica must hold as many vectors as the others")
        self.replicas.append(index)

    def remove_replica(self, index) -> None:
        self.replicas = [r for r in self.replicas if r is not index]

    def at(self, i):
        return self.replicas[int(i)]

    def count(self) -> int:
        return len(self.replicas)

    @property
    def ntotal(self) -> int:
        return self.replicas[0].ntotal if self.replicas else 0

    @property
    def is_trained(self) -> bool:
        return all(r.is_trained for r in self.replicas)

    def train(self, x) -> None:
        x = _as_x(x, self._d)
        for r in self.replicas:
            r.train(x)

    def add(self, x) -> None:
        for r in self.replicas:
            r.add(x)

    def add_with_ids(self, x, ids) -> None:
        for r in self.replicas:
            r.add_with_ids(x, ids)

    def reset(self) -> None:
        for r in self.replicas:
            r.reset()

    def search(self, x, k, *, params=None, D=None, I=None):  # noqa: E741
        x = _as_x(x, self._d)
        k = _as_k(k)
        if not self.replicas:
            raise RuntimeError("Error: IndexReplicas has no replica to search")
        n, nr = x.shape[0], len(self.replicas)
        parts = [self.replicas[i].search(x[i * n // nr:(i + 1) * n // nr], k, params=params)
                 for i in range(nr)]
        dist = np.concatenate([p[0] for p in parts]).reshape(n, k)
        ids = np.concatenate([p[1] for p in parts]).reshape(n, k)
        return _fill(D, I, np.ascontiguousarray(dist), np.ascontiguousarray(ids))


class ClusteringParameters:
    """faiss.ClusteringParameters: the k-means settings of an IVF's ``cp``."""

    def __init__(self):
        self.niter, self.nredo, self.seed, self.verbose, self.spherical = 10, 1, 1234, False, False
        self.min_points_per_centroid, self.max_points_per_centroid = 39, 256
        self.int_centroids, self.update_index, self.frozen_centroids = False, False, False
        self.early_stop_threshold = 0.0  # relative objective change at which k-means stops


class InvertedLists:
    """Read-only view of an IVF's lists (faiss's ``index.invlists``)."""

    def __init__(self, owner):
        self._owner = owner

    @property
    def nlist(self) -> int:
        return self._owner._nk.nlist

    @property
    def code_size(self) -> int:
        return self._owner._nk.code_size

    def _slots(self, list_no):
        ivf = self._owner._nk
        list_no = int(list_no)
        if not 0 <= list_no < ivf.nlist:
            raise RuntimeError(f"Error: 'list_no < nlist' failed: list {list_no}, nlist {ivf.nlist}")
        if not ivf.is_trained or not len(ivf):
            return np.empty(0, np.int64)
        lo, hi = int(ivf._offsets[list_no]), int(ivf._offsets[list_no + 1])
        ids = ivf._ids[lo:hi]
        return ids[ids >= 0]

    def list_size(self, list_no) -> int:
        return int(self._slots(list_no).size)

    def get_ids(self, list_no) -> np.ndarray:
        """The ids of a list, in insertion order (faiss returns a pointer; use rev_swig_ptr)."""
        return np.array(self._slots(list_no), dtype=np.int64)

    def compute_ntotal(self) -> int:
        return sum(self.list_size(i) for i in range(self.nlist))

    def imbalance_factor(self) -> float:
        sizes = np.array([self.list_size(i) for i in range(self.nlist)], np.float64)
        tot = sizes.sum()
        return float((sizes ** 2).sum() * self.nlist / (tot * tot)) if tot else 0.0


def rev_swig_ptr(ptr, n):
    """faiss turns a C pointer into an array; here the 'pointer' already is one."""
    return np.asarray(ptr)[: int(n)]


class IndexIVFFlat(_IVFBased):
    def __init__(self, quantizer, d, nlist, metric=METRIC_L2):
        super().__init__(d, metric)
        self.quantizer = quantizer  # kept alive, and filled with the centroids by train()
        self._init_nk(nlist=int(nlist), codec="flat")
        self._adopt_quantizer()


class IndexIVFPQ(_IVFBased):
    def __init__(self, quantizer, d, nlist, M, nbits, metric=METRIC_L2):
        super().__init__(d, metric)
        self.quantizer = quantizer
        if d % M:
            raise RuntimeError("Error: 'd % M == 0' failed: The dimension of the vector (d) should "
                               "be a multiple of the number of subquantizers (M)")
        if int(nbits) == 8:
            self._init_nk(nlist=int(nlist), codec=f"pq{M}")
        else:  # by residual, as faiss, in decoded mode
            self._init_decoded(nlist, _codecs.PQCodec(d, M, nbits), True)

    do_polysemous_training = False  # nearkit has no polysemous codes

    @property
    def pq(self):
        return self._dcodec if self._dcodec is not None else self._nk._pq


class ScalarQuantizer(_codecs.SQCodec):
    """faiss.ScalarQuantizer: the type constants, and a stand-alone codec
    (``train``, ``compute_codes``, ``decode``; codes one value per dimension, not
    bit-packed as faiss's)."""

    QT_8bit, QT_4bit, QT_8bit_uniform, QT_4bit_uniform, QT_fp16 = 0, 1, 2, 3, 4
    QT_8bit_direct, QT_6bit, QT_bf16, QT_8bit_direct_signed = 5, 6, 7, 8
    this = _Owned()

    def __init__(self, d=0, qtype=0):
        super().__init__(int(d), int(qtype))

    def train(self, x) -> None:
        super().train(_as_x(x, self.d))

    def compute_codes(self, x) -> np.ndarray:
        return self.encode(_as_x(x, self.d))


def clone_Quantizer(quantizer):
    """A deep copy of a stand-alone quantizer."""
    import copy

    return copy.deepcopy(quantizer)


class _CodecIndex(Index):
    """A flat index over coded vectors (faiss's IndexPQ / IndexScalarQuantizer).

    Codes are kept with their decoded vectors in a nearkit.Flat, so distances are
    faiss's (to the decoded vectors: for PQ that is exactly the ADC distance).
    Ids are positions, renumbered by remove_ids as in faiss.
    """

    def _init_codec(self, codec):
        self._codec = codec
        self._codes = None
        self._nk = _Flat(self._d, self._metric)

    @property
    def is_trained(self) -> bool:
        return self._codec.is_trained

    @property
    def code_size(self) -> int:
        return self._codec.code_size

    def sa_code_size(self) -> int:
        return self._codec.code_size

    @property
    def codes(self) -> np.ndarray:
        """The stored codes, one row per vector (one value per dimension / sub-quantizer,
        not bit-packed as in faiss)."""
        return np.empty((0, self._d), np.uint8) if self._codes is None else self._codes

    def train(self, x) -> None:
        self._codec.train(_as_x(x, self._d))

    def sa_encode(self, x):
        self._require_trained("encoding")
        return self._codec.encode(_as_x(x, self._d))

    def sa_decode(self, codes):
        return self._codec.decode(np.asarray(codes))

    def add(self, x) -> None:
        """Adds vectors to the index (ids are ntotal, ntotal + 1, ...)."""
        x = _as_x(x, self._d)
        self._require_trained("add")
        if x.shape[0]:
            codes = self._codec.encode(x)
            self._codes = codes if self._codes is None else np.concatenate([self._codes, codes])
            self._nk.add(self._codec.decode(codes), np.arange(self.ntotal, self.ntotal + x.shape[0]))

    def add_with_ids(self, x, ids):
        raise RuntimeError("Error: add_with_ids not implemented for this type of index (wrap it in IndexIDMap)")

    def remove_ids(self, sel) -> int:
        before = self.ntotal
        Index.remove_ids(self, sel)
        removed = before - self.ntotal
        if removed:  # compact: survivors keep their order and become positions again
            keep = self._nk.ids()
            codes = self._codes[keep]
            self._codes, self._nk = None, _Flat(self._d, self._metric)
            if codes.shape[0]:
                self._codes = codes
                self._nk.add(self._codec.decode(codes), np.arange(codes.shape[0]))
        return removed

    def reset(self) -> None:
        self._codes, self._nk = None, _Flat(self._d, self._metric)

    def reconstruct(self, key) -> np.ndarray:
        key = int(key)
        if not 0 <= key < self.ntotal:
            raise RuntimeError(f"Error: 'key < ntotal' failed: key {key}, ntotal {self.ntotal}")
        return self._codec.decode(self._codes[key:key + 1])[0]

    def reconstruct_n(self, n0=0, ni=-1) -> np.ndarray:
        ni = self.ntotal - n0 if ni < 0 else ni
        if ni == 0:
            return np.empty((0, self._d), np.float32)
        return self._codec.decode(self._codes[n0:n0 + ni])


def _append_only(index, x, ids):
    """Indexes that number vectors by position accept internal ids only in order."""
    if not np.array_equal(ids, np.arange(index.ntotal, index.ntotal + ids.shape[0])):
        raise RuntimeError(f"Error: {type(index).__name__} inside an IndexIDMap does not support "
                           "adding after remove_ids")
    index.add(x)


def _no_remove(index, ids):
    raise RuntimeError(f"Error: remove_ids not implemented for {type(index).__name__} inside an IndexIDMap")


_CodecIndex._add_internal = _HNSWCodec._add_internal = _append_only
_CodecIndex._remove_internal = _HNSWCodec._remove_internal = _no_remove


IndexFlatCodes = _CodecIndex  # faiss's base of the flat coded indexes
IndexPQ_ST_polysemous = 1


class IndexScalarQuantizer(_CodecIndex):
    def __init__(self, d, qtype, metric=METRIC_L2):
        super().__init__(d, metric)
        self._init_codec(_codecs.SQCodec(self._d, qtype))

    @property
    def sq(self):
        return self._codec


class IndexPQ(_CodecIndex):
    def __init__(self, d, M, nbits, metric=METRIC_L2):
        super().__init__(d, metric)
        self._init_codec(_codecs.PQCodec(self._d, M, nbits))
        self.do_polysemous_training = False  # nearkit has no polysemous codes

    @property
    def pq(self):
        return self._codec

    def train(self, x) -> None:
        x = _as_x(x, self._d)
        self._codec.train(x)


class IndexIVFScalarQuantizer(_IVFBased):
    def __init__(self, quantizer, d, nlist, qtype=ScalarQuantizer.QT_8bit, metric=METRIC_L2,
                 by_residual=True):
        super().__init__(d, metric)
        self.quantizer = quantizer
        # faiss's rules for every qtype, by residual unless told otherwise (decoded mode)
        self._init_decoded(nlist, _codecs.SQCodec(d, int(qtype)), by_residual)
        self._adopt_quantizer()

    @property
    def sq(self):
        return self._dcodec if self._dcodec is not None else self._nk._sq


class _FastScan:
    """faiss's fast-scan attributes: ``bbs`` (block size, a multiple of 32) and ``pq``."""

    _bbs = 32

    @property
    def bbs(self) -> int:
        return self._bbs

    @property
    def pq(self):
        return self._dcodec if self._dcodec is not None else self._nk._pq


class IndexIVFPQFastScan(_FastScan, _IVFBased):
    """4-bit PQ by residual, as faiss's default (decoded mode; see _IVFBased)."""

    def __init__(self, quantizer, d, nlist, M, nbits=4, metric=METRIC_L2, bbs=32):
        super().__init__(d, metric)
        if int(nbits) != 4:
            raise RuntimeError(f"Error: fast-scan PQ needs nbits=4 (got {nbits})")
        if d % int(M):
            raise RuntimeError("Error: 'd % M == 0' failed: The dimension of the vector (d) should "
                               "be a multiple of the number of subquantizers (M)")
        self.quantizer = quantizer
        self._init_decoded(nlist, _codecs.PQCodec(d, int(M), 4), True)
        self._bbs = int(bbs)


class IndexPQFastScan(_FastScan, _IVFBased):
    def __init__(self, d, M, nbits=4, metric=METRIC_L2, bbs=32):
        super().__init__(d, metric)
        if int(nbits) != 4:
            raise RuntimeError(f"Error: fast-scan PQ needs nbits=4 (got {nbits})")
        self._init_nk(nlist=1, codec=f"pq{int(M)}x4fs")
        self._bbs = int(bbs)


class _NkPreTransformBase(_IVFBased):
    """A nearkit IVF with its own PCA / OPQ pre-transform (factory "OPQ<m>,IVF…")."""

    ntotal = Index.ntotal
    add, add_with_ids, search, range_search = Index.add, Index.add_with_ids, Index.search, Index.range_search
    remove_ids, sa_code_size = Index.remove_ids, Index.sa_code_size


class IndexPreTransform(Index):
    """Vector transforms applied before an inner index: ``IndexPreTransform(vt, index)``
    (``chain`` lists them; ``prepend_transform`` adds one in front)."""

    def __init__(self, vt, index=None):
        if index is None:  # IndexPreTransform(index): no transform yet
            vt, index = None, vt
        super().__init__(vt.d_in if vt is not None else index.d, index.metric_type)
        self.index = index
        self.chain = _Stats([vt] if vt is not None else [])

    def prepend_transform(self, vt):
        self.chain.insert(0, vt)
        self._d = vt.d_in

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

    @property
    def is_trained(self) -> bool:
        return all(t.is_trained for t in self.chain) and self.index.is_trained

    def apply_chain(self, x):
        x = _as_x(x, self._d)
        for t in self.chain:
            x = t.apply(x)
        return x

    def train(self, x):
        x = _as_x(x, self._d)
        for t in self.chain:
            if not t.is_trained:
                t.train(x)
            x = t.apply(x)
        self.index.train(x)

    def add(self, x):
        """Adds vectors to the index (ids are ntotal, ntotal + 1, ...)."""
        self._require_trained("add")
        self.index.add(self.apply_chain(x))

    def add_with_ids(self, x, ids):
        self._require_trained("add")
        self.index.add_with_ids(self.apply_chain(x), ids)

    def search(self, x, k, *, params=None, D=None, I=None):  # noqa: E741
        self._require_trained("search")
        return self.index.search(self.apply_chain(x), k, params=params, D=D, I=I)

    def range_search(self, x, thresh, *, params=None):
        return self.index.range_search(self.apply_chain(x), thresh, params=params)

    def remove_ids(self, sel):
        return self.index.remove_ids(sel)

    def reset(self):
        self.index.reset()

    def _reverse_chain(self, y):
        for t in reversed(self.chain):  # each transform raises if it cannot be reversed
            y = t.reverse_transform(y)
        return y

    def reconstruct(self, key):
        return self._reverse_chain(self.index.reconstruct(key)[None, :])[0]

    def reconstruct_n(self, n0=0, ni=-1):
        y = self.index.reconstruct_n(n0, ni)
        return self._reverse_chain(y) if y.shape[0] else np.empty((0, self._d), np.float32)

    def search_and_reconstruct(self, x, k, *, params=None, D=None, I=None, R=None):  # noqa: E741
        """As faiss: the inner index's results, its vectors mapped back through the chain."""
        dist, ids, rec = self.index.search_and_reconstruct(self.apply_chain(_as_x(x, self._d)), k,
                                                           params=params, D=D, I=I)
        shape = ids.shape
        back = self._reverse_chain(rec.reshape(-1, rec.shape[-1])).reshape(shape + (self._d,))
        back[ids < 0] = 0
        if R is not None:
            R[...] = back
            back = R
        return dist, ids, back

    def get_distance_computer(self):
        """Distances in the transformed space, as faiss (the query goes through the chain)."""
        if isinstance(self, _IVFBased):  # the transform lives inside a nearkit IVF
            return _DistanceComputer(self)
        return _PreTransformDistanceComputer(self)

    def sa_code_size(self) -> int:
        return self.index.sa_code_size()

    _add_internal = None  # set below (not by position-independent ids)
    _remove_internal = None


class _NkPreTransform(_NkPreTransformBase, IndexPreTransform):
    """What the factory builds for OPQ strings: an IndexPreTransform whose transform
    lives inside a nearkit IVF (its ``chain`` is empty here)."""

    @property
    def chain(self):
        return _Stats()

    @chain.setter
    def chain(self, value):
        pass

    def reconstruct(self, key):
        return _IVFBased.reconstruct(self, key)


class _IVFView:
    """What extract_index_ivf / base_index return: nprobe etc. on the shared IVF."""

    def __init__(self, owner):
        self._owner = owner

    def __getattr__(self, name):
        return getattr(self._owner, name)

    def __setattr__(self, name, value):
        if name == "_owner":
            object.__setattr__(self, name, value)
        else:
            setattr(self._owner, name, value)


# -- IDMap -------------------------------------------------------------------------------

class IndexIDMap(Index):
    """User ids around an index that numbers vectors itself; duplicates allowed."""

    def __init__(self, index):
        if index.ntotal:
            raise RuntimeError("Error: 'index->ntotal == 0' failed: index must be empty on input")
        super().__init__(index.d, index.metric_type)
        self.index = index
        self._ext = np.empty(0, np.int64)  # external id per internal id (-1 removed)
        self._next = 0

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

    @property
    def is_trained(self) -> bool:
        return self.index.is_trained

    @property
    def id_map(self) -> np.ndarray:
        return self._ext[self._ext_live()]

    def _ext_live(self):
        labels = self.index._labels()
        return np.sort(labels)

    def train(self, x):
        self.index.train(x)

    def add(self, x):
        raise RuntimeError("Error: add does not make sense with IndexIDMap, use add_with_ids")

    def add_with_ids(self, x, ids):
        x = _as_x(x, self._d)
        ids = _as_ids(ids, x.shape[0])
        self._require_trained("add")
        internal = np.arange(self._next, self._next + x.shape[0], dtype=np.int64)
        if x.shape[0]:
            self.index._add_internal(x, internal)
        self._ext = np.concatenate([self._ext, ids])
        self._next += x.shape[0]

    def _inner_params(self, params):
        """The same parameters with the selector moved from external to internal ids."""
        if params is None or getattr(params, "sel", None) is None:
            return params
        if isinstance(params.sel, IDSelectorTranslated):  # already on internal ids
            return params
        internal = self._ext_live()
        allowed = internal[params.sel.is_member(self._ext[internal])]
        inner = SearchParameters(sel=IDSelectorBatch(allowed))
        for key, value in vars(params).items():
            if key != "sel":
                setattr(inner, key, value)
        return inner

    def search(self, x, k, *, params=None, D=None, I=None):  # noqa: E741
        dist, ids = self.index.search(x, k, params=self._inner_params(params))
        ids = np.where(ids >= 0, self._ext[np.maximum(ids, 0)] if self._ext.size else -1, -1)
        return _fill(D, I, dist, ids.astype(np.int64))

    def range_search(self, x, thresh, *, params=None):
        lims, dist, ids = self.index.range_search(x, thresh, params=self._inner_params(params))
        return lims, dist, self._ext[ids] if ids.size else ids

    def remove_ids(self, sel) -> int:
        internal = self._ext_live()
        ext = self._ext[internal]
        if isinstance(sel, IDSelector):
            hit = sel.is_member(ext)
        else:
            if sel.ndim != 1:
                raise FaissAssertionError("ids must be 1-D")
            hit = np.isin(ext, np.asarray(sel).astype(np.int64))
        gone = internal[hit]
        if gone.size:
            self.index._remove_internal(gone)
            self._ext[gone] = -1
        return int(gone.size)

    def reset(self):
        self.index.reset()
        self._ext = np.empty(0, np.int64)
        self._next = 0

    def reconstruct(self, key):
        raise RuntimeError("Error: reconstruct not implemented for IndexIDMap (use IndexIDMap2)")

    def __getattr__(self, name):
        if name in ("nprobe", "hnsw", "k_factor"):
            return getattr(self.__dict__["index"], name)
        raise AttributeError(name)


class IndexIDMap2(IndexIDMap):
    def reconstruct(self, key):
        internal = self._ext_live()
        hit = internal[self._ext[internal] == int(key)]
        if not hit.size:
            raise RuntimeError(f"Error: key {int(key)} not found")
        inner = self.index
        if isinstance(inner, IndexFlat):
            pos = int(np.flatnonzero(inner._nk.slot_labels() == hit[0])[0])
            return np.array(inner._nk.vectors[pos])
        if isinstance(inner, _IVFBased):
            return inner._nk.reconstruct([int(hit[0])])[0]
        return inner.reconstruct(int(hit[0]))


# -- factory, files, helpers ---------------------------------------------------------

def _wrap(nk_index, metric, idmap=None):
    """A compat object around a nearkit index built by nearkit's factory."""
    d = nk_index.dim
    if isinstance(nk_index, _Flat):
        obj = IndexFlat.__new__(IndexFlat)
        Index.__init__(obj, d, metric)
    elif isinstance(nk_index, _IVF):
        ivf = nk_index
        if ivf.transform_name:
            cls = _NkPreTransform
        elif ivf.nlist == 1 and ivf.codec == "pq4fs":
            cls = IndexPQFastScan
        else:
            cls = {"flat": IndexIVFFlat, "pq8": IndexIVFPQ, "pq4fs": IndexIVFPQFastScan}.get(
                ivf.codec, IndexIVFScalarQuantizer)
        obj = cls.__new__(cls)
        Index.__init__(obj, d, metric)
        if ivf.nlist > 1:
            obj.quantizer = IndexFlat(ivf.inner_dim, metric)
    else:
        obj = IndexHNSWFlat.__new__(IndexHNSWFlat)
        Index.__init__(obj, d, metric)
        obj._M, obj._ef_construction, obj._ef_search = nk_index.M, nk_index.ef_construction, nk_index.ef_search
        obj.hnsw = _HNSWParams(obj)
    obj._nk = nk_index
    if idmap:
        obj = (IndexIDMap2 if idmap == "IDMap2" else IndexIDMap)(obj)
    return obj


class FactoryError(RuntimeError, ValueError):
    """A description index_factory cannot build (faiss raises RuntimeError)."""


_PQ_BITS_RE = re.compile(r"^PQ(\d+)(?:x(\d+))?(np)?$")
_HNSW_HEAD_RE = re.compile(r"^HNSW(\d*)(?:_(.+))?$")
_IVF_HNSW_RE = re.compile(r"^IVF(\d+[kM]?)_HNSW(\d*)$")
_IVF_NLIST_RE = re.compile(r"^IVF(\d+)([kM]?)$")


def _split_top(desc: str) -> list[str]:
    """Split on commas outside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in desc:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += (ch == "(") - (ch == ")")
        cur += ch
    parts.append(cur)
    return parts


def _codec_index(d, part, metric):
    """A standalone SQ / PQ index from one component, or None."""
    if part in _codecs.SQ_NAMES:
        return IndexScalarQuantizer(d, _codecs.SQ_NAMES[part], metric)
    mt = _PQ_BITS_RE.match(part)
    if mt:
        return IndexPQ(d, int(mt.group(1)), int(mt.group(2) or 8), metric)
    return None


def index_factory(d, description, metric=METRIC_L2, /):
    """Faiss's factory grammar for the parts nearkit has; see docs/compat.md.

    Raises FactoryError (a RuntimeError, as faiss, and a ValueError) for what it
    cannot build.
    """
    if not isinstance(description, str):
        raise TypeError(f"index description must be a string, got {type(description).__name__}")
    d = int(d)
    _metric_name(metric)
    try:
        return _factory(d, description, metric)
    except FactoryError:
        raise
    except ValueError as exc:
        raise FactoryError(f"Error: could not parse index string {description}: {exc}") from None


def _factory(d, desc, metric):
    parts = _split_top(desc)
    idmap = None
    if parts[0] in ("IDMap", "IDMap2"):
        idmap = parts.pop(0)
    elif len(parts) > 1 and parts[-1] in ("IDMap", "IDMap2"):
        idmap = parts.pop()
    refine = None
    if len(parts) > 1 and parts[-1].startswith("Refine(") and parts[-1].endswith(")"):
        refine = parts.pop()[len("Refine("):-1]
    elif len(parts) > 1 and parts[-1] == "RFlat":
        refine = parts.pop()
    index = _factory_main(d, parts, metric, desc)
    if refine == "RFlat":
        index = IndexRefineFlat(index)
    elif refine is not None:
        index = IndexRefine(index, _factory(d, refine, metric))
    if idmap:
        index = (IndexIDMap2 if idmap == "IDMap2" else IndexIDMap)(index)
    return index


_VT_RE = re.compile(r"^(PCAW?R?|RR)(\d+)$|^(L2norm|L2Norm|HR)$")


def _transform(d, part):
    """(VectorTransform, d_out) for a transform component, or None."""
    mt = _VT_RE.match(part)
    if not mt:
        return None
    if mt.group(3):
        if mt.group(3) == "HR":
            vt = HadamardRotation(d)
            return vt, vt.d_out
        return NormalizationTransform(d), d
    kind, d_out = mt.group(1), int(mt.group(2))
    if kind == "RR":
        return RandomRotationMatrix(d, d_out), d_out
    return PCAMatrix(d, d_out, -0.5 if "W" in kind else 0.0, "R" in kind), d_out


def _factory_main(d, parts, metric, desc):
    chain, dd = [], d
    while len(parts) > 1 and _transform(dd, parts[0]) is not None:
        vt, dd = _transform(dd, parts.pop(0))
        chain.append(vt)
    if chain:
        index = IndexPreTransform(chain[0], _factory_main(dd, parts, metric, desc))
        index.chain = _Stats(chain)
        return index

    # "np" (no polysemous training) changes nothing here: nearkit has no polysemous codes
    parts = [re.sub(r"^(PQ\d+(?:x\d+)?)np$", r"\1", p) for p in parts]
    bbs = 32
    for i, p in enumerate(parts):  # fast-scan block size "_<bbs>"; "fsr" (by residual) is IVF's default
        mf = re.match(r"^(PQ\d+x4fs)(r?)(?:_(\d+))?$", p)
        if mf:
            parts[i] = mf.group(1)
            bbs = int(mf.group(3) or 32)
            if bbs <= 0 or bbs % 32:
                raise FactoryError(f"Error: could not parse index string {desc}: bbs must be a "
                                   f"multiple of 32 (got {bbs})")
    obj = _factory_fast_scan(d, parts, metric, bbs)
    if obj is not None:
        return obj
    if len(parts) == 1:
        codec = _codec_index(d, parts[0], metric)
        if codec is not None:
            return codec
    mt = _HNSW_HEAD_RE.match(parts[0])
    if mt and len(parts) <= 2:
        M = int(mt.group(1) or 32)
        storage = mt.group(2) or (parts[1] if len(parts) == 2 else "Flat")
        if storage != "Flat":
            if storage in _codecs.SQ_NAMES:
                index = IndexHNSWSQ(d, _codecs.SQ_NAMES[storage], M, metric)
            elif _PQ_BITS_RE.match(storage):
                mp = _PQ_BITS_RE.match(storage)
                index = IndexHNSWPQ(d, int(mp.group(1)), M, int(mp.group(2) or 8), metric)
            else:
                raise FactoryError(f"Error: could not parse index string {desc}: HNSW storage {storage!r}")
            return index
        parts = [f"HNSW{M}"]
    decoded = _decoded_ivf(d, parts, metric)
    if decoded is not None:
        return decoded
    hnsw_quantizer = None
    for i, p in enumerate(parts):
        mq = _IVF_HNSW_RE.match(p)
        if mq:  # IVF<n>_HNSW<m>: an HNSW coarse quantizer
            parts[i] = f"IVF{mq.group(1)}"
            hnsw_quantizer = int(mq.group(2) or 32)
        mp = _PQ_BITS_RE.match(p)
        if mp and mp.group(2) == "8":
            parts[i] = f"PQ{mp.group(1)}"
        elif mp and mp.group(2) == "4" and i > 0:
            # IVF with 4-bit PQ runs on nearkit's 4-bit fast-scan codec (not by residual)
            parts[i] = f"PQ{mp.group(1)}x4fs"
    from ..indexes.factory import parse

    text = ",".join(parts)
    spec = parse(text)
    options = ({"ef_construction": 40, "ef_search": 16, "walk": "float"} if spec["kind"] == "hnsw"
               else {})
    nk_index = _nk_factory(d, text, _metric_name(metric), **options)
    obj = _wrap(nk_index, metric, spec["idmap"])
    inner = obj.index if isinstance(obj, IndexIDMap) else obj
    if hnsw_quantizer is not None:
        inner.quantizer = IndexHNSWFlat(nk_index.inner_dim, hnsw_quantizer, metric)
    if isinstance(inner, _FastScan):
        inner._bbs = bbs
    return obj


def _factory_fast_scan(d, parts, metric, bbs):
    """``IVF<n>,PQ<m>x4fs[r]``: 4-bit PQ by residual as faiss (its default for IVF fast
    scan), in decoded mode (see _IVFBased): nearkit's own 4-bit fast-scan codec codes
    the vectors, not residuals, which changes distances and ties. None otherwise."""
    if len(parts) != 2 or not parts[1].endswith("x4fs"):
        return None
    obj = _decoded_ivf(d, [parts[0], parts[1][:-2]], metric)
    if obj is None:
        return None
    obj.__class__ = IndexIVFPQFastScan
    obj._bbs = bbs
    return obj


def _decoded_ivf(d, parts, metric):
    """``IVF<n>[_HNSW<m>],SQ<any>`` and ``IVF<n>,PQ<m>x<b>`` (b != 8): faiss's codecs by
    residual (decoded mode, see _IVFBased), built from the classes as faiss's factory does."""
    if len(parts) != 2:
        return None
    mh, mn = _IVF_HNSW_RE.match(parts[0]), _IVF_NLIST_RE.match(parts[0])
    if not (mh or mn):
        return None
    size = mh.group(1) if mh else mn.group(1) + mn.group(2)
    nlist = int(size.rstrip("kM")) * {"k": 1 << 10, "M": 1 << 20}.get(size[-1:], 1)
    mp = _PQ_BITS_RE.match(parts[1])
    if parts[1] not in _codecs.SQ_NAMES and not (mp and mp.group(2) not in (None, "8")):
        return None
    quantizer = IndexHNSWFlat(d, int(mh.group(2) or 32), metric) if mh else IndexFlat(d, metric)
    if mp:
        return IndexIVFPQ(quantizer, d, nlist, int(mp.group(1)), int(mp.group(2)), metric)
    return IndexIVFScalarQuantizer(quantizer, d, nlist, _codecs.SQ_NAMES[parts[1]], metric)


class IndexRefine(Index):
    """Search ``base_index`` for k * k_factor candidates, re-rank them with
    ``refine_index``'s (decoded) vectors. Both receive every added vector."""

    def __init__(self, base_index, refine_index=None):
        super().__init__(base_index.d, base_index.metric_type)
        self.base_index = base_index
        self.refine_index = refine_index if refine_index is not None else IndexFlat(base_index.d, base_index.metric_type)
        self.k_factor = 1.0

    @property
    def ntotal(self) -> int:
        return self.base_index.ntotal

    @property
    def is_trained(self) -> bool:
        return self.base_index.is_trained and self.refine_index.is_trained

    def train(self, x) -> None:
        self.base_index.train(x)
        self.refine_index.train(x)

    def add(self, x) -> None:
        """Adds vectors to the index (ids are ntotal, ntotal + 1, ...)."""
        self._require_trained("add")
        self.base_index.add(x)
        self.refine_index.add(x)

    def reset(self) -> None:
        self.base_index.reset()
        self.refine_index.reset()

    def reconstruct(self, key):
        return self.refine_index.reconstruct(key)

    def _exact(self, x, ids):
        """Distances (faiss convention) from each query to its candidate ids' refined vectors."""
        vecs = self.refine_index.reconstruct_n(0, self.refine_index.ntotal)
        cand = vecs[np.maximum(ids, 0)]
        if self._metric == "ip":
            dist = np.einsum("nkd,nd->nk", cand, x)
            dist[ids < 0] = -_FLT_MAX
        else:
            dist = ((cand - x[:, None, :]) ** 2).sum(-1)
            dist[ids < 0] = _FLT_MAX
        return dist.astype(np.float32)

    def search(self, x, k, *, params=None, D=None, I=None):  # noqa: E741
        x = _as_x(x, self._d)
        k = _as_k(k)
        self._require_trained("search")
        kf = getattr(params, "k_factor", None) if params is not None else None
        kf = float(kf) if kf else float(self.k_factor)
        base_params = getattr(params, "base_index_params", None) if params is not None else None
        if base_params is None and params is not None and getattr(params, "sel", None) is not None:
            base_params = params
        kb = max(k, int(k * kf))
        _, ids = self.base_index.search(x, kb, params=base_params)
        dist = self._exact(x, ids)
        order = np.argsort(-dist if self._metric == "ip" else dist, axis=1, kind="stable")[:, :k]
        dist, ids = np.take_along_axis(dist, order, 1), np.take_along_axis(ids, order, 1)
        if kb < k:  # pragma: no cover - kb >= k always
            pass
        return _fill(D, I, np.ascontiguousarray(dist), np.ascontiguousarray(ids))

    def range_search(self, x, thresh, *, params=None):
        """The base index's range results, with refined distances, kept inside the radius."""
        x = _as_x(x, self._d)
        lims, _, ids = self.base_index.range_search(x, thresh, params=params)
        out_d, out_i, counts = [], [], []
        vecs = self.refine_index.reconstruct_n(0, self.ntotal) if ids.size else None
        for q in range(x.shape[0]):
            ii = ids[int(lims[q]):int(lims[q + 1])]
            if ii.size:
                v = vecs[ii]
                dd = v @ x[q] if self._metric == "ip" else ((v - x[q]) ** 2).sum(1)
                keep = dd > thresh if self._metric == "ip" else dd < thresh
                out_d.append(dd[keep].astype(np.float32))
                out_i.append(ii[keep])
            counts.append(int(out_i[-1].size) if ii.size else 0)
        new_lims = np.zeros(x.shape[0] + 1, np.uint64)
        new_lims[1:] = np.cumsum(counts)
        dist = np.concatenate(out_d) if out_d else np.empty(0, np.float32)
        ids = np.concatenate(out_i) if out_i else np.empty(0, np.int64)
        return new_lims, dist.astype(np.float32), ids.astype(np.int64)


IndexRefine._add_internal = IndexPreTransform._add_internal = _append_only
IndexPreTransform._remove_internal = _no_remove
IndexRefine._remove_internal = _no_remove


class IndexRefineFlat(IndexRefine):
    """IndexRefine with exact (IndexFlat) re-ranking: ``IndexRefineFlat(base_index)``."""

    def __init__(self, base_index, xb=None):
        super().__init__(base_index, IndexFlat(base_index.d, base_index.metric_type))
        if xb is not None:
            self.refine_index.add(xb)


def clone_index(index):
    """A deep, independent copy (as faiss.clone_index)."""
    import copy

    return copy.deepcopy(index)


class ParameterSpace:
    """Set run-time parameters by name: ``set_index_parameter(index, "nprobe", 8)`` or
    ``set_index_parameters(index, "nprobe=8,efSearch=32")``; reaches through IDMap,
    Refine (``k_factor``) and the HNSW quantizer of an IVF (``quantizer_efSearch``)."""

    def set_index_parameters(self, index, description: str) -> None:
        for item in description.split(","):
            if not item:
                continue
            name, _, value = item.partition("=")
            self.set_index_parameter(index, name, float(value))

    def set_index_parameter(self, index, name: str, value) -> None:
        if isinstance(index, IndexIDMap):
            return self.set_index_parameter(index.index, name, value)
        if isinstance(index, IndexPreTransform) and not isinstance(index, _IVFBased):
            return self.set_index_parameter(index.index, name, value)
        if isinstance(index, IndexRefine):
            if name == "k_factor":
                index.k_factor = float(value)
                return None
            return self.set_index_parameter(index.base_index, name, value)
        if name == "nprobe" and hasattr(type(index), "nprobe"):
            index.nprobe = int(value)
        elif name == "efSearch" and hasattr(index, "hnsw"):
            index.hnsw.efSearch = int(value)
        elif name == "k_factor" and hasattr(type(index), "k_factor"):
            index.k_factor = float(value)
        elif name.startswith("quantizer_") and getattr(index, "quantizer", None) is not None:
            self.set_index_parameter(index.quantizer, name[len("quantizer_"):], value)
        else:
            raise RuntimeError(f"Error: could not set parameter {name}")
        return None

    def initialize(self, index) -> None:
        """faiss enumerates tunable values here; nothing to precompute in nearkit."""


def downcast_index(index):
    return index


def extract_index_ivf(index):
    inner = index.index if isinstance(index, IndexIDMap) else index
    if not isinstance(inner, _IVFBased):
        raise RuntimeError("Error: index is not an IVF index")
    return _IVFView(inner)


# Files: a plain nearkit-backed index is written as that nearkit index (so
# nearkit.load reads it too) with a "faiss" entry in its params; composites
# (IDMap, Refine, coded and HNSW-over-codes indexes) are written as kind
# "faiss-compat": a JSON tree of nodes whose arrays are sections named by path.

def _nk_node(nk, prefix, sections) -> dict:
    for name, arr in nk._sections().items():
        sections[prefix + name] = arr
    return {"kind": nk.kind, "dim": nk.dim, "metric": nk.metric, "params": nk._params()}


def _nk_from_node(node, prefix, sections):
    own = {name[len(prefix):]: arr for name, arr in sections.items() if name.startswith(prefix)
           and "/" not in name[len(prefix):]}
    kind = node["kind"]
    if kind not in INDEX_KINDS:
        raise FormatError(f"index kind {kind!r} is unknown")
    return INDEX_KINDS[kind]._from_sections(node["dim"], node["metric"], node["params"], own)


def _to_node(index, prefix, sections) -> dict:
    node = {"class": type(index).__name__, "d": index.d, "metric": index.metric_type}
    if isinstance(index, IndexIDMap):
        node.update(inner=_to_node(index.index, prefix + "i/", sections), next=index._next)
        sections[prefix + "id_map"] = index._ext
    elif isinstance(index, IndexRefine):
        node.update(k_factor=index.k_factor, base=_to_node(index.base_index, prefix + "b/", sections),
                    refine=_to_node(index.refine_index, prefix + "r/", sections))
    elif isinstance(index, _CodecIndex):
        codec = index._codec
        node["trained"] = bool(codec.is_trained)
        if isinstance(codec, _codecs.SQCodec):
            node["qtype"] = codec.qtype
            sections[prefix + "sq_trained"] = codec.trained
        else:
            node.update(M=codec.M, nbits=codec.nbits)
            sections[prefix + "pq_centroids"] = codec.centroids
        sections[prefix + "codes"] = (index._codes if index._codes is not None
                                      else np.empty((0, 0), np.uint8))
    elif isinstance(index, IndexPreTransform) and not isinstance(index, _IVFBased):
        chain = []
        for j, t in enumerate(index.chain):
            item = {"type": type(t).__name__, "d_in": t.d_in, "d_out": t.d_out,
                    "trained": bool(t.is_trained)}
            if isinstance(t, HadamardRotation):
                item["seed"] = t.seed
            elif isinstance(t, NormalizationTransform):
                item["norm"] = t.norm
            elif isinstance(t, LinearTransform):
                item.update(have_bias=t.have_bias, orthonormal=bool(t.is_orthonormal),
                            eigen_power=getattr(t, "eigen_power", 0.0),
                            random_rotation=getattr(t, "random_rotation", False),
                            epsilon=getattr(t, "epsilon", 0.0))
                sections[f"{prefix}t{j}A"] = t.A.array
                sections[f"{prefix}t{j}b"] = t.b.array
            chain.append(item)
        node.update(chain=chain, inner=_to_node(index.index, prefix + "i/", sections))
    elif isinstance(index, _HNSWCodec):
        node.update(M=index._M, ef_search=index._ef_search, ef_construction=index._ef_construction,
                    storage=_to_node(index._storage, prefix + "s/", sections),
                    nk=_nk_node(index._nk, prefix + "g/", sections))
    else:
        if index._nk is None or (isinstance(index._nk, _IVF) and not index._nk.is_trained):
            raise RuntimeError(f"Error: write_index: cannot write an untrained {type(index).__name__}")
        node["nk"] = _nk_node(index._nk, prefix + "n/", sections)
        if isinstance(index, _IVFBased):
            node["direct_map"] = int(index._direct_map)
        codec = getattr(index, "_dcodec", None)
        if codec is not None:  # decoded-mode IVF: the faiss codec, for later adds
            node.update(by_residual=bool(index._dres), codec_trained=bool(codec.is_trained))
            if isinstance(codec, _codecs.SQCodec):
                node["qtype"] = codec.qtype
                sections[prefix + "sq_trained"] = codec.trained
            else:
                node.update(M=codec.M, nbits=codec.nbits)
                sections[prefix + "pq_centroids"] = codec.centroids
        if isinstance(index, IndexHNSWFlat):
            node["ef_search"] = index._ef_search
    return node


def _from_tree(tree, sections, fname):
    """A composite index rebuilt from the node tree write_index stored. Nothing in
    the file is trusted: class names must be compat index classes, id maps must
    cover the inner index, and whatever else a damaged tree trips on is reported
    as a FormatError (catchable as RuntimeError, as faiss raises)."""
    try:
        return _from_node(tree, "", sections)
    except FaissFormatError:
        raise
    except FormatError as exc:
        raise FaissFormatError(f"{fname}: {exc}") from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, OverflowError) as exc:
        raise FaissFormatError(f"{fname}: damaged index tree ({type(exc).__name__}: {exc})") from None


def _compat_class(name):
    cls = globals().get(name) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, Index) and cls is not Index):
        raise FormatError(f"class {name!r} is not a faiss index class")
    return cls


def _from_node(node, prefix, sections):
    if not isinstance(node, dict):
        raise FormatError("an index tree node is not an object")
    cls = _compat_class(node["class"])
    obj = cls.__new__(cls)
    Index.__init__(obj, node["d"], node["metric"])
    if issubclass(cls, IndexIDMap):
        obj.index = _from_node(node["inner"], prefix + "i/", sections)
        obj._ext = np.array(sections[prefix + "id_map"], dtype=np.int64)
        obj._next = int(node["next"])
        if obj._ext.ndim != 1 or obj._next != obj._ext.shape[0] or obj.index.ntotal > obj._ext.shape[0]:
            raise FormatError("the id map does not cover the inner index")
        inner_nk = getattr(obj.index, "_nk", None)
        if inner_nk is not None:
            labels = inner_nk.slot_labels()
            if labels.size and labels.max() >= obj._ext.shape[0]:
                raise FormatError("the id map does not cover the inner index")
    elif issubclass(cls, IndexRefine):
        obj.base_index = _from_node(node["base"], prefix + "b/", sections)
        obj.refine_index = _from_node(node["refine"], prefix + "r/", sections)
        obj.k_factor = float(node["k_factor"])
    elif issubclass(cls, _CodecIndex):
        if "qtype" in node:
            codec = _codecs.SQCodec(node["d"], node["qtype"])
            if node["trained"]:
                codec.set_trained(sections[prefix + "sq_trained"])
        else:
            codec = _codecs.PQCodec(node["d"], node["M"], node["nbits"])
            codec.centroids = np.array(sections[prefix + "pq_centroids"], np.float32)
            codec.is_trained = bool(node["trained"])
        obj._init_codec(codec)
        codes = np.array(sections[prefix + "codes"])
        if codes.size:
            obj._codes = codes
            obj._nk.add(codec.decode(codes), np.arange(codes.shape[0]))
        if issubclass(cls, IndexPQ):
            obj.do_polysemous_training = False
    elif issubclass(cls, IndexPreTransform) and not issubclass(cls, _IVFBased):
        obj.index = _from_node(node["inner"], prefix + "i/", sections)
        chain = []
        for j, item in enumerate(node["chain"]):
            kind = item["type"]
            if kind == "HadamardRotation":
                t = HadamardRotation(item["d_in"], item["seed"])
            elif kind == "NormalizationTransform":
                t = NormalizationTransform(item["d_in"], item["norm"])
            else:
                t = globals()[kind].__new__(globals()[kind])
                LinearTransform.__init__(t, item["d_in"], item["d_out"], item["have_bias"])
                if kind == "PCAMatrix":
                    t.eigen_power, t.random_rotation = item["eigen_power"], item["random_rotation"]
                    t.epsilon, t.eigenvalues, t.mean = item["epsilon"], Vector(), Vector()
                copy_array_to_vector(sections[f"{prefix}t{j}A"], t.A)
                copy_array_to_vector(sections[f"{prefix}t{j}b"], t.b)
                t.is_orthonormal = item["orthonormal"]
            t.is_trained = item["trained"]
            chain.append(t)
        obj.chain = _Stats(chain)
    elif issubclass(cls, _HNSWCodec):
        obj._M, obj._ef_search, obj._ef_construction = node["M"], node["ef_search"], node["ef_construction"]
        obj.hnsw = _HNSWParams(obj)
        obj._storage = _from_node(node["storage"], prefix + "s/", sections)
        obj._nk = _nk_from_node(node["nk"], prefix + "g/", sections)
    else:
        nk = _nk_from_node(node["nk"], prefix + "n/", sections)
        wrapped = _wrap(nk, node["metric"])
        wrapped.__class__ = cls
        obj = wrapped
        if isinstance(obj, _IVFBased):
            obj.set_direct_map_type(node.get("direct_map", DirectMap.NoMap))
        if "by_residual" in node:  # decoded-mode IVF
            if "qtype" in node:
                codec = _codecs.SQCodec(node["d"], node["qtype"])
                if node["codec_trained"]:
                    codec.set_trained(sections[prefix + "sq_trained"])
            else:
                codec = _codecs.PQCodec(node["d"], node["M"], node["nbits"])
                codec.centroids = np.array(sections[prefix + "pq_centroids"], np.float32)
            codec.is_trained = bool(node["codec_trained"])
            obj._dcodec, obj._dres = codec, bool(node["by_residual"])
        if isinstance(obj, IndexHNSWFlat):
            obj._ef_search = int(node.get("ef_search", obj._ef_search))
    return obj


def write_index(index, fname) -> None:
    """Write in nearkit's own file format (read back by read_index; a plain Flat,
    HNSWFlat or IVF index is also readable by nearkit.load)."""
    plain = (not isinstance(index, (IndexIDMap, IndexRefine, _CodecIndex, _HNSWCodec, IndexPreTransform))
             or isinstance(index, _NkPreTransform))
    if isinstance(index, _IVFBased) and (index._dcodec is not None or index._direct_map):
        plain = False  # the faiss codec / direct map go in the tree
    if plain and index._nk is not None and not (isinstance(index._nk, _IVF) and not index._nk.is_trained):
        nk = index._nk
        params = dict(nk._params())
        params["faiss"] = {"class": type(index).__name__, "metric": index.metric_type}
        if isinstance(index, IndexHNSWFlat):
            params["faiss"]["ef_search"] = index._ef_search
        kind, dim, metric, sections = nk.kind, nk.dim, nk.metric, dict(nk._sections())
    else:
        sections = {}
        params = {"faiss_tree": _to_node(index, "", sections)}
        kind, dim, metric = "faiss-compat", index.d, "ip" if index.metric_type == METRIC_INNER_PRODUCT else "l2"
    try:
        _io.write_index(fname, kind, dim, metric, params, sections)
    except OSError as exc:
        raise RuntimeError(f"Error: could not open {fname} for writing: {exc.strerror}") from None


class FaissFormatError(FormatError, RuntimeError):
    """A file read_index cannot read (faiss raises RuntimeError; nearkit FormatError)."""


def read_index(fname, io_flags=0):
    """Read a file written by write_index, or one written by faiss itself (see docs/compat.md)."""
    from . import _faiss_read

    try:
        with open(fname, "rb") as fh:
            magic = fh.read(4)
    except OSError as exc:
        raise RuntimeError(f"Error: could not open {fname} for reading: {exc.strerror}") from None
    if _faiss_read.is_faiss_file(magic):
        return _faiss_read.read(fname, sys.modules[__name__])
    try:
        f = _io.read_index(fname)
    except FormatError as exc:
        raise FaissFormatError(str(exc)) from None
    if "faiss_tree" in f.params:
        return _from_tree(f.params["faiss_tree"], f.sections, fname)
    if f.kind not in INDEX_KINDS:
        raise FaissFormatError(f"{fname}: index kind {f.kind!r} is unknown")
    meta = f.params.get("faiss")
    if meta is not None and not isinstance(meta, dict):
        raise FormatError(f"{fname}: the faiss metadata is not an object")
    nk = _nk_from_file(f, fname)
    own_metric = METRIC_L2 if f.metric == "l2" else METRIC_INNER_PRODUCT
    metric = meta.get("metric", own_metric) if meta else own_metric
    if metric != own_metric or isinstance(metric, bool):
        raise FormatError(f"{fname}: faiss metric {metric!r} disagrees with the index metric {f.metric!r}")
    if not isinstance(nk, (_Flat, _IVF, _HNSW)):
        raise FormatError(f"{fname}: a {f.kind!r} index has no faiss counterpart")
    obj = _wrap(nk, metric)
    name = meta.get("class") if meta else None
    if name is not None and name != type(obj).__name__:
        cls = globals().get(name) if isinstance(name, str) else None
        if not (isinstance(cls, type) and issubclass(cls, type(obj))):
            raise FormatError(f"{fname}: class {name!r} does not fit a {f.kind!r} index")
        fixed = {IndexFlatL2: METRIC_L2, IndexFlatIP: METRIC_INNER_PRODUCT}.get(cls, metric)
        if fixed != metric:
            raise FormatError(f"{fname}: class {name!r} disagrees with the index metric {f.metric!r}")
        obj.__class__ = cls
    if isinstance(obj, IndexHNSWFlat) and meta and "ef_search" in meta:
        ef = meta["ef_search"]
        if isinstance(ef, bool) or not isinstance(ef, int) or ef < 1:
            raise FormatError(f"{fname}: bad efSearch {ef!r}")
        obj._ef_search = ef
    idmap = meta.get("idmap") if meta else None
    if idmap is None:
        return obj
    if idmap not in ("IndexIDMap", "IndexIDMap2"):
        raise FormatError(f"{fname}: unknown id map {idmap!r}")
    ext = f.sections.get("faiss_id_map")
    nxt = meta.get("next")
    if (not isinstance(ext, np.ndarray) or ext.dtype != np.int64 or ext.ndim != 1
            or isinstance(nxt, bool) or not isinstance(nxt, int) or nxt != ext.shape[0]):
        raise FormatError(f"{fname}: the id map section does not match its header")
    labels = obj._labels()
    if labels.size and (labels.min() < 0 or labels.max() >= ext.shape[0]):
        raise FormatError(f"{fname}: the id map does not cover every stored vector")
    cls = IndexIDMap2 if idmap == "IndexIDMap2" else IndexIDMap
    wrapper = cls.__new__(cls)
    Index.__init__(wrapper, obj.d, obj.metric_type)
    wrapper.index = obj
    wrapper._ext = np.array(ext, dtype=np.int64)
    wrapper._next = nxt
    return wrapper


def serialize_index(index) -> np.ndarray:
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "index.nk")
        write_index(index, path)
        return np.fromfile(path, dtype=np.uint8)


def deserialize_index(data) -> Index:
    import os
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "index.nk")
        np.asarray(data, dtype=np.uint8).tofile(path)
        return read_index(path)


def normalize_L2(x) -> None:
    """Divide each row by its L2 norm, in place (float32 C-contiguous 2-D only)."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        raise TypeError("in method 'fvec_renorm_L2', argument 3 of type 'float *'")
    if not x.flags.c_contiguous:
        raise ValueError("array is not C-contiguous")
    if x.ndim != 2:
        raise IndexError("tuple index out of range")
    norms = np.sqrt(np.einsum("ij,ij->i", x, x))
    norms[norms == 0] = 1.0
    x /= norms[:, None]


def knn(xq, xb, k, metric=METRIC_L2):
    index = IndexFlat(xb.shape[1], metric)
    index.add(xb)
    return index.search(xq, k)


class Kmeans:
    """faiss.Kmeans: ``train(x)`` returns the final objective and sets ``centroids``."""

    _FIELDS = {"niter": 25, "seed": 1234, "max_points_per_centroid": 256,
               "min_points_per_centroid": 39, "verbose": False, "spherical": False,
               "nredo": 1, "int_centroids": False, "update_index": True, "gpu": False,
               "decode_block_size": 32768, "frozen_centroids": False}

    def __init__(self, d, k, **kw):
        self.d, self.k = int(d), int(k)
        for key, value in self._FIELDS.items():
            setattr(self, key, value)
        for key, value in kw.items():
            if key not in self._FIELDS:
                raise AttributeError(f"'ClusteringParameters' object has no attribute '{key}'")
            setattr(self, key, value)
        self.centroids = None
        self.obj = np.empty(0)
        self.index = None

    def train(self, x, weights=None, init_centroids=None) -> float:
        x = _as_x(x, self.d)
        if x.shape[0] < self.k:
            raise RuntimeError(
                f"Error: 'n >= k' failed: Number of training points ({x.shape[0]}) should be at "
                f"least as large as number of clusters ({self.k})")
        if x.shape[0] < self.min_points_per_centroid * self.k:
            print(f"WARNING clustering {x.shape[0]} points to {self.k} centroids: please provide "
                  f"at least {self.min_points_per_centroid * self.k} training points", file=sys.stderr)
        best = None
        for redo in range(max(1, int(self.nredo))):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                res = _kmeans(x, self.k, niter=int(self.niter), seed=int(self.seed) + redo,
                              max_points_per_centroid=int(self.max_points_per_centroid),
                              min_points_per_centroid=0, spherical=bool(self.spherical),
                              int_centroids=bool(self.int_centroids),
                              init_centroids=init_centroids, verbose=bool(self.verbose))
            if best is None or res.inertia < best.inertia:
                best = res
        self.centroids = best.centroids
        if self.int_centroids:  # the last update also lands on integers
            self.centroids = np.rint(self.centroids).astype(np.float32)
        self.obj = best.objective.astype(np.float64)
        self.iteration_stats = [{"obj": float(o)} for o in self.obj]
        self.index = IndexFlatIP(self.d) if self.spherical else IndexFlatL2(self.d)
        self.index.add(self.centroids)
        return float(self.obj[-1]) if self.obj.size else float(best.inertia)

    def assign(self, x):
        x = _as_x(x, self.d)
        labels, dist = _km_assign(x, self.centroids, spherical=bool(self.spherical))
        if self.spherical:
            dist = 1.0 - dist  # similarities, as IndexFlatIP reports them
        return dist.astype(np.float32), labels


_omp_threads = None


def omp_get_max_threads() -> int:
    import os

    return _omp_threads or os.cpu_count() or 1


def omp_set_num_threads(n) -> None:
    """Recorded only: nearkit's searches take an explicit ``threads=`` instead."""
    global _omp_threads
    _omp_threads = max(1, int(n))
