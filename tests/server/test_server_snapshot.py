"""HNSW graph snapshots: a restart starts from them instead of rebuilding, gives the
same answers, replays changes made after them, and survives a damaged one."""

import os
import threading
import time

import numpy as np
import pytest

redis = pytest.importorskip("redis")

from server_helpers import ProcessServer, ThreadServer  # noqa: E402

DIM = 12


def _create(r):
    r.execute_command("FT.CREATE", "idx", "PREFIX", "1", "d:", "SCHEMA", "tag", "TAG", "v",
                      "VECTOR", "HNSW", "10", "TYPE", "FLOAT32", "DIM", str(DIM),
                      "DISTANCE_METRIC", "COSINE", "M", "8", "EF_CONSTRUCTION", "64")


def _load(r, x, start=0):
    p = r.pipeline(transaction=False)
    for i, v in enumerate(x, start):
        p.hset(f"d:{i}", mapping={"tag": "a" if i % 3 else "b", "v": v.tobytes()})
    p.execute()


def _create_and_stop(data, x):
    """A server on ``data`` indexes ``x`` and shuts down cleanly (writing its snapshot)."""
    s = ThreadServer(data=data)
    try:
        r = redis.Redis(port=s.port, protocol=2)
        _create(r)
        _load(r, x)
    finally:
        s.stop()


def _ask(r, q, ef=10, k=10, filt="*"):
    res = r.execute_command("FT.SEARCH", "idx", f"{filt}=>[KNN {k} @v $b EF_RUNTIME {ef} AS d]",
                            "SORTBY", "d", "RETURN", "1", "d", "PARAMS", "2", "b", q.tobytes(),
                            "DIALECT", "2")
    return [(res[i], res[i + 1]) for i in range(1, len(res), 2)]


def _truth(docs, q, k=10):
    keys = sorted(docs)
    m = np.stack([docs[key] for key in keys])
    m = m / np.linalg.norm(m, axis=1, keepdims=True)
    d = 1 - m @ (q / np.linalg.norm(q))
    return [keys[i] for i in np.argsort(d, kind="stable")[:k]]


def _snapshot_files(data):
    root = os.path.join(data, "snapshots", "server-indexes")
    return sorted(os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs)


def test_restart_from_snapshot_gives_identical_results(tmp_path):
    data = str(tmp_path / "data")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1500, DIM)).astype(np.float32)
    qs = rng.normal(size=(25, DIM)).astype(np.float32)
    s = ThreadServer(data=data)
    try:
        r = redis.Redis(port=s.port, protocol=2)
        _create(r)
        _load(r, x)
        before = [_ask(r, q) for q in qs] + [_ask(r, q, filt="(@tag:{b})") for q in qs[:5]]
    finally:
        s.stop()
    files = _snapshot_files(data)
    assert any(f.endswith(".nki") for f in files) and any(f.endswith(".state") for f in files)
    s = ThreadServer(data=data)
    try:
        idx = s.server.search.indexes[b"idx"]
        assert idx.restored_from is not None  # the graph came from the snapshot
        r = redis.Redis(port=s.port, protocol=2)
        after = [_ask(r, q) for q in qs] + [_ask(r, q, filt="(@tag:{b})") for q in qs[:5]]
        assert after == before
        assert int(r.ft("idx").info()["num_docs"]) == 1500
    finally:
        s.stop()


def test_changes_after_the_snapshot_are_replayed_after_kill9(tmp_path):
    data = str(tmp_path / "data")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, DIM)).astype(np.float32)
    _create_and_stop(data, x)  # clean shutdown: snapshot covering all 600 keys
    docs = {f"d:{i}".encode(): x[i] for i in range(600)}
    # Changes the snapshot does not cover, then a crash (no shutdown snapshot).
    p = ProcessServer("--data", data, "--durability", "always", "--snapshot-every", "0")
    try:
        r = redis.Redis(port=p.port, protocol=2)
        moved = rng.normal(size=(40, DIM)).astype(np.float32)
        for i in range(40):
            r.hset(f"d:{i}", "v", moved[i].tobytes())
            docs[f"d:{i}".encode()] = moved[i]
        for i in range(100, 130):
            r.delete(f"d:{i}")
            del docs[f"d:{i}".encode()]
        r.hdel("d:200", "v")  # still a document, no longer a vector
        del docs[b"d:200"]
        extra = rng.normal(size=(50, DIM)).astype(np.float32)
        _load(r, extra, start=1000)
        docs.update({f"d:{i}".encode(): v for i, v in enumerate(extra, 1000)})
        p.kill9()
    finally:
        p.stop()
    s = ThreadServer(data=data)
    try:
        idx = s.server.search.indexes[b"idx"]
        assert idx.restored_from is not None
        assert len(idx.vectors["v"]._index) == len(docs)
        r = redis.Redis(port=s.port, protocol=2)
        # ef >= the collection: the graph walk is exhaustive, so results are exact.
        for q in list(moved[:10]) + list(extra[:10]) + list(x[100:105]):
            got = [key for key, _ in _ask(r, q, ef=2000)]
            assert got == _truth(docs, q)
    finally:
        s.stop()


