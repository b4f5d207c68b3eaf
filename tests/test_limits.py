"""Sizes a user passes are bounded by what is stored (issue 12, items 1, 8, 9 and ids).

k, ef, nprobe, k_factor and search_k are clipped to the stored count before the
core allocates anything; a result is still padded to k with -1 / +inf, and a
padding that would exceed _validate.MAX_PADDED_ENTRIES is refused with a
ValueError instead of exhausting memory (or, before, wrapping nq * k).
"""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import nearkit
from child_env import child_env
from nearkit import _validate
from nearkit.compat import faiss

DIM = 8
HUGE_KS = (2**63, 2**63 - 1, 2**62, 10**8, _validate.MAX_PADDED_ENTRIES + 1)


def _data(n=60, seed=0):
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def _indexes():
    x = _data()
    out = {}
    out["flat"] = nearkit.Flat(DIM)
    out["hnsw"] = nearkit.HNSW(DIM, M=8)
    out["trees"] = nearkit.Trees(DIM, "l2", n_trees=4)
    ivf = nearkit.IVF(DIM, nlist=2, nprobe=2)
    ivf.train(x)
    out["ivf"] = ivf
    refine = nearkit.IVF(DIM, nlist=2, codec="sq8", refine=True, nprobe=2)
    refine.train(x)
    out["ivf_refine"] = refine
    out["factory_flat"] = nearkit.index_factory(DIM, "Flat")
    out["factory_hnsw"] = nearkit.index_factory(DIM, "HNSW8")
    for ix in out.values():
        ix.add(x)
    return out, x


INDEXES, X = _indexes()


@pytest.mark.parametrize("name", sorted(INDEXES))
def test_huge_k_is_a_clear_value_error(name):
    ix = INDEXES[name]
    for k in HUGE_KS:
        for q in (X[0], X[:4]):
            with pytest.raises(ValueError, match=r"k=\d+ asks for more neighbours than the 60"):
                ix.search(q, k)


@pytest.mark.parametrize("name", sorted(INDEXES))
def test_k_beyond_the_stored_count_pads(name):
    ix = INDEXES[name]
    ids, dist = ix.search(X[:3], 75)
    assert ids.shape == dist.shape == (3, 75)
    assert (ids[:, 60:] == -1).all() and np.isinf(dist[:, 60:]).all()
    assert (ids[:, :60] >= 0).all()
    # Every stored vector comes back exactly once when k covers them all (exact kinds).
    if name in ("flat", "factory_flat"):
        assert sorted(ids[0, :60].tolist()) == list(range(60))
    one_ids, one_dist = ix.search(X[0], 75)
    assert one_ids.shape == (75,) and one_ids[0] == 0 and one_dist[0] == pytest.approx(0, abs=1e-4)


def test_padding_within_the_cap_is_still_allowed():
    ix = INDEXES["flat"]
    ids, dist = ix.search(X[0], 100_000)
    assert ids.shape == (100_000,) and (ids[60:] == -1).all()


def test_k_must_be_an_integer():
    with pytest.raises(TypeError):
        INDEXES["flat"].search(X[0], 2.0)
    with pytest.raises(ValueError):
        INDEXES["flat"].search(X[0], 0)


def test_empty_index_with_huge_k():
    for ix in (nearkit.Flat(DIM), nearkit.HNSW(DIM), nearkit.Trees(DIM, "l2")):
        with pytest.raises(ValueError, match="asks for more neighbours"):
            ix.search(X[0], 2**62)
        ids, dist = ix.search(X[:2], 5)
        assert (ids == -1).all() and np.isinf(dist).all()


def test_compat_faiss_flat_huge_k():
    index = faiss.IndexFlatL2(DIM)
    index.add(X)
    for k in (2**63 - 1, 2**62):
        with pytest.raises(ValueError, match="asks for more neighbours"):
            index.search(X[:4], k)
    D, I = index.search(X[:2], 70)
    assert I.shape == (2, 70) and (I[:, 60:] == -1).all()


def test_store_flat_collection_huge_k(tmp_path):
    st = nearkit.open(str(tmp_path / "s"))
    try:
        col = st.create_collection("c", DIM, index="flat")
        col.upsert([f"k{i}" for i in range(20)], X[:20])
        # The store returns hits, not padded arrays: k is clipped to the row count.
        hits = col.search(X[0], 2**63)
        assert len(hits) == 20 and hits[0].key == "k0"
    finally:
        st.close()


