"""The all-pairs k-nearest-neighbour graph.

``knn_graph(X, k)`` answers "who are the k nearest other rows of every row"
without materialising the n x n distance matrix: the exact path runs the
blocked scan of Flat with X as both the base and the queries (memory is the
(n, k) result plus one block per thread). A row is excluded by its index, not
by a zero distance, so duplicate vectors still list each other.
"""

from __future__ import annotations

import numpy as np

from . import _core, _progress, _validate
from .metrics import COSINE, METRIC_CODES, normalize_metric, normalize_rows


def knn_graph(X, k: int, metric: str = "l2", threads=None, exact: bool = True,
              output: str = "arrays", progress=None):
    """Return (ids int64 (n, k), distances float32 (n, k)) of each row's k nearest
    other rows, ascending; rows with fewer than k others are padded with -1 / +inf.

    ``exact=False`` builds the graph approximately (needs the HNSW index).
    ``progress``: a callable ``progress(done, total)`` or True for a tqdm bar (rows done).
    ``output="csr"`` returns instead a ``scipy.sparse.csr_matrix`` (n, n) whose row i
    holds the distances (nearkit's convention: squared L2, 1 - ip, 1 - cos) to its
    neighbours, in ascending order, zeros stored explicitly; padding is left out.
    Needs scipy. For true Euclidean distances use ``nearkit.sklearn``.
    """
    if output not in ("arrays", "csr"):
        raise ValueError(f"output must be 'arrays' or 'csr', got {output!r}")
    ids, dist = _knn_graph_arrays(X, k, metric, threads, exact, progress)
    return _to_csr(ids, dist) if output == "csr" else (ids, dist)


def _to_csr(ids: np.ndarray, dist: np.ndarray):
    try:
        import scipy.sparse as sp
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("knn_graph(output='csr') needs scipy (pip install scipy)") from None
    n = ids.shape[0]
    keep = ids >= 0
    indptr = np.concatenate([[0], np.cumsum(keep.sum(axis=1))]).astype(np.int64)
    return sp.csr_matrix((dist[keep].astype(np.float32), ids[keep], indptr), shape=(n, n))


def _knn_graph_arrays(X, k, metric, threads, exact, progress):
    metric = normalize_metric(metric)
    x, was_1d = _validate.as_vectors(X, None, "X")
    if was_1d:
        raise ValueError("X must be 2-D (n, dim): one row per vector")
    k = _validate.check_k(k)
    threads = _validate.check_threads(threads)
    if metric == COSINE:
        x = normalize_rows(x)
    if not exact:
        return _approximate_knn_graph(x, k, metric, threads, progress)
    sqn = np.einsum("ij,ij->i", x, x).astype(np.float32)
    bar = _progress.start(progress, x.shape[0], "k-NN graph")
    if bar is None:
        return _core.flat_search(x, sqn, None, x, k, METRIC_CODES[metric], None, threads, True)
    return _exact_in_blocks(x, sqn, k, metric, threads, bar)


def _exact_in_blocks(x, sqn, k, metric, threads, bar):
    """The exact graph a block of rows at a time, so that progress can be reported.

    A block searches k + 1 and drops each row's own index. Ties are ordered by row in
    the core, so the k others left are the very ones the one-call path returns.
    """
    n = x.shape[0]
    ids = np.empty((n, k), np.int64)
    dist = np.empty((n, k), np.float32)
    with bar:
        for start, stop in _progress.chunks(n, parts=50, minimum=256):
            bi, bd = _core.flat_search(x, sqn, None, x[start:stop], k + 1, METRIC_CODES[metric],
                                       None, threads, False)
            own = np.arange(start, stop, dtype=np.int64)[:, None]
            order = np.argsort(bi == own, axis=1, kind="stable")[:, :k]
            ids[start:stop] = np.take_along_axis(bi, order, 1)
            dist[start:stop] = np.take_along_axis(bd, order, 1)
            bar.update(stop - start)
    return ids, dist


def _approximate_knn_graph(x: np.ndarray, k: int, metric: str, threads: int, progress=None):
    """Approximate graph from an HNSW index; x is already prepared for the metric.

    Each row asks the graph for k + 1 neighbours and drops itself (by index, so
    duplicate rows still list each other); when the walk missed the row itself,
    the farthest of the k + 1 goes instead.
    """
    from .indexes.hnsw import HNSW

    n = x.shape[0]
    index = HNSW(x.shape[1], metric)
    index.add(x, ids=np.arange(n, dtype=np.int64), threads=threads, progress=progress)
    ef = max(index.ef_search, 2 * (k + 1))
    ids, dist = index.search(x, k + 1, ef=ef, threads=threads)
    is_self = ids == np.arange(n, dtype=np.int64)[:, None]
    # Stable sort on the self flag moves the row's own entry (if found) to the end.
    order = np.argsort(is_self, axis=1, kind="stable")[:, :k]
    return (np.ascontiguousarray(np.take_along_axis(ids, order, 1)),
            np.ascontiguousarray(np.take_along_axis(dist, order, 1)))
