"""KNN requests from many connections answered as one batched graph search: each
connection still gets its own replies, byte for byte what it gets alone, in request
order, with errors confined to the request that caused them."""

import socket
import time

import hiredis
import numpy as np
import pytest

from server_helpers import ThreadServer

DIM = 16
N = 3000


def _cmd(*args) -> bytes:
    args = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.reader = hiredis.Reader()

    def send(self, data: bytes):
        self.s.sendall(data)

    def replies(self, n: int) -> list:
        out = []
        deadline = time.time() + 20
        while len(out) < n and time.time() < deadline:
            r = self.reader.gets()
            if r is not False:
                out.append(r)
                continue
            chunk = self.s.recv(1 << 16)
            if not chunk:
                break
            self.reader.feed(chunk)
        return out

    def call(self, *args):
        self.send(_cmd(*args))
        return self.replies(1)[0]

    def close(self):
        self.s.close()


@pytest.fixture(scope="module")
def server():
    s = ThreadServer()
    c = Conn(s.port)
    assert c.call("FT.CREATE", "idx", "ON", "HASH", "PREFIX", "1", "d:", "SCHEMA", "g", "TAG",
                  "v", "VECTOR", "HNSW", "6", "TYPE", "FLOAT32", "DIM", DIM,
                  "DISTANCE_METRIC", "L2") == b"OK"
    rng = np.random.default_rng(7)
    base = rng.standard_normal((N, DIM)).astype(np.float32)
    c.send(b"".join(_cmd("HSET", f"d:{i}", "g", "ab"[i % 2], "v", base[i].tobytes())
                    for i in range(N)))
    assert c.replies(N) == [2] * N
    c.close()
    yield s
    s.stop()


def _knn(blob, k=10, ef=None):
    ef_txt = f" EF_RUNTIME {ef}" if ef else ""
    return ("FT.SEARCH", "idx", f"*=>[KNN {k} @v $b{ef_txt} AS d]", "SORTBY", "d",
            "RETURN", "1", "d", "LIMIT", "0", str(k), "PARAMS", "2", "b", blob, "DIALECT", "2")


def _script(rng, c):
    """Connection c's requests: fast-path KNN (two k/EF_RUNTIME groups), a hybrid
    filter, a NaN query, a wrong-size blob, RETURN of a field, and a write."""
    q = rng.standard_normal((4, DIM)).astype(np.float32)
    nan = q[3].copy()
    nan[c % DIM] = np.nan
    reqs = [
        _knn(q[0].tobytes()),
        _knn(q[1].tobytes(), k=5, ef=40),
        ("PING",),
        _knn(q[2].tobytes()),
        ("FT.SEARCH", "idx", "(@g:{a})=>[KNN 5 @v $b AS d]", "SORTBY", "d", "RETURN", "2", "d",
         "g", "PARAMS", "2", "b", q[0].tobytes(), "DIALECT", "2"),
        _knn(nan.tobytes()),
        _knn(q[1].tobytes()[:-4]),  # blob too short: an error for this request only
        ("SET", f"other:{c}", "x"),  # outside the index's prefix: results do not change
        _knn(q[3].tobytes(), k=5, ef=40),
        _knn(q[2].tobytes()),
    ]
    return [_cmd(*r) for r in reqs]


def test_batched_knn_from_many_connections_matches_one_at_a_time(server):
    rng = np.random.default_rng(1)
    n_conns = 12
    scripts = [_script(rng, c) for c in range(n_conns)]
    # Expected: every request sent alone on a single connection (nothing to batch with).
    alone = Conn(server.port)
    alone.call(*_knn(np.zeros(DIM, np.float32).tobytes()))  # the fast path knows the query now
    alone.call(*_knn(np.zeros(DIM, np.float32).tobytes(), k=5, ef=40))
    expected = [[None] * len(s) for s in scripts]
    for c, s in enumerate(scripts):
        for j, r in enumerate(s):
            alone.send(r)
            expected[c][j] = alone.replies(1)[0]
    alone.close()
    assert any(isinstance(x, hiredis.ReplyError) for x in expected[0])  # the bad blob
    assert expected[0][0][0] == 10 and len(expected[0][0]) == 21

    before = server.server.knn_batched_queries
    conns = [Conn(server.port) for _ in range(n_conns)]
    for c, s in zip(conns, scripts):  # everything in flight before any reply is read
        c.send(b"".join(s))
    got = [c.replies(len(s)) for c, s in zip(conns, scripts)]
    for c in conns:
        c.close()
    for c in range(n_conns):
        assert len(got[c]) == len(expected[c])
        for j, (g, e) in enumerate(zip(got[c], expected[c])):
            if isinstance(e, hiredis.ReplyError):
                assert isinstance(g, hiredis.ReplyError) and str(g) == str(e), (c, j)
            else:
                assert g == e, (c, j)
    assert server.server.knn_batched_queries > before  # the batched search did run
    c = Conn(server.port)
    stats = dict(line.split(":", 1) for line in c.call("INFO", "stats").decode().split("\r\n")
                 if ":" in line)
    c.close()
    assert int(stats["nearkit_knn_batched_queries"]) == server.server.knn_batched_queries
    assert 0 < int(stats["nearkit_knn_batches"]) < int(stats["nearkit_knn_batched_queries"])


