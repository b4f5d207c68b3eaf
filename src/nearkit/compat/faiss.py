"""A Faiss look-alike on top of nearkit: ``from nearkit.compat import faiss``.

Covers the subset most code uses (see docs/ivf.md for the
conventions, observed with faiss-cpu side by side):

- ``search`` returns ``(D, I)``; L2 distances are squared; inner-product
  indexes return similarities, largest first; missing results are ``I = -1``
  with ``D = +/-3.4028235e38`` (float32 max, not inf).
- ``range_search`` returns ``(lims uint64, D, I)`` with strict inequality.
- ``ntotal``, ``d``, ``is_trained`` (read-only), ``metric_type``, ``nprobe``,
  ``add_with_ids``, ``remove_ids`` (id arrays or ``IDSelectorRange`` /
  ``IDSelectorBatch``), ``reconstruct``, ``reset``.
- ``index_factory``, ``IndexFlatL2/IP``, ``IndexHNSWFlat``, ``IndexIVFFlat``,
  ``IndexIVFPQ``, ``IndexPQ``, ``IndexScalarQuantizer``, ``IndexIDMap(2)``,
  ``IndexRefineFlat``, ``Kmeans``, ``normalize_L2``, ``read_index`` /
  ``write_index`` (nearkit's own file format).

Deliberate differences: errors that faiss raises as bare ``AssertionError``
are raised as ``FaissAssertionError`` (an AssertionError that is also a
ValueError, with a message); ``k`` may be a numpy integer; nearkit indexes
(other than IndexIDMap) refuse duplicate ids.
"""

from __future__ import annotations

import sys
import warnings

import numpy as np

from .. import _validate
from .. import io as _io
from ..indexes import INDEX_KINDS
from ..indexes.factory import index_factory as _nk_factory
from ..errors import FormatError
from ..indexes.flat import Flat as _Flat
from ..indexes.hnsw import HNSW as _HNSW
from ..indexes.ivf import IVF as _IVF
from ..kmeans import assign as _km_assign
from ..kmeans import kmeans as _kmeans

from .. import __version__  # noqa: E402,F401 - nearkit's version, "x.y.z" like faiss's

METRIC_INNER_PRODUCT = 0
METRIC_L2 = 1
_FLT_MAX = np.float32(np.finfo(np.float32).max)


class FaissAssertionError(AssertionError, ValueError):
    """Where faiss asserts (k <= 0, wrong width): an AssertionError with a message."""


def _metric_name(metric) -> str:
    if metric == METRIC_L2:
        return "l2"
    if metric == METRIC_INNER_PRODUCT:
        return "ip"
    raise RuntimeError(f"metric {metric!r} is not supported (only METRIC_L2 and METRIC_INNER_PRODUCT)")


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

class IDSelectorRange:
    """Ids with imin <= id < imax."""

    def __init__(self, imin, imax, assume_sorted=False):
        self.imin, self.imax = int(imin), int(imax)

    def is_member(self, ids: np.ndarray) -> np.ndarray:
        return (ids >= self.imin) & (ids < self.imax)


class IDSelectorBatch:
    """Ids in a given set."""

    def __init__(self, ids, *rest):
        self.ids = np.asarray(ids if not rest else rest[0], dtype=np.int64).ravel()

    def is_member(self, ids: np.ndarray) -> np.ndarray:
        return np.isin(ids, self.ids)


class SearchParameters:
    def __init__(self, sel=None, **kw):
        self.sel = sel
        for key, value in kw.items():
            setattr(self, key, value)


