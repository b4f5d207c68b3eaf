"""scikit-learn estimators backed by nearkit indexes (needs scikit-learn and scipy).

    from nearkit.sklearn import NearestNeighbors, KNeighborsTransformer

    nn = NearestNeighbors(n_neighbors=10, algorithm="hnsw").fit(X)
    dist, ind = nn.kneighbors(Q)                 # true Euclidean distances, ascending
    G = KNeighborsTransformer(n_neighbors=15).fit_transform(X)   # CSR, for metric="precomputed"

Both follow scikit-learn's conventions: ``metric="euclidean"`` returns true
(not squared) Euclidean distances, ``"sqeuclidean"`` squared ones, ``"cosine"``
``1 - cos``; ``kneighbors()`` without ``X`` leaves each training point out of its
own neighbours; graphs are ``scipy.sparse.csr_matrix`` of shape
``(n_queries, n_samples_fit)``.

``algorithm``: ``"flat"`` (exact), ``"hnsw"``, ``"trees"``, ``"ivf"`` (approximate;
tune with ``algorithm_params``) or ``"auto"`` (flat below ``AUTO_FLAT_MAX`` training
points, HNSW above). Approximate searches that come back short of ``n_neighbors``
(possible with IVF's probed lists) are completed exactly for those rows, so every
row always has ``n_neighbors`` neighbours.
"""

from __future__ import annotations

try:
    import scipy.sparse as sp
    from sklearn.base import BaseEstimator, TransformerMixin
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("nearkit.sklearn needs scikit-learn>=1.6 and scipy: "
                      "pip install 'nearkit[sklearn]'") from exc

import numbers
import warnings

import numpy as np

from .indexes import INDEX_KINDS
from .indexes.base import IndexImage

ALGORITHMS = ("auto", "flat", "hnsw", "trees", "ivf")
# sklearn metric name -> (nearkit metric, how to turn nearkit's distance into sklearn's)
_METRICS = {
    "euclidean": ("l2", "sqrt"), "l2": ("l2", "sqrt"), "minkowski": ("l2", "sqrt"),
    "sqeuclidean": ("l2", None), "cosine": ("cosine", None),
}
# Below this many training points "auto" picks the exact flat scan.
AUTO_FLAT_MAX = 20_000


def _resolve_metric(metric, p):
    if not isinstance(metric, str) or metric not in _METRICS:
        raise ValueError(f"metric {metric!r} is not supported; expected one of {sorted(_METRICS)}")
    if metric == "minkowski" and p != 2:
        raise ValueError(f"metric='minkowski' is supported for p=2 only, got p={p!r}")
    return _METRICS[metric]


