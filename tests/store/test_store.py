"""The persistent store: API, payloads, filtered search vs brute force, snapshots, locking, threads."""

import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import nearkit
from nearkit.metrics import reference_distances
from nearkit.store import CollectionNotFound, FilterError, FilterSyntaxError, StoreLockedError
from nearkit.store import collection as collection_mod
from nearkit.store import table as table_mod
from nearkit.store import snapshots

FIELDS = {"genre": "tag", "year": "numeric", "title": "text"}
GENRES = ["drama", "comedy", "horror", "noir", "western", "musical", "war", "sport", "crime", "anime"]


def kinds():
    return ["flat", "hnsw"]


def payloads(n, seed=0):
    rng = np.random.default_rng(seed)
    return [{"genre": GENRES[int(g)], "year": int(y), "title": f"film {i} part {i % 3}", "n": i}
            for i, (g, y) in enumerate(zip(rng.integers(0, 10, n), rng.integers(1900, 2000, n)))]


@pytest.fixture
def db(tmp_path):
    d = nearkit.open(tmp_path / "db", durability="always")
    yield d
    d.close()


def test_create_get_list_drop(db, tmp_path):
    col = db.create_collection("a", 8, "l2", index="flat", fields=FIELDS)
    db.create_collection("b", 4, "cosine", index="flat")
    assert db.list_collections() == ["a", "b"]
    assert db.get_collection("a") is col and "a" in db
    assert col.fields["genre"] == {"type": "tag", "separator": ",", "case_sensitive": False}
    with pytest.raises(ValueError, match="already exists"):
        db.create_collection("a", 8)
    assert db.create_collection("a", 8, index="flat", exist_ok=True) is col
    with pytest.raises(ValueError, match="unknown index kind 'nope'"):
        db.create_collection("c", 8, index="nope")
    with pytest.raises(ValueError, match="unknown metric"):
        db.create_collection("c", 8, "manhattan", index="flat")
    with pytest.raises(ValueError, match="unknown type 'date'"):
        db.create_collection("c", 8, index="flat", fields={"d": "date"})
    col.upsert(["x"], np.ones((1, 8)))
    db.snapshot()
    db.drop_collection("a")
    assert db.list_collections() == ["b"]
    assert not os.path.exists(snapshots.directory(db.path, col._cid))
    with pytest.raises(CollectionNotFound, match="no collection 'a'"):
        db.get_collection("a")
    with pytest.raises(RuntimeError, match="closed"):
        col.search(np.ones(8), 1)


def test_upsert_get_delete_and_payload_round_trip(db):
    col = db.create_collection("c", 4, "l2", index="flat", fields=FIELDS)
    rich = {"genre": ["drama", "war"], "year": 1957.5, "title": "Paths of Glory",
            "nested": {"a": [1, 2, {"b": None}]}, "unicode": "naïve — ✓", "flag": True}
    vecs = np.arange(12, dtype=np.float64).reshape(3, 4)
    assert col.upsert(["k1", "k2", "k3"], vecs, [rich, None, {"year": 3}]) == 3
    r = col.get("k1")
    assert r.key == "k1" and r.payload == rich and r.vector.dtype == np.float32
    np.testing.assert_array_equal(r.vector, vecs[0])
    two = col.get(["k2", "missing"])
    assert two[0].key == "k2" and two[1] is None
    assert col.get("k2").payload is None
    # replace: new vector and payload, same count, old payload no longer filterable
    assert col.upsert("k1", np.full(4, 9.0), {"genre": "comedy"}) == 0
    assert len(col) == 3 and col.get("k1").payload == {"genre": "comedy"}
    assert col.count("@genre:{drama}") == 0 and col.count("@genre:{comedy}") == 1
    assert col.search(np.full(4, 9.0), 1)[0].key == "k1"
    assert col.delete(["k2", "k2", "nope"]) == 1
    assert len(col) == 2 and col.get("k2") is None and "k2" not in col
    assert {h.key for h in col.search(np.zeros(4), 10)} == {"k1", "k3"}


