"""The index contract: one set of checks run over every index kind and the
factory strings that build something different (in the manner of
scikit-learn's ``parametrize_with_checks``).

A check is a function ``check_x(case)`` that asserts one promise of
``nearkit.indexes.base.Index`` (padding, bad input, dtypes and shapes, files,
damaged files, empty indexes, remove/ids, filters, threads). Every check runs on
every case; a case says what its kind can do (``exact``: exhaustive search
parameters give the exact answer; ``vectors``: ``get`` returns the stored
vectors; ``replaces``: re-adding an id replaces it) and what its own search
parameters are. Kind-specific behaviour (recall, graph repair, forged
structures) stays in the per-kind test files.
"""

from __future__ import annotations

import copy
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pytest

import nearkit
from nearkit import FormatError, ReadOnlyIndexError, _validate, datasets
from nearkit.indexes import IndexImage, SlotFilter
from nearkit.io import read_index, write_index
from nearkit.metrics import normalize_rows, reference_distances

DIM = 8
N = 300
HUGE_KS = (2**63, 2**63 - 1, 2**62, 10**8, _validate.MAX_PADDED_ENTRIES + 1)


@dataclass
class Case:
    name: str
    make: object  # (metric) -> an empty index
    metric: str = "l2"
    exhaustive: dict = field(default_factory=dict)  # search params that scan everything
    huge: dict = field(default_factory=dict)  # absurd sizes, clipped to what is stored
    bad_params: list = field(default_factory=list)  # (params, exception, message)
    exact: bool = True  # exhaustive search gives the exact neighbours and distances
    vectors: bool = True  # get() returns the stored vectors (not only codes)
    replaces: bool = False  # adding a present id replaces its vector (else ValueError)
    trains: bool = False

    @property
    def self_nearest(self) -> bool:
        """A stored vector is its own nearest neighbour at distance 0 (exhaustive search)."""
        return self.exact and self.metric in ("l2", "cosine", "manhattan")

    def __repr__(self):
        return self.name

    def empty(self, metric=None):
        ix = self.make(metric or self.metric)
        if self.trains:
            ix.train(_data()[0])
        return ix

    def built(self, ids=None, n=N, metric=None):
        ix = self.empty(metric)
        ix.add(_data()[0][:n], ids=ids)
        return ix


def _hnsw_case(name, make, metric="l2"):
    return Case(name, make, metric, exhaustive={"ef": N}, huge={"ef": 10**8},
                bad_params=[({"ef": 0}, ValueError, "ef"), ({"ef": "many"}, TypeError, "ef")],
                replaces=True)


def _ivf_case(name, description, metric="l2", exact=True, vectors=True):
    refine = description.endswith("RFlat")
    nlist = 4 if description.startswith(("IVF", "PCA", "OPQ")) else 1
    exhaustive = {"nprobe": nlist, **({"k_factor": N} if refine else {})}
    huge = {"nprobe": 10**12, **({"k_factor": 2**62} if refine else {})}
    return Case(name, lambda m: nearkit.index_factory(DIM, description, m), metric,
                exhaustive=exhaustive, huge=huge,
                bad_params=[({"nprobe": 0}, ValueError, "nprobe"),
                            ({"nprobe": 1.5}, TypeError, "nprobe")]
                + ([({"k_factor": 0}, ValueError, "k_factor")] if refine else []),
                exact=exact, vectors=vectors, trains=True)


