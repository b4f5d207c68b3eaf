"""HNSW recall on awkward data (issue 11): outliers, heavy tails, a line, a wide
dimension, near-duplicates, spread norms, sparse, 0/1, integer, offset,
correlated, drifting and clustered data, for every metric.

Each case is measured against hnswlib built with the same M, ef_construction
and ef, and against nearkit's own float walk: the 8-bit codes (or the guard
that replaces them with floats) must cost no recall on any of them.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import nearkit
from nearkit.errors import FormatError

from hnsw_distributions import DISTRIBUTIONS, exact_distances, make, recall_by_distance

hnswlib = pytest.importorskip("hnswlib")

N, DIM, NQ = 2000, 24, 100
M, EFC, EF = 16, 100, 64
SLACK = 0.02  # the issue's bound: never more than this below the reference


def _build_nearkit(base, later, metric, walk):
    index = nearkit.HNSW(DIM, metric, M=M, ef_construction=EFC, walk=walk)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        index.add(base)
        if later is not None:
            index.add(later)
    return index


def _build_hnswlib(base, later, metric):
    n = len(base) + (0 if later is None else len(later))
    index = hnswlib.Index(space=metric, dim=DIM)
    index.init_index(max_elements=n, M=M, ef_construction=EFC, random_seed=100)
    index.set_num_threads(1)
    index.add_items(base, np.arange(len(base)), num_threads=1)
    if later is not None:
        index.add_items(later, np.arange(len(base), n), num_threads=1)
    index.set_ef(EF)
    return index


def _recalls(search, dist, metric):
    ids1 = search(1)
    ids10 = search(10)
    return {"r1": recall_by_distance(ids1, dist, 1, metric),
            "r10": recall_by_distance(ids10, dist, 10, metric),
            "first_of_10": recall_by_distance(ids10[:, :1], dist, 1, metric)}


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("name", sorted(DISTRIBUTIONS))
def test_recall_matches_hnswlib_and_float_walk(name, metric):
    base, later, queries = make(name, N, DIM, NQ)
    full = base if later is None else np.vstack([base, later])
    dist = exact_distances(full, queries, metric)

    ours = _build_nearkit(base, later, metric, "auto")
    floats = _build_nearkit(base, later, metric, "float")
    peer = _build_hnswlib(base, later, metric)
    got = _recalls(lambda k: ours.search(queries, k, ef=EF)[0], dist, metric)
    flt = _recalls(lambda k: floats.search(queries, k, ef=EF)[0], dist, metric)
    ref = _recalls(lambda k: peer.knn_query(queries, k=k)[0].astype(np.int64), dist, metric)

    detail = f"{name}/{metric}: nearkit {got}, float walk {flt}, hnswlib {ref}, {ours!r}, {ours.code_check}"
    for key in ("r1", "r10"):
        assert got[key] >= ref[key] - SLACK, detail
        assert got[key] >= flt[key] - SLACK, detail
    # k=1 is as reliable as the first hit of k=10 (the re-rank covers the code error).
    assert got["r1"] >= got["first_of_10"] - 0.01, detail
    assert floats.walk == "float"



def _recalls_vs_hnswlib(base, queries, metric, dim):
    """recall@1 and recall@10 at ef=EF of nearkit (walk chosen by the guard) and of hnswlib."""
    dist = exact_distances(base, queries, metric)
    ours = nearkit.HNSW(dim, metric, M=M, ef_construction=EFC)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ours.add(base)
    peer = hnswlib.Index(space=metric, dim=dim)
    peer.init_index(max_elements=len(base), M=M, ef_construction=EFC, random_seed=100)
    peer.add_items(base, np.arange(len(base)), num_threads=1)
    peer.set_ef(EF)
    got = [recall_by_distance(ours.search(queries, k, ef=EF)[0], dist, k, metric) for k in (1, 10)]
    ref = [recall_by_distance(peer.knn_query(queries, k=k, num_threads=1)[0].astype(np.int64), dist, k, metric)
           for k in (1, 10)]
    return got, ref, ours


def test_exact_duplicates_keep_the_graph_navigable():
    # 60 points, each stored 50 times exactly (more copies than a level-0 list
    # holds): among equally close candidates the newest must be linked first,
    # as in hnswlib; linking the oldest first filled their lists with copies of
    # each other and trapped the walk (recall@1 0.76 against hnswlib's 0.98).
    rng = np.random.default_rng(5)
    distinct = rng.standard_normal((60, DIM)).astype(np.float32)
    base = np.repeat(distinct, 50, axis=0)[rng.permutation(3000)]
    queries = (distinct[rng.integers(0, 60, NQ)] + 0.3 * rng.standard_normal((NQ, DIM))).astype(np.float32)
    got, ref, ours = _recalls_vs_hnswlib(base, queries, "l2", DIM)
    assert got[0] >= ref[0] - SLACK and got[1] >= ref[1] - SLACK, (got, ref, repr(ours))


@pytest.mark.slow
@pytest.mark.parametrize("name,metric", [("sparse", "l2"), ("heavy_tails", "ip")])
def test_issue_size_cases_match_hnswlib(name, metric):
    # The two cases that were beyond 0.02 of hnswlib only at the issue's size
    # (20k x 32): sparse l2 (ties, see above) and ip on Cauchy data (coarse
    # codes of heavy-tailed vectors misled the neighbour heuristic: ip now
    # selects neighbours on float vectors). 2,000 rows show neither, and 20k
    # rows take ~10 CPU-s, hence slow (run by .ci/run -m slow).
    base, _, queries = make(name, 20_000, 32, 200)
    got, ref, ours = _recalls_vs_hnswlib(base, queries, metric, 32)
    assert got[0] >= ref[0] - SLACK and got[1] >= ref[1] - SLACK, (got, ref, repr(ours))

def test_returned_distances_are_exact():
    base, _, queries = make("outliers", N, DIM, NQ)
    index = _build_nearkit(base, None, "l2", "auto")
    ids, dist = index.search(queries, 10, ef=EF)
    want = ((queries[:, None, :].astype(np.float64) - base[ids].astype(np.float64)) ** 2).sum(-1)
    np.testing.assert_allclose(dist, want, rtol=1e-4)


def test_guard_falls_back_to_floats_and_says_so():
    # 50 distinct points, each repeated 40 times with noise far below any code
    # step: codes cannot order the copies, so the walk must use floats.
    rng = np.random.default_rng(3)
    distinct = rng.standard_normal((50, DIM)).astype(np.float32) * 100
    base = distinct[np.repeat(np.arange(50), 40)]
    base = base + 1e-3 * rng.standard_normal(base.shape).astype(np.float32)
    index = nearkit.HNSW(DIM, "l2", M=M, ef_construction=EFC)
    with pytest.warns(RuntimeWarning, match="float vectors"):
        index.add(base)
    assert index.walk == "float"
    assert "walk='float'" in repr(index)
    assert not index.code_check["codes_ok"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the warning comes once per index
        index.add(base[:10] + 1.0)
    queries = base[::97] + 1e-4
    ids, _ = index.search(queries, 1, ef=EF)
    dist = exact_distances(index_vectors(index, base), queries, "l2")
    assert recall_by_distance(ids, dist, 1, "l2") == 1.0


def test_info_shows_the_walk(tmp_path, capsys):
    from nearkit import cli

    rng = np.random.default_rng(4)
    distinct = rng.standard_normal((50, DIM)).astype(np.float32) * 100
    base = distinct[np.repeat(np.arange(50), 40)] + 1e-3 * rng.standard_normal((2000, DIM)).astype(np.float32)
    for data, used in ((base, "float"), (make("clusters", N, DIM, 1)[0], "codes")):
        index = _build_nearkit(data, None, "l2", "auto")
        index.save(tmp_path / f"{used}.nk")
        assert cli.main(["info", str(tmp_path / f"{used}.nk")]) == 0
        assert f'"walk_used": "{used}"' in capsys.readouterr().out


def index_vectors(index, base):
    """The index's vectors by id (base, then the 10 shifted copies added later)."""
    return np.vstack([base, base[:10] + 1.0])