def test_write_errors_are_clear_and_change_nothing(db):
    col = db.create_collection("c", 3, index="flat", fields=FIELDS)
    col.upsert(["a"], np.ones((1, 3)), [{"year": 1}])
    cases = [
        (lambda: col.upsert(["b"], np.ones((1, 4))), ValueError, "dimension 4"),
        (lambda: col.upsert(["b", "c"], np.ones((1, 3))), ValueError, "2 keys for 1 vectors"),
        (lambda: col.upsert(["b", "b"], np.ones((2, 3))), ValueError, "duplicate key 'b'"),
        (lambda: col.upsert([1], np.ones((1, 3))), TypeError, "keys must be strings"),
        (lambda: col.upsert(["b"], [[1, np.nan, 0]]), ValueError, "NaN"),
        (lambda: col.upsert(["b"], np.ones((1, 3)), [{"year": "abc"}]), ValueError, "invalid numeric"),
        (lambda: col.upsert(["b"], np.ones((1, 3)), [{"x": object()}]), TypeError, "JSON-serialisable"),
        (lambda: col.upsert(["b"], np.ones((1, 3)), [{}, {}]), ValueError, "2 payloads for 1 keys"),
        (lambda: col.search(np.ones(3), 0), ValueError, "k must be positive"),
        (lambda: col.search(np.ones(3), 1, where="@year:[1"), FilterSyntaxError, "offset"),
        (lambda: col.search(np.ones(3), 1, where="@rating:{x}"), FilterError, "unknown field 'rating'"),
        (lambda: col.search_radius(np.ones(3), -1), ValueError, "radius"),
    ]
    for call, exc, words in cases:
        with pytest.raises(exc, match=words):
            call()
    assert len(col) == 1 and col.get("b") is None


def test_bulk_upsert_whose_sqlite_write_fails_leaves_the_index_unchanged(db, monkeypatch):
    # bulk upserts build the index while SQLite writes; a failed write must take the rows back out
    col = db.create_collection("c", 8, index="hnsw")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2000, 8)).astype(np.float32)
    assert 2000 >= collection_mod.Collection.OVERLAP_MIN_ROWS
    col.upsert([f"k{i}" for i in range(2000)], x)

    def failing_write(fn):
        raise OSError("disk full")

    monkeypatch.setattr(col._sql, "write", failing_write)
    with pytest.raises(OSError, match="disk full"):
        col.upsert([f"new{i}" for i in range(2000)], x + 100)
    monkeypatch.undo()
    assert len(col) == 2000 and len(col._index) == 2000 and col.get("new0") is None
    hits = col.search(x[5] + 100, 3)  # the failed rows would be the nearest here
    assert all(h.key.startswith("k") for h in hits)
    col.upsert([f"new{i}" for i in range(2000)], x + 100)
    assert len(col) == 4000 and len(col._index) == 4000 and col.search(x[5] + 100, 1)[0].key == "new5"


def test_bulk_upsert_with_a_bad_payload_leaves_everything_unchanged(db):
    # the bulk index build starts before payloads are checked: a late refusal takes it back
    col = db.create_collection("c", 8, index="hnsw", fields={"n": "numeric"})
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2000, 8)).astype(np.float32)
    col.upsert([f"k{i}" for i in range(2000)], x, [{"n": i} for i in range(2000)])
    bad = [{"n": i} for i in range(2000)]
    bad[1500] = {"n": 1, "blob": object()}
    with pytest.raises(TypeError, match="JSON-serialisable"):
        col.upsert([f"new{i}" for i in range(2000)], x + 100, bad)
    bad[1500] = {"n": "not a number"}
    with pytest.raises(ValueError, match="'n'"):
        col.upsert([f"k{i}" for i in range(2000)], x + 100, bad)  # replacing, too
    assert len(col) == 2000 and len(col._index) == 2000 and col.get("new0") is None
    assert all(h.key.startswith("k") for h in col.search(x[5] + 100, 3))
    assert col.count("@n:[0 999]") == 1000
    np.testing.assert_array_equal(col.get("k7").vector, x[7])