CASES = [
    Case("flat", lambda m: nearkit.Flat(DIM, m)),
    Case("flat-cosine", lambda m: nearkit.Flat(DIM, m), "cosine"),
    Case("factory-IDMap,Flat", lambda m: nearkit.index_factory(DIM, "IDMap,Flat", m), "ip"),
    _hnsw_case("hnsw", lambda m: nearkit.HNSW(DIM, m, M=8, ef_construction=64)),
    _hnsw_case("hnsw-cosine", lambda m: nearkit.HNSW(DIM, m, M=8, ef_construction=64), "cosine"),
    _hnsw_case("hnsw-float-walk", lambda m: nearkit.HNSW(DIM, m, M=8, walk="float"), "ip"),
    _hnsw_case("factory-HNSW8,Flat", lambda m: nearkit.index_factory(DIM, "HNSW8,Flat", m)),
    Case("trees", lambda m: nearkit.Trees(DIM, m, n_trees=4), exhaustive={"search_k": -1},
         huge={"search_k": 2**62},
         bad_params=[({"search_k": 0}, ValueError, "search_k"),
                     ({"search_k": 2.5}, TypeError, "search_k")]),
    Case("trees-manhattan", lambda m: nearkit.Trees(DIM, m, n_trees=4, search_k=200), "manhattan",
         exhaustive={"search_k": -1}, huge={"search_k": 2**62},
         bad_params=[({"search_k": -2}, ValueError, "search_k")]),
    _ivf_case("ivf-flat", "IVF4,Flat"),
    _ivf_case("ivf-flat-cosine", "IVF4,Flat", "cosine"),
    _ivf_case("factory-IVF4,SQ8", "IVF4,SQ8", exact=False, vectors=False),
    _ivf_case("factory-IVF4,SQfp16", "IVF4,SQfp16", exact=False, vectors=False),
    _ivf_case("factory-IVF4,PQ4x4fs", "IVF4,PQ4x4fs", "ip", exact=False, vectors=False),
    _ivf_case("factory-IVF4,PQ4x4fs,RFlat", "IVF4,PQ4x4fs,RFlat"),
    _ivf_case("factory-IVF4,SQ8,RFlat", "IVF4,SQ8,RFlat", "cosine"),
    _ivf_case("factory-PCA4,IVF4,Flat", "PCA4,IVF4,Flat", exact=False, vectors=False),
    _ivf_case("factory-OPQ4,IVF4,PQ4x4fs", "OPQ4,IVF4,PQ4x4fs", exact=False, vectors=False),
    _ivf_case("factory-PQ4x4fs,RFlat", "PQ4x4fs,RFlat"),
    _ivf_case("factory-SQ8", "SQ8", exact=False, vectors=False),
]


def _data():
    if not hasattr(_data, "cache"):
        x = datasets.synthetic_clustered(N + 40, DIM, seed=11)
        _data.cache = (x[:N], x[N:])
    return _data.cache


def _distances(case, q, base):
    if case.metric == "manhattan":
        return np.abs(q[:, None, :].astype(np.float64) - base[None, :, :]).sum(-1)
    return reference_distances(q, base, case.metric)


def _exact(case, q, base, ids, k):
    """Exact neighbours by numpy (ties by position) and their distances."""
    d = _distances(case, np.asarray(q, np.float64), base)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return ids[order], np.take_along_axis(d, order, 1)


def _same(a, b, dist=True):
    np.testing.assert_array_equal(a[0], b[0])
    if dist:
        np.testing.assert_allclose(a[1], b[1], rtol=1e-5, atol=1e-5)


def _searches_alike(case, one, other, q, k=5):
    _same(one.search(q, k, **case.exhaustive), other.search(q, k, **case.exhaustive))


# -- the checks ------------------------------------------------------------------------


def check_padding_beyond_the_stored_count(case):
    ix = case.built(n=60)
    x, _ = _data()
    params = case.exhaustive
    ids, dist = ix.search(x[:3], 75, **params)
    assert ids.shape == dist.shape == (3, 75)
    assert ids.dtype == np.int64 and dist.dtype == np.float32
    assert (ids[:, 60:] == -1).all() and np.isinf(dist[:, 60:]).all()
    assert (ids[:, :60] >= 0).all() and np.isfinite(dist[:, :60]).all()
    assert (np.diff(dist[:, :60], axis=1) >= -1e-5).all()  # ascending
    if case.exact:  # every stored vector comes back exactly once
        assert sorted(ids[0, :60].tolist()) == list(range(60))
    one_ids, one_dist = ix.search(x[0], 75, **params)
    assert one_ids.shape == one_dist.shape == (75,) and (one_ids[60:] == -1).all()
    if case.self_nearest:
        assert one_ids[0] == 0 and one_dist[0] == pytest.approx(0, abs=1e-4)
    # the padding is bounded: a k no memory can hold is a ValueError naming the count
    for k in HUGE_KS:
        for q in (x[0], x[:4]):
            with pytest.raises(ValueError, match=r"k=\d+ asks for more neighbours than the 60"):
                ix.search(q, k)
    ids, _ = ix.search(x[0], 100_000)  # large padding within the cap is allowed
    assert ids.shape == (100_000,) and (ids[60:] == -1).all()