def test_batched_knn_with_resp3_and_closed_connections(server):
    rng = np.random.default_rng(2)
    q = rng.standard_normal((8, DIM)).astype(np.float32)
    alone = Conn(server.port)
    want = [alone.call(*_knn(v.tobytes())) for v in q]
    alone.send(_cmd("HELLO", "3"))
    alone.replies(1)
    want3 = [alone.call(*_knn(v.tobytes())) for v in q]
    alone.close()

    conns = [Conn(server.port) for _ in range(8)]
    resp3 = conns[:3]
    for c in resp3:
        c.call("HELLO", "3")
    quitters = [Conn(server.port) for _ in range(4)]
    for c in quitters:  # requests whose connections are gone when the batch runs
        c.send(b"".join(_cmd(*_knn(v.tobytes())) for v in q))
        c.close()
    for c in conns:
        c.send(b"".join(_cmd(*_knn(v.tobytes())) for v in q))
    for i, c in enumerate(conns):
        assert c.replies(len(q)) == (want3 if c in resp3 else want), i
        c.close()
    # The server is still fine.
    c = Conn(server.port)
    assert c.call("PING") == b"PONG"
    c.close()


def test_batched_knn_survives_writes_in_between(server):
    """A write on one connection between KNN requests of others: each request sees
    the index as of its position in its own connection's stream."""
    rng = np.random.default_rng(3)
    v = rng.standard_normal(DIM).astype(np.float32)
    key = b"d:new-near"
    conns = [Conn(server.port) for _ in range(6)]
    writer = Conn(server.port)
    try:
        for c in conns:
            c.send(_cmd(*_knn(v.tobytes(), k=3)))
        writer.send(_cmd("HSET", key, "g", "a", "v", v.tobytes()))
        assert writer.replies(1) == [2]
        for c in conns:  # after the write was acknowledged: the new document is nearest
            c.replies(1)
            c.send(_cmd(*_knn(v.tobytes(), k=3)))
        for c in conns:
            r = c.replies(1)[0]
            assert r[1] == key and r[2] == [b"d", b"0"]
    finally:
        writer.call("DEL", key)
        writer.close()
        for c in conns:
            c.close()


def test_resp2_knn_replies_encodes_like_python():
    """The C++ encoder of the plain KNN reply against the same reply built in Python."""
    from nearkit import _core

    rng = np.random.default_rng(4)
    n_slots = 50
    slot_key = [b"k:%d" % s if s % 7 else None for s in range(n_slots)]  # None: freed slot
    live = {k: 1 for k in slot_key[::2] if k is not None}  # the others deleted/expired
    mags = 10.0 ** rng.integers(-30, 30, (40, 12))
    dist = (rng.standard_normal((40, 12)) * mags).astype(np.float32)
    dist[0, :3] = [0.0, np.inf, 1e-45]
    ids = rng.integers(0, n_slots + 5, (40, 12)).astype(np.int64)  # some beyond slot_key
    ids[1, 7:] = -1  # fewer results than k
    ids[2, :] = -1
    tail = b"*2\r\n$5\r\nscore\r\n"
    for lo, hi in ((0, 12), (3, 8), (11, 20)):
        got = _core.resp2_knn_replies(ids, dist, lo, hi, slot_key, live, tail)
        assert len(got) == ids.shape[0]
        for r in range(ids.shape[0]):
            total = int((ids[r] >= 0).sum())
            parts = []
            for s, d in zip(ids[r][lo:min(hi, total)].tolist(), dist[r][lo:min(hi, total)].tolist()):
                key = slot_key[s] if s < n_slots else None
                if key is None or key not in live:
                    continue
                v = b"%.12g" % d
                parts.append(b"$%d\r\n%s\r\n%s$%d\r\n%s\r\n" % (len(key), key, tail, len(v), v))
            assert got[r] == b"*%d\r\n:%d\r\n" % (1 + 2 * len(parts), total) + b"".join(parts), r
    with pytest.raises(ValueError):
        _core.resp2_knn_replies(ids, dist[:, :5], 0, 10, slot_key, live, tail)


def test_fast_knn_inside_multi_exec(server):
    rng = np.random.default_rng(5)
    q = rng.standard_normal(DIM).astype(np.float32)
    other = Conn(server.port)  # a second client: KNN requests would be batched
    c = Conn(server.port)
    try:
        want = c.call(*_knn(q.tobytes()))
        c.send(_cmd("MULTI") + _cmd(*_knn(q.tobytes())) + _cmd(*_knn(q.tobytes()[:-4]))
               + _cmd("PING") + _cmd("EXEC"))
        got = c.replies(5)
        assert got[:4] == [b"OK", b"QUEUED", b"QUEUED", b"QUEUED"]
        assert got[4][0] == want and got[4][2] == b"PONG"
        assert isinstance(got[4][1], hiredis.ReplyError) and "blob size" in str(got[4][1])
    finally:
        c.close()
        other.close()
