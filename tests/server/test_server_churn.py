"""A churned search index (keys deleted and re-added many times) reuses its slots:
the slot count stays at the most documents held at once, and answers stay right,
also after a restart from a graph snapshot and after a crash whose changes the
snapshot does not cover (slots reused after it)."""

import numpy as np
import pytest

redis = pytest.importorskip("redis")

from server_helpers import ProcessServer, ThreadServer  # noqa: E402

DIM = 8
LIVE = 120


def _create(r):
    r.execute_command("FT.CREATE", "idx", "PREFIX", "1", "d:", "SCHEMA", "tag", "TAG",
                      "g", "VECTOR", "HNSW", "10", "TYPE", "FLOAT32", "DIM", str(DIM),
                      "DISTANCE_METRIC", "L2", "M", "8", "EF_CONSTRUCTION", "64",
                      "f", "VECTOR", "FLAT", "6", "TYPE", "FLOAT32", "DIM", str(DIM),
                      "DISTANCE_METRIC", "COSINE")


def _put(r, docs, key, rng):
    g, f = rng.normal(size=(2, DIM)).astype(np.float32)
    tag = "a" if rng.random() < 0.7 else "b"
    r.hset(key, mapping={"tag": tag, "g": g.tobytes(), "f": f.tobytes()})
    docs[key.encode()] = (tag, g, f)


def _churn(r, docs, rng, rounds, names):
    for _ in range(rounds):
        gone = rng.choice(sorted(docs), size=LIVE // 2, replace=False)
        r.delete(*gone)
        for k in gone:
            del docs[k]
        for _ in range(LIVE // 2):
            _put(r, docs, f"d:{next(names)}", rng)


def _truth(docs, q, field, tag=None, k=5):
    keys = sorted(key for key, (t, _, _) in docs.items() if tag is None or t == tag)
    m = np.stack([docs[key][1 if field == "g" else 2] for key in keys]).astype(np.float64)
    q = q.astype(np.float64)
    if field == "g":
        d = ((m - q) ** 2).sum(axis=1)
    else:
        d = 1 - (m / np.linalg.norm(m, axis=1, keepdims=True)) @ (q / np.linalg.norm(q))
    return [keys[i] for i in np.argsort(d, kind="stable")[:k]]


def _check(r, docs, rng):
    for field in ("g", "f"):
        for filt, tag in (("*", None), ("(@tag:{b})", "b")):
            for q in rng.normal(size=(6, DIM)).astype(np.float32):
                res = r.execute_command(
                    "FT.SEARCH", "idx", f"{filt}=>[KNN 5 @{field} $b EF_RUNTIME 500 AS d]",
                    "SORTBY", "d", "RETURN", "1", "d", "PARAMS", "2", "b", q.tobytes(),
                    "DIALECT", "2")
                assert [res[i] for i in range(1, len(res), 2)] == _truth(docs, q, field, tag)
    assert int(r.ft("idx").info()["num_docs"]) == len(docs)


def _names():
    i = 0
    while True:
        yield i
        i += 1


def test_churn_keeps_slots_bounded_and_answers_right_across_restarts(tmp_path):
    data = str(tmp_path / "data")
    rng = np.random.default_rng(0)
    names = _names()
    docs = {}
    s = ThreadServer(data=data)
    try:
        r = redis.Redis(port=s.port, protocol=2)
        _create(r)
        for _ in range(LIVE):
            _put(r, docs, f"d:{next(names)}", rng)
        _churn(r, docs, rng, 25, names)  # 1500 deletes and re-adds
        idx = s.server.search.indexes[b"idx"]
        assert len(idx.slot_key) == LIVE  # every freed slot was taken again
        assert len(idx.vectors["g"]._index) == LIVE
        _check(r, docs, rng)
    finally:
        s.stop()  # clean shutdown: a graph snapshot of the churned numbering

    # Churn the snapshot's numbering, then crash: the restart adopts the snapshot's
    # slots while the keys reuse them differently.
    p = ProcessServer("--data", data, "--durability", "always", "--snapshot-every", "0")
    try:
        r = redis.Redis(port=p.port, protocol=2)
        _churn(r, docs, rng, 6, names)
        key0 = sorted(docs)[0]  # a changed vector in a kept slot
        tag, _, f = docs[key0]
        g = rng.normal(size=DIM).astype(np.float32)
        r.hset(key0, "g", g.tobytes())
        docs[key0] = (tag, g, f)
        p.kill9()
    finally:
        p.stop()
    s = ThreadServer(data=data)
    try:
        idx = s.server.search.indexes[b"idx"]
        assert idx.restored_from is not None  # the graph came from the snapshot
        r = redis.Redis(port=s.port, protocol=2)
        assert len(idx.slot_key) <= 2 * LIVE
        assert len(idx.vectors["g"]._index) == LIVE
        _check(r, docs, rng)
        _churn(r, docs, rng, 5, names)
        _check(r, docs, rng)
        assert len(idx.slot_key) <= 2 * LIVE
    finally:
        s.stop()