@pytest.mark.parametrize("name,metric", [("clusters", "l2"), ("correlated", "cosine"), ("sparse", "ip")])
def test_codes_serve_ordinary_data_without_warning(name, metric):
    base, _, _ = make(name, N, DIM, NQ)
    index = nearkit.HNSW(DIM, metric, M=M, ef_construction=EFC)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        index.add(base)
    assert index.walk == "codes"
    assert index.code_check["codes_ok"] and index.code_check["queries"] > 0
    assert "walk='codes'" in repr(index)


@pytest.mark.parametrize("walk", ["auto", "float"])
def test_save_load_keeps_walk_and_answers(tmp_path, walk):
    base, _, queries = make("one_wide_dim", N, DIM, NQ)
    index = _build_nearkit(base, None, "l2", walk)
    index.save(tmp_path / "h.nk")
    for mmap in (False, True):
        loaded = nearkit.load(tmp_path / "h.nk", mmap=mmap)
        assert loaded.walk == index.walk
        a, da = index.search(queries, 10, ef=EF)
        b, db = loaded.search(queries, 10, ef=EF)
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(da, db)


def _legacy_sections(index):
    """The sections a nearkit before per-vector codes wrote for this graph:
    blocks [per-dimension codes padded to 4][hdr][links], quant [lo, scale]."""
    sections = dict(index._sections())
    blocks = sections["blocks"]
    m0 = 2 * index.M
    naux = 3 if index.metric == "l2" else 2
    code_bytes = (index.dim + 3) // 4 * 4
    new_hdr = code_bytes + 4 * naux
    old_bsize = (code_bytes + 4 + 4 * m0 + 63) // 64 * 64
    old = np.zeros((len(blocks), old_bsize), dtype=np.uint8)
    old[:, code_bytes:code_bytes + 4 + 4 * m0] = blocks[:, new_hdr:new_hdr + 4 + 4 * m0]
    old[:, code_bytes + 3] = 0  # the old header had no centre byte
    old[:, :index.dim] = 7      # old codes are ignored: rebuilt from the vectors
    sections["blocks"] = old
    dpad = (index.dim + 15) // 16 * 16
    sections["quant"] = np.zeros((2, dpad), dtype=np.float32)
    return sections


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_files_from_before_the_per_vector_codes_are_converted(tmp_path, metric):
    from nearkit.io import write_index

    base, _, queries = make("clusters", N, DIM, NQ)
    index = _build_nearkit(base, None, metric, "auto")
    params = {k: v for k, v in index._params().items() if k not in ("codes", "walk", "walk_used")}
    path = tmp_path / "old.nk"
    write_index(path, "hnsw", DIM, metric, params, _legacy_sections(index))
    dist = exact_distances(base, queries, metric)
    want = recall_by_distance(index.search(queries, 10, ef=EF)[0], dist, 10, metric)
    for mmap in (False, True):
        loaded = nearkit.load(path, mmap=mmap)
        assert len(loaded) == len(index)
        got = recall_by_distance(loaded.search(queries, 10, ef=EF)[0], dist, 10, metric)
        assert got >= want - SLACK
        assert loaded.readonly == mmap