def test_damaged_snapshot_means_rebuild(tmp_path):
    data = str(tmp_path / "data")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(500, DIM)).astype(np.float32)
    _create_and_stop(data, x)
    graphs = [f for f in _snapshot_files(data) if f.endswith(".nki")]
    assert graphs
    with open(graphs[-1], "r+b") as f:  # flip bytes in the middle of the graph
        f.seek(os.path.getsize(graphs[-1]) // 2)
        chunk = f.read(64)
        f.seek(-len(chunk), 1)
        f.write(bytes(b ^ 0xFF for b in chunk))
    docs = {f"d:{i}".encode(): x[i] for i in range(500)}
    s = ThreadServer(data=data)
    try:
        idx = s.server.search.indexes[b"idx"]
        assert idx.restored_from is None  # refused, rebuilt from the keys
        assert len(idx.vectors["v"]._index) == 500
        r = redis.Redis(port=s.port, protocol=2)
        for q in x[:10]:
            assert [key for key, _ in _ask(r, q, ef=2000)] == _truth(docs, q)
    finally:
        s.stop()
    # The rebuild was snapshotted again at shutdown and is used next time.
    s = ThreadServer(data=data)
    try:
        assert s.server.search.indexes[b"idx"].restored_from is not None
    finally:
        s.stop()


def test_periodic_snapshot_and_drop_removes_them(tmp_path):
    data = str(tmp_path / "data")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, DIM)).astype(np.float32)
    s = ThreadServer(data=data, snapshot_every=100)
    try:
        r = redis.Redis(port=s.port, protocol=2)
        _create(r)
        _load(r, x)
        deadline = time.time() + 10
        while not any(f.endswith(".state") for f in _snapshot_files(data)):
            assert time.time() < deadline, "no periodic snapshot"
            time.sleep(0.05)
        r.execute_command("FT.DROPINDEX", "idx")
        assert _snapshot_files(data) == []
    finally:
        s.stop()


def test_snapshot_with_insertions_still_pending(tmp_path):
    # Graph insertions are batched per loop tick; a snapshot taken before the batch
    # went in must put it in first (and not deadlock on the index lock doing so).
    from nearkit.server import Config, Server

    data = str(tmp_path / "data")
    srv = Server(Config(port=0, data=data))  # no event loop: nothing flushes on its own
    srv.search.restore_index(b"idx", {
        "on": "HASH", "prefixes": ["d:"], "options": {},
        "fields": [{"identifier": "v", "alias": "v", "type": "VECTOR", "flags": [],
                    "options": {"algorithm": "HNSW", "TYPE": "FLOAT32", "DIM": str(DIM),
                                "DISTANCE_METRIC": "L2"}}]})
    x = np.random.default_rng(4).normal(size=(50, DIM)).astype(np.float32)
    for i, v in enumerate(x):
        srv.keyspace.set(f"d:{i}".encode(), {b"v": v.tobytes()})
    idx = srv.search.indexes[b"idx"]
    assert idx.vectors_pending
    srv.durable_flush(force=True)
    done = []
    t = threading.Thread(target=lambda: done.append(srv.search.save_snapshots()), daemon=True)
    t.start()
    t.join(20)
    assert done == [1]
    assert len(idx.vectors["v"]._index) == 50
    srv.close()


def test_background_snapshot_holds_the_state_when_taken(tmp_path, monkeypatch):
    # A periodic snapshot is copied on the loop and written by another thread while
    # writes go on: held back until after later changes, it must still be the state
    # at its own change count, and a crash + restart must replay the rest.
    from nearkit.server import snapshot as snapmod

    gate = threading.Event()
    real_write = snapmod.write

    def held_write(job):
        gate.wait(20)
        real_write(job)

    monkeypatch.setattr(snapmod, "write", held_write)
    data = str(tmp_path / "data")
    rng = np.random.default_rng(6)
    x = rng.normal(size=(300, DIM)).astype(np.float32)
    moved = rng.normal(size=(30, DIM)).astype(np.float32)
    s = ThreadServer(data=data, snapshot_every=250)
    try:
        r = redis.Redis(port=s.port, protocol=2)
        _create(r)
        _load(r, x)  # passes 250 writes: a snapshot is taken and held at the gate
        idx = s.server.search.indexes[b"idx"]
        deadline = time.time() + 10
        while not s.server.search.snapshot_writer._pending:
            assert time.time() < deadline, "no periodic snapshot was taken"
            time.sleep(0.02)
        for i in range(30):
            r.hset(f"d:{i}", "v", moved[i].tobytes())
        r.delete(*[f"d:{i}" for i in range(200, 220)])
        assert idx.snapshot_seq is None  # not written yet
        gate.set()
        s.server.search.snapshot_writer.wait()
        snap_seq = idx.snapshot_seq
        assert snap_seq is not None and snap_seq < s.server.durable.changes
        monkeypatch.setattr(snapmod, "write", lambda job: None)  # as if killed: no shutdown snapshot
    finally:
        s.stop()
    docs = {f"d:{i}".encode(): x[i] for i in range(300) if not 200 <= i < 220}
    docs.update({f"d:{i}".encode(): moved[i] for i in range(30)})
    s = ThreadServer(data=data)
    try:
        idx = s.server.search.indexes[b"idx"]
        assert idx.restored_from == snap_seq
        assert len(idx.vectors["v"]._index) == len(docs)
        r = redis.Redis(port=s.port, protocol=2)
        for q in list(moved[:8]) + list(x[195:205]):
            assert [key for key, _ in _ask(r, q, ef=1000)] == _truth(docs, q)
    finally:
        s.stop()
