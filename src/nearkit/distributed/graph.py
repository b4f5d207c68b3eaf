"""The exact all-pairs k-NN graph, computed by Ray tasks block by block.

X is cut into blocks of rows, each put into the object store once. Worker s
owns a contiguous run of blocks (its query rows) and walks over every block in
turn, fetching one at a time, keeping a running top-k for its rows: memory per
worker is its own rows, one block and two (rows, k) arrays, never n x n.

Rows are excluded by index, not by a zero distance (as in
:func:`nearkit.knn_graph`): against its own block a row asks for k + 1 and
drops itself, or the last hit when it was not among them. Lists merge by
(distance, id); ids are row numbers, the order the single-machine graph breaks
ties in, so both give the same ids and distances.
"""

from __future__ import annotations

import numpy as np
import ray

from .. import _core, _validate
from ..metrics import COSINE, METRIC_CODES, normalize_metric, normalize_rows
from .merge import merge_topk


def knn_graph(X, k: int, metric: str = "l2", shards: int = 2, block_rows: int | None = None):
    """Return (ids int64 (n, k), distances float32 (n, k)): each row's k nearest
    other rows, ascending, padded with -1 / +inf; equal to ``nearkit.knn_graph``.

    ``shards`` Ray tasks (one CPU each) share the rows; ``block_rows`` sets the
    unit fetched at a time (default: n / shards).
    """
    metric = normalize_metric(metric)
    x, was_1d = _validate.as_vectors(X, None, "X")
    if was_1d:
        raise ValueError("X must be 2-D (n, dim): one row per vector")
    k = _validate.check_k(k)
    shards = _validate.check_positive_int(shards, "shards")
    n = x.shape[0]
    if n == 0:
        return np.empty((0, k), np.int64), np.empty((0, k), np.float32)
    if metric == COSINE:
        x = normalize_rows(x)
    # Squared norms once, over the whole array, exactly as the local graph does.
    sqn = np.einsum("ij,ij->i", x, x).astype(np.float32)
    if block_rows is None:
        block_rows = -(-n // shards)
    block_rows = _validate.check_positive_int(block_rows, "block_rows")
    bounds = list(range(0, n, block_rows)) + [n]
    nblocks = len(bounds) - 1
    blocks = [ray.put(x[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    norms = [ray.put(sqn[a:b]) for a, b in zip(bounds[:-1], bounds[1:])]
    workers = min(shards, nblocks)
    # Worker w owns blocks [own[w], own[w + 1]).
    own = [round(w * nblocks / workers) for w in range(workers + 1)]
    tasks = [_graph_rows.remote(own[w], own[w + 1], bounds, blocks, norms, k, METRIC_CODES[metric])
             for w in range(workers)]
    parts = ray.get(tasks)
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))


@ray.remote(num_cpus=1)
def _graph_rows(first: int, last: int, bounds, blocks, norms, k: int, metric_code: int):
    """Top-k of rows bounds[first]..bounds[last] against every block."""
    # blocks/norms arrive as lists of refs (not resolved): one block in memory at a time.
    queries = np.concatenate([ray.get(blocks[b]) for b in range(first, last)])
    rows = np.arange(bounds[first], bounds[last], dtype=np.int64)
    best_ids = np.full((rows.size, k), -1, np.int64)
    best_dist = np.full((rows.size, k), np.inf, np.float32)
    for b, (ref, norm_ref) in enumerate(zip(blocks, norms)):
        base, sqn = ray.get(ref), ray.get(norm_ref)
        labels = np.arange(bounds[b], bounds[b + 1], dtype=np.int64)
        if first <= b < last:
            ids, dist = _core.flat_search(base, sqn, labels, queries, k + 1, metric_code, None, 1, False)
            # The row itself moves to the end (stable), then the k best others remain.
            keep = np.argsort(ids == rows[:, None], axis=1, kind="stable")[:, :k]
            ids, dist = np.take_along_axis(ids, keep, 1), np.take_along_axis(dist, keep, 1)
        else:
            ids, dist = _core.flat_search(base, sqn, labels, queries, k, metric_code, None, 1, False)
        del base, sqn
        best_ids, best_dist = merge_topk([best_ids, ids], [best_dist, dist], k)
    return best_ids, best_dist