class SearchParametersIVF(SearchParameters):
    def __init__(self, nprobe=None, sel=None, **kw):
        super().__init__(sel=sel, **kw)
        self.nprobe = nprobe


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

    # ids: faiss numbers added vectors ntotal, ntotal + 1, ...
    def add(self, x) -> None:
        """Adds vectors to the index (ids are ntotal, ntotal + 1, ...)."""
        x = _as_x(x, self._d)
        self._require_trained("add")
        if x.shape[0]:
            self._nk.add(x, np.arange(self.ntotal, self.ntotal + x.shape[0], dtype=np.int64))

    def add_with_ids(self, x, ids) -> None:
        x = _as_x(x, self._d)
        ids = _as_ids(ids, x.shape[0])
        self._require_trained("add")
        if x.shape[0]:
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
            ids, dist = self._nk.search(x, k, **kw)
            dist, ids = self._to_faiss(ids, dist)
        return _fill(D, I, dist, ids)

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
            return lim.astype(np.uint64), dist, ids
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
        return lims, np.concatenate(all_d).astype(np.float32), np.concatenate(all_i).astype(np.int64)

    def assign(self, x, k):
        return self.search(x, k)[1]

    def remove_ids(self, sel) -> int:
        """Remove by id array or IDSelector; returns the number removed."""
        if isinstance(sel, (IDSelectorRange, IDSelectorBatch)):
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


class IndexHNSWFlat(Index):
    def __init__(self, d, M, metric=METRIC_L2):
        super().__init__(d, metric)
        self._M, self._ef_construction, self._ef_search = int(M), 40, 16
        self.hnsw = _HNSWParams(self)
        self._new_graph()

    def _new_graph(self):
        from ..indexes.hnsw import HNSW

        self._nk = HNSW(self._d, self._metric, M=self._M, ef_construction=self._ef_construction,
                        ef_search=self._ef_search)

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

    def add_with_ids(self, x, ids):
        raise RuntimeError("Error: add_with_ids not implemented for this type of index (wrap it in IndexIDMap)")

    def reset(self):
        self._new_graph()


# -- IVF, PQ, SQ (all nearkit.IVF underneath) ---------------------------------------------

class _IVFBased(Index):
    """Shared behaviour of the quantised indexes."""

    def _init_nk(self, **kw):
        kw.setdefault("nprobe", 1)  # faiss's default (nearkit's own is about sqrt(nlist))
        self._nk = _IVF(self._d, self._metric, **kw)

    @property
    def is_trained(self) -> bool:
        return self._nk.is_trained

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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            if self.ntotal:  # faiss would keep stale codes; re-training here starts empty
                self._init_nk(**self._nk_kwargs())
            self._nk.train(x)
        self._after_train()

    def _after_train(self):
        q = getattr(self, "quantizer", None)
        if isinstance(q, IndexFlat) and self._nk.nlist > 1:
            q.reset()
            q._nk.add(self._nk._centroids, np.arange(self._nk.nlist, dtype=np.int64))

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
        if v <= 0:
            raise RuntimeError("Error: 'nprobe > 0' failed")
        self._nk.nprobe = v

    @property
    def nlist(self) -> int:
        return self._nk.nlist

    @property
    def code_size(self) -> int:
        return self._nk.code_size

    def _search_params(self, params) -> dict:
        out = {}
        if params is None:
            return out
        base = getattr(params, "base_index_params", None)
        nprobe = getattr(params, "nprobe", None) or getattr(base, "nprobe", None)
        if nprobe:
            out["nprobe"] = int(nprobe)
        kf = getattr(params, "k_factor", None)
        if kf:
            out["k_factor"] = max(1, int(round(kf)))
        return out

    def reset(self):
        self._nk.reset()

    def reconstruct(self, key) -> np.ndarray:
        try:
            return self._nk.reconstruct([int(key)])[0]
        except KeyError as exc:
            raise RuntimeError(f"Error: key {int(key)} not found ({exc})") from None

    def make_direct_map(self, *a):
        return None


class IndexIVFFlat(_IVFBased):
    def __init__(self, quantizer, d, nlist, metric=METRIC_L2):
        super().__init__(d, metric)
        self.quantizer = quantizer  # kept alive, and filled with the centroids by train()
        self._init_nk(nlist=int(nlist), codec="flat")