def test_background_snapshot_is_the_state_when_it_was_taken(tmp_path, monkeypatch):
    # the automatic snapshot is written while later writes change the collection;
    # it must hold exactly the rows up to its own sequence number
    path = tmp_path / "db"
    rng = np.random.default_rng(5)
    x = rng.standard_normal((400, 8)).astype(np.float32)
    release = threading.Event()
    real_write = snapshots.write_snapshot

    def slow_write(d, seq, image):
        release.wait(10)
        return real_write(d, seq, image)

    monkeypatch.setattr(snapshots, "write_snapshot", slow_write)
    with nearkit.open(path, auto_snapshot=100) as db:
        col = db.create_collection("c", 8, index="hnsw", fields={"n": "numeric"})
        col.upsert([f"k{i}" for i in range(200)], x[:200], [{"n": i} for i in range(200)])
        snap_seq = col._seq
        # meanwhile: replace, delete and add, touching the memory the snapshot copied
        col.upsert([f"k{i}" for i in range(50)], x[200:250] + 10, [{"n": -1}] * 50)
        col.delete([f"k{i}" for i in range(50, 60)])
        col.upsert([f"k{i}" for i in range(250, 300)], x[250:300])
        release.set()
        col._wait_for_snapshot()
        d = snapshots.directory(db.path, col._cid)
        assert [s for s, _ in snapshots.list_snapshots(d)] == [snap_seq]
        db.close(snapshot=False)
    with nearkit.open(path) as db:   # opens from that snapshot and replays the rest
        col = db.get_collection("c")
        assert col.recovery["source"] == "snapshot" and col.recovery["snapshot_seq"] == snap_seq
        assert len(col) == 240 and col.get("k55") is None
        np.testing.assert_array_equal(col.get("k3").vector, x[203] + 10)
        np.testing.assert_array_equal(col.get("k120").vector, x[120])
        assert col.count("@n:[-1 -1]") == 50 and col.count("@n:[100 199]") == 100
        assert col.search(x[203] + 10, 1)[0].key == "k3"


def test_failed_background_snapshot_warns_and_loses_nothing(tmp_path, monkeypatch):
    def failing_write(d, seq, image):
        raise OSError("disk full")

    monkeypatch.setattr(snapshots, "write_snapshot", failing_write)
    path = tmp_path / "db"
    with nearkit.open(path, auto_snapshot=100) as db:
        col = db.create_collection("c", 4, index="flat")
        with pytest.warns(RuntimeWarning, match="automatic snapshot failed"):
            col.upsert([f"k{i}" for i in range(150)], np.ones((150, 4)))
            col._wait_for_snapshot()
        assert col._changes == 150   # counted as unsnapshotted again
        db.close(snapshot=False)
    monkeypatch.undo()
    with nearkit.open(path) as db:
        col = db.get_collection("c")
        assert col.recovery["source"] == "rebuild" and len(col) == 150


def _truth(col_vectors, allowed, q, k, metric):
    d = reference_distances(q, col_vectors[allowed], metric)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return allowed[order], np.take_along_axis(d, order, axis=1)


@pytest.mark.parametrize("kind", kinds())
@pytest.mark.parametrize("metric", ["l2", "cosine", "ip"])
def test_filtered_search_matches_brute_force(db, glove_20k, kind, metric, monkeypatch):
    # small thresholds so that broad filters take the filtered index walk at this size
    monkeypatch.setattr(table_mod, "EXACT_MIN_ROWS", 300)
    monkeypatch.setattr(table_mod, "EXACT_SCALE", 0.0)
    n = 6000
    base, queries = glove_20k.base[:n], glove_20k.queries[:30]
    col = db.create_collection("g", base.shape[1], metric, index=kind, fields=FIELDS)
    pl = payloads(n)
    col.upsert([f"w{i}" for i in range(n)], base, pl)
    years = np.array([p["year"] for p in pl])
    genres = np.array([p["genre"] for p in pl])
    k = 10
    five = ["drama", "comedy", "horror", "noir", "western"]
    filters = [  # selectivity from 1% (exact scan) to 100%
        ("@year:[1900 (1901]", years == 1900),
        ("@genre:{drama} @year:[1950 1999]", (genres == "drama") & (years >= 1950)),
        ({"genre": five}, np.isin(genres, five)),
        ("-@genre:{anime}", genres != "anime"),
        ("*", np.ones(n, bool)),
    ]
    for where, allowed_mask in filters:
        allowed = np.flatnonzero(allowed_mask)
        assert col.count(where) == allowed.size
        want_ids, want_d = _truth(base, allowed, queries, k, metric)
        hits = col.search(queries, k, where=where)
        recall = []
        for qi, row in enumerate(hits):
            assert len(row) == min(k, allowed.size)
            got = [int(h.key[1:]) for h in row]
            assert allowed_mask[got].all(), "a hit violates the filter"
            assert all(h.payload == pl[i] for h, i in zip(row, got))
            dist = [h.distance for h in row]
            assert dist == sorted(dist)
            recall.append(len(set(got) & set(want_ids[qi].tolist())) / len(got))
            if kind == "flat" or (allowed.size <= 300 and where != "*"):
                np.testing.assert_allclose(dist, want_d[qi], rtol=1e-4, atol=1e-4)
        assert np.mean(recall) >= (0.999 if kind == "flat" else 0.95), (where, np.mean(recall))