def test_unknown_code_format_is_refused(tmp_path):
    from nearkit.io import write_index

    base, _, _ = make("sparse", 500, DIM, 1)
    index = _build_nearkit(base, None, "l2", "auto")
    params = dict(index._params(), codes="something-newer")
    write_index(tmp_path / "x.nk", "hnsw", DIM, "l2", params, index._sections())
    with pytest.raises(FormatError, match="rebuild"):
        nearkit.load(tmp_path / "x.nk")


def test_corrupt_code_sections_are_refused():
    base, _, _ = make("clusters", 500, DIM, 1)
    index = _build_nearkit(base, None, "cosine", "auto")
    sections = {k: np.array(v) for k, v in index._sections().items()}
    params = index._params()

    def load_with(**changes):
        return nearkit.HNSW._from_sections(DIM, "cosine", params, dict(sections, **changes))

    blocks = sections["blocks"].copy()
    blocks[:, 24 + 8 + 3] = 200  # the header's centre byte (after 24 code bytes, offset, step)
    with pytest.raises(FormatError, match="centre"):
        load_with(blocks=blocks)
    quant = sections["quant"].copy()
    quant[0, 0] = 7  # format number
    with pytest.raises(FormatError, match="rebuild"):
        load_with(quant=quant)
    quant = sections["quant"].copy()
    quant[0, 1] += 1  # centre count that disagrees with the rows
    with pytest.raises(FormatError, match="code section"):
        load_with(quant=quant)
    assert load_with().walk == "codes"


def test_store_points_on_a_line_k1(tmp_path):
    # The issue's store case: np.full(8, i) keyed k{i}; k=1 for np.full(8, 7.0)
    # must return k7 (distance 0), not a neighbour further along the line.
    db = nearkit.open(tmp_path / "db")
    try:
        col = db.create_collection("line", 8, "l2")
        n = 10_000
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # codes serve a line: no fallback
            col.upsert([f"k{i}" for i in range(n)],
                       np.repeat(np.arange(n, dtype=np.float32)[:, None], 8, 1))
        for i in (0, 7, 4321, n - 1):
            hits = col.search(np.full(8, float(i), dtype=np.float32), 1)
            assert [h.key for h in hits] == [f"k{i}"] and hits[0].distance == 0.0
        hits = col.search(np.full(8, 7.0, dtype=np.float32), 3)
        assert hits[0].key == "k7"
    finally:
        db.close()
