"""nearkit.Trees: recall against exact search, determinism, updates, files."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import nearkit
from nearkit import FormatError
from nearkit.indexes.trees import Trees, pack_bits, unpack_bits
from nearkit.io import read_index, write_index
from nearkit.metrics import reference_distances


def exact_ids(queries, base, metric, k):
    if metric == "manhattan":
        d = np.abs(queries[:, None, :].astype(np.float64) - base[None, :, :]).sum(-1)
    elif metric == "hamming":
        d = (queries[:, None, :] != base[None, :, :]).sum(-1)
    else:
        d = reference_distances(queries, base, metric)
    return np.argsort(d, axis=1, kind="stable")[:, :k], np.sort(d, axis=1)[:, :k]


def recall(found, truth):
    return np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)])


@pytest.fixture(scope="module")
def glove_small(glove_20k):
    return glove_20k.base[:10_000], glove_20k.queries[:100]


@pytest.mark.parametrize("metric,search_k,floor", [
    ("cosine", 4000, 0.9), ("l2", 4000, 0.9), ("manhattan", 4000, 0.85), ("ip", 8000, 0.8),
])
def test_recall_on_glove(glove_small, metric, search_k, floor):
    base, queries = glove_small
    t = Trees(50, metric, n_trees=20, seed=7)
    t.add(base)
    truth, truth_d = exact_ids(queries, base, metric, 10)
    ids, dist = t.search(queries, 10, search_k=search_k)
    assert recall(ids, truth) >= floor
    # a budget of a few candidates is clearly worse: the budget is honoured
    cheap, _ = t.search(queries, 10, search_k=100)
    assert recall(cheap, truth) < recall(ids, truth)
    # reported distances are the metric's own, for the ids reported
    ref = exact_distances(queries, base, metric, ids)
    np.testing.assert_allclose(dist, ref, rtol=1e-4, atol=1e-4)
    # unlimited budget: every item is a candidate, so the answer is exact
    ids_all, dist_all = t.search(queries, 10, search_k=-1)
    np.testing.assert_allclose(dist_all, truth_d, rtol=1e-4, atol=1e-4)


def exact_distances(queries, base, metric, ids):
    out = np.empty(ids.shape)
    for i, row in enumerate(ids):
        if metric == "manhattan":
            out[i] = np.abs(base[row] - queries[i]).sum(1)
        else:
            out[i] = reference_distances(queries[i:i + 1], base[row], metric)[0]
    return out


def test_recall_hamming_random_bits():
    rng = np.random.default_rng(5)
    centers = rng.random((40, 256)) > 0.5
    base = centers[rng.integers(0, 40, 5000)] ^ (rng.random((5000, 256)) < 0.1)
    queries = centers[rng.integers(0, 40, 50)] ^ (rng.random((50, 256)) < 0.1)
    t = Trees(256, "hamming", n_trees=20, leaf_size=32, seed=1)
    t.add(base)
    truth, truth_d = exact_ids(queries, base, "hamming", 10)
    ids, dist = t.search(queries, 10, search_k=2000)
    got_d = (queries[:, None, :] != base[ids]).sum(-1)
    np.testing.assert_array_equal(dist, got_d)
    assert np.mean(dist[:, -1] <= truth_d[:, -1]) >= 0.9  # 10th distance as good as exact's
    # packed uint64 input gives the same answers as 0/1 input
    ids_p, dist_p = t.search(pack_bits(queries.astype(np.uint8), 256), 10, search_k=2000)
    np.testing.assert_array_equal(dist_p, dist)
    np.testing.assert_array_equal(unpack_bits(pack_bits(base[:3].astype(np.uint8), 256), 256), base[:3])
    ids_all, dist_all = t.search(queries, 10, search_k=-1)
    np.testing.assert_array_equal(dist_all, truth_d)


def test_same_seed_same_forest_for_any_thread_count(clustered):
    base, queries = clustered
    forests = []
    for threads in (1, 2, 3):
        t = Trees(32, "l2", n_trees=6, leaf_size=16, seed=11)
        t.add(base)
        t.build(threads=threads)
        forests.append((t._forest.packed(), t.search(queries, 10, search_k=500)))
    for packed, res in forests[1:]:
        for name, arr in forests[0][0].items():
            np.testing.assert_array_equal(packed[name], arr, err_msg=name)
        np.testing.assert_array_equal(res[0], forests[0][1][0])
    other = Trees(32, "l2", n_trees=6, leaf_size=16, seed=12)
    other.add(base)
    other.build()
    assert not np.array_equal(other._forest.packed()["planes"], forests[0][0]["planes"])


def tree_members(t):
    """Per tree, the sorted slots in its leaves (walking from the root)."""
    p = t._forest.packed()
    out = []
    for root in p["roots"]:
        stack, slots = [int(root)], []
        while stack:
            r = stack.pop()
            if r < 0:
                lo, n = p["leaf_off"][-r - 1], p["leaf_cnt"][-r - 1]
                assert n <= t.leaf_size
                slots.extend(p["leaf_items"][lo: lo + n].tolist())
            else:
                stack.extend(p["children"][r].tolist())
        out.append(sorted(slots))
    return out


def test_add_after_build_splits_leaves_and_keeps_recall(glove_small):
    base, queries = glove_small
    truth, _ = exact_ids(queries, base, "cosine", 10)
    fresh = Trees(50, "cosine", n_trees=10, leaf_size=40, seed=2)
    fresh.add(base)
    r_fresh = recall(fresh.search(queries, 10, search_k=3000)[0], truth)

    t = Trees(50, "cosine", n_trees=10, leaf_size=40, seed=2)
    t.add(base[:2000])
    t.build()
    splits_before = t._forest.n_splits
    for chunk in np.array_split(np.arange(2000, len(base)), 4):
        t.add(base[chunk], ids=chunk)
    assert t._forest.n_splits > splits_before * 3  # the leaves really split
    members = tree_members(t)
    assert all(m == list(range(len(base))) for m in members)  # every vector once in every tree
    r_inc = recall(t.search(queries, 10, search_k=3000)[0], truth)
    assert r_inc >= r_fresh - 0.05


def test_bad_input(clustered):
    base, _ = clustered
    t = Trees(32, "l2", n_trees=2)
    with pytest.raises(ValueError, match="dimension"):
        t.add(base[:, :31])
    t.add(base[:100])
    with pytest.raises(ValueError, match="search_k"):
        t.search(base[0], 5, search_k=0)
    with pytest.raises(ValueError, match="unknown metric"):
        Trees(4, "chebyshev")
    h = Trees(10, "hamming")
    with pytest.raises(ValueError, match="0/1 bits"):
        h.add(np.full((2, 10), 0.5))
    with pytest.raises(ValueError, match="beyond dim"):
        h.add(np.array([[1 << 20]], dtype=np.uint64))


def test_damaged_files_are_refused(tmp_path, clustered):
    base, _ = clustered
    t = Trees(32, "l2", n_trees=3, seed=0)
    t.add(base[:500])
    t.build()
    path = tmp_path / "t.nk"
    t.save(path)
    # (damaged bytes, truncation, missing sections: tests/indexes/test_index_contract.py)
    # checksums fine but the trees point nowhere: refused by the structural check
    f = read_index(path)
    sections = dict(f.sections)
    children = sections["children"].copy()
    children[0, 0] = 10**6
    sections["children"] = children
    forged = tmp_path / "forged.nk"
    write_index(forged, "trees", f.dim, f.metric, f.params, sections)
    with pytest.raises(FormatError, match="split reference out of range"):
        nearkit.load(forged)
    sections["children"] = f.sections["children"]
    items = sections["leaf_items"].copy()
    items[0] = 999_999
    sections["leaf_items"] = items
    write_index(forged, "trees", f.dim, f.metric, f.params, sections)
    with pytest.raises(FormatError, match="do not exist"):
        nearkit.load(forged, mmap=True)


def test_two_processes_share_one_mapped_file(tmp_path, clustered):
    base, queries = clustered
    t = Trees(32, "cosine", n_trees=4, seed=9)
    t.add(base)
    path = tmp_path / "shared.nk"
    t.save(path)
    np.save(tmp_path / "q.npy", queries[:20])
    expected = t.search(queries[:20], 5, search_k=500)[0]
    child = textwrap.dedent(f"""
        import sys, numpy as np, nearkit
        idx = nearkit.load({str(path)!r}, mmap=True)
        ids, _ = idx.search(np.load({str(tmp_path / 'q.npy')!r}), 5, search_k=500)
        maps = open('/proc/self/maps').read().splitlines()
        shared = [m for m in maps if m.endswith({str(path)!r})]
        assert shared and all(m.split()[1] == 'r--s' for m in shared), shared
        sys.stdout.write(repr(ids.tolist()))
    """)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    procs = [subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    for p in procs:
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert eval(out) == expected.tolist()


def test_on_disk_build_matches_in_memory(tmp_path, clustered):
    base, queries = clustered
    mem = Trees(32, "l2", n_trees=4, leaf_size=24, seed=5)
    mem.add(base)
    disk = Trees(32, "l2", n_trees=4, leaf_size=24, seed=5)
    path = tmp_path / "big.nk"
    disk.on_disk_build(path)
    for chunk in np.array_split(np.arange(len(base)), 5):
        disk.add(base[chunk])
    assert os.path.getsize(str(path) + ".rows.tmp") >= base.nbytes  # rows went to the file
    disk.build()
    assert not os.path.exists(str(path) + ".rows.tmp")
    assert disk._readonly and read_index(path).kind == "trees"
    np.testing.assert_array_equal(disk.search(queries, 10, search_k=600)[0],
                                  mem.search(queries, 10, search_k=600)[0])
    again = nearkit.load(path, mmap=True)
    np.testing.assert_array_equal(again.search(queries, 10, search_k=600)[0],
                                  mem.search(queries, 10, search_k=600)[0])
    with pytest.raises(ValueError, match="before adding"):
        mem.on_disk_build(tmp_path / "late.nk")


@pytest.mark.parametrize("isa", nearkit._core.supported_isas())
def test_l1_and_hamming_kernels_match_numpy(isa, rng):
    before = nearkit._core.isa()
    nearkit._core.set_isa(isa)
    try:
        for d in (1, 7, 8, 15, 16, 31, 33, 50, 100):
            a = rng.standard_normal((5, d)).astype(np.float32)
            q = rng.standard_normal(d).astype(np.float32)
            np.testing.assert_allclose(nearkit._core.tree_l1(a, q), np.abs(a - q).sum(1), rtol=1e-5, atol=1e-5)
        for words in (1, 2, 3, 7, 8, 9, 17):
            a = rng.integers(0, 2**63, (5, words), dtype=np.uint64) * np.uint64(2) + np.uint64(1)
            q = rng.integers(0, 2**63, words, dtype=np.uint64)
            truth = np.unpackbits((a ^ q).view(np.uint8), axis=1).sum(1)
            np.testing.assert_array_equal(nearkit._core.tree_hamming(a, q), truth)
    finally:
        nearkit._core.set_isa(before)