def _build_index(algorithm: str, X: np.ndarray, metric: str, params: dict, n_jobs):
    """A nearkit index over X, ids 0..n-1."""
    from . import HNSW, IVF, Flat, Trees

    n, dim = X.shape
    ids = np.arange(n, dtype=np.int64)
    params = dict(params)
    if algorithm == "flat":
        index = Flat(dim, metric, **params)
        index.add(X, ids)
    elif algorithm == "hnsw":
        index = HNSW(dim, metric, **params)
        index.add(X, ids, threads=n_jobs)
    elif algorithm == "trees":
        params.setdefault("n_trees", 20)
        index = Trees(dim, metric, **params)
        index.add(X, ids)
        index.build(threads=n_jobs)
    else:  # ivf
        params.setdefault("nlist", max(1, min(int(np.sqrt(n)), n // 39 or 1)))
        # at least 4 lists (and 1/8 of them): recall near 0.9 on clustered data
        params.setdefault("nprobe", min(params["nlist"], max(4, params["nlist"] // 8)))
        index = IVF(dim, metric, **params)
        with warnings.catch_warnings():
            if params["nlist"] == 1:  # one list: nothing to cluster, the size warning is noise
                warnings.simplefilter("ignore", RuntimeWarning)
            index.train(X)
        index.add(X, ids)
    return index


def _threads(n_jobs):
    if n_jobs is None:
        return 1
    if not isinstance(n_jobs, numbers.Integral) or n_jobs == 0:
        raise ValueError(f"n_jobs must be None, -1 or a positive integer, got {n_jobs!r}")
    return None if n_jobs < 0 else int(n_jobs)  # None: nearkit uses every core


class NearestNeighbors(BaseEstimator):
    """Unsupervised nearest-neighbour search, API of ``sklearn.neighbors.NearestNeighbors``.

    Parameters
    ----------
    n_neighbors : int, default 5
    radius : float, default 1.0 (for ``radius_neighbors``)
    algorithm : "auto" | "flat" | "hnsw" | "trees" | "ivf"
    metric : "euclidean" (also "l2", "minkowski" with p=2), "sqeuclidean" or "cosine"
    p : int, only 2 is supported (sklearn's default for "minkowski")
    algorithm_params : dict passed to the nearkit index (e.g. ``{"M": 16,
        "ef_search": 64}`` for HNSW, ``{"nlist": 256, "nprobe": 16}`` for IVF,
        ``{"n_trees": 50}`` for trees); ``"ef"`` / ``"search_k"`` keys are search-time
    n_jobs : threads for building and searching (None = 1, -1 = all cores)
    """

    def __init__(self, *, n_neighbors=5, radius=1.0, algorithm="auto", metric="euclidean", p=2,
                 algorithm_params=None, n_jobs=None):
        self.n_neighbors = n_neighbors
        self.radius = radius
        self.algorithm = algorithm
        self.metric = metric
        self.p = p
        self.algorithm_params = algorithm_params
        self.n_jobs = n_jobs

    # -- fitting ---------------------------------------------------------------------
    def _check_params(self):
        if not isinstance(self.n_neighbors, numbers.Integral) or isinstance(self.n_neighbors, bool) \
                or self.n_neighbors <= 0:
            raise ValueError(f"n_neighbors must be a positive integer, got {self.n_neighbors!r}")
        if not isinstance(self.radius, numbers.Real) or not self.radius >= 0:
            raise ValueError(f"radius must be a non-negative number, got {self.radius!r}")
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        if self.algorithm_params is not None and not isinstance(self.algorithm_params, dict):
            raise TypeError("algorithm_params must be a dict or None")
        return _resolve_metric(self.metric, self.p)

    def fit(self, X, y=None):
        """Index the training data X (n_samples, n_features)."""
        nk_metric, transform = self._check_params()
        X = validate_data(self, X, dtype=np.float32, order="C", ensure_min_samples=1)
        threads = _threads(self.n_jobs)
        algorithm = self.algorithm
        if algorithm == "auto":
            algorithm = "flat" if X.shape[0] <= AUTO_FLAT_MAX else "hnsw"
        params = dict(self.algorithm_params or {})
        self._search_params = {key: params.pop(key) for key in ("ef", "search_k") if key in params}
        self._fit_X = X
        self._nk_metric, self._transform = nk_metric, transform
        self._index = _build_index(algorithm, X, nk_metric, params, threads)
        self._threads = threads
        self.effective_metric_ = self.metric if self.metric != "minkowski" else "euclidean"
        self.n_samples_fit_ = X.shape[0]
        self.fit_algorithm_ = algorithm
        return self

    # -- pickling: the index travels as its file image ----------------------------------
    def __getstate__(self):
        state = dict(self.__dict__)
        index = state.pop("_index", None)
        if index is not None:
            image = index.image()
            state["_index_image"] = (image.kind, image.dim, image.metric, image.params, image.sections)
        return state

    def __setstate__(self, state):
        image = state.pop("_index_image", None)
        self.__dict__.update(state)
        if image is not None:
            kind, dim, metric, params, sections = image
            self._index = INDEX_KINDS[kind]._from_sections(dim, metric, params, sections)

    # -- queries -----------------------------------------------------------------------
    def _queries(self, X):
        check_is_fitted(self, "_index")
        if X is None:
            return None
        return validate_data(self, X, dtype=np.float32, order="C", reset=False)

    def _to_sklearn(self, dist):
        dist = np.asarray(dist, dtype=np.float64)
        if self._transform == "sqrt":
            return np.sqrt(np.maximum(dist, 0.0))
        return np.maximum(dist, 0.0) if self._nk_metric == "l2" else dist

    def _exact(self, Q, k):
        """Exact k nearest of Q in the training set (numpy, float64): (ids, nearkit distances)."""
        X = self._fit_X.astype(np.float64)
        q = Q.astype(np.float64)
        if self._nk_metric == "l2":
            d = (q * q).sum(1)[:, None] - 2 * q @ X.T + (X * X).sum(1)[None, :]
        else:
            xn = np.linalg.norm(X, axis=1)
            qn = np.linalg.norm(q, axis=1)
            xn[xn == 0] = 1
            qn[qn == 0] = 1
            d = 1.0 - (q / qn[:, None]) @ (X / xn[:, None]).T
        ids = np.argsort(d, axis=1, kind="stable")[:, :k]
        return ids, np.take_along_axis(d, ids, 1)

    def _search(self, Q, k):
        """(ids int64 (n, k), distances in nearkit's convention), every row complete."""
        ids, dist = self._index.search(Q, k, threads=self._threads, **self._search_params)
        ids = np.asarray(ids, dtype=np.int64)
        dist = np.asarray(dist, dtype=np.float64)
        short = np.flatnonzero((ids < 0).any(axis=1))
        if short.size:  # an approximate index came back short: complete those rows exactly
            ids[short], dist[short] = self._exact(Q[short], k)
        return ids, dist

    def _k(self, n_neighbors, self_excluded):
        k = self.n_neighbors if n_neighbors is None else n_neighbors
        if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k <= 0:
            raise ValueError(f"n_neighbors must be a positive integer, got {k!r}")
        available = self.n_samples_fit_ - (1 if self_excluded else 0)
        if k > available:
            raise ValueError(f"Expected n_neighbors <= n_samples_fit, but n_neighbors = {k}, "
                             f"n_samples_fit = {self.n_samples_fit_}, n_samples = {available}")
        return int(k)

    def kneighbors(self, X=None, n_neighbors=None, return_distance=True):
        """Distances (float64, ascending) and indices (int64) of the n_neighbors nearest.

        Without X, the training points are the queries and each is left out of its
        own neighbours (as scikit-learn does).
        """
        Q = self._queries(X)
        k = self._k(n_neighbors, Q is None)
        if Q is None:
            ids, dist = self._search(self._fit_X, k + 1)
            ids, dist = _drop_self(ids, dist)
        else:
            ids, dist = self._search(Q, k)
        dist = self._to_sklearn(dist)
        return (dist, ids) if return_distance else ids

    def kneighbors_graph(self, X=None, n_neighbors=None, mode="connectivity"):
        """CSR (n_queries, n_samples_fit): 1.0 per neighbour, or its distance (mode="distance")."""
        if mode not in ("connectivity", "distance"):
            raise ValueError(f'mode must be "connectivity" or "distance", got {mode!r}')
        dist, ids = self.kneighbors(X, n_neighbors, return_distance=True)
        n, k = ids.shape
        data = np.ones(n * k) if mode == "connectivity" else dist.ravel()
        return sp.csr_matrix((data, ids.ravel(), np.arange(0, n * k + 1, k)),
                             shape=(n, self.n_samples_fit_))

    def radius_neighbors(self, X=None, radius=None, return_distance=True, sort_results=False):
        """Per query, the training points within ``radius`` (distance <= radius).

        Returns object arrays of per-query arrays, as scikit-learn does. Exact for
        algorithm "flat"; approximate indexes widen their k until the farthest
        result leaves the radius.
        """
        Q = self._queries(X)
        radius = self.radius if radius is None else radius
        if not isinstance(radius, numbers.Real) or not radius >= 0:
            raise ValueError(f"radius must be a non-negative number, got {radius!r}")
        queries = self._fit_X if Q is None else Q
        ids_out, dist_out = [], []
        for start in range(0, queries.shape[0], 1024):
            block = queries[start:start + 1024]
            ids, dist = self._radius_block(block, float(radius), exclude_self=Q is None, offset=start)
            ids_out.extend(ids)
            dist_out.extend(dist)
        if sort_results:
            for i, (ii, dd) in enumerate(zip(ids_out, dist_out)):
                order = np.argsort(dd, kind="stable")
                ids_out[i], dist_out[i] = ii[order], dd[order]
        ind = _object_array(ids_out)
        if not return_distance:
            return ind
        return _object_array(dist_out), ind

    def _radius_block(self, Q, radius, exclude_self, offset):
        n = self.n_samples_fit_
        k = min(n, 32)
        while True:
            ids, dist = self._search(Q, k)
            dist = self._to_sklearn(dist)
            full = dist[:, -1] <= radius
            if not full.any() or k >= n:
                break
            k = min(n, 4 * k)
        out_i, out_d = [], []
        for row in range(Q.shape[0]):
            keep = dist[row] <= radius
            if exclude_self:
                keep &= ids[row] != offset + row
            out_i.append(ids[row][keep].astype(np.intp))
            out_d.append(dist[row][keep])
        return out_i, out_d

    def radius_neighbors_graph(self, X=None, radius=None, mode="connectivity", sort_results=False):
        """CSR (n_queries, n_samples_fit) of the neighbours within radius."""
        if mode not in ("connectivity", "distance"):
            raise ValueError(f'mode must be "connectivity" or "distance", got {mode!r}')
        dist, ind = self.radius_neighbors(X, radius, return_distance=True, sort_results=sort_results)
        counts = np.array([len(a) for a in ind], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(counts)])
        indices = np.concatenate(list(ind)) if len(ind) else np.empty(0, np.intp)
        data = (np.ones(indptr[-1]) if mode == "connectivity"
                else (np.concatenate(list(dist)) if len(dist) else np.empty(0)))
        return sp.csr_matrix((data, indices, indptr), shape=(len(ind), self.n_samples_fit_))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags


class KNeighborsTransformer(TransformerMixin, NearestNeighbors):
    """The k-nearest-neighbour graph as a sparse CSR, for ``metric="precomputed"`` consumers.

    As ``sklearn.neighbors.KNeighborsTransformer``: ``mode="distance"`` (default)
    stores ``n_neighbors + 1`` neighbours per row, because each training point is
    its own first neighbour at distance 0 (an explicit stored zero); Isomap,
    TSNE, DBSCAN, HDBSCAN, SpectralEmbedding take the result with
    ``metric="precomputed"``.
    """

    def __init__(self, *, mode="distance", n_neighbors=5, algorithm="auto", metric="euclidean",
                 p=2, algorithm_params=None, n_jobs=None):
        super().__init__(n_neighbors=n_neighbors, algorithm=algorithm, metric=metric, p=p,
                         algorithm_params=algorithm_params, n_jobs=n_jobs)
        self.mode = mode

    def fit(self, X, y=None):
        if self.mode not in ("connectivity", "distance"):
            raise ValueError(f'mode must be "connectivity" or "distance", got {self.mode!r}')
        super().fit(X)
        self._n_features_out = self.n_samples_fit_
        return self

    def transform(self, X):
        """CSR (n_queries, n_samples_fit) of each row's nearest training points."""
        check_is_fitted(self, "_index")
        add_one = self.mode == "distance"
        k = min(self.n_neighbors + add_one, self.n_samples_fit_)
        return self.kneighbors_graph(X, mode=self.mode, n_neighbors=k)

    def fit_transform(self, X, y=None):
        return self.fit(X).transform(X)

    def get_feature_names_out(self, input_features=None):
        check_is_fitted(self, "n_samples_fit_")
        name = type(self).__name__.lower()
        return np.asarray([f"{name}{i}" for i in range(self.n_samples_fit_)], dtype=object)


def _drop_self(ids, dist):
    """Remove each row's own index (row i of a self-query); when duplicates crowded it
    out of the results, drop the first column instead (as scikit-learn does)."""
    n = ids.shape[0]
    is_self = ids == np.arange(n)[:, None]
    missing = ~is_self.any(axis=1)
    is_self[missing, 0] = True
    keep = ~is_self
    k = ids.shape[1] - 1
    return ids[keep].reshape(n, k), dist[keep].reshape(n, k)


def _object_array(rows):
    out = np.empty(len(rows), dtype=object)
    for i, r in enumerate(rows):
        out[i] = r
    return out
