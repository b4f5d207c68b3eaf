"""nearkit.knn_graph: the exact all-pairs k-NN graph, self excluded by index."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nearkit
from nearkit import _core
from nearkit.metrics import normalize_rows, reference_distances

from flat_checks import isa, tolerance

ISAS = _core.supported_isas()
METRICS = ["l2", "ip", "cosine"]


def assert_graph_exact(ids, dist, x, metric, k):
    xb = normalize_rows(x) if metric == "cosine" else x
    ref = reference_distances(xb, xb, metric)
    n = x.shape[0]
    assert ids.shape == dist.shape == (n, k)
    assert ids.dtype == np.int64 and dist.dtype == np.float32
    for i in range(n):
        others = np.delete(np.arange(n), i)
        r = ref[i, others]
        tol = tolerance(ref[i])
        expect = np.sort(r)[:k]
        m = expect.size
        np.testing.assert_allclose(dist[i, :m], expect, rtol=0, atol=tol)
        assert (ids[i, m:] == -1).all() and np.isinf(dist[i, m:]).all()
        got = ids[i, :m]
        assert i not in got.tolist(), "a row lists itself"
        assert np.unique(got).size == m
        np.testing.assert_allclose(dist[i, :m], ref[i, got], rtol=0, atol=tol)
        if m:
            assert set(others[r < expect[-1] - 2 * tol].tolist()) <= set(got.tolist())


@pytest.mark.parametrize("isa_name", ISAS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 250), d=st.integers(1, 40), k=st.integers(1, 12),
       metric=st.sampled_from(METRICS), seed=st.integers(0, 2**32 - 1))
def test_graph_is_exact(isa_name, n, d, k, metric, seed):
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    with isa(isa_name):
        ids, dist = nearkit.knn_graph(x, k, metric)
    assert_graph_exact(ids, dist, x, metric, k)


@pytest.mark.parametrize("isa_name", ISAS)
def test_duplicates_list_each_other(isa_name):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((60, 7)).astype(np.float32)
    x[30:] = x[:30]  # every row has an exact twin
    with isa(isa_name):
        ids, dist = nearkit.knn_graph(x, 3, "l2")
    twin = (np.arange(60) + 30) % 60
    assert (ids[:, 0] == twin).all()
    np.testing.assert_allclose(dist[:, 0], 0.0, atol=1e-5)
    # Three identical rows: each lists the other two at distance 0.
    y = np.vstack([np.ones((3, 4)), rng.standard_normal((5, 4))])
    ids, dist = nearkit.knn_graph(y, 2, "cosine")
    for i in range(3):
        assert sorted(ids[i].tolist()) == sorted({0, 1, 2} - {i})


def test_padding_when_k_reaches_n():
    ids, dist = nearkit.knn_graph(np.arange(6.0).reshape(3, 2), 4)
    assert (ids[:, 2:] == -1).all() and np.isinf(dist[:, 2:]).all()
    assert ids[0, :2].tolist() == [1, 2]
    ids, dist = nearkit.knn_graph(np.ones((1, 3)), 2)
    assert (ids == -1).all()


def test_threads_and_glove(glove_20k):
    x = glove_20k.base[:3000]
    one = nearkit.knn_graph(x, 10, "cosine", threads=1)
    two = nearkit.knn_graph(x, 10, "cosine", threads=2)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])
    # Same as searching X against itself with k + 1 and dropping self.
    index = nearkit.Flat(x.shape[1], "cosine")
    index.add(x)
    ids, dist = index.search(x[:200], 11)
    for i in range(200):
        keep = ids[i] != i
        np.testing.assert_allclose(one[1][i], dist[i][keep][:10], atol=1e-5)
    sample = np.random.default_rng(0).choice(3000, 40, replace=False)
    xb = normalize_rows(x)
    ref = reference_distances(xb[sample], xb, "cosine")
    ref[np.arange(40), sample] = np.inf
    np.testing.assert_allclose(one[1][sample], np.sort(ref, axis=1)[:, :10], atol=1e-5)


def test_bad_input():
    with pytest.raises(ValueError, match="2-D"):
        nearkit.knn_graph(np.ones(5), 2)
    with pytest.raises(ValueError, match="k must be positive"):
        nearkit.knn_graph(np.ones((5, 2)), 0)
    with pytest.raises(ValueError, match="unknown metric"):
        nearkit.knn_graph(np.ones((5, 2)), 1, "hamming")
    with pytest.raises(ValueError, match="NaN"):
        nearkit.knn_graph(np.full((5, 2), np.nan), 1)
    with pytest.raises(TypeError, match="numeric"):
        nearkit.knn_graph([["x", "y"]], 1)


def test_approximate_graph_through_hnsw(glove_20k):
    x = glove_20k.base[:4000]
    exact_ids, exact_dist = nearkit.knn_graph(x, 10, "cosine")
    ids, dist = nearkit.knn_graph(x, 10, "cosine", exact=False, threads=2)
    assert ids.shape == dist.shape == (4000, 10) and ids.dtype == np.int64
    assert not (ids == np.arange(4000)[:, None]).any(), "a row lists itself"
    assert (np.diff(dist, axis=1) >= 0).all()
    hits = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, exact_ids)])
    assert hits >= 0.95
    # tiny inputs pad like the exact graph
    ids, dist = nearkit.knn_graph(np.eye(3), 4, exact=False)
    assert (ids[:, 2:] == -1).all() and np.isinf(dist[:, 2:]).all()
    assert sorted(ids[0, :2].tolist()) == [1, 2]


@pytest.mark.parametrize("isa_name", ISAS)
@pytest.mark.parametrize("metric", METRICS)
def test_graph_across_chunks(isa_name, metric):
    # Over 1,024 rows the graph is computed symmetrically: each pair once, the
    # score offered to both rows. Twins 1,300 rows apart sit in different chunks.
    rng = np.random.default_rng(31)
    x = rng.standard_normal((2600, 6)).astype(np.float32)
    x[1300:] = x[:1300]
    with isa(isa_name):
        ids, dist = nearkit.knn_graph(x, 4, metric)
        ids2, dist2 = nearkit.knn_graph(x, 4, metric, threads=2)
    np.testing.assert_array_equal(ids, ids2)
    np.testing.assert_array_equal(dist, dist2)
    if metric != "ip":  # (with "ip" a longer vector can beat the twin)
        twin = (np.arange(2600) + 1300) % 2600
        assert (ids[:, 0] == twin).all()
    sample = rng.choice(2600, 300, replace=False)
    xb = normalize_rows(x) if metric == "cosine" else x
    ref = reference_distances(xb[sample], xb, metric)
    ref[np.arange(300), sample] = np.inf
    np.testing.assert_allclose(dist[sample], np.sort(ref, axis=1)[:, :4], atol=1e-4)
    got = np.take_along_axis(ref, ids[sample], 1)
    np.testing.assert_allclose(got, dist[sample], atol=1e-4)