def check_huge_search_parameters_are_clipped(case):
    ix = case.built(n=60)
    x, _ = _data()
    for q in (x[:2], x[0]):
        got = ix.search(q, 5, **case.huge)
        _same(got, ix.search(q, 5, **case.exhaustive))
    if case.huge:
        _same(ix.search(x[:2], 5, threads=2, **case.huge), ix.search(x[:2], 5, **case.exhaustive))


def check_matches_exact_search_when_exhaustive(case):
    x, q = _data()
    ids = np.arange(N) * 7 + 3 + 10**12  # neither 0..n-1 nor the slots
    ix = case.built(ids=ids)
    got = ix.search(q, 10, **case.exhaustive)
    if not case.exact:
        assert np.isin(got[0], ids).all() and (np.diff(got[1], axis=1) >= -1e-5).all()
        return
    want = _exact(case, q, x, ids, 10)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_allclose(got[1], want[1], rtol=1e-4, atol=1e-4)


def check_empty_index(case, tmp_path):
    ix = case.empty()
    x, _ = _data()
    assert len(ix) == 0 and ix.ids().size == 0 and 0 not in ix
    ids, dist = ix.search(x[:2], 3)
    assert ids.shape == (2, 3) and (ids == -1).all() and np.isinf(dist).all()
    one, one_dist = ix.search(x[0], 3)
    assert one.tolist() == [-1, -1, -1] and np.isinf(one_dist).all()
    with pytest.raises(ValueError, match="asks for more neighbours"):
        ix.search(x[0], 2**62)
    ix.save(tmp_path / "empty.nk")
    for mmap in (False, True):
        again = nearkit.load(tmp_path / "empty.nk", mmap=mmap)
        assert type(again) is type(ix) and len(again) == 0 and again.metric == ix.metric
        assert again.search(x[0], 2)[0].tolist() == [-1, -1]


