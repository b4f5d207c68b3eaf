"""Wire-level behaviour: framing, RESP3 shapes, auth, limits, and fuzzing of the
RESP and query parsers (the server must never crash; a connection either stays
usable or is closed cleanly)."""

import socket
import time

import numpy as np
import pytest

from server_helpers import ThreadServer

from nearkit.server.protocol import (  # noqa: E402
    NULL_ARRAY, Double, Error, Map, ProtocolError, RequestReader, Set, Simple, Verbatim, encode,
)

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


def _cmd(*args) -> bytes:
    args = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


class Raw:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""

    def send(self, data: bytes):
        self.s.sendall(data)

    def read_until(self, n_lines_or_pred, timeout=5.0) -> bytes:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if n_lines_or_pred(self.buf):
                out, self.buf = self.buf, b""
                return out
            try:
                chunk = self.s.recv(65536)
            except (socket.timeout, ConnectionResetError):  # a reset ends the stream too
                break
            if not chunk:
                break
            self.buf += chunk
        out, self.buf = self.buf, b""
        return out

    def call(self, *args) -> bytes:
        self.send(_cmd(*args))
        return self.read_until(lambda b: b.endswith(b"\r\n"), 2)

    def closed(self, timeout=3.0) -> bool:
        self.s.settimeout(timeout)
        try:
            while True:
                chunk = self.s.recv(65536)
                if not chunk:
                    return True
        except socket.timeout:
            return False
        except OSError:  # ConnectionResetError included: the server closed with a reset
            return True

    def close(self):
        self.s.close()


@pytest.fixture(scope="module")
def server():
    s = ThreadServer(max_request_bytes=1 << 20)
    yield s
    s.stop()


# -- encoding ------------------------------------------------------------------------------

def test_encoding_resp2_and_resp3():
    assert encode(Simple("OK")) == b"+OK\r\n"
    assert encode(Error("ERR x\r\ny")) == b"-ERR x  y\r\n"
    assert encode(None) == b"$-1\r\n" and encode(None, True) == b"_\r\n"
    assert encode(NULL_ARRAY) == b"*-1\r\n"
    assert encode(Map([("a", 1)])) == b"*2\r\n$1\r\na\r\n:1\r\n"
    assert encode(Map([("a", 1)]), True) == b"%1\r\n$1\r\na\r\n:1\r\n"
    assert encode(Set([b"x"]), True) == b"~1\r\n$1\r\nx\r\n"
    assert encode(Double(0.25)) == b"$4\r\n0.25\r\n" and encode(Double(0.25), True) == b",0.25\r\n"
    assert encode(Double(float("nan")), True) == b",nan\r\n"
    assert encode(Verbatim("hi"), True) == b"=6\r\ntxt:hi\r\n"
    assert encode(True, True) == b"#t\r\n" and encode(True) == b":1\r\n"


def test_reader_framing():
    r = RequestReader()
    assert r.feed(_cmd("PING")[:5]) == []
    assert r.feed(_cmd("PING")[5:] + _cmd("ECHO", "x")) == [[b"PING"], [b"ECHO", b"x"]]
    data = b"".join(_cmd("SET", f"k{i}", "v" * i) for i in range(30))
    got = []
    for i in range(0, len(data), 3):
        got += r.feed(data[i:i + 3])
    assert got == [[b"SET", f"k{i}".encode(), b"v" * i] for i in range(30)]
    inline = RequestReader()
    assert inline.feed(b"PING a\r\nset k 'a b'\r\nGE") == [[b"PING", b"a"], [b"set", b"k", b"a b"]]
    assert inline.feed(b"T k\n") == [[b"GET", b"k"]]
    got = RequestReader().feed(_cmd("PING") + b"*1\r\n:5\r\n" + _cmd("PING"))
    assert got[0] == [b"PING"] and isinstance(got[1], ProtocolError) and len(got) == 2
    assert isinstance(RequestReader().feed(b"*1\r\n$abc\r\n")[-1], ProtocolError)
    small = RequestReader(max_request_bytes=1000)
    assert isinstance(small.feed(b"*1\r\n$100000\r\n" + b"x" * 2000)[-1], ProtocolError)
    assert small.feed(_cmd("PING")) == []  # nothing is read after the damage


