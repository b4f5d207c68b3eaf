"""The in-memory table under collections (store/table.py) and the index calls it uses."""

import os

import numpy as np
import pytest

import nearkit
from nearkit.indexes import INDEX_KINDS
from nearkit.io import read_index, write_index
from nearkit.metrics import reference_distances
from nearkit.store import snapshots
from nearkit.store import table as table_mod


def _kinds():
    return [k for k in ("flat", "hnsw", "trees") if k in INDEX_KINDS]


@pytest.mark.parametrize("kind", _kinds())
@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_slot_vectors_are_the_stored_vectors(kind, metric):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 12)).astype(np.float32)
    idx = INDEX_KINDS[kind](12, metric)
    idx.add(x, np.arange(1000, 1300))
    idx.remove([1003, 1010])
    labels = idx.slot_labels()
    held = np.flatnonzero(labels >= 0)
    got = idx.slot_vectors(held[::-1])
    want = idx.get(labels[held[::-1]])
    np.testing.assert_array_equal(got, want)
    with pytest.raises(IndexError):
        idx.slot_vectors([labels.shape[0]])
    with pytest.raises(IndexError):
        idx.slot_vectors([-1])


def test_prefer_exact_rule():
    assert table_mod.prefer_exact(table_mod.EXACT_MIN_ROWS, 10**9)
    assert not table_mod.prefer_exact(table_mod.EXACT_MIN_ROWS + 1, table_mod.EXACT_MIN_ROWS + 1)
    n_live = 10**6
    edge = int((table_mod.EXACT_SCALE * n_live) ** 0.5)
    assert table_mod.prefer_exact(edge, n_live) and not table_mod.prefer_exact(edge + 1, n_live)


@pytest.mark.parametrize("metric", ["l2", "cosine", "ip"])
def test_exact_scan_across_gather_blocks_matches_brute_force(tmp_path, monkeypatch, metric):
    # blocks of 64 rows: the top-k of several gathered blocks is merged
    monkeypatch.setattr(table_mod, "GATHER_ROWS", 64)
    rng = np.random.default_rng(1)
    n, dim = 700, 8
    x = rng.standard_normal((n, dim)).astype(np.float32)
    q = rng.standard_normal((5, dim)).astype(np.float32)
    kind = "hnsw" if "hnsw" in INDEX_KINDS else "flat"
    with nearkit.open(tmp_path / "db") as db:
        col = db.create_collection("c", dim, metric, index=kind, fields={"g": "numeric"})
        col.upsert([f"k{i}" for i in range(n)], x, [{"g": i % 3} for i in range(n)])
        col.delete(["k4", "k5"])
        allowed = np.array([i for i in range(n) if i % 3 == 1 and i not in (4, 5)])
        d = reference_distances(q, x[allowed], metric)
        hits = col.search(q, 10, where={"g": 1})   # 232 rows: the exact path
        for qi, row in enumerate(hits):
            want = allowed[np.argsort(d[qi], kind="stable")[:10]]
            assert [int(h.key[1:]) for h in row] == want.tolist()
            np.testing.assert_allclose([h.distance for h in row], np.sort(d[qi])[:10], rtol=1e-4, atol=1e-4)
        if metric == "ip":  # radius queries need distances >= 0
            return
        r = float(np.sort(d[0])[20])
        within = col.search_radius(q[0], r, where={"g": 1})
        assert sorted(int(h.key[1:]) for h in within) == sorted(allowed[d[0] <= r * (1 + 1e-6)].tolist())
        assert col.get("k7").vector.tolist() == x[7].tolist()


def test_collection_holds_no_vector_copy(tmp_path):
    with nearkit.open(tmp_path / "db") as db:
        col = db.create_collection("c", 16, "l2", index="flat")
        col.upsert([f"k{i}" for i in range(3000)], np.ones((3000, 16)))
        assert not col._t.own_vectors and col._t.vectors.size == 0
        col.snapshot()
        state = snapshots.list_snapshots(snapshots.directory(db.path, col._cid), snapshots.STATE)[0][1]
        assert "vectors" not in read_index(state).sections


