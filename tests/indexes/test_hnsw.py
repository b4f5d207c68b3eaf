"""nearkit.HNSW: recall against exact search on GloVe, updates, filters, threads, files, bad input."""

import threading

import numpy as np
import pytest

import nearkit
from nearkit import _core
from nearkit.errors import FormatError
from nearkit.metrics import reference_distances


def exact_ids(base, queries, k, metric="cosine", allowed=None):
    d = reference_distances(queries, base, metric)
    if allowed is not None:
        d[:, ~allowed] = np.inf
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def recall(found, truth):
    k = truth.shape[1]
    return float(np.mean([len(set(f[f >= 0]) & set(t)) / k for f, t in zip(found, truth)]))


@pytest.fixture(scope="module")
def glove(glove_20k):
    return glove_20k.base, glove_20k.queries


@pytest.fixture(scope="module")
def built(glove):
    base, _ = glove
    index = nearkit.HNSW(base.shape[1], "cosine", seed=1)
    index.add(base, threads=2)
    return index


@pytest.fixture(scope="module")
def truth(glove):
    base, queries = glove
    return exact_ids(base, queries, 10)


# -- recall and distances -------------------------------------------------------


def test_recall_cosine_glove(built, glove, truth):
    _, queries = glove
    ids, dist = built.search(queries, 10, ef=64)
    assert ids.shape == (len(queries), 10) and ids.dtype == np.int64 and dist.dtype == np.float32
    assert recall(ids, truth) >= 0.95
    # Low ef must cost recall: the parameter reaches the core.
    low, _ = built.search(queries, 10, ef=1)
    assert recall(low, truth) < recall(ids, truth)


def test_distances_are_exact(built, glove):
    base, queries = glove
    ids, dist = built.search(queries[:20], 10)
    ref = reference_distances(queries[:20], base, "cosine")
    np.testing.assert_allclose(dist, np.take_along_axis(ref, ids, 1), atol=2e-5)
    assert np.all(np.diff(dist, axis=1) >= 0)