class IndexIVFPQ(_IVFBased):
    def __init__(self, quantizer, d, nlist, M, nbits, metric=METRIC_L2):
        super().__init__(d, metric)
        self.quantizer = quantizer
        if nbits not in (4, 8):
            raise RuntimeError(f"nbits={nbits} is not supported (4 or 8)")
        if d % M:
            raise RuntimeError("Error: 'd % M == 0' failed: The dimension of the vector (d) should "
                               "be a multiple of the number of subquantizers (M)")
        self._init_nk(nlist=int(nlist), codec=f"pq{M}" + ("x4fs" if nbits == 4 else ""))


class IndexPQ(_IVFBased):
    def __init__(self, d, M, nbits, metric=METRIC_L2):
        super().__init__(d, metric)
        if nbits not in (4, 8):
            raise RuntimeError(f"nbits={nbits} is not supported (4 or 8)")
        if d % M:
            raise RuntimeError("Error: 'd % M == 0' failed: The dimension of the vector (d) should "
                               "be a multiple of the number of subquantizers (M)")
        self._init_nk(nlist=1, codec=f"pq{M}" + ("x4fs" if nbits == 4 else ""))


class ScalarQuantizer:
    QT_8bit, QT_4bit, QT_8bit_uniform, QT_4bit_uniform, QT_fp16 = 0, 1, 2, 3, 4
    QT_8bit_direct, QT_6bit, QT_bf16, QT_8bit_direct_signed = 5, 6, 7, 8


class IndexScalarQuantizer(_IVFBased):
    def __init__(self, d, qtype, metric=METRIC_L2):
        super().__init__(d, metric)
        codec = {ScalarQuantizer.QT_8bit: "sq8", ScalarQuantizer.QT_fp16: "fp16"}.get(qtype)
        if codec is None:
            raise RuntimeError(f"scalar quantizer type {qtype} is not supported (QT_8bit or QT_fp16)")
        self._init_nk(nlist=1, codec=codec)
        if codec == "fp16":  # needs no training, as in faiss
            self._nk._centroids = np.zeros((1, self._d), np.float32)


class IndexIVFScalarQuantizer(_IVFBased):
    pass


class IndexIVFPQFastScan(_IVFBased):
    pass


class IndexPQFastScan(_IVFBased):
    pass


class IndexPreTransform(_IVFBased):
    pass


class IndexRefineFlat(_IVFBased):
    """Exact re-ranking of the base index's k * k_factor candidates (k_factor default 1)."""

    @property
    def k_factor(self) -> float:
        return float(self._nk.k_factor)

    @k_factor.setter
    def k_factor(self, v):
        self._nk.k_factor = max(1, int(round(v)))

    @property
    def base_index(self):
        return _IVFView(self)


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
            self.index._nk.add(x, internal)
        self._ext = np.concatenate([self._ext, ids])
        self._next += x.shape[0]

    def search(self, x, k, *, params=None, D=None, I=None):  # noqa: E741
        inner_params = params
        if params is not None and getattr(params, "sel", None) is not None:
            # translate the selector on external ids into internal ids
            internal = self._ext_live()
            allowed = internal[params.sel.is_member(self._ext[internal])]
            inner_params = SearchParameters(sel=IDSelectorBatch(allowed))
            for key, value in vars(params).items():
                if key != "sel":
                    setattr(inner_params, key, value)
        dist, ids = self.index.search(x, k, params=inner_params)
        ids = np.where(ids >= 0, self._ext[np.maximum(ids, 0)] if self._ext.size else -1, -1)
        return _fill(D, I, dist, ids.astype(np.int64))

    def range_search(self, x, thresh, *, params=None):
        lims, dist, ids = self.index.range_search(x, thresh, params=params)
        return lims, dist, self._ext[ids] if ids.size else ids

    def remove_ids(self, sel) -> int:
        internal = self._ext_live()
        ext = self._ext[internal]
        if isinstance(sel, (IDSelectorRange, IDSelectorBatch)):
            hit = sel.is_member(ext)
        else:
            if sel.ndim != 1:
                raise FaissAssertionError("ids must be 1-D")
            hit = np.isin(ext, np.asarray(sel).astype(np.int64))
        gone = internal[hit]
        if gone.size:
            self.index._nk.remove(gone)
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
        return inner._nk.reconstruct([int(hit[0])])[0]