def test_core_refuses_a_wrapping_result_size():
    # The last line behind the Python clip: nq * k that wraps around size_t.
    from nearkit import _core

    ix = INDEXES["flat"]
    x, labels, sqn = ix._live()
    with pytest.raises((ValueError, MemoryError)):
        _core.flat_search(x, sqn, labels, X[:4], 2**62, 0, None, 1, False)


def test_hnsw_ef_is_clipped_to_the_stored_count():
    ix = INDEXES["hnsw"]
    ids, dist = ix.search(X[:2], 5, ef=10**8)
    want, _ = INDEXES["flat"].search(X[:2], 5)
    np.testing.assert_array_equal(ids, want)
    ids1, _ = ix.search(X[0], 5, ef=10**8)
    np.testing.assert_array_equal(ids1, want[0])


def test_ivf_nprobe_and_k_factor_are_clipped():
    ix = INDEXES["ivf_refine"]
    ids, _ = ix.search(X[:2], 3, nprobe=10**12, k_factor=2**62, threads=2)
    want, _ = INDEXES["flat"].search(X[:2], 3)
    np.testing.assert_array_equal(ids, want)


def test_trees_search_k_beyond_every_entry_is_unlimited():
    ix = INDEXES["trees"]
    ids, _ = ix.search(X[:2], 3, search_k=2**62)
    want, _ = INDEXES["flat"].search(X[:2], 3)
    np.testing.assert_array_equal(ids, want)


def _max_rss_after(code: str) -> int:
    """Peak RSS (kB) of a fresh interpreter that runs ``code``."""
    script = code + "\nimport resource\nprint(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n"
    env = child_env()
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


def test_ef_10_to_the_8_keeps_no_gigabytes():
    base = """
        import numpy as np, nearkit
        x = np.random.default_rng(0).standard_normal((200, 8)).astype(np.float32)
        ix = nearkit.HNSW(8)
        ix.add(x)
    """
    base = textwrap.dedent(base)
    plain = _max_rss_after(base + "ix.search(x[:4], 10, ef=64)\n")
    huge = _max_rss_after(base + "ix.search(x[:4], 10, ef=10**8)\nix.search(x[0], 10, ef=10**8)\n")
    assert huge - plain < 100_000, (plain, huge)  # kB: far below the ~1.6 GB it kept before


def test_first_add_memory_grows_with_use():
    # One vector of a wide dimension must not reserve 1024 slots of it.
    for ix in (nearkit.HNSW(60_000), nearkit.Flat(60_000)):
        ix.add(np.ones((1, 60_000), np.float32))
        held = ix.nbytes if isinstance(ix, nearkit.HNSW) else ix._state[0].nbytes
        assert held < 8 << 20, (type(ix).__name__, held)


def test_dimension_limit():
    for make in (nearkit.Flat, nearkit.HNSW, lambda d: nearkit.Trees(d, "l2"), nearkit.IVF):
        with pytest.raises(ValueError, match="largest supported dimension"):
            make(_validate.MAX_DIM + 1)
    nearkit.Flat(_validate.MAX_DIM)  # the limit itself is allowed


def test_ids_beyond_int64_are_named_without_a_negative_number():
    ix = nearkit.Flat(DIM)
    for ids in ([2**63], np.array([2**63], np.uint64), [2**64 + 5], [1.0, 2.0**63]):
        with pytest.raises(ValueError) as err:
            ix.add(X[: len(np.atleast_1d(ids))], ids=ids)
        assert "-" not in str(err.value).split("got")[-1], str(err.value)
        assert "int64" in str(err.value)
    with pytest.raises(ValueError, match="int64"):
        ix.remove([2**63])


def test_default_ids_after_the_largest_int64_id():
    for ix in (nearkit.Flat(DIM), nearkit.HNSW(DIM), nearkit.Trees(DIM, "l2")):
        ix.add(X[:1], ids=[2**63 - 1])
        with pytest.raises(ValueError, match="int64"):
            ix.add(X[1:3])
        assert len(ix) == 1
