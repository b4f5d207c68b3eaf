"""Bounded resources in the store: k, ids a snapshot may hold, the writer lock after a
failed open, numbers beyond float64. (The filter parsers' nesting limits: tests/query.)"""

from __future__ import annotations

import shutil
import sqlite3

import numpy as np
import pytest

import nearkit
from nearkit.query import FilterError
from nearkit.store import StoreLockedError, snapshots


# -- snapshots whose ids the store never issued (issue 12, item 6) -------------------------------

def _store(path, kind, live_ids_from):
    """A store whose collection "c" holds 20 rows with ids live_ids_from..+19 (older ids
    issued and deleted), its index snapshot written at close; returns (snapshot dir, rows)."""
    rng = np.random.default_rng(live_ids_from)
    x = rng.standard_normal((20, 8)).astype(np.float32)
    with nearkit.open(path) as db:
        col = db.create_collection("c", dim=8, index=kind)
        if live_ids_from:
            col.upsert([f"old{i}" for i in range(live_ids_from)], np.ones((live_ids_from, 8)))
            col.delete([f"old{i}" for i in range(live_ids_from)])
        col.upsert([f"k{i}" for i in range(20)], x)
        d = snapshots.directory(db.path, col._cid)
    return d, x


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
@pytest.mark.parametrize("ours,theirs", [(0, 20), (20, 0)])
def test_snapshot_with_foreign_ids_is_not_adopted(tmp_path, kind, ours, theirs):
    # Same collection, same row count, different ids: ours never issued theirs (0, 20),
    # or issued and deleted them (20, 0).
    d, x = _store(tmp_path / "a", kind, ours)
    other, _ = _store(tmp_path / "b", kind, theirs)
    (seq, mine), = snapshots.list_snapshots(d)[:1]
    (_, foreign), = snapshots.list_snapshots(other)[:1]
    shutil.copy(foreign, mine)  # their index under our snapshot's name and seq
    with pytest.warns(RuntimeWarning, match="snapshot"):
        db = nearkit.open(tmp_path / "a")
        col = db.get_collection("c")
    try:
        assert col.recovery["source"] == "rebuild" and col.recovery["errors"]
        for i in (0, 7, 19):
            assert col.search(x[i], 1)[0].key == f"k{i}"
    finally:
        db.close()


def test_good_snapshot_still_adopted_without_warning(tmp_path):
    import warnings
    d, x = _store(tmp_path / "a", "hnsw", 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with nearkit.open(tmp_path / "a") as db:
            col = db.get_collection("c")
            assert col.recovery["source"] == "snapshot"
            assert col.search(x[3], 1)[0].key == "k3"


# -- k bounded by the collection (item 10) -------------------------------------------------------

@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_search_k_is_clipped_to_the_collection(tmp_path, kind):
    with nearkit.open(tmp_path / "s") as db:
        col = db.create_collection("c", dim=4, index=kind, fields={"g": "tag"})
        x = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
        col.upsert([f"k{i}" for i in range(50)], x, [{"g": "a" if i % 2 else "b"} for i in range(50)])
        seen = []
        real = col._index.search

        def spy(q, k, **kw):
            seen.append(k)
            return real(q, k, **kw)

        col._index.search = spy
        hits = col.search(x[:3], k=10**7)
        assert [len(h) for h in hits] == [50, 50, 50]
        assert [h.key for h in hits[0][:1]] == ["k0"]
        filtered = col.search(x[0], k=2**62, where="@g:{a}")
        assert len(filtered) == 25 and all(int(h.key[1:]) % 2 for h in filtered)
        assert seen and max(seen) <= 50


# -- the writer lock after a failure (item 11) ----------------------------------------------------

def test_lock_released_when_sqlite_cannot_commit_at_close(tmp_path, monkeypatch):
    from nearkit.store.durability import SqliteStore

    db = nearkit.open(tmp_path / "s", durability="everysec")
    col = db.create_collection("c", dim=4, index="flat")
    col.upsert(["a"], np.ones((1, 4)))

    def damaged(self):
        raise sqlite3.DatabaseError("database disk image is malformed")

    monkeypatch.setattr(SqliteStore, "_commit", damaged)
    with pytest.raises(sqlite3.DatabaseError):
        db.close()
    monkeypatch.undo()
    with nearkit.open(tmp_path / "s") as again:  # not StoreLockedError
        assert "c" in again.list_collections()


def test_lock_released_when_open_fails_on_a_damaged_file(tmp_path):
    path = tmp_path / "s"
    with nearkit.open(path) as db:
        db.create_collection("c", dim=4, index="flat").upsert(["a"], np.ones((1, 4)))
    f = path / "store.sqlite"
    good = f.read_bytes()
    f.write_bytes(b"\x00" * 100 + good[100:])
    for _ in range(2):
        with pytest.raises(sqlite3.DatabaseError):
            nearkit.open(path)
    f.write_bytes(good)
    with nearkit.open(path) as db:  # neither the lock nor a connection was left behind
        assert len(db.get_collection("c")) == 1
    with pytest.raises(StoreLockedError):
        with nearkit.open(path):
            nearkit.open(path)


# -- numbers JSON cannot hold -----------------------------------------------------------------------

def test_payload_nan_and_infinity_refused_alike(tmp_path):
    import math
    with nearkit.open(tmp_path / "s") as db:
        col = db.create_collection("c", dim=2, index="flat", fields={"n": "numeric"})
        for bad in ({"n": math.nan}, {"n": math.inf}, {"n": -math.inf}, {"x": math.inf},
                    {"x": math.nan}, {"x": [1.0, {"y": -math.inf}]}):
            with pytest.raises(ValueError, match="NaN|infinity"):
                col.upsert(["a"], np.ones((1, 2)), [bad])
        assert len(col) == 0
        col.upsert(["a"], np.ones((1, 2)), [{"n": 1e308, "x": -1e308}])
        assert col.get("a").payload == {"n": 1e308, "x": -1e308}


def test_integers_beyond_float64_are_value_errors(tmp_path):
    with nearkit.open(tmp_path / "s") as db:
        col = db.create_collection("c", dim=2, index="flat", fields={"n": "numeric"})
        for big in (10**400, -10**400):
            with pytest.raises(ValueError, match="float64 range"):
                col.upsert(["a"], np.ones((1, 2)), [{"n": big}])
        # outside the declared fields a big integer is plain JSON and round-trips
        col.upsert(["a"], np.ones((1, 2)), [{"n": 2, "x": 10**400}])
        assert col.get("a").payload["x"] == 10**400
        for where in ({"n": 10**400}, {"n": (0, 10**400)}, {"n": {"gt": -10**400}}, {"n": [1, 10**400]}):
            with pytest.raises(FilterError, match="float64 range"):
                col.search([1, 1], 1, where=where)
        assert col.search([1, 1], 1, where={"n": (0, float("inf"))})[0].key == "a"


def test_wide_collection_memory_follows_rows(tmp_path):
    with nearkit.open(tmp_path / "s") as db:
        col = db.create_collection("c", dim=20000, index="flat")
        col.upsert(["a"], np.ones((1, 20000)))
        assert col._t.vectors.nbytes <= 8 << 20  # not 1024 rows x 80 KB up front (nor any copy)
        assert col.search(np.ones(20000), 5)[0].key == "a"