# -- a live server --------------------------------------------------------------------------

def test_pipelined_and_split_requests(server):
    c = Raw(server.port)
    data = b"".join(_cmd("SET", f"k{i}", "v" * i) for i in range(50)) + _cmd("GET", "k49")
    for i in range(0, len(data), 7):  # trickle in 7-byte pieces
        c.send(data[i:i + 7])
    out = c.read_until(lambda b: b.endswith(b"v" * 49 + b"\r\n"))
    assert out.count(b"+OK\r\n") == 50 and out.endswith(b"$49\r\n" + b"v" * 49 + b"\r\n")
    c.close()


def test_resp3_shapes(server):
    c = Raw(server.port)
    assert c.call("HELLO", "3").startswith(b"%7\r\n")
    c.call("DEL", "h")
    assert c.call("HGETALL", "h") == b"%0\r\n"
    assert c.call("HGET", "h", "f") == b"_\r\n"
    assert c.call("HELLO", "4") == b"-NOPROTO unsupported protocol version\r\n"
    assert c.call("HELLO", "2").startswith(b"*14\r\n")
    assert c.call("HGET", "h", "f") == b"$-1\r\n"
    c.close()


def test_multi_exec(server):
    c = Raw(server.port)
    assert c.call("MULTI") == b"+OK\r\n"
    assert c.call("SET", "a", "1") == b"+QUEUED\r\n"
    assert c.call("NOPE").startswith(b"-ERR unknown command")
    assert c.call("EXEC") == b"-EXECABORT Transaction discarded because of previous errors.\r\n"
    c.call("MULTI")
    c.call("SET", "a", "1")
    c.call("HGET", "a", "f")
    out = c.call("EXEC")
    assert out == b"*2\r\n+OK\r\n-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
    c.close()


def test_slow_reader_does_not_pile_up_replies(server):
    c = Raw(server.port)
    c.call("SET", "big", "x" * 100_000)
    c.send(_cmd("GET", "big") * 500)  # 50 MB of replies that nobody reads yet
    # It stops answering (and reading from) the client that does not read...
    deadline = time.time() + 10
    while not any(x._write_paused for x in list(server.server.clients)):
        assert time.time() < deadline
        time.sleep(0.05)
    assert _alive(server.port)  # ...and keeps serving the others
    total = 0
    c.s.settimeout(5)
    while total < 500 * 100_000:
        chunk = c.s.recv(1 << 20)
        if not chunk:
            break
        total += len(chunk)
    assert total >= 500 * 100_000
    c.close()


def test_protocol_errors_close_the_connection(server):
    for junk in (b"*1\r\n:5\r\n", b"*2\r\n$x\r\n", b"*1\r\n$-7\r\n", b"*1\r\n*1\r\n$1\r\na\r\n"):
        c = Raw(server.port)
        c.send(junk)
        out = c.read_until(lambda b: b.endswith(b"\r\n"), 2)
        assert out.startswith(b"-ERR Protocol error"), (junk, out)
        assert c.closed()
        c.close()
    big = Raw(server.port)
    # The declared length alone is refused (before the payload arrives): send only the
    # start, or the server's close could reset the connection under a long send.
    big.send(b"*1\r\n$100000000\r\n" + b"x" * 1024)
    assert big.read_until(lambda b: b.endswith(b"\r\n"), 3).startswith(b"-ERR Protocol error")
    big.close()
    ok = Raw(server.port)
    assert ok.call("PING") == b"+PONG\r\n"
    ok.close()


