"""Ground truth and recall: how approximate indexes are judged against exact search."""

from __future__ import annotations

import numpy as np


def ground_truth(base, queries, k: int, metric: str = "l2", threads=None) -> np.ndarray:
    """Exact k nearest ids (nq, k) of ``queries`` in ``base`` (ids are row numbers)."""
    from .indexes.flat import Flat

    index = Flat(np.asarray(base).shape[1], metric)
    index.add(base)
    ids, _ = index.search(queries, k, threads=threads)
    return ids


def recall_at_k(found, truth, k: int | None = None) -> float:
    """Mean fraction of the true k nearest that appear in the first k found."""
    found = np.atleast_2d(np.asarray(found))
    truth = np.atleast_2d(np.asarray(truth))
    if found.shape[0] != truth.shape[0]:
        raise ValueError(f"found has {found.shape[0]} rows, truth has {truth.shape[0]}")
    k = truth.shape[1] if k is None else k
    if k > truth.shape[1] or k > found.shape[1]:
        raise ValueError(f"k={k} exceeds the columns given")
    hits = 0
    for f, t in zip(found[:, :k], truth[:, :k]):
        hits += np.intersect1d(f[f >= 0], t).size
    return hits / (truth.shape[0] * k)