def check_bad_input_raises_clear_errors(case):
    ix = case.built(n=50)
    x, _ = _data()
    fast = np.ascontiguousarray(x[0])  # the lean one-query path
    cases = [
        (ValueError, f"dimension {DIM - 1}", lambda: ix.add(np.ones((2, DIM - 1)))),
        (ValueError, f"dimension {DIM + 1}", lambda: ix.search(np.ones((2, DIM + 1)), 1)),
        (ValueError, "dimension", lambda: ix.search(np.ones(DIM - 1, np.float32), 1)),
        (ValueError, "NaN", lambda: ix.add([[0] * (DIM - 1) + [np.nan]])),
        (ValueError, "NaN", lambda: ix.search(np.array([np.inf] + [0] * (DIM - 1), np.float32), 1)),
        (ValueError, "NaN", lambda: ix.search(np.full((2, DIM), np.nan), 1)),
        (ValueError, "1-D or 2-D", lambda: ix.add(np.ones((2, 2, DIM)))),
        (ValueError, "1-D or 2-D", lambda: ix.search(np.ones((1, 1, DIM)), 1)),
        (TypeError, "numeric", lambda: ix.add([["a"] * DIM])),
        (TypeError, "numeric", lambda: ix.search([[1] * DIM, [3]], 1)),
        (ValueError, "got 2 ids for 1 vectors", lambda: ix.add(np.ones((1, DIM)), ids=[700, 701])),
        (ValueError, "non-negative", lambda: ix.add(np.ones((1, DIM)), ids=[-4])),
        (TypeError, "integers", lambda: ix.add(np.ones((1, DIM)), ids=[1.5])),
        (ValueError, "duplicate id 800", lambda: ix.add(np.ones((3, DIM)), ids=[800, 4000, 800])),
        (ValueError, "int64", lambda: ix.add(np.ones((1, DIM)), ids=[2**63])),
        (ValueError, "int64", lambda: ix.add(np.ones((1, DIM)), ids=np.array([2**63], np.uint64))),
        (ValueError, "int64", lambda: ix.remove([2**63])),
        (TypeError, "unexpected keyword", lambda: ix.add(np.ones(DIM), nlist=3)),
        (ValueError, "1-D", lambda: ix.search(x[0], 1, filter=np.ones((2, 2), bool))),
        (ValueError, "non-negative", lambda: ix.search(x[0], 1, filter=[-1])),
        (TypeError, "integers", lambda: ix.search(x[0], 1, filter=[0.5])),
        (TypeError, "unexpected keyword|no parameters", lambda: ix.search(x[:2], 1, bogus=3)),
        (TypeError, "unexpected keyword|no parameters", lambda: ix.search(fast, 1, bogus=3)),
        (TypeError, "positional", lambda: ix.search(x[:2], 1, None)),  # keyword-only after k
    ]
    for q in (fast, x[:2].astype(np.float64)):  # lean and general paths
        cases += [
            (ValueError, "k must be positive", lambda q=q: ix.search(q, 0)),
            (ValueError, "k must be positive", lambda q=q: ix.search(q, -3)),
            (TypeError, "k must be an integer", lambda q=q: ix.search(q, 2.5)),
            (TypeError, "k must be an integer", lambda q=q: ix.search(q, 2.0)),
            (ValueError, "threads", lambda q=q: ix.search(q, 1, threads=-2)),
        ]
        for params, exc, message in case.bad_params:
            cases.append((exc, message, lambda q=q, p=params: ix.search(q, 1, **p)))
    if not case.replaces:
        cases.append((ValueError, "id 7.*already", lambda: ix.add(np.ones((2, DIM)), ids=[900, 7])))
        # checked before the first chunk goes in: a progress= add is all or nothing too
        big_ids = np.arange(10_000, 13_000)
        big_ids[-1] = 5
        cases.append((ValueError, "already", lambda: ix.add(np.ones((3000, DIM)), ids=big_ids,
                                                              progress=lambda d, t: None)))
    if ix.parallel_add:
        cases.append((ValueError, "threads", lambda: ix.add(np.ones((1, DIM)), threads=-5)))
    for too_big in ([2**63], np.array([2**63], np.uint64), [2**64 + 5], [1.0, 2.0**63]):
        with pytest.raises(ValueError, match="int64") as err:  # named as given, not wrapped
            ix.add(x[: len(np.atleast_1d(too_big))], ids=too_big)
        assert "-" not in str(err.value).split("got")[-1], str(err.value)
    before = ix.search(x[:3], 5)
    for exc, message, call in cases:
        with pytest.raises(exc, match=message):
            call()
    assert len(ix) == 50 and ix.ids().tolist() == list(range(50))  # failed calls changed nothing
    _same(ix.search(x[:3], 5), before)
    # constructor arguments
    cls = type(ix)
    with pytest.raises(ValueError, match="dim"):
        cls(0)
    with pytest.raises(TypeError, match="dim"):
        cls(2.5)
    with pytest.raises(ValueError, match="largest supported dimension"):
        cls(_validate.MAX_DIM + 1)
    with pytest.raises(ValueError, match="unknown metric 'chebyshev'"):
        cls(DIM, "chebyshev")
    with pytest.raises(TypeError, match="metric"):
        cls(DIM, None)
    with pytest.raises(ValueError, match="'l2'.*squared Euclidean"):
        cls(DIM, "euclidean")


def check_dtypes_and_shapes(case):
    x, q = _data()
    ref = case.built()
    want = ref.search(q[:20].astype(np.float32), 5, **case.exhaustive)
    assert want[0].shape == (20, 5) and want[0].dtype == np.int64 and want[1].dtype == np.float32
    wide = np.zeros((N, 2 * DIM))
    wide[:, ::2] = x  # float64, every other column: not contiguous
    for added in (wide[:, ::2], np.asfortranarray(x.astype(np.float64))):
        other = case.empty()
        other.add(added)
        _same(other.search(q[:20], 5, **case.exhaustive), want)
    for queries in (q[:20].astype(np.float64), q[:20].tolist(), np.asfortranarray(q[:20])):
        _same(ref.search(queries, 5, **case.exhaustive), want)
    ints = np.rint(q[:5] * 4).astype(np.int32)
    _same(ref.search(ints, 5, **case.exhaustive), ref.search(ints.astype(np.float32), 5, **case.exhaustive))
    # one query, any form, gives 1-D results equal to its row of the batch
    for i in range(5):
        row = np.ascontiguousarray(q[i])
        for single in (row, row.astype(np.float64), np.repeat(q[i:i + 1], 2, 0).T[:, 0], row.tolist()):
            ids, dist = ref.search(single, 5, **case.exhaustive)
            assert ids.shape == dist.shape == (5,)
            _same((ids, dist), (want[0][i], want[1][i]))
        _same(ref.search(row, 5), (ref.search(q[i:i + 1], 5)[0][0], ref.search(q[i:i + 1], 5)[1][0]))
    # zero queries give empty results of the right width
    ids, dist = ref.search(np.empty((0, DIM), np.float32), 4)
    assert ids.shape == dist.shape == (0, 4)
    # ids of any integer dtype and stride
    other = case.empty()
    other.add(x, ids=np.arange(N, dtype=np.int32)[::-1])
    assert other.ids().tolist() == list(range(N))


