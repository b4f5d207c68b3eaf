"""Merging per-shard top-k lists into one, in the order a single index uses.

A single exact index sorts its hits by (distance, insertion order). Across
shards insertion order is unknown, so ties are broken by id, which is the same
order whenever ids were assigned in increasing order (the default). Padding
(id -1, distance +inf) sorts after every real hit.
"""

from __future__ import annotations

import numpy as np

_LAST = np.iinfo(np.int64).max


def merge_topk(ids_parts, dist_parts, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k smallest (distance, id) over the parts; each part is (nq, k_i)."""
    ids = np.concatenate(ids_parts, axis=1)
    dist = np.concatenate(dist_parts, axis=1)
    nq, m = ids.shape
    if m < k:  # fewer candidates than k: pad before sorting
        ids = np.concatenate([ids, np.full((nq, k - m), -1, np.int64)], axis=1)
        dist = np.concatenate([dist, np.full((nq, k - m), np.inf, np.float32)], axis=1)
    # Two stable sorts give a lexicographic (distance, id) order.
    by_id = np.argsort(np.where(ids < 0, _LAST, ids), axis=1, kind="stable")
    by_dist = np.argsort(np.take_along_axis(dist, by_id, 1), axis=1, kind="stable")[:, :k]
    order = np.take_along_axis(by_id, by_dist, 1)
    return (np.ascontiguousarray(np.take_along_axis(ids, order, 1), dtype=np.int64),
            np.ascontiguousarray(np.take_along_axis(dist, order, 1), dtype=np.float32))
