"""Sizes a user passes are bounded by what is stored (issue 12, items 1, 8, 9 and ids).

k, ef, nprobe, k_factor and search_k are clipped to the stored count before the
core allocates anything; a result is still padded to k with -1 / +inf, and a
padding that would exceed _validate.MAX_PADDED_ENTRIES is refused with a
ValueError instead of exhausting memory (or, before, wrapping nq * k).
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import nearkit
from child_env import child_env
from nearkit.compat import faiss

DIM = 8


def _data(n=60, seed=0):
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


# Padding, huge k, huge ef / nprobe / k_factor / search_k, the dimension limit and
# ids beyond int64 on every index kind: tests/indexes/test_index_contract.py.
X = _data()


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

    ix = nearkit.Flat(DIM)
    ix.add(X)
    x, labels, sqn = ix._live()
    with pytest.raises((ValueError, MemoryError)):
        _core.flat_search(x, sqn, labels, X[:4], 2**62, 0, None, 1, False)


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


