"""The server's search index holds each vector once (in the HNSW graph) and still
loads graph snapshots whose state file carries the older vector copy."""

import os

import numpy as np
import pytest

redis = pytest.importorskip("redis")

from server_helpers import ThreadServer  # noqa: E402

from nearkit.io import read_index, write_index  # noqa: E402
from nearkit.server.vectors import VectorField  # noqa: E402

DIM = 10


def _create(r, metric):
    r.execute_command("FT.CREATE", "idx", "PREFIX", "1", "d:", "SCHEMA", "tag", "TAG", "v",
                      "VECTOR", "HNSW", "10", "TYPE", "FLOAT32", "DIM", str(DIM),
                      "DISTANCE_METRIC", metric, "M", "8", "EF_CONSTRUCTION", "64")


def _ask(r, q, filt="*"):
    res = r.execute_command("FT.SEARCH", "idx", f"{filt}=>[KNN 5 @v $b AS d]", "SORTBY", "d",
                            "RETURN", "1", "d", "PARAMS", "2", "b", q.tobytes(), "DIALECT", "2")
    return [(res[i], res[i + 1]) for i in range(1, len(res), 2)]


@pytest.mark.parametrize("metric", ["COSINE", "L2"])
def test_old_snapshot_with_vector_copy_loads_and_answers_the_same(tmp_path, metric, monkeypatch):
    data = str(tmp_path / "data")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, DIM)).astype(np.float32)
    qs = rng.normal(size=(8, DIM)).astype(np.float32)
    s = ThreadServer(data=data)
    try:
        r = redis.Redis(port=s.port, protocol=2)
        _create(r, metric)
        p = r.pipeline(transaction=False)
        for i, v in enumerate(x):
            p.hset(f"d:{i}", mapping={"tag": "a" if i % 3 else "b", "v": v.tobytes()})
        p.execute()
        r.delete("d:5")
        vf = s.server.search.indexes[b"idx"].vectors["v"]
        assert vf._vecs.size == 0 and vf.uses_graph  # the graph's copy is the only one
        before = [_ask(r, q) for q in qs] + [_ask(r, q, "(@tag:{b})") for q in qs]
    finally:
        s.stop()
    root = os.path.join(data, "snapshots", "server-indexes")
    states = [os.path.join(dp, f) for dp, _, fs in os.walk(root) for f in fs if f.endswith(".state")]
    assert len(states) == 1
    f = read_index(states[0])
    assert "vecs0" not in f.sections
    sections = {k: np.array(v) for k, v in f.sections.items()}
    has = sections["has0"]
    # what the earlier format stored beside the graph: every slot's vector
    sections["vecs0"] = np.zeros((has.shape[0], DIM), np.float32)
    os.remove(states[0])
    write_index(states[0], f.kind, f.dim, f.metric, dict(f.params), sections)
    flushed = []
    real_flush = VectorField.flush

    def counting_flush(self):
        flushed.append(len(self._pending))
        real_flush(self)

    monkeypatch.setattr(VectorField, "flush", counting_flush)
    s = ThreadServer(data=data)
    try:
        idx = s.server.search.indexes[b"idx"]
        assert idx.restored_from is not None
        # unchanged vectors were recognised in the graph, not inserted again
        assert sum(flushed) == 0
        r = redis.Redis(port=s.port, protocol=2)
        after = [_ask(r, q) for q in qs] + [_ask(r, q, "(@tag:{b})") for q in qs]
        assert after == before
    finally:
        s.stop()