def test_search_radius_matches_brute_force(db, glove_20k):
    base, q = glove_20k.base[:3000], glove_20k.queries[0]
    col = db.create_collection("r", base.shape[1], "cosine", index="flat", fields=FIELDS)
    pl = payloads(3000)
    col.upsert([str(i) for i in range(3000)], base, pl)
    d = reference_distances(q[None], base, "cosine")[0]
    radius = float(np.sort(d)[200])
    drama = np.array([p["genre"] == "drama" for p in pl])
    for where, allowed in [(None, np.ones(3000, bool)), ("@genre:{drama}", drama)]:
        hits = col.search_radius(q, radius, where=where)
        want = np.flatnonzero((d <= radius + 1e-5) & allowed)
        got = sorted(int(h.key) for h in hits)
        # float32 vs float64 may disagree on points sitting exactly at the radius
        assert set(got) <= set(want.tolist()) and len(got) >= len(want) - 1
        assert [h.distance for h in hits] == sorted(h.distance for h in hits)
        assert all(h.distance <= radius for h in hits)
    assert len(col.search_radius(q, radius, limit=5)) == 5


def test_keys_and_count(db):
    col = db.create_collection("c", 2, index="flat", fields=FIELDS)
    col.upsert([f"k{i}" for i in range(50)], np.random.default_rng(0).random((50, 2)), payloads(50))
    assert col.count() == 50 == len(col.keys())
    drama = [f"k{i}" for i, p in enumerate(payloads(50)) if p["genre"] == "drama"]
    assert sorted(col.keys("@genre:{drama}")) == sorted(drama)
    everything = col.keys()
    assert col.keys(limit=7, offset=5) == everything[5:12] and col.keys(offset=48) == everything[48:]
    assert col.count({"genre": "drama"}) == len(drama)
    assert col.count("@title:(part -film)") == 0 and col.count("@title:part") == 50
    assert col.count("@year:[$lo +inf]", params={"lo": 1950}) == sum(p["year"] >= 1950 for p in payloads(50))


def _fill(db, name, n, kind="flat", seed=0):
    x = np.random.default_rng(seed).standard_normal((n, 16)).astype(np.float32)
    col = db.create_collection(name, 16, "l2", index=kind, fields=FIELDS)
    col.upsert([f"k{i}" for i in range(n)], x, payloads(n))
    return col, x


def _check_state(col, x, keys_alive, extra=0):
    assert len(col) == len(keys_alive) + extra
    for i in list(keys_alive)[:50]:
        r = col.get(f"k{i}")
        np.testing.assert_array_equal(r.vector, x[i])
        assert col.search(x[i], 1)[0].key == f"k{i}"


def test_reopen_uses_snapshot_and_replays_later_writes(tmp_path):
    path = tmp_path / "db"
    with nearkit.open(path) as db:
        col, x = _fill(db, "c", 500)
    with nearkit.open(path, durability="everysec") as db:
        col = db.get_collection("c")
        assert col.recovery["source"] == "snapshot" and col.recovery["replayed"] == 0
        col.delete([f"k{i}" for i in range(100)])
        col.upsert([f"k{i}" for i in range(100, 150)], x[100:150] + 0, payloads(50, seed=9))
        db.close(snapshot=False)  # leaves the snapshot behind the SQLite rows
    with nearkit.open(path) as db:
        col = db.get_collection("c")
        assert col.recovery["source"] == "snapshot" and col.recovery["state_source"] == "snapshot"
        assert col.recovery["replayed"] == 100 + 50 + 50  # 100 deletes, 50 replaced ids, 50 new rows
        _check_state(col, x, range(100, 500))
        assert col.get("k120").payload == payloads(50, seed=9)[20]
        assert col.get("k5") is None
        drama = sum(p["genre"] == "drama" for p in payloads(500)[150:]) + sum(
            p["genre"] == "drama" for p in payloads(50, seed=9))
        assert col.count("@genre:{drama}") == drama