def check_get_contains_len_ids(case):
    x, _ = _data()
    ids = np.arange(5, 5 + 3 * N, 3)[::-1].copy()  # not 0..n-1, not ascending
    ix = case.built(ids=ids)
    assert len(ix) == N
    np.testing.assert_array_equal(ix.ids(), np.sort(ids))
    assert int(ids[7]) in ix and np.int64(ids[0]) in ix
    assert 6 not in ix and -1 not in ix and "5" not in ix and True not in ix
    if case.vectors:
        stored = normalize_rows(x) if case.metric == "cosine" else x
        np.testing.assert_allclose(ix.get(ids[[3, 0, 3]]), stored[[3, 0, 3]], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ix.get(int(ids[1])), stored[1], atol=1e-6)
        with pytest.raises(KeyError, match="id 6 "):
            ix.get([int(ids[0]), 6])
    else:
        with pytest.raises(TypeError, match="keeps only codes.*refine=True"):
            ix.get(ids[:1])


def check_remove_and_ids(case):
    x, q = _data()
    ix = case.built()
    gone = np.arange(0, N, 3)
    assert ix.remove(np.concatenate([gone, [10**6, 10**6 + 1]])) == gone.size
    assert ix.remove(gone[:3]) == 0
    assert len(ix) == N - gone.size and int(gone[0]) not in ix and 1 in ix
    keep = np.setdiff1d(np.arange(N), gone)
    np.testing.assert_array_equal(ix.ids(), keep)
    ids, _ = ix.search(q, 10, **case.exhaustive)
    assert not np.isin(ids, gone).any() and (ids >= 0).all()
    if case.exact:
        _same((ids, None), _exact(case, q, x[keep], keep, 10), dist=False)
    if case.vectors:
        with pytest.raises(KeyError):
            ix.get(gone[:1])
    # a removed id can come back; default ids continue after the largest
    ix.add(x[gone[:1]], ids=gone[:1])
    assert int(gone[0]) in ix
    if case.self_nearest:
        assert ix.search(x[gone[0]], 1, **case.exhaustive)[0][0] == gone[0]
    ix.add(x[:2])
    assert ix.ids()[-2:].tolist() == [N, N + 1]
    # remove everything, then start again
    assert ix.remove(ix.ids()) == len(keep) + 3 and len(ix) == 0
    assert ix.search(x[0], 2)[0].tolist() == [-1, -1]
    ix.add(x[:10], ids=np.arange(100, 110))
    assert len(ix) == 10 and ix.ids().tolist() == list(range(100, 110))
    if case.self_nearest:
        assert ix.search(x[3], 1, **case.exhaustive)[0].tolist() == [103]
    # the largest int64 id leaves no room for default ids after it
    top = case.empty()
    top.add(x[:1], ids=[2**63 - 1])
    with pytest.raises(ValueError, match="int64"):
        top.add(x[1:3])
    assert len(top) == 1
    if case.replaces:  # re-adding replaces the vector instead of refusing the id
        top.add(x[5:6], ids=[2**63 - 1])
        assert len(top) == 1


def check_filters(case):
    x, q = _data()
    ids = np.random.default_rng(4).permutation(10_000)[:N]
    ix = case.built(ids=ids)
    allowed = ids[::3]
    got = ix.search(q[:20], 5, filter=allowed, **case.exhaustive)
    assert np.isin(got[0], allowed).all()
    if case.exact:
        rows = np.isin(ids, allowed)
        _same(got, _exact(case, q[:20], x[rows], ids[rows], 5))
    mask = np.zeros(ids.max() + 1, bool)  # a boolean mask over ids allows the same
    mask[allowed] = True
    _same(ix.search(q[:20], 5, filter=mask, **case.exhaustive), got)
    labels = ix.slot_labels()
    assert sorted(labels[labels >= 0].tolist()) == sorted(ids.tolist())
    by_slots = ix.search(q[:20], 5, filter=SlotFilter(np.isin(labels, allowed)), **case.exhaustive)
    _same(by_slots, got)
    # fewer allowed than k: the rest is padding
    few, few_dist = ix.search(q[:2], 5, filter=allowed[:3], **case.exhaustive)
    assert np.isin(few[:, :3], allowed[:3]).all() and (few[:, 3:] == -1).all()
    assert np.isinf(few_dist[:, 3:]).all()
    one, _ = ix.search(q[0], 5, filter=allowed[:3], **case.exhaustive)
    np.testing.assert_array_equal(one, few[0])
    n = len(labels)
    with pytest.raises(ValueError, match=f"covers {n - 1} slots but the index has {n}"):
        ix.search(q[0], 3, filter=SlotFilter(np.ones(n - 1, bool)))
    with pytest.raises(TypeError, match="1-D bool or uint8"):
        ix.search(q[0], 3, filter=SlotFilter(np.ones(n, np.float32)))