@pytest.mark.parametrize("metric", ["L2", "COSINE", "IP"])
def test_filtered_knn_of_a_graph_field_is_exact_when_few_pass(metric):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3000, DIM)).astype(np.float32)
    vf = VectorField("HNSW", "FLOAT32", DIM, metric, {"M": "8", "EF_CONSTRUCTION": "64"})
    for s in range(3000):
        vf.upsert(s, x[s])
    vf.flush()
    for s in (4, 9):
        vf.remove(s)
    allowed = np.zeros(3000, bool)
    allowed[::5] = True          # 598 rows with a vector: the scan path, past the small-count shortcut
    q = rng.normal(size=DIM).astype(np.float32)
    slots, dist = vf.knn(q, 10, allowed, None)
    keep = np.flatnonzero(allowed & (np.arange(3000) % 5 == 0))
    keep = keep[(keep != 4) & (keep != 9)]
    xs = x[keep].astype(np.float64)
    if metric == "L2":
        d = ((xs - q) ** 2).sum(1)
    else:
        xn = xs / np.linalg.norm(xs, axis=1, keepdims=True) if metric == "COSINE" else xs
        qn = q / np.linalg.norm(q) if metric == "COSINE" else q
        d = 1 - xn @ qn
    order = np.argsort(d, kind="stable")[:10]
    assert slots.tolist() == keep[order].tolist()
    np.testing.assert_allclose(dist, d[order], rtol=1e-4, atol=1e-4)


def _graph_field(n, rng):
    x = rng.normal(size=(n, DIM)).astype(np.float32)
    vf = VectorField("HNSW", "FLOAT32", DIM, "L2", {"M": "8", "EF_CONSTRUCTION": "64"})
    for s in range(n):
        vf.upsert(s, x[s])
    vf.flush()
    return vf, x


def _brute(x, allowed, q, k):
    keep = np.flatnonzero(allowed)
    d = ((x[keep].astype(np.float64) - q) ** 2).sum(1)
    return keep[np.argsort(d, kind="stable")[:k]].tolist()


def test_filtered_knn_follows_the_stores_one_rule(monkeypatch):
    """The server's field decides scan-or-walk with the store's rule and constants
    (store.table.nearest / prefer_exact): moving the constants moves the server."""
    from nearkit.store import table as table_mod

    rng = np.random.default_rng(7)
    vf, x = _graph_field(3000, rng)
    allowed = np.zeros(3000, bool)
    allowed[::4] = True
    q = rng.normal(size=DIM).astype(np.float32)
    calls = []

    def spy(name):
        real = getattr(VectorField, name)

        def run(self, *args):
            calls.append(name)
            return real(self, *args)
        monkeypatch.setattr(VectorField, name, run)

    spy("scan")
    spy("walk")
    monkeypatch.setattr(table_mod, "EXACT_MIN_ROWS", 10_000)
    slots, _ = vf.knn(q, 10, allowed, 3000)
    assert calls == ["scan"] and slots.tolist() == _brute(x, allowed, q, 10)
    calls.clear()
    monkeypatch.setattr(table_mod, "EXACT_MIN_ROWS", 0)
    monkeypatch.setattr(table_mod, "EXACT_SCALE", 0.0)
    slots, _ = vf.knn(q, 10, allowed, 3000)  # ef >= rows: the walk is exhaustive
    assert calls == ["walk"] and slots.tolist() == _brute(x, allowed, q, 10)


def test_filtered_walk_that_comes_up_short_is_answered_by_the_scan(monkeypatch):
    from nearkit.store import table as table_mod

    rng = np.random.default_rng(8)
    vf, x = _graph_field(500, rng)
    allowed = np.ones(500, bool)
    allowed[1::2] = False
    q = rng.normal(size=DIM).astype(np.float32)
    monkeypatch.setattr(table_mod, "EXACT_MIN_ROWS", 0)
    monkeypatch.setattr(table_mod, "EXACT_SCALE", 0.0)
    real_walk = VectorField.walk

    def short_walk(self, q, k, mask, params):
        s, d = real_walk(self, q, k, mask, params)
        s[:, k // 2:], d[:, k // 2:] = -1, np.inf  # a walk that found only half
        return s, d

    monkeypatch.setattr(VectorField, "walk", short_walk)
    slots, dist = vf.knn(q, 10, allowed, None)
    assert slots.tolist() == _brute(x, allowed, q, 10) and np.isfinite(dist).all()
