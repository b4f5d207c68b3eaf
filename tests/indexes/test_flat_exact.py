"""Flat and knn_graph return exactly the k nearest, on data full of near-ties.

The kernels rank rows by a rounded float32 score (||x||^2 - 2 x.q); these tests
build data where that rounding is larger than the gaps between neighbours
(clustered 384-d rows, duplicates with tiny noise, a large common offset) and
compare with the numpy answer: distances computed in float64 and reported as
float32, ordered by that float32 value, equal values by insertion order (the
order a merge of float32 results, e.g. across shards, reproduces).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nearkit
from nearkit import _core
from nearkit.metrics import normalize_rows

from flat_checks import isa

ISAS = _core.supported_isas()
METRICS = ["l2", "ip", "cosine"]
D = 384


def near_tie_data(seed, n, nq, offset, noise, dup_noise):
    """Clustered rows, a third of them repeated with tiny noise, plus a common offset;
    queries are noisy copies of rows. float32 throughout."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 50), D))
    rows = centres[rng.integers(0, centres.shape[0], n - n // 3)]
    rows = rows + noise * rng.standard_normal(rows.shape)
    dups = rows[rng.integers(0, rows.shape[0], n // 3)]
    dups = dups + dup_noise * rng.standard_normal(dups.shape)
    base = np.concatenate([rows, dups])[rng.permutation(n)] + offset
    queries = base[rng.integers(0, n, nq)] + noise * rng.standard_normal((nq, D))
    return base.astype(np.float32), queries.astype(np.float32)


def exact_order(queries, base, metric, exclude_self=False):
    """(rows sorted by (float64 distance rounded to float32, row), those distances)."""
    q = queries.astype(np.float64)
    b = base.astype(np.float64)
    # Elementwise, not BLAS: a matrix product may sum equal columns differently,
    # which would split exact ties between duplicate rows.
    if metric == "l2":
        dist = ((q[:, None, :] - b[None, :, :]) ** 2).sum(-1)
    else:
        dist = 1.0 - (q[:, None, :] * b[None, :, :]).sum(-1)
    if exclude_self:
        np.fill_diagonal(dist, np.inf)
    dist = dist.astype(np.float32)
    rows = np.arange(b.shape[0])
    order = np.array([np.lexsort((rows, dq)) for dq in dist]).reshape(dist.shape)
    return order, np.take_along_axis(dist, order, 1)


def assert_exact(ids, dist, order, ref, labels, k):
    """ids must be the exact k nearest in order; distances the float64 ones, rounded to
    float32 (give or take double rounding: near-zero 1 - dot values carry ~1e-15)."""
    m = min(k, order.shape[1])
    np.testing.assert_array_equal(ids[:, :m], labels[order[:, :m]])
    for got, want in zip(dist[:, :m], ref[:, :m]):
        np.testing.assert_allclose(got, want, rtol=2.0**-23,
                                   atol=1e-12 * (1.0 + np.abs(want).max(initial=0.0)))
    assert (ids[:, m:] == -1).all() and np.isinf(dist[:, m:]).all()


def prepared(base, queries, metric):
    """The float32 vectors the index actually compares (cosine normalises rows)."""
    if metric == "cosine":
        return normalize_rows(base), normalize_rows(queries)
    return base, queries


@pytest.mark.parametrize("isa_name", ISAS)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(60, 500),
    nq=st.sampled_from([1, 3, 40]),
    offset=st.sampled_from([0.0, 10.0, 300.0]),
    noise=st.sampled_from([1e-2, 1e-3]),
    dup_noise=st.sampled_from([0.0, 1e-6, 1e-5]),
    metric=st.sampled_from(METRICS),
    threads=st.sampled_from([1, 2]),
)
def test_flat_is_exact_on_near_ties(isa_name, seed, n, nq, offset, noise, dup_noise, metric,
                                   threads):
    base, queries = near_tie_data(seed, n, nq, offset, noise, dup_noise)
    index = nearkit.Flat(D, metric)
    labels = np.arange(1000, 1000 + 3 * n, 3, dtype=np.int64)  # ids differ from slots
    index.add(base, ids=labels)
    b, q = prepared(base, queries, metric)
    order, ref = exact_order(q, b, metric)
    with isa(isa_name):
        i10, d10 = index.search(queries, 10, threads=threads)
        i11, d11 = index.search(queries, 11, threads=threads)
    i10, d10, i11, d11 = (np.atleast_2d(a) for a in (i10, d10, i11, d11))
    assert_exact(i10, d10, order, ref, labels, 10)
    assert_exact(i11, d11, order, ref, labels, 11)
    np.testing.assert_array_equal(i10, i11[:, :10])  # k = 10 is the prefix of k = 11
    np.testing.assert_array_equal(d10, d11[:, :10])


@pytest.mark.parametrize("isa_name", ISAS)
def test_flat_filter_and_radius_agree_with_exact_search(isa_name):
    base, queries = near_tie_data(7, 400, 30, 100.0, 1e-3, 1e-6)
    index = nearkit.Flat(D)
    index.add(base)
    allowed = np.arange(0, 400, 3)
    order, ref = exact_order(queries, base[allowed], "l2")
    with isa(isa_name):
        ids, dist = index.search(queries, 10, filter=allowed)
        assert_exact(ids, dist, order, ref, allowed, 10)
        # Radius = the 10th distance: exactly the hits reported strictly nearer.
        full_ids, full_dist = index.search(queries, 12)
        for qi in range(queries.shape[0]):
            radius = full_dist[qi, 9]
            lims, r_ids, r_dist = index.search_radius(queries[qi:qi + 1], radius)
            nearer = full_dist[qi] < radius
            np.testing.assert_array_equal(r_ids, full_ids[qi][nearer])
            np.testing.assert_array_equal(r_dist, full_dist[qi][nearer])


@pytest.mark.parametrize("isa_name", ISAS)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(2, 400),
    offset=st.sampled_from([0.0, 10.0, 300.0]),
    dup_noise=st.sampled_from([0.0, 1e-6]),
    metric=st.sampled_from(METRICS),
    threads=st.sampled_from([1, 2]),
)
def test_knn_graph_is_exact_on_near_ties(isa_name, seed, n, offset, dup_noise, metric, threads):
    base, _ = near_tie_data(seed, n, 1, offset, 1e-3, dup_noise)
    b, _ = prepared(base, base[:1], metric)
    order, ref = exact_order(b, b, metric, exclude_self=True)
    order, ref = order[:, :-1], ref[:, :-1]  # the row itself sorts last (+inf)
    rows = np.arange(n, dtype=np.int64)
    with isa(isa_name):
        i10, d10 = nearkit.knn_graph(base, 10, metric, threads=threads)
        i11, d11 = nearkit.knn_graph(base, 11, metric, threads=threads)
        pi, pd = nearkit.knn_graph(base, 10, metric, threads=threads, progress=lambda *a: None)
    assert_exact(i10, d10, order, ref, rows, 10)
    assert_exact(i11, d11, order, ref, rows, 11)
    np.testing.assert_array_equal(i10, i11[:, :10])
    np.testing.assert_array_equal(i10, pi)  # the blockwise (progress) path agrees
    np.testing.assert_array_equal(d10, pd)
