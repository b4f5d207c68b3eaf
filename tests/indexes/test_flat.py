"""nearkit.Flat: exact search against the numpy reference, on every ISA."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nearkit
from nearkit import _core
from nearkit.metrics import normalize_rows, reference_distances

from flat_checks import assert_knn_matches, assert_radius_matches, isa

ISAS = _core.supported_isas()
METRICS = ["l2", "ip", "cosine"]


def make_data(seed, n, nq, d, ties):
    rng = np.random.default_rng(seed)
    if ties:  # few distinct small-integer vectors: many equal distances
        pool = rng.integers(-2, 3, size=(max(1, n // 4 + 1), d)).astype(np.float32)
        base = pool[rng.integers(0, pool.shape[0], size=n)]
        queries = rng.integers(-2, 3, size=(nq, d)).astype(np.float32)
    else:
        base = rng.standard_normal((n, d)).astype(np.float32)
        queries = rng.standard_normal((nq, d)).astype(np.float32)
    return base, queries


def expected_base(base, metric):
    return normalize_rows(base) if metric == "cosine" else base


@pytest.mark.parametrize("isa_name", ISAS)
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(0, 300), nq=st.integers(1, 90), d=st.integers(1, 70), k=st.integers(1, 25),
    metric=st.sampled_from(METRICS), ties=st.booleans(), seed=st.integers(0, 2**32 - 1),
)
def test_search_is_exact(isa_name, n, nq, d, k, metric, ties, seed):
    base, queries = make_data(seed, n, nq, d, ties)
    index = nearkit.Flat(d, metric)
    index.add(base)
    with isa(isa_name):
        ids, dist = index.search(queries, k)
    assert_knn_matches(ids, dist, queries, expected_base(base, metric), metric, k)


@pytest.mark.parametrize("isa_name", ISAS)
@pytest.mark.parametrize("metric", METRICS)
def test_many_queries_span_chunks(isa_name, metric):
    # More queries than one chunk (1,024) and a base larger than one block.
    base, queries = make_data(7, 3000, 1100, 12, False)
    index = nearkit.Flat(12, metric)
    index.add(base)
    with isa(isa_name):
        ids, dist = index.search(queries, 4)
    assert_knn_matches(ids, dist, queries, expected_base(base, metric), metric, 4)


def test_glove_cosine_matches_numpy(glove_20k):
    base, queries = glove_20k.base, glove_20k.queries[:50]
    index = nearkit.Flat(base.shape[1], "cosine")
    index.add(base)
    ids, dist = index.search(queries, 10)
    assert_knn_matches(ids, dist, queries, normalize_rows(base), "cosine", 10)
    one_ids, one_dist = index.search(queries[0], 10)
    assert one_ids.shape == (10,) and one_dist.shape == (10,)
    np.testing.assert_allclose(one_dist, dist[0], atol=1e-5)


@pytest.mark.parametrize("isa_name", ISAS)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("nq", [1, 40])
def test_filters(isa_name, metric, nq):
    rng = np.random.default_rng(3)
    base = rng.standard_normal((400, 9)).astype(np.float32)
    labels = np.arange(400, dtype=np.int64) * 3  # ids 0, 3, 6, ...
    index = nearkit.Flat(9, metric)
    index.add(base, ids=labels)
    q = rng.standard_normal((nq, 9))
    eb = expected_base(base, metric)
    with isa(isa_name):
        # Boolean mask over ids, shorter than the largest id: ids beyond it are excluded.
        mask = rng.random(700) < 0.5
        allowed = np.zeros(400, bool)
        inside = labels < 700
        allowed[inside] = mask[labels[inside]]
        ids, dist = index.search(q, 7, filter=mask)
        assert_knn_matches(ids, dist, q, eb, metric, 7, labels=labels, allowed=allowed)
        # Array of allowed ids, very selective, with ids not in the index.
        allow_ids = np.concatenate([labels[rng.choice(400, 5, replace=False)], [1, 2, 10**9]])
        allowed = np.isin(labels, allow_ids)
        ids, dist = index.search(q, 7, filter=allow_ids)
        assert_knn_matches(ids, dist, q, eb, metric, 7, labels=labels, allowed=allowed)
        # Nothing allowed: only padding.
        ids, dist = index.search(q, 3, filter=np.zeros(0, dtype=np.int64))
        assert (ids == -1).all() and np.isinf(dist).all()


@pytest.mark.parametrize("metric", METRICS)
def test_remove(metric):
    rng = np.random.default_rng(5)
    base = rng.standard_normal((200, 6)).astype(np.float32)
    index = nearkit.Flat(6, metric)
    index.add(base)
    gone = rng.choice(200, 60, replace=False)
    assert index.remove(np.concatenate([gone, [500, 501]])) == 60
    assert len(index) == 140
    assert index.remove(gone[:3]) == 0
    keep = np.setdiff1d(np.arange(200), gone)
    q = rng.standard_normal((25, 6))
    ids, dist = index.search(q, 10)
    assert not np.isin(ids, gone).any()
    assert_knn_matches(ids, dist, q, expected_base(base[keep], metric), metric, 10, labels=keep)
    # A removed id can be added again.
    index.add(base[gone[:1]], ids=gone[:1])
    ids, _ = index.search(base[gone[0]], 1)
    assert ids[0] == gone[0]


@pytest.mark.parametrize("isa_name", ISAS)
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("nq", [1, 3, 70])
def test_search_radius(isa_name, metric, nq):
    rng = np.random.default_rng(11)
    base = rng.standard_normal((500, 10)).astype(np.float32)
    labels = rng.choice(10**6, 500, replace=False)
    index = nearkit.Flat(10, metric)
    index.add(base, ids=labels)
    q = rng.standard_normal((nq, 10)).astype(np.float32)
    eb = expected_base(base, metric)
    radius = float(np.quantile(reference_distances(q, eb, metric), 0.05))
    with isa(isa_name):
        lims, ids, dist = index.search_radius(q, radius)
        assert_radius_matches(lims, ids, dist, q, eb, metric, radius, labels=labels)
        allow = labels[::2]
        lims, ids, dist = index.search_radius(q, radius, filter=allow)
        assert_radius_matches(lims, ids, dist, q, eb, metric, radius, labels=labels,
                              allowed=np.isin(labels, allow))


def test_search_radius_is_strict():
    # Distances that are exact in float32: a hit exactly at the radius is excluded.
    index = nearkit.Flat(1)
    index.add(np.array([[0.0], [1.0], [2.0], [3.0]]))
    lims, ids, dist = index.search_radius([[0.0]], 4.0)
    assert lims.tolist() == [0, 2] and ids.tolist() == [0, 1] and dist.tolist() == [0.0, 1.0]
    lims, ids, dist = index.search_radius([[0.0], [3.0]], 4.0001)
    assert lims.tolist() == [0, 3, 6]
    assert ids.tolist() == [0, 1, 2, 3, 2, 1]
    lims, ids, _ = index.search_radius([[0.0]], -1.0)
    assert lims.tolist() == [0, 0] and ids.size == 0
    with pytest.raises(ValueError, match="finite"):
        index.search_radius([[0.0]], float("nan"))
    with pytest.raises(TypeError, match="radius"):
        index.search_radius([[0.0]], "far")


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("nq", [2, 300])
def test_threads_give_identical_results(metric, nq):
    base, queries = make_data(13, 5000, nq, 20, False)
    index = nearkit.Flat(20, metric)
    index.add(base)
    one = index.search(queries, 8, threads=1)
    for threads in (2, 3, 0, -1):
        many = index.search(queries, 8, threads=threads)
        np.testing.assert_array_equal(one[0], many[0])
        np.testing.assert_array_equal(one[1], many[1])
    r1 = index.search_radius(queries, 0.5 if metric != "l2" else 20.0, threads=1)
    r2 = index.search_radius(queries, 0.5 if metric != "l2" else 20.0, threads=2)
    for a, b in zip(r1, r2):
        np.testing.assert_array_equal(a, b)


def test_bad_input():
    # the rest of the bad-input list runs on every kind: tests/indexes/test_index_contract.py
    index = nearkit.Flat(4)
    index.add(np.ones((3, 4)))
    with pytest.raises(ValueError, match="unknown metric 'manhattan'"):
        nearkit.Flat(4, "manhattan")  # a Trees metric, not an exact-scan one
    with pytest.raises(TypeError, match="no parameters"):
        index.search(np.ones(4), 1, nprobe=3)
    assert len(index) == 3


def test_readonly_sections_search_without_copy_and_refuse_changes():
    rng = np.random.default_rng(23)
    base = rng.standard_normal((100, 5)).astype(np.float32)
    src = nearkit.Flat(5, "l2")
    src.add(base, ids=np.arange(100) + 1000)
    sections = {name: arr.copy() for name, arr in src._sections().items()}
    for arr in sections.values():
        arr.flags.writeable = False
    index = nearkit.Flat._from_sections(5, "l2", {}, sections)
    assert np.shares_memory(index.vectors, sections["vectors"])
    q = rng.standard_normal((10, 5))
    got, want = index.search(q, 3), src.search(q, 3)
    np.testing.assert_array_equal(got[0], want[0])
    with pytest.raises(ValueError, match="memory-mapped"):
        index.add(np.ones((1, 5)))
    with pytest.raises(ValueError, match="memory-mapped"):
        index.remove([1000])
    assert len(index) == 100


def test_bad_sections_are_refused():
    ok = {"vectors": np.zeros((2, 3), np.float32), "ids": np.arange(2, dtype=np.int64),
          "sqnorms": np.zeros(2, np.float32)}
    for broken in (
        {**ok, "vectors": np.zeros((2, 4), np.float32)},
        {**ok, "ids": np.arange(3, dtype=np.int64)},
        {**ok, "ids": np.zeros(2, dtype=np.int64)},
        {**ok, "sqnorms": np.zeros(2, np.float64)},
        {k: v for k, v in ok.items() if k != "ids"},
    ):
        with pytest.raises(nearkit.FormatError):
            nearkit.Flat._from_sections(3, "l2", {}, broken)


def test_repr_and_properties():
    index = nearkit.Flat(3, "angular")
    index.add(np.ones((2, 3)))
    assert index.metric == "cosine" and index.dim == 3
    assert "Flat(dim=3, metric='cosine', n=2)" == repr(index)
    np.testing.assert_allclose(np.linalg.norm(index.vectors, axis=1), 1.0, rtol=1e-6)


def _maps_file(arr) -> bool:
    import mmap

    while arr is not None:
        if isinstance(arr, mmap.mmap):
            return True
        arr = getattr(arr, "base", getattr(arr, "obj", None))
    return False


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("use_mmap", [False, True])
def test_save_load_keeps_radius_search_and_maps_in_place(tmp_path, metric, use_mmap):
    # the round trip of k-NN search, filters, threads and read-only maps runs on
    # every kind: tests/indexes/test_index_contract.py
    rng = np.random.default_rng(29)
    base = rng.standard_normal((300, 12)).astype(np.float32)
    index = nearkit.Flat(12, metric)
    index.add(base, ids=rng.choice(10**9, 300, replace=False))
    index.remove(index.ids()[:40])
    path = tmp_path / "flat.nk"
    index.save(path)
    loaded = nearkit.load(path, mmap=use_mmap)
    q = rng.standard_normal((30, 12))
    for a, b in zip(loaded.search_radius(q, 0.8 if metric != "l2" else 15.0),
                    index.search_radius(q, 0.8 if metric != "l2" else 15.0)):
        np.testing.assert_array_equal(a, b)
    if use_mmap:
        assert _maps_file(loaded.vectors), "a memory-mapped Flat copied its vectors"
    else:
        new_id = int(index.ids().max()) + 1
        loaded.add(np.ones((1, 12)), ids=[new_id])
        with pytest.raises(ValueError, match="already"):
            loaded.add(np.ones((1, 12)), ids=[new_id])


@pytest.mark.parametrize("isa_name", ISAS)
@pytest.mark.parametrize("d", [127, 300, 1000])
def test_high_dimensions(isa_name, d):
    base, queries = make_data(37, 200, 30, d, False)
    index = nearkit.Flat(d, "l2")
    index.add(base)
    radius = float(np.quantile(reference_distances(queries, base, "l2"), 0.1))
    with isa(isa_name):
        ids, dist = index.search(queries, 5)
        one = index.search(queries[0], 5)
        lims, rids, rdist = index.search_radius(queries, radius)
    assert_knn_matches(ids, dist, queries, base, "l2", 5)
    assert_knn_matches(one[0], one[1], queries[:1], base, "l2", 5)
    assert_radius_matches(lims, rids, rdist, queries, base, "l2", radius)


@pytest.mark.parametrize("metric", METRICS)
def test_few_queries_split_the_base_over_threads(metric):
    # Few queries and a base of several MB: threads take shares of the base
    # and their top-k are merged; the result must equal the one-thread result.
    base, queries = make_data(43, 1_100_000, 3, 2, False)
    index = nearkit.Flat(2, metric)
    index.add(base)
    allow = np.arange(0, 1_100_000, 7)
    one = index.search(queries, 6, threads=1)
    one_f = index.search(queries, 6, threads=1, filter=allow)
    for threads in (2, 3):
        many = index.search(queries, 6, threads=threads)
        np.testing.assert_array_equal(one[0], many[0])
        np.testing.assert_array_equal(one[1], many[1])
        many_f = index.search(queries, 6, threads=threads, filter=allow)
        np.testing.assert_array_equal(one_f[0], many_f[0])
    ref = reference_distances(queries, expected_base(base, metric), metric)
    np.testing.assert_allclose(one[1], np.sort(ref, axis=1)[:, :6], atol=1e-4)
    assert (one_f[0] % 7 == 0).all()
