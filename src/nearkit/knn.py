"""The all-pairs k-nearest-neighbour graph.

``knn_graph(X, k)`` answers "who are the k nearest other rows of every row"
without materialising the n x n distance matrix: the exact path runs the
blocked scan of Flat with X as both the base and the queries (memory is the
(n, k) result plus one block per thread). A row is excluded by its index, not
by a zero distance, so duplicate vectors still list each other.
"""

from __future__ import annotations

import numpy as np

from . import _core, _validate
from .metrics import COSINE, METRIC_CODES, normalize_metric, normalize_rows


def knn_graph(X, k: int, metric: str = "l2", threads=None, exact: bool = True):
    """Return (ids int64 (n, k), distances float32 (n, k)) of each row's k nearest
    other rows, ascending; rows with fewer than k others are padded with -1 / +inf.

    ``exact=False`` builds the graph approximately (needs the HNSW index).
    """
    metric = normalize_metric(metric)
    x, was_1d = _validate.as_vectors(X, None, "X")
    if was_1d:
        raise ValueError("X must be 2-D (n, dim): one row per vector")
    k = _validate.check_k(k)
    threads = _validate.check_threads(threads)
    if metric == COSINE:
        x = normalize_rows(x)
    if not exact:
        return _approximate_knn_graph(x, k, metric, threads)
    sqn = np.einsum("ij,ij->i", x, x).astype(np.float32)
    return _core.flat_search(x, sqn, None, x, k, METRIC_CODES[metric], None, threads, True)


def _approximate_knn_graph(x: np.ndarray, k: int, metric: str, threads: int):
    """Approximate graph from an HNSW index; x is already prepared for the metric."""
    raise NotImplementedError(
        "knn_graph(exact=False) needs nearkit's HNSW index, which this build does not have "
        "yet; use exact=True"
    )