def check_save_load_round_trip(case, tmp_path):
    x, q = _data()
    ix = case.built(ids=np.arange(N) * 2 + 1)
    ix.remove([1, 3, 5, 61])
    path = tmp_path / "ix.nk"
    ix.save(path)
    mask = np.zeros(2 * N + 2, bool)
    mask[::3] = True
    for mmap in (False, True, "private"):
        back = nearkit.load(path, mmap=mmap)
        assert type(back) is type(ix) and back.kind == ix.kind
        assert (back.dim, back.metric, len(back)) == (ix.dim, ix.metric, len(ix))
        assert back._params() == ix._params()  # M, nlist, n_trees, tuned defaults ...
        np.testing.assert_array_equal(back.ids(), ix.ids())
        for kw in ({}, case.exhaustive, {"threads": 2}, {"filter": mask}):
            _same(back.search(q, 7, **kw), ix.search(q, 7, **kw))
        _same(back.search(q[0], 7), ix.search(q[0], 7))
        if hasattr(back, "readonly"):
            assert back.readonly is (mmap is True)
        if mmap is True:  # read-only, one error type on every kind
            with pytest.raises(ReadOnlyIndexError, match="read-only"):
                back.add(np.ones((1, DIM)), ids=[10**6])
            with pytest.raises(ReadOnlyIndexError, match="read-only"):
                back.remove([7])
            assert issubclass(ReadOnlyIndexError, ValueError) and len(back) == len(ix)
        else:  # a loaded copy can change, and its file does not
            back.add(np.ones((1, DIM)), ids=[10**6])
            assert back.remove([7, 9]) == 2 and len(back) == len(ix) - 1
    _same(nearkit.load(path).search(q, 7), ix.search(q, 7))
    # a detached image is the index as it was when taken
    img = ix.image()
    assert isinstance(img, IndexImage) and img.kind == ix.kind
    want = ix.search(q, 4)
    ix.remove(ix.ids()[::2])
    ix.add(x[:50] + 5, ids=np.arange(5000, 5050))
    img.save(tmp_path / "img.nk")
    _same(nearkit.load(tmp_path / "img.nk").search(q, 4), want)


def check_pickle_and_deepcopy(case):
    ix = case.built()
    _, q = _data()
    want = ix.search(q, 5)
    for twin in (pickle.loads(pickle.dumps(ix)), copy.deepcopy(ix)):
        assert type(twin) is type(ix) and len(twin) == len(ix) and twin.metric == ix.metric
        _same(twin.search(q, 5), want)
        twin.remove([0, 1])
        assert 0 in ix and 0 not in twin


