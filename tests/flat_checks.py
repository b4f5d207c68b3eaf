"""Shared checks for exact search results against the numpy reference."""

from __future__ import annotations

import numpy as np

from nearkit import _core
from nearkit.metrics import reference_distances


def tolerance(ref_row: np.ndarray) -> float:
    """Float32 rounding allowance for one query's distances."""
    return 1e-4 * (1.0 + float(np.abs(ref_row).max(initial=0.0)))


def assert_knn_matches(ids, dist, queries, base, metric, k, labels=None, allowed=None):
    """ids/dist (nq, k) must be the exact k nearest of the reference.

    Distances are compared value by value; ids are checked where they are
    determined: every returned id must have the returned distance, and every row
    clearly closer than the k-th distance must be among the returned ids.
    labels maps base rows to ids; allowed (bool over rows) restricts the base.
    """
    ids = np.atleast_2d(ids)
    dist = np.atleast_2d(dist)
    ref = np.atleast_2d(reference_distances(queries, base, metric))
    n = base.shape[0]
    labels = np.arange(n) if labels is None else np.asarray(labels)
    allowed = np.ones(n, bool) if allowed is None else np.asarray(allowed)
    row_of = {int(lab): i for i, lab in enumerate(labels)}
    cand = np.flatnonzero(allowed)
    assert ids.shape == dist.shape == (ref.shape[0], k)
    assert ids.dtype == np.int64 and dist.dtype == np.float32
    for qi in range(ref.shape[0]):
        r = ref[qi, cand]
        tol = tolerance(ref[qi])
        expect = np.sort(r)[:k]
        m = expect.size
        np.testing.assert_allclose(dist[qi, :m], expect, rtol=0, atol=tol)
        assert (ids[qi, m:] == -1).all() and np.isinf(dist[qi, m:]).all()
        assert (np.diff(dist[qi, :m]) >= 0).all(), "distances not ascending"
        got = ids[qi, :m]
        assert np.unique(got).size == m, "an id returned twice"
        rows = np.array([row_of[int(g)] for g in got], dtype=np.int64)
        assert allowed[rows].all(), "a filtered-out id was returned"
        np.testing.assert_allclose(dist[qi, :m], ref[qi, rows], rtol=0, atol=tol)
        if m:
            sure = cand[r < expect[-1] - 2 * tol]
            assert set(labels[sure].tolist()) <= set(got.tolist()), "a clearly nearer id is missing"


def assert_radius_matches(lims, ids, dist, queries, base, metric, radius, labels=None,
                          allowed=None):
    ref = np.atleast_2d(reference_distances(queries, base, metric))
    n = base.shape[0]
    labels = np.arange(n) if labels is None else np.asarray(labels)
    allowed = np.ones(n, bool) if allowed is None else np.asarray(allowed)
    assert lims.dtype == np.int64 and ids.dtype == np.int64 and dist.dtype == np.float32
    assert lims.shape == (ref.shape[0] + 1,) and lims[0] == 0 and lims[-1] == ids.size == dist.size
    assert (np.diff(lims) >= 0).all()
    row_of = {int(lab): i for i, lab in enumerate(labels)}
    for qi in range(ref.shape[0]):
        got_ids = ids[lims[qi]:lims[qi + 1]]
        got_d = dist[lims[qi]:lims[qi + 1]]
        tol = tolerance(ref[qi])
        assert (got_d < radius).all(), "a hit at or beyond the radius"
        assert (np.diff(got_d) >= 0).all(), "hits not sorted by distance"
        rows = np.array([row_of[int(g)] for g in got_ids], dtype=np.int64)
        assert allowed[rows].all()
        np.testing.assert_allclose(got_d, ref[qi, rows], rtol=0, atol=tol)
        sure = np.flatnonzero(allowed & (ref[qi] < radius - tol))
        maybe = np.flatnonzero(allowed & (ref[qi] < radius + tol))
        got = set(got_ids.tolist())
        assert set(labels[sure].tolist()) <= got, "a hit inside the radius is missing"
        assert got <= set(labels[maybe].tolist())


class isa:
    """Context manager: run with one instruction set's kernels, then restore."""

    def __init__(self, name: str):
        self.name = name

    def __enter__(self):
        self.saved = _core.isa()
        _core.set_isa(self.name)
        return self

    def __exit__(self, *exc):
        _core.set_isa(self.saved)
