"""nearkit.Flat: exact search against the numpy reference, on every ISA."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

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


def test_single_query_gives_1d_results():
    index = nearkit.Flat(3)
    index.add(np.eye(3))
    ids, dist = index.search([1.0, 0.0, 0.0], 2)
    assert ids.shape == (2,) and ids[0] == 0
    assert dist[0] == pytest.approx(0.0) and dist[1] == pytest.approx(2.0)


def test_padding_when_k_exceeds_size():
    index = nearkit.Flat(4)
    index.add(np.arange(8, dtype=np.float32).reshape(2, 4))
    ids, dist = index.search(np.zeros((3, 4)), 5)
    assert (ids[:, :2] == [0, 1]).all()
    assert (ids[:, 2:] == -1).all() and np.isinf(dist[:, 2:]).all()


def test_empty_index_returns_only_padding():
    index = nearkit.Flat(5, "ip")
    ids, dist = index.search(np.ones((2, 5)), 3)
    assert (ids == -1).all() and np.isinf(dist).all()
    assert len(index) == 0


def test_custom_ids_are_returned():
    rng = np.random.default_rng(0)
    base = rng.standard_normal((50, 8)).astype(np.float32)
    labels = rng.choice(10**12, size=50, replace=False)
    index = nearkit.Flat(8)
    index.add(base, ids=labels)
    q = rng.standard_normal((30, 8))
    ids, dist = index.search(q, 6)
    assert_knn_matches(ids, dist, q, base, "l2", 6, labels=labels)


def test_default_ids_continue_after_the_largest():
    index = nearkit.Flat(2)
    index.add(np.zeros((2, 2)), ids=[5, 9])
    index.add(np.ones((2, 2)))
    assert sorted(index.ids().tolist()) == [5, 9, 10, 11]


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


def test_filter_errors():
    index = nearkit.Flat(2)
    index.add(np.eye(2))
    with pytest.raises(ValueError, match="1-D"):
        index.search([0, 0], 1, filter=np.ones((2, 2), bool))
    with pytest.raises(ValueError, match="non-negative"):
        index.search([0, 0], 1, filter=[-1])
    with pytest.raises(TypeError, match="integers"):
        index.search([0, 0], 1, filter=[0.5])


def test_duplicate_ids_are_refused():
    index = nearkit.Flat(2)
    index.add(np.zeros((3, 2)), ids=[1, 2, 3])
    with pytest.raises(ValueError, match="id 2 is already"):
        index.add(np.zeros((2, 2)), ids=[7, 2])
    with pytest.raises(ValueError, match="duplicate id 8"):
        index.add(np.zeros((3, 2)), ids=[8, 4, 8])
    assert len(index) == 3  # nothing half-added
    index.add(np.zeros((1, 2)), ids=[0])  # below the largest, but new
    with pytest.raises(ValueError, match="id 0 is already"):
        index.add(np.zeros((1, 2)), ids=[0])
    assert len(index) == 4


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


def test_many_python_threads_search_one_index():
    base, queries = make_data(17, 4000, 240, 16, False)
    index = nearkit.Flat(16, "cosine")
    index.add(base)
    chunks = [queries[i::12] for i in range(12)]
    serial = [index.search(c, 5) for c in chunks]
    single = [index.search(c[0], 5) for c in chunks]
    barrier = threading.Barrier(6)

    def work(i):
        if i < 6:
            barrier.wait()
        return index.search(chunks[i], 5), index.search(chunks[i][0], 5)

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(work, range(12)))
    for (batch, one), want, want_one in zip(results, serial, single):
        np.testing.assert_array_equal(batch[0], want[0])
        np.testing.assert_array_equal(batch[1], want[1])
        np.testing.assert_array_equal(one[0], want_one[0])


def test_searches_stay_consistent_while_another_thread_writes():
    rng = np.random.default_rng(41)
    index = nearkit.Flat(8)
    index.add(rng.standard_normal((500, 8)))
    q = rng.standard_normal((20, 8))
    stop = threading.Event()
    errors = []

    def reader():
        while not stop.is_set():
            try:
                allowed = np.arange(0, 100_000, 2)
                ids, _ = index.search(q, 5, filter=allowed)
                assert (ids % 2 == 0).all()
                index.search(q[0], 3)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(60):
        index.add(rng.standard_normal((40, 8)))
        index.remove(rng.choice(len(index), 10, replace=False))
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors[0]


def test_input_conversion():
    rng = np.random.default_rng(19)
    wide = rng.standard_normal((300, 16))  # float64
    base32 = np.ascontiguousarray(wide[:, ::2], dtype=np.float32)
    a = nearkit.Flat(8)
    a.add(base32)
    b = nearkit.Flat(8)
    b.add(wide[:, ::2])  # float64, non-contiguous
    c = nearkit.Flat(8)
    c.add(np.asfortranarray(wide[:, ::2]))
    q = rng.integers(-3, 4, size=(20, 8))  # ints
    want = a.search(q.astype(np.float32), 5)
    for idx in (b, c):
        got = idx.search(q, 5)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    got = a.search(q.tolist(), 5)  # nested lists
    np.testing.assert_array_equal(got[0], want[0])
    d = nearkit.Flat(8)
    d.add(base32, ids=np.arange(300, dtype=np.int32)[::-1])  # int32, negative stride
    assert set(d.ids().tolist()) == set(range(300))


def test_bad_input():
    index = nearkit.Flat(4)
    index.add(np.ones((3, 4)))
    cases = [
        (ValueError, "dimension 3", lambda: index.add(np.ones((2, 3)))),
        (ValueError, "dimension 5", lambda: index.search(np.ones((2, 5)), 1)),
        (ValueError, "NaN", lambda: index.add([[0, 0, np.nan, 0]])),
        (ValueError, "NaN", lambda: index.search([0, np.inf, 0, 0], 1)),
        (ValueError, "k must be positive", lambda: index.search(np.ones(4), 0)),
        (ValueError, "k must be positive", lambda: index.search(np.ones(4), -3)),
        (TypeError, "k must be an integer", lambda: index.search(np.ones(4), 2.5)),
        (TypeError, "numeric", lambda: index.add([["a", "b", "c", "d"]])),
        (TypeError, "numeric", lambda: index.search([[1, 2], [3]], 1)),
        (ValueError, "1-D or 2-D", lambda: index.add(np.ones((2, 2, 4)))),
        (ValueError, "got 2 ids for 1 vectors", lambda: index.add(np.ones((1, 4)), ids=[7, 8])),
        (ValueError, "non-negative", lambda: index.add(np.ones((1, 4)), ids=[-4])),
        (TypeError, "integers", lambda: index.add(np.ones((1, 4)), ids=[1.5])),
        (ValueError, "threads", lambda: index.search(np.ones(4), 1, threads=-2)),
        (ValueError, "unknown metric 'manhattan'", lambda: nearkit.Flat(4, "manhattan")),
        (TypeError, "metric", lambda: nearkit.Flat(4, None)),
        (ValueError, "dim", lambda: nearkit.Flat(0)),
        (TypeError, "no parameters", lambda: index.search(np.ones(4), 1, nprobe=3)),
        (TypeError, "unexpected keyword", lambda: index.add(np.ones(4), nlist=3)),
        (TypeError, "dim", lambda: nearkit.Flat(2.5)),
    ]
    for exc, message, call in cases:
        with pytest.raises(exc, match=message):
            call()
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
def test_save_load_round_trip(tmp_path, metric, use_mmap):
    rng = np.random.default_rng(29)
    base = rng.standard_normal((300, 12)).astype(np.float32)
    index = nearkit.Flat(12, metric)
    index.add(base, ids=rng.choice(10**9, 300, replace=False))
    index.remove(index.ids()[:40])
    path = tmp_path / "flat.nk"
    index.save(path)
    loaded = nearkit.load(path, mmap=use_mmap)
    assert isinstance(loaded, nearkit.Flat)
    assert (loaded.dim, loaded.metric, len(loaded)) == (12, metric, 260)
    q = rng.standard_normal((30, 12))
    for threads in (1, 2):
        got, want = loaded.search(q, 7, threads=threads), index.search(q, 7)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    for a, b in zip(loaded.search_radius(q, 0.8 if metric != "l2" else 15.0),
                    index.search_radius(q, 0.8 if metric != "l2" else 15.0)):
        np.testing.assert_array_equal(a, b)
    got = loaded.search(q, 5, filter=index.ids()[::3])
    want = index.search(q, 5, filter=index.ids()[::3])
    np.testing.assert_array_equal(got[0], want[0])
    if use_mmap:
        assert _maps_file(loaded.vectors), "a memory-mapped Flat copied its vectors"
        with pytest.raises(ValueError, match="memory-mapped"):
            loaded.add(np.ones((1, 12)))
        with pytest.raises(ValueError, match="memory-mapped"):
            loaded.remove(index.ids()[:1])
    else:
        new_id = int(index.ids().max()) + 1
        loaded.add(np.ones((1, 12)), ids=[new_id])
        assert len(loaded) == 261
        with pytest.raises(ValueError, match="already"):
            loaded.add(np.ones((1, 12)), ids=[new_id])
        assert loaded.remove(index.ids()[:10]) == 10


def test_save_load_empty(tmp_path):
    path = tmp_path / "empty.nk"
    nearkit.Flat(3, "ip").save(path)
    for use_mmap in (False, True):
        loaded = nearkit.load(path, mmap=use_mmap)
        assert len(loaded) == 0
        ids, _ = loaded.search(np.ones(3), 2)
        assert (ids == -1).all()


def test_damaged_flat_file_is_refused(tmp_path):
    index = nearkit.Flat(4)
    index.add(np.random.default_rng(0).standard_normal((50, 4)))
    path = tmp_path / "flat.nk"
    index.save(path)
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(nearkit.FormatError, match="checksum"):
        nearkit.load(path)


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