# -- factory, files, helpers ---------------------------------------------------------

def _wrap(nk_index, metric, idmap=None):
    """A compat object around a nearkit index built by nearkit's factory."""
    d = nk_index.dim
    if isinstance(nk_index, _Flat):
        obj = IndexFlat.__new__(IndexFlat)
        Index.__init__(obj, d, metric)
    elif isinstance(nk_index, _IVF):
        ivf = nk_index
        if ivf.refine:
            cls = IndexRefineFlat
        elif ivf.transform_name:
            cls = IndexPreTransform
        elif ivf.nlist == 1:
            cls = {"pq8": IndexPQ, "pq4fs": IndexPQFastScan}.get(ivf.codec, IndexScalarQuantizer)
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


def index_factory(d, description, metric=METRIC_L2, /):
    """Faiss's factory grammar for the parts nearkit has (see nearkit.index_factory)."""
    from ..indexes.factory import parse

    spec = parse(description)
    options = {}
    if spec["kind"] == "hnsw":
        options = {"ef_construction": 40, "ef_search": 16}
    nk_index = _nk_factory(int(d), description, _metric_name(metric), **options)
    if isinstance(nk_index, _IVF) and nk_index.codec == "fp16" and nk_index.nlist == 1 and not nk_index.transform_name:
        nk_index._centroids = np.zeros((1, nk_index.inner_dim), np.float32)
    return _wrap(nk_index, metric, spec["idmap"])


def downcast_index(index):
    return index


def extract_index_ivf(index):
    inner = index.index if isinstance(index, IndexIDMap) else index
    if not isinstance(inner, _IVFBased):
        raise RuntimeError("Error: index is not an IVF index")
    return _IVFView(inner)


def write_index(index, fname) -> None:
    """Write in nearkit's own file format (readable by read_index and nearkit.load)."""
    inner = index.index if isinstance(index, IndexIDMap) else index
    nk = inner._nk
    params = dict(nk._params())
    params["faiss"] = {"class": type(inner).__name__, "metric": inner.metric_type,
                       "idmap": type(index).__name__ if isinstance(index, IndexIDMap) else None,
                       "next": getattr(index, "_next", 0)}
    if isinstance(inner, IndexHNSWFlat):
        params["faiss"]["ef_search"] = inner._ef_search
    sections = dict(nk._sections())
    if isinstance(index, IndexIDMap):
        sections["faiss_id_map"] = index._ext
    try:
        _io.write_index(fname, nk.kind, nk.dim, nk.metric, params, sections)
    except OSError as exc:
        raise RuntimeError(f"Error: could not open {fname} for writing: {exc.strerror}") from None


def read_index(fname, io_flags=0):
    """Read a file written by ``write_index`` (or ``nearkit`` itself).

    Nothing from the file is trusted: the index kind must be a known one, the
    recorded class must be the compat class of that index or one of its
    subclasses (IndexFlatL2 for a Flat...), the metric must agree with the
    index's, and an id map must cover every internal id. A file that breaks
    these raises nearkit.FormatError.
    """
    try:
        f = _io.read_index(fname)
    except FileNotFoundError:
        raise RuntimeError(f"Error: could not open {fname} for reading: No such file or directory") from None
    kinds = _io.index_kinds()
    if f.kind not in kinds:
        raise FormatError(f"{fname}: index kind {f.kind!r} is unknown")
    meta = f.params.get("faiss")
    if meta is not None and not isinstance(meta, dict):
        raise FormatError(f"{fname}: the faiss metadata is not an object")
    nk = _io.build_index(kinds[f.kind], f, fname)
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