def test_unfiltered_walk_matches_the_filtered_walk_allowing_everything(built, glove):
    # Unfiltered searches (and builds) take the sorted-array walk, filtered ones the
    # heap walk with eligibility checks: given the same graph they visit the same
    # nodes in the same order, so a filter allowing every id changes nothing.
    base, queries = glove
    everyone = np.ones(len(base), dtype=bool)
    for ef in (10, 64):
        plain = built.search(queries, 10, ef=ef, threads=1)
        filtered = built.search(queries, 10, ef=ef, threads=1, filter=everyone)
        np.testing.assert_array_equal(plain[0], filtered[0])
        np.testing.assert_array_equal(plain[1], filtered[1])


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_other_metrics(glove, metric):
    base, queries = glove
    base, queries = base[:5000], queries[:50]
    index = nearkit.HNSW(base.shape[1], metric)
    index.add(base)
    ids, dist = index.search(queries, 10, ef=100)
    assert recall(ids, exact_ids(base, queries, 10, metric)) >= 0.95
    ref = reference_distances(queries, base, metric)
    np.testing.assert_allclose(dist, np.take_along_axis(ref, ids, 1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("isa", _core.supported_isas())
def test_every_isa_gives_the_same_walk(glove, isa):
    base, queries = glove
    base, queries = base[:3000], queries[:40]
    before = _core.isa()
    try:
        _core.set_isa(isa)
        index = nearkit.HNSW(base.shape[1], "cosine", seed=3)
        index.add(base)
        ids, _ = index.search(queries, 10, ef=80)
    finally:
        _core.set_isa(before)
    assert recall(ids, exact_ids(base, queries, 10)) >= 0.97


def test_parallel_build_matches_recall(glove, truth):
    base, queries = glove
    one = nearkit.HNSW(base.shape[1], "cosine")
    one.add(base[:8000])
    two = nearkit.HNSW(base.shape[1], "cosine")
    two.add(base[:8000], threads=2)
    t = exact_ids(base[:8000], queries, 10)
    r1 = recall(one.search(queries, 10, ef=64)[0], t)
    r2 = recall(two.search(queries, 10, ef=64)[0], t)
    assert r2 >= 0.95 and abs(r1 - r2) < 0.02


# -- small and degenerate indexes -----------------------------------------------


def test_growth_one_at_a_time_and_widening_range(glove):
    base, queries = glove
    index = nearkit.HNSW(base.shape[1], "cosine")
    # The first batch is one vector: the code range must widen as data arrives.
    for i in range(1500):
        index.add(base[i], ids=[i])
    assert len(index) == 1500 and index._core.capacity >= 1500
    index.add(base[1500:4000])
    assert len(index) == 4000
    t = exact_ids(base[:4000], queries[:50], 10)
    assert recall(index.search(queries[:50], 10, ef=64)[0], t) >= 0.95


# -- delete / re-add / replace --------------------------------------------------


def test_delete_then_add_keeps_recall(glove):
    base, queries = glove
    rng = np.random.default_rng(0)
    index = nearkit.HNSW(base.shape[1], "cosine", seed=2)
    index.add(base[:14000], ids=np.arange(14000), threads=2)
    gone = rng.choice(14000, 4200, replace=False)
    assert index.remove(gone) == 4200
    assert index.remove(gone[:5]) == 0  # already gone
    assert len(index) == 9800
    ids, _ = index.search(queries, 10, ef=64)
    assert not np.isin(ids, gone).any()

    index.add(base[14000:18200], ids=np.arange(14000, 18200), threads=2)
    assert len(index) == 14000 and index._core.n_slots == 14000  # freed slots were reused

    keep = np.setdiff1d(np.arange(18200), gone)
    fresh = nearkit.HNSW(base.shape[1], "cosine", seed=2)
    fresh.add(base[keep], ids=keep, threads=2)
    t = keep[exact_ids(base[keep], queries, 10)]
    r_updated = recall(index.search(queries, 10, ef=64)[0], t)
    r_fresh = recall(fresh.search(queries, 10, ef=64)[0], t)
    assert r_updated >= r_fresh - 0.01, (r_updated, r_fresh)


def _churn(index, draw, rng, steps):
    """Random batches of adds that each also remove about half as many live ids,
    and remove-only steps: the mix that once left nodes unreachable."""
    live, next_id = {}, 0
    for _ in range(steps):
        if rng.random() < 0.75 or len(live) < 50:
            n = int(rng.integers(1, 30))
            ids = np.arange(next_id, next_id + n)
            next_id += n
            if live:
                old = rng.choice(list(live), min(len(live), n // 2), replace=False)
                index.remove(old)
                for o in old.tolist():
                    del live[o]
            x = draw(n)
            index.add(x, ids)
            live.update(zip(ids.tolist(), x))
        else:
            old = rng.choice(list(live), int(rng.integers(1, 6)), replace=False)
            index.remove(old)
            for o in old.tolist():
                del live[o]
    return live


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_churn_leaves_every_node_reachable(seed):
    rng = np.random.default_rng(seed)
    index = nearkit.HNSW(8, "l2", M=16, ef_construction=200, seed=seed)
    live = _churn(index, lambda n: rng.standard_normal((n, 8)).astype(np.float32), rng, 400)
    ids = np.array(list(live))
    # ef above the index size: the walk visits every node it can reach
    found, _ = index.search(np.stack([live[i] for i in ids]), 1, ef=len(ids) + 10)
    assert len(index) == len(ids)
    np.testing.assert_array_equal(found[:, 0], ids)


@pytest.mark.parametrize("seed", [0, 1])
def test_churn_leaves_every_node_reachable_cosine_glove(glove, seed):
    base, _ = glove
    rng = np.random.default_rng(seed)
    rows = iter(rng.permutation(len(base)))
    index = nearkit.HNSW(base.shape[1], "cosine", M=8, ef_construction=100, seed=seed)
    live = _churn(index, lambda n: base[[next(rows) for _ in range(n)]], rng, 300)
    ids = np.array(list(live))
    found, _ = index.search(np.stack([live[i] for i in ids]), 1, ef=len(ids) + 10)
    np.testing.assert_array_equal(found[:, 0], ids)


def test_delete_and_readd_same_ids_keeps_recall(glove):
    base, queries = glove
    rng = np.random.default_rng(3)
    n = 8000
    index = nearkit.HNSW(base.shape[1], "cosine", seed=4)
    index.add(base[:n], threads=2)
    gone = rng.choice(n, int(0.3 * n), replace=False)
    index.remove(gone)
    index.add(base[gone], ids=gone, threads=2)
    assert len(index) == n
    fresh = nearkit.HNSW(base.shape[1], "cosine", seed=4)
    fresh.add(base[:n], threads=2)
    t = exact_ids(base[:n], queries, 10)
    r_updated = recall(index.search(queries, 10, ef=64)[0], t)
    r_fresh = recall(fresh.search(queries, 10, ef=64)[0], t)
    assert r_updated >= r_fresh - 0.01, (r_updated, r_fresh)
    sample = rng.choice(n, 400, replace=False)
    found, _ = index.search(base[sample], 1, ef=n + 10)
    np.testing.assert_array_equal(found[:, 0], sample)


def test_readding_an_id_replaces_its_vector(glove):
    base, _ = glove
    index = nearkit.HNSW(base.shape[1], "cosine")
    index.add(base[:3000])
    index.add(base[5000:5300], ids=np.arange(300))  # new vectors for ids 0..299
    assert len(index) == 3000
    ids, dist = index.search(base[5000:5300], 1)
    np.testing.assert_array_equal(ids[:, 0], np.arange(300))
    np.testing.assert_allclose(dist[:, 0], 0, atol=1e-5)
    ids, dist = index.search(base[:300], 1)  # the old vectors are gone
    assert (dist[:, 0] > 1e-4).mean() > 0.9


# -- filters --------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.5])
@pytest.mark.parametrize("graph_only", [False, True])
def test_filtered_search(built, glove, fraction, graph_only):
    base, queries = glove
    rng = np.random.default_rng(int(fraction * 100))
    allowed = rng.random(base.shape[0]) < fraction
    if graph_only:  # force the graph walk even where the exact scan would be chosen
        saved = built._core.exact_threshold, built._core.exact_scale
        built._core.exact_threshold, built._core.exact_scale = 0, 0.0
    try:
        ids, dist = built.search(queries, 10, ef=64, filter=allowed)
        ids2, _ = built.search(queries, 10, ef=64, filter=np.flatnonzero(allowed))
    finally:
        if graph_only:
            built._core.exact_threshold, built._core.exact_scale = saved
    assert allowed[ids[ids >= 0]].all()
    np.testing.assert_array_equal(ids, ids2)
    assert recall(ids, exact_ids(base, queries, 10, allowed=allowed)) >= 0.95


def test_filter_with_fewer_than_k_allowed(built, glove):
    _, queries = glove
    ids, dist = built.search(queries[0], 5, filter=[3, 17])
    assert sorted(ids[:2].tolist()) == [3, 17] and ids[2:].tolist() == [-1, -1, -1]
    assert np.isinf(dist[2:]).all()
    ids, _ = built.search(queries[0], 3, filter=np.zeros(10, bool))
    assert ids.tolist() == [-1, -1, -1]


# -- concurrency ------------------------------------------------------------------


def test_search_while_adding(glove):
    base, queries = glove
    index = nearkit.HNSW(base.shape[1], "cosine")
    index.add(base[:1000])
    errors, done = [], threading.Event()
    added = [1000]

    def writer():
        try:
            for start in range(1000, 12000, 1000):
                index.add(base[start:start + 1000], ids=np.arange(start, start + 1000), threads=2)
                added[0] = start + 1000
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            done.set()

    def reader(seed):
        r = np.random.default_rng(seed)
        try:
            while not done.is_set():
                qs = queries[r.integers(0, len(queries), 8)]
                ids, dist = index.search(qs, 10, ef=32)
                one, _ = index.search(qs[0], 5)
                limit = added[0] + 1000  # read after searching: ids of the batch in flight may appear
                assert ((ids >= 0) & (ids < limit)).all()
                assert (np.diff(dist, axis=1) >= 0).all()
                assert ((one >= 0) & (one < limit)).all()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer)] + [threading.Thread(target=reader, args=(s,)) for s in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(index) == 12000
    t = exact_ids(base[:12000], queries, 10)
    assert recall(index.search(queries, 10, ef=64)[0], t) >= 0.95


def test_search_while_removing(glove):
    base, queries = glove
    index = nearkit.HNSW(base.shape[1], "cosine")
    index.add(base[:6000], threads=2)
    errors, done = [], threading.Event()

    def remover():
        try:
            for start in range(0, 3000, 500):
                index.remove(np.arange(start, start + 500))
        finally:
            done.set()

    def reader():
        try:
            while not done.is_set():
                ids, _ = index.search(queries[:16], 10)
                assert (ids >= -1).all() and (ids < 6000).all()
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=remover), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    ids, _ = index.search(queries, 10)
    assert (ids >= 3000).all()


# -- files --------------------------------------------------------------------------


def test_save_after_removals_roundtrip(glove, tmp_path):
    base, queries = glove
    index = nearkit.HNSW(base.shape[1], "cosine")
    index.add(base[:3000])
    index.remove(np.arange(0, 3000, 3))
    index.save(tmp_path / "r.nk")
    for mmap in (False, True):
        again = nearkit.load(tmp_path / "r.nk", mmap=mmap)
        assert len(again) == 2000
        np.testing.assert_array_equal(again.search(queries, 5)[0], index.search(queries, 5)[0])
    again = nearkit.load(tmp_path / "r.nk")
    again.add(base[5000:5500], ids=np.arange(5000, 5500))  # reuses the freed slots
    assert again._core.n_slots == 3000 and len(again) == 2500


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("dim", [64, 256])
def test_wide_codes_walk_as_well_as_floats_through_files_and_drift(metric, dim, tmp_path):
    # At these widths a code fills whole cache lines, so the walk reads each
    # slot's code floats and centre from a compact copy kept apart from the
    # block (see Hnsw::code_aux). That copy must follow every path that writes
    # codes: the first batch, a drifted later batch, a file load and an mmap,
    # and an add after a load. Stale copies would make the code walk lose rows
    # that the float walk (same graph parameters and seed) finds.
    from nearkit.datasets import synthetic_clustered

    x = synthetic_clustered(3300, dim, n_clusters=16, spread=0.4, seed=dim)
    first, later = x[:2000], x[2000:3000] + 3.0  # later: a batch that drifted
    queries = np.concatenate([x[3000:3150], x[3150:] + 3.0])
    added = x[3000:3050] - 3.0
    base = np.concatenate([first, later])
    truth = exact_ids(base, queries, 10, metric)
    truth_added = exact_ids(np.concatenate([base, added]), added, 10, metric)
    got = {}
    for walk in ("auto", "float"):
        index = nearkit.HNSW(dim, metric, seed=2, walk=walk)
        index.add(first)
        index.add(later, ids=np.arange(2000, 3000))
        found = index.search(queries, 10, ef=64)[0]
        ones = np.array([index.search(q, 1, ef=64)[0] for q in queries])
        index.save(tmp_path / f"{walk}.nk")
        for mmap in (False, True):
            again = nearkit.load(tmp_path / f"{walk}.nk", mmap=mmap)
            np.testing.assert_array_equal(again.search(queries, 10, ef=64)[0], found)
        again = nearkit.load(tmp_path / f"{walk}.nk")
        again.add(added, ids=np.arange(3000, 3050))  # codes written after a load
        got[walk] = (recall(found, truth), recall(ones, truth[:, :1]),
                     recall(again.search(added, 10, ef=64)[0], truth_added), index.walk)
    assert got["auto"][3] == "codes" and got["float"][3] == "float"
    for codes, floats in zip(got["auto"][:3], got["float"][:3]):
        assert codes >= floats - 0.02, got
    assert got["auto"][0] >= 0.95, got


def test_corrupt_sections_are_refused(built):
    sections = {k: np.array(v) for k, v in built._sections().items()}
    params = built._params()

    def load_with(**changes):
        s = dict(sections, **changes)
        return nearkit.HNSW._from_sections(built.dim, built.metric, params, s)

    blocks = sections["blocks"].copy()
    # a link (after 52 code bytes, the code's offset and step, the header) out of range
    blocks.view(np.uint32)[:, 15 + 1] = 10**8
    with pytest.raises(FormatError, match="link"):
        load_with(blocks=blocks)
    with pytest.raises(FormatError, match="slots"):
        load_with(labels=sections["labels"][:-1])
    with pytest.raises(FormatError, match="dtype"):
        load_with(vectors=sections["vectors"].astype(np.float64))
    with pytest.raises(FormatError, match="entry"):
        load_with(state=np.array([len(built) + 5, 0], np.int64))
    with pytest.raises(FormatError, match="sections"):
        s = dict(sections)
        del s["quant"]
        nearkit.HNSW._from_sections(built.dim, built.metric, params, s)
    with pytest.raises(FormatError, match="parameters"):
        nearkit.HNSW._from_sections(built.dim, built.metric, {"M": 0}, sections)


# -- bad input ----------------------------------------------------------------------


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="dim"):
        nearkit.HNSW(0)
    with pytest.raises(ValueError, match="metric"):
        nearkit.HNSW(4, "hamming")
    with pytest.raises(ValueError, match="M"):
        nearkit.HNSW(4, M=1)
    with pytest.raises(TypeError, match="M"):
        nearkit.HNSW(4, M=2.5)
    with pytest.raises(ValueError, match="ef_construction"):
        nearkit.HNSW(4, ef_construction=0)
    with pytest.raises(ValueError, match="ef_search"):
        nearkit.HNSW(4, ef_search=0)
    with pytest.raises(ValueError, match="seed"):
        nearkit.HNSW(4, seed=-1)




def _level0_lists(index):
    """Each slot's level-0 neighbour list, read from the exported blocks."""
    blocks = np.asarray(index._core.export_arrays()["blocks"])
    head = index._core.header_offset
    words = blocks[:, head:].copy().view(np.uint32)
    counts = words[:, 0] & 0xFFFF
    return [words[s, 1:1 + c] for s, c in enumerate(counts)]


@pytest.mark.parametrize("metric", ["l2", "cosine", "ip"])
def test_add_fills_level0_lists_without_breaking_them(metric):
    # After each batch, add() walks again from every new node and adds the
    # heuristic's choice to its level-0 list up to 2*M (l2 and cosine; ip keeps
    # insert's lists). Insert alone leaves ~1.25*M links per node on this data;
    # filled lists hold more, and every list must stay a set of valid, other slots.
    from nearkit.datasets import synthetic_clustered

    M = 8
    x = synthetic_clustered(3000, 32, n_clusters=16, spread=0.4, seed=1)
    index = nearkit.HNSW(32, metric, M=M, seed=1)
    index.add(x)
    lists = _level0_lists(index)
    for s, links in enumerate(lists):
        assert len(links) <= 2 * M
        assert len(set(links.tolist())) == len(links), s
        assert s not in links and (links < len(x)).all(), s
    mean = np.mean([len(links) for links in lists])
    full = np.mean([len(links) == 2 * M for links in lists])
    if metric == "ip":
        assert mean < 1.25 * M, mean
    else:
        assert mean >= 1.5 * M and full >= 0.25, (mean, full)
    truth = exact_ids(x, x[:200], 10, metric)
    assert recall(index.search(x[:200], 10, ef=64)[0], truth) >= 0.95