def test_state_snapshot_round_trip_and_fallback_to_sqlite(tmp_path):
    path = tmp_path / "db"
    odd = ["", "ключ", "a b", "x" * 300, "tab\there", "emoji 🎉"]
    with nearkit.open(path) as db:
        col = db.create_collection("c", 4, "cosine", index="flat", fields=FIELDS)
        col.upsert(odd, np.arange(24).reshape(6, 4) + 1.0,
                   [None, {"genre": "a,B"}, {"year": 3.5}, {"title": "Hello World"}, {}, {"genre": ["x"]}])
        col.delete(["a b"])
        col.upsert("new", [1, 0, 0, 0], {"genre": "b"})
        d = snapshots.directory(db.path, col._cid)
        before = {k: col.get(k) for k in col.keys()}
        counts = [col.count(w) for w in ("@genre:{b}", "@year:[3 4]", "@title:hello", "-@genre:{x}")]
    for damage in (False, True):
        if damage:  # corrupt the state snapshot: memory comes from SQLite rows instead
            (seq, state), = snapshots.list_snapshots(d, snapshots.STATE)
            data = bytearray(open(state, "rb").read())
            data[-3] ^= 0x55
            open(state, "wb").write(bytes(data))
        with nearkit.open(path) as db:
            col = db.get_collection("c")
            assert col.recovery["state_source"] == ("sqlite" if damage else "snapshot")
            assert bool(col.recovery["state_errors"]) == damage
            assert set(col.keys()) == set(before)
            for k, rec in before.items():
                got = col.get(k)
                np.testing.assert_array_equal(got.vector, rec.vector)
                assert got.payload == rec.payload
            assert [col.count(w) for w in ("@genre:{b}", "@year:[3 4]", "@title:hello",
                                           "-@genre:{x}")] == counts
            assert col.search([1, 0, 0, 0], 1)[0].key == "new"
            db.close(snapshot=False)