def check_damaged_files_raise_format_error(case, tmp_path):
    ix = case.built(n=100)
    path = tmp_path / "ix.nk"
    ix.save(path)
    raw = path.read_bytes()
    damaged = tmp_path / "damaged.nk"
    for broken, message in ((raw[:-10] + bytes([raw[-10] ^ 0xFF]) + raw[-9:], "checksum"),
                            (raw[: len(raw) // 2], "truncated"),
                            (raw + b"\0" * 64, "unexpected bytes"),
                            (b"", "empty file"),
                            (b"not an index at all", "not a nearkit index")):
        damaged.write_bytes(broken)
        for mmap in (False, True):
            with pytest.raises(FormatError, match=message):
                nearkit.load(damaged, mmap=mmap)
    # valid checksums, wrong content: every section missing, or of another dtype
    f = read_index(path)
    forged = tmp_path / "forged.nk"
    for name, arr in f.sections.items():
        without = {k: v for k, v in f.sections.items() if k != name}
        write_index(forged, f.kind, f.dim, f.metric, f.params, without)
        with pytest.raises(FormatError):
            nearkit.load(forged)
        other = np.float64 if arr.dtype != np.float64 else np.float32
        write_index(forged, f.kind, f.dim, f.metric, f.params,
                    {**f.sections, name: arr.astype(other)})
        with pytest.raises(FormatError):
            nearkit.load(forged)
    if f.params:  # parameters gone
        write_index(forged, f.kind, f.dim, f.metric, {}, f.sections)
        with pytest.raises(FormatError):
            nearkit.load(forged)
    write_index(forged, "no-such-kind", f.dim, f.metric, f.params, f.sections)
    with pytest.raises(FormatError, match="index kind 'no-such-kind' is unknown"):
        nearkit.load(forged)


def check_threads_agree_and_searches_are_thread_safe(case):
    """threads= gives the same answer; Python threads searching at once get the serial answers."""
    x, q = _data()
    ix = case.built()
    one = ix.search(q, 8, threads=1)
    for threads in (2, 0, -1):
        _same(ix.search(q, 8, threads=threads), one)
    # many Python threads on one index, batches and single queries: the serial answers
    chunks = [q[i::6] for i in range(6)]
    serial = [(ix.search(c, 5), ix.search(np.ascontiguousarray(c[0]), 5)) for c in chunks]
    barrier = threading.Barrier(6)

    def work(i):
        barrier.wait()
        return ix.search(chunks[i], 5), ix.search(np.ascontiguousarray(chunks[i][0]), 5)

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(work, range(6)))
    for (batch, single), (want_batch, want_single) in zip(results, serial):
        _same(batch, want_batch)
        _same(single, want_single)


def check_filtered_searches_during_writes(case):
    """Readers while another thread adds and removes: answers stay well-formed and filtered."""
    x, q = _data()
    ix = case.built()
    stop, errors = threading.Event(), []

    def reader():
        allowed = np.arange(0, 100_000, 2)
        while not stop.is_set():
            try:
                ids, dist = ix.search(q[:8], 5, filter=allowed)
                assert (ids[ids >= 0] % 2 == 0).all()
                assert (np.diff(dist, axis=1)[np.isfinite(dist[:, 1:])] >= -1e-5).all()
                one_ids, _ = ix.search(np.ascontiguousarray(q[0]), 3)
                assert (one_ids >= -1).all()
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)
                return

    readers = [threading.Thread(target=reader) for _ in range(2)]
    for t in readers:
        t.start()
    rng = np.random.default_rng(5)
    next_id = N
    try:
        for _ in range(15):
            ix.add(x[rng.integers(0, N, 20)] + 0.01, ids=np.arange(next_id, next_id + 20))
            next_id += 20
            ix.remove(rng.choice(ix.ids(), 10, replace=False))
    finally:
        stop.set()
        for t in readers:
            t.join()
    assert not errors, errors[0]
    assert len(ix) == N + 15 * 10


CHECKS = [
    check_padding_beyond_the_stored_count,
    check_huge_search_parameters_are_clipped,
    check_matches_exact_search_when_exhaustive,
    check_empty_index,
    check_bad_input_raises_clear_errors,
    check_dtypes_and_shapes,
    check_get_contains_len_ids,
    check_remove_and_ids,
    check_filters,
    check_save_load_round_trip,
    check_pickle_and_deepcopy,
    check_damaged_files_raise_format_error,
    check_threads_agree_and_searches_are_thread_safe,
    check_filtered_searches_during_writes,
]


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__[len("check_"):])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_index_contract(case, check, tmp_path):
    if "tmp_path" in check.__code__.co_varnames[:check.__code__.co_argcount]:
        check(case, tmp_path)
    else:
        check(case)


def test_every_index_kind_has_a_case():
    from nearkit.indexes import public_kinds

    covered = {type(c.make("l2")).__name__.lower() for c in CASES}
    assert covered == set(public_kinds())


def test_a_broken_index_module_raises_its_own_import_error():
    # Not "unknown index kind" at load time: the import itself fails, saying why.
    import subprocess
    import sys

    from child_env import child_env

    code = ("import sys; sys.modules['nearkit.indexes.trees'] = None\n"
            "try:\n    import nearkit\nexcept ImportError as exc:\n    print('ImportError', exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=child_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert "ImportError" in out.stdout and "nearkit.indexes.trees" in out.stdout