@pytest.mark.skipif("ivf" not in INDEX_KINDS, reason="IVF not in this build")
def test_lossy_index_keeps_a_float_copy_for_exact_scans(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.standard_normal((600, 16)).astype(np.float32)
    with nearkit.open(tmp_path / "db") as db:
        col = db.create_collection("c", 16, "l2", index="ivf",
                                   index_params={"nlist": 4, "codec": "pq4x8"}, fields={"g": "numeric"})
        assert col._t.own_vectors
        col.upsert([f"k{i}" for i in range(600)], x, [{"g": i % 10} for i in range(600)])
        hit = col.search(x[7], 1, where={"g": 7})[0]
        assert hit.key == "k7" and hit.distance == pytest.approx(0.0, abs=1e-4)
        col.snapshot()
    with nearkit.open(tmp_path / "db") as db:
        col = db.get_collection("c")
        assert col.recovery["state_source"] == "snapshot"
        assert col.search(x[7], 1, where={"g": 7})[0].key == "k7"


def test_state_snapshot_of_format_1_still_loads(tmp_path):
    """State files written before the table kept no vectors carry 'vectors' and
    'sqnorm' sections: they still load (the vectors are not needed)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((500, 8)).astype(np.float32)
    path = tmp_path / "db"
    with nearkit.open(path) as db:
        col = db.create_collection("c", 8, "l2", index="flat", fields={"g": "tag"})
        col.upsert([f"k{i}" for i in range(500)], x, [{"g": f"t{i % 4}"} for i in range(500)])
        col.delete(["k1"])
        col.snapshot()
        d = snapshots.directory(db.path, col._cid)
    state = snapshots.list_snapshots(d, snapshots.STATE)[0][1]
    f = read_index(state)
    sections = {k: np.array(v) for k, v in f.sections.items()}
    n = int(f.params["n_slots"])
    sections["vectors"] = np.zeros((n, 8), np.float32)  # what format 1 stored (never read now)
    sections["sqnorm"] = np.zeros(n, np.float32)
    os.remove(state)
    write_index(state, f.kind, f.dim, f.metric, {**f.params, "state_format": 1}, sections)
    with nearkit.open(path) as db:
        col = db.get_collection("c")
        assert col.recovery["state_source"] == "snapshot" and len(col) == 499
        hits = col.search(x[10], 3, where="@g:{t2}")
        assert hits[0].key == "k10" and all(int(h.key[1:]) % 4 == 2 for h in hits)


@pytest.mark.parametrize("kind", _kinds())
@pytest.mark.parametrize("metric", ["l2", "cosine", "ip"])
def test_index_scan_is_exact_over_the_allowed_slots(kind, metric):
    from nearkit.indexes import SlotFilter

    rng = np.random.default_rng(4)
    x = rng.standard_normal((800, 10)).astype(np.float32)
    q = rng.standard_normal((6, 10)).astype(np.float32)
    idx = INDEX_KINDS[kind](10, metric)
    idx.add(x, np.arange(800))
    idx.remove([1, 2, 3])
    labels = idx.slot_labels()
    allowed = (labels >= 0) & (labels % 7 == 0)
    ids, dist = idx.scan(q, 12, SlotFilter(allowed))
    keep = labels[allowed]
    d = reference_distances(q, x[keep], metric)
    for qi in range(q.shape[0]):
        order = np.argsort(d[qi], kind="stable")[:12]
        assert set(ids[qi].tolist()) == set(keep[order].tolist())
        np.testing.assert_allclose(dist[qi], d[qi][order], rtol=1e-4, atol=1e-4)
    few = np.zeros_like(allowed)
    few[np.flatnonzero(labels >= 0)[:3]] = True
    ids, dist = idx.scan(q[:1], 5, SlotFilter(few))
    assert (ids[0, 3:] == -1).all() and np.isinf(dist[0, 3:]).all() and (ids[0, :3] >= 0).all()
    with pytest.raises(TypeError, match="SlotFilter"):
        idx.scan(q, 3, allowed)