def test_missing_and_damaged_snapshots_fall_back_without_losing_data(tmp_path):
    path = tmp_path / "db"
    with nearkit.open(path) as db:
        col, x = _fill(db, "c", 400)
        col.snapshot()
        col.upsert(["extra"], np.zeros((1, 16)))
        col.snapshot()  # two snapshots kept
        d = snapshots.directory(db.path, col._cid)
    snaps = snapshots.list_snapshots(d)
    assert len(snaps) == 2
    # damage the newest: fall back to the older one and replay from there
    newest = snaps[0][1]
    data = bytearray(open(newest, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(newest, "wb").write(bytes(data))
    with nearkit.open(path) as db:
        col = db.get_collection("c")
        assert col.recovery["source"] == "snapshot" and col.recovery["snapshot_seq"] == snaps[1][0]
        assert col.recovery["errors"] and newest in col.recovery["errors"][0]
        assert len(col) == 401 and col.get("extra") is not None
        db.close(snapshot=False)
    # truncate every snapshot: rebuild from SQLite
    for _, p in snapshots.list_snapshots(d):
        with open(p, "r+b") as f:
            f.truncate(100)
    with nearkit.open(path) as db:
        col = db.get_collection("c")
        assert col.recovery["source"] == "rebuild" and len(col.recovery["errors"]) == 2
        _check_state(col, x, range(400), extra=1)
        db.close(snapshot=False)
    # delete them all: rebuild again; a snapshot claiming a future seq is refused
    for _, p in snapshots.list_snapshots(d):
        os.remove(p)
    with nearkit.open(path) as db:
        col = db.get_collection("c")
        assert col.recovery["source"] == "rebuild"
        _check_state(col, x, range(400), extra=1)
        path_future = col.snapshot(force=True)
    os.replace(path_future, os.path.join(d, f"{10**6:020d}.nki"))
    with nearkit.open(path) as db:
        col = db.get_collection("c")
        assert col.recovery["source"] == "rebuild" and "ahead of the store" in col.recovery["errors"][0]


def test_second_writer_is_refused_with_the_holders_pid(tmp_path):
    path = tmp_path / "db"
    with nearkit.open(path) as db:
        _fill(db, "c", 10)
        with pytest.raises(StoreLockedError, match=f"process {os.getpid()} \\(this process\\)"):
            nearkit.open(path)
        code = ("import nearkit, sys\n"
                "try:\n    nearkit.open(sys.argv[1])\nexcept nearkit.store.StoreLockedError as e:\n"
                "    print(e); sys.exit(3)\n")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        r = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=env,
                           timeout=60)
        assert r.returncode == 3, r.stderr
        assert f"by process {os.getpid()}" in r.stdout
        # a reader may open it while the writer holds the lock, and sees committed data
        with nearkit.open(path, read_only=True) as ro:
            rcol = ro.get_collection("c")
            assert len(rcol) == 10 and rcol.search(np.zeros(16), 3)
            with pytest.raises(PermissionError):
                rcol.upsert(["z"], np.zeros((1, 16)))
    with nearkit.open(path) as db:  # released on close
        assert len(db.get_collection("c")) == 10


@pytest.mark.parametrize("kind", kinds())
def test_concurrent_readers_during_writes(tmp_path, kind):
    with nearkit.open(tmp_path / "db", durability="everysec") as db:
        col, x = _fill(db, "c", 2000, kind=kind)
        errors, stop, done = [], threading.Event(), [0]
        rng = np.random.default_rng(1)

        def reader(seed):
            r = np.random.default_rng(seed)
            try:
                while not stop.is_set():
                    i = int(r.integers(0, 2000))
                    for where in (None, "@genre:{drama|war}", {"year": (1900, 1950)}):
                        hits = col.search(x[i], 5, where=where)
                        d = [h.distance for h in hits]
                        assert d == sorted(d) and len(hits) == 5
                        for h in hits:  # every hit is a consistent (key, payload) pair
                            assert h.payload["n"] == int(h.key[1:]) % 10_000
                    rec = col.get(f"k{i}")
                    if rec is not None:
                        assert rec.payload["n"] == i % 10_000
                    col.count("@title:part")
                    done[0] += 1
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=reader, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for step in range(60):
            ks = rng.choice(2000, 20, replace=False)
            if step % 3 == 0:
                col.delete([f"k{i}" for i in ks])
            else:
                pl = [dict(p, n=int(i)) for p, i in zip(payloads(20, seed=step), ks)]
                col.upsert([f"k{i}" for i in ks], x[ks], pl)
        stop.set()
        for t in threads:
            t.join()
        assert not errors, errors[0]
        assert done[0] > 0


def test_durability_modes_and_flush(tmp_path):
    for mode in ("always", "everysec", "off"):
        with nearkit.open(tmp_path / mode, durability=mode) as db:
            _fill(db, "c", 100)
            db.flush()
        with nearkit.open(tmp_path / mode) as db:
            assert len(db.get_collection("c")) == 100
    with pytest.raises(ValueError, match="durability must be one of"):
        nearkit.open(tmp_path / "x", durability="sometimes")


def test_cosine_get_returns_the_original_vector(db):
    col = db.create_collection("cos", 3, "cosine", index="flat", fields=FIELDS)
    col.upsert(["a", "b", "zero"], [[3.0, 4.0, 0.0], [0.0, 0.0, 2.0], [0.0, 0.0, 0.0]],
               [{"year": 1}, None, None])
    np.testing.assert_array_equal(col.get("a").vector, [3.0, 4.0, 0.0])
    assert col.get("a").payload == {"year": 1} and col.get("nope") is None
    hits = col.search([6.0, 8.0, 0.0], 3)
    assert hits[0].key == "a" and abs(hits[0].distance) < 1e-6
    assert abs(hits[1].distance - 1.0) < 1e-6  # orthogonal, and the zero vector is at distance 1


def test_auto_snapshot_bounds_the_replay(tmp_path):
    path = tmp_path / "db"
    with nearkit.open(path, auto_snapshot=100) as db:
        col = db.create_collection("c", 4, index="flat")
        d = snapshots.directory(db.path, col._cid)
        col.upsert([f"k{i}" for i in range(60)], np.ones((60, 4)))
        assert snapshots.list_snapshots(d) == []
        col.upsert([f"k{i}" for i in range(60, 120)], np.ones((60, 4)))   # 120 changed rows
        col._wait_for_snapshot()  # automatic snapshots are written in the background
        assert len(snapshots.list_snapshots(d)) == 1
        assert len(snapshots.list_snapshots(d, snapshots.STATE)) == 1
        col.delete(["k0"])
        db.close(snapshot=False)
    with nearkit.open(path) as db:
        col = db.get_collection("c")
        assert col.recovery["replayed"] == 1 and len(col) == 119
    with pytest.raises(ValueError, match="auto_snapshot"):
        nearkit.open(tmp_path / "x", auto_snapshot=0)