def test_requirepass():
    s = ThreadServer(requirepass="s3cret")
    try:
        c = Raw(s.port)
        assert c.call("PING") == b"-NOAUTH Authentication required.\r\n"
        assert c.call("FT._LIST") == b"-NOAUTH Authentication required.\r\n"
        assert c.call("AUTH", "wrong") == b"-WRONGPASS invalid username-password pair or user is disabled.\r\n"
        assert c.call("AUTH", "s3cret") == b"+OK\r\n"
        assert c.call("PING") == b"+PONG\r\n"
        c.close()
        redis = pytest.importorskip("redis")
        for proto in (2, 3):
            r = redis.Redis(port=s.port, password="s3cret", protocol=proto)
            assert r.ping()
            from redis.backoff import NoBackoff
            from redis.retry import Retry
            with pytest.raises(redis.AuthenticationError):
                redis.Redis(port=s.port, password="nope", protocol=proto,
                            retry=Retry(NoBackoff(), 0)).ping()
    finally:
        s.stop()


def test_max_clients():
    s = ThreadServer(max_clients=2)
    try:
        a, b = Raw(s.port), Raw(s.port)
        assert a.call("PING") == b"+PONG\r\n" and b.call("PING") == b"+PONG\r\n"
        c = Raw(s.port)
        assert c.read_until(lambda x: x.endswith(b"\r\n"), 2) == b"-ERR max number of clients reached\r\n"
        assert c.closed()
        a.close()
        deadline = time.time() + 10
        while len(s.server.clients) >= 2:  # wait until the server has seen the close
            assert time.time() < deadline
            time.sleep(0.05)
        d = Raw(s.port)
        assert d.call("PING") == b"+PONG\r\n"
    finally:
        s.stop()


# -- fuzzing ----------------------------------------------------------------------------------

def _alive(port):
    c = Raw(port)
    try:
        return c.call("PING") == b"+PONG\r\n"
    finally:
        c.close()


_VALID = [_cmd("PING"), _cmd("HSET", "fz:1", "t", "a", "v", np.zeros(4, np.float32).tobytes()),
          _cmd("FT.SEARCH", "fz", "*"), _cmd("GET", "x"), _cmd("HELLO", "3")]


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.one_of(
    st.binary(max_size=200),
    st.lists(st.sampled_from(_VALID), min_size=1, max_size=4).map(b"".join).flatmap(
        lambda base: st.tuples(st.just(base), st.integers(0, max(0, len(base) - 1)), st.binary(max_size=6))
        .map(lambda t: t[0][:t[1]] + t[2] + t[0][t[1] + len(t[2]):])),
))
def test_fuzz_resp_stream(server, data):
    c = Raw(server.port)
    try:
        c.send(data + _cmd("PING"))
        c.s.settimeout(0.02)
        try:
            while c.s.recv(65536):
                pass
        except (socket.timeout, ConnectionResetError):
            pass
    finally:
        c.close()
    assert _alive(server.port)


_QUERY_ALPHABET = st.sampled_from(list("@{}[]()|-~*$=>:;, \\\"'") + ["KNN", "VECTOR_RANGE", "AS", "t", "n",
                                                                    "v", "$b", "inf", "1", "(2",
                                                                    "EF_RUNTIME", "=>[", "]", "{$"])


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(q=st.lists(_QUERY_ALPHABET, max_size=20).map("".join), dialect=st.sampled_from(["1", "2"]))
def test_fuzz_query_parser(server, q, dialect):
    redis = pytest.importorskip("redis")
    r = redis.Redis(port=server.port)
    if not r.execute_command("FT._LIST"):
        r.execute_command("FT.CREATE", "fz", "PREFIX", "1", "fz:", "SCHEMA", "t", "TAG", "n", "NUMERIC",
                          "v", "VECTOR", "FLAT", "6", "TYPE", "FLOAT32", "DIM", "4", "DISTANCE_METRIC", "L2")
        r.hset("fz:1", mapping={"t": "a", "n": 1, "v": np.ones(4, np.float32).tobytes()})
    try:
        r.execute_command("FT.SEARCH", "fz", q, "PARAMS", "2", "b", np.ones(4, np.float32).tobytes(),
                          "DIALECT", dialect)
        r.execute_command("FT.AGGREGATE", "fz", q, "PARAMS", "2", "b", np.ones(4, np.float32).tobytes(),
                          "DIALECT", dialect)
    except redis.ResponseError as exc:
        assert "internal error" not in str(exc), (q, str(exc))
    assert r.ping()
    r.close()
