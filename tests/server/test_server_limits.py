"""Bounded resources in the server: request framing limits, nesting limits, sizes a
client passes (EF_RUNTIME, DIM, K), client count and idle clients."""

from __future__ import annotations

import logging
import socket
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nearkit.server.protocol import ProtocolError, RequestReader
from server_helpers import ThreadServer


def _cmd(*args) -> bytes:
    args = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


class Raw:
    def __init__(self, port, timeout=5):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def send(self, data: bytes):
        self.s.sendall(data)

    def line(self, timeout=5.0) -> bytes:
        """Everything received until a CRLF ends it (or the peer closes)."""
        self.s.settimeout(timeout)
        buf = b""
        while not buf.endswith(b"\r\n"):
            try:
                chunk = self.s.recv(65536)
            except (socket.timeout, ConnectionResetError):
                break
            if not chunk:
                break
            buf += chunk
        return buf

    def call(self, *args) -> bytes:
        self.send(_cmd(*args))
        return self.line()

    def closed(self, timeout=5.0) -> bool:
        self.s.settimeout(timeout)
        try:
            while self.s.recv(65536):
                pass
            return True
        except socket.timeout:
            return False
        except OSError:
            return True

    def close(self):
        self.s.close()


@pytest.fixture(scope="module")
def server():
    s = ThreadServer(max_request_bytes=1 << 20)
    yield s
    s.stop()


# -- request framing ---------------------------------------------------------------------------

@pytest.mark.parametrize("head,message", [
    (b"*4294967295\r\n", "invalid multibulk length"),
    (b"*2147483647\r\n", "invalid multibulk length"),
    (b"*9223372036854775807\r\n", "invalid multibulk length"),
    (b"*1\r\n$99999999999\r\n", "invalid bulk length"),
    (b"*2\r\n$4294967296\r\nab", "invalid bulk length"),
])
def test_reader_refuses_huge_counts_before_allocating(head, message):
    r = RequestReader(max_request_bytes=1 << 20)
    got = r.feed(_cmd("PING") + head)
    assert got[0] == [b"PING"] and isinstance(got[1], ProtocolError) and message in str(got[1])
    # the same header arriving a byte at a time
    r = RequestReader(max_request_bytes=1 << 20)
    got = []
    for i in range(len(head)):
        got += r.feed(head[i:i + 1])
    assert len(got) == 1 and message in str(got[0])


_arg = st.one_of(st.binary(max_size=40), st.sampled_from(
    [b"*4294967295\r\n", b"$99999999999\r\n", b"\r\n", b"*", b"x" * 300]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_arg, min_size=1, max_size=5), min_size=1, max_size=6), st.data())
def test_reader_framing_is_exact_across_splits(requests, data):
    # Bodies that look like huge headers must not be taken for headers, wherever the
    # stream is cut: the reader knows exactly where each request starts.
    stream = b"".join(_cmd(*r) for r in requests)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    r = RequestReader(max_request_bytes=1 << 20)
    got, last = [], 0
    for c in cuts + [len(stream)]:
        got += r.feed(stream[last:c])
        last = c
    assert got == requests


def test_huge_multibulk_answered_and_closed_without_traceback(server, caplog):
    caplog.set_level(logging.INFO)
    for head, message in ((b"*4294967295\r\n", b"invalid multibulk length"),
                          (b"*1\r\n$99999999999\r\n", b"invalid bulk length")):
        c = Raw(server.port)
        c.send(head)
        assert c.line() == b"-ERR Protocol error: " + message + b"\r\n"
        assert c.closed()
        c.close()
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    ok = Raw(server.port)
    assert ok.call("PING") == b"+PONG\r\n"
    ok.close()


# -- nesting -----------------------------------------------------------------------------------

def test_deep_query_nesting_is_a_syntax_error(server):
    import redis
    r = redis.Redis(port=server.port, socket_timeout=10, protocol=2)
    r.execute_command("FT.CREATE", "nest", "ON", "HASH", "PREFIX", "1", "nest:", "SCHEMA",
                      "t", "TEXT", "n", "NUMERIC")
    r.hset("nest:1", mapping={"t": "hello", "n": 1})
    for q in ("(" * 1000 + "hello" + ")" * 1000, "@t:(" + "(" * 1000 + "hello" + ")" * 1001,
              "-~" * 500 + "hello", "@t:" + "-~" * 500 + "hello"):
        with pytest.raises(redis.ResponseError, match="Syntax error") as exc:
            r.execute_command("FT.SEARCH", "nest", q)
        assert "internal" not in str(exc.value) and "Recursion" not in str(exc.value)
    # moderate nesting still works, and runs of one prefix operator any length (as Redis)
    assert r.execute_command("FT.SEARCH", "nest", "(" * 50 + "hello" + ")" * 50, "NOCONTENT")[0] == 1
    assert r.execute_command("FT.SEARCH", "nest", "-" * 1000 + "hello", "NOCONTENT")[0] == 1
    assert r.execute_command("FT.SEARCH", "nest", "-" * 1001 + "hello", "NOCONTENT")[0] == 0
    assert r.execute_command("FT.SEARCH", "nest", "~" * 5000 + "hello", "NOCONTENT")[0] == 1
    for expr in ("(" * 1000 + "1" + ")" * 1000, "-" * 1000 + "1", "abs(" * 500 + "1" + ")" * 500):
        with pytest.raises(redis.ResponseError, match="Syntax error") as exc:
            r.execute_command("FT.AGGREGATE", "nest", "*", "LOAD", "1", "@n", "APPLY", expr, "AS", "x")
        assert "internal" not in str(exc.value)
    # a long run of one operator is flat, not deep (Redis computes it too)
    for expr, value in (("+".join(["@n"] * 2000), b"2000"), ("+".join(["@n"] * 20), b"20"),
                        ("10-@n-@n*2^3", b"1"), ("2^3^2", b"64")):
        assert r.execute_command("FT.AGGREGATE", "nest", "*", "LOAD", "1", "@n",
                                 "APPLY", expr, "AS", "x")[1] == [b"n", b"1", b"x", value]
    assert r.ping()


def test_deep_json_is_refused(server):
    import redis
    r = redis.Redis(port=server.port, socket_timeout=10, protocol=2)
    for depth in (128, 100_000):  # RedisJSON's words and limit (127 levels)
        with pytest.raises(redis.ResponseError, match="^recursion limit exceeded at line 1 column 128$"):
            r.execute_command("JSON.SET", "deep", "$", "[" * depth + "]" * depth)
    assert r.execute_command("JSON.SET", "deep", "$", "[" * 127 + "]" * 127) == b"OK"
    # brackets inside strings do not count
    assert r.execute_command("JSON.SET", "str", "$", '{"a": "' + "[{" * 500 + '\\" ["}') == b"OK"
    # values nest under paths (as in Redis), but a document stays within MAX_DOCUMENT_DEPTH
    from nearkit.server.jsonpath import MAX_DOCUMENT_DEPTH
    r.execute_command("JSON.SET", "doc", "$", '{"a": {"b": {}}}')
    assert r.execute_command("JSON.SET", "doc", "$.a.b.c", "[" * 127 + "]" * 127) == b"OK"
    assert r.execute_command("JSON.GET", "doc", "$.a.b.c").startswith(b"[" * 128)
    r.execute_command("JSON.SET", "doc", "$", "{}")
    path = "$"
    for level in range(MAX_DOCUMENT_DEPTH // 100 + 1):
        value = "{" + '"a":{' * 99 + "}" * 100
        if len(path.split(".")) - 1 + 100 > MAX_DOCUMENT_DEPTH:
            with pytest.raises(redis.ResponseError, match="recursion limit exceeded"):
                r.execute_command("JSON.SET", "doc", path + ".a", value)
            break
        assert r.execute_command("JSON.SET", "doc", path + ".a", value) == b"OK"
        path += ".a" * 100
    else:
        raise AssertionError("the document never reached its depth limit")
    assert r.execute_command("JSON.GET", "doc").startswith(b'{"a":{"a":')
    with pytest.raises(redis.ResponseError):
        r.execute_command("JSON.GET", "doc", "$" + ".a" * 5000)
    assert r.ping()


# -- clients -------------------------------------------------------------------------------------

def test_max_clients_capped_to_the_open_file_limit():
    import os
    import resource
    import subprocess
    import sys

    import nearkit
    from server_helpers import free_port, wait_port

    port = free_port()
    parent = os.path.dirname(os.path.dirname(os.path.abspath(nearkit.__file__)))
    env = dict(os.environ, PYTHONPATH=parent + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(
        [sys.executable, "-m", "nearkit.server", "--port", str(port), "--no-uvloop"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64)))
    clients = []
    try:
        wait_port(port, 60, proc)
        first = Raw(port)
        assert first.call("CONFIG", "GET", "maxclients") == b"*2\r\n$10\r\nmaxclients\r\n$2\r\n32\r\n"
        clients.append(first)
        for _ in range(31):
            c = Raw(port)
            assert c.call("PING") == b"+PONG\r\n"
            clients.append(c)
        extra = Raw(port)
        assert extra.line() == b"-ERR max number of clients reached\r\n"
        assert extra.closed()
        extra.close()
        assert clients[0].call("PING") == b"+PONG\r\n"
    finally:
        for c in clients:
            c.close()
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert b"maxclients reduced to 32" in err
    assert b"Traceback" not in err


def test_idle_clients_are_closed_after_timeout():
    s = ThreadServer(timeout=1)
    try:
        idle, busy = Raw(s.port), Raw(s.port)
        assert idle.call("CONFIG", "GET", "timeout") == b"*2\r\n$7\r\ntimeout\r\n$1\r\n1\r\n"
        for _ in range(8):  # 2.4 s of activity: never idle for a whole second
            assert busy.call("PING") == b"+PONG\r\n"
            time.sleep(0.3)
        assert idle.closed(timeout=5)
        assert busy.call("PING") == b"+PONG\r\n"
        # CONFIG SET timeout 0 turns it off
        assert busy.call("CONFIG", "SET", "timeout", "0") == b"+OK\r\n"
        time.sleep(2.5)
        assert busy.call("PING") == b"+PONG\r\n"
        assert busy.call("CONFIG", "SET", "timeout", "-1").startswith(b"-ERR CONFIG SET failed")
        assert busy.call("CONFIG", "SET", "timeout", "x").startswith(b"-ERR CONFIG SET failed")
        assert busy.call("CONFIG", "GET", "timeout") == b"*2\r\n$7\r\ntimeout\r\n$1\r\n0\r\n"
    finally:
        s.stop()


# -- sizes a client passes ---------------------------------------------------------------------

class _EfSpy:
    """Stands in for an HNSW index's core object and records each search's ef."""

    def __init__(self, core):
        self._core_obj, self.efs = core, []

    def search_one(self, *args):
        self.efs.append(args[2])
        return self._core_obj.search_one(*args)

    def search(self, *args):
        self.efs.append(args[2])
        return self._core_obj.search(*args)

    def __len__(self):  # dunder methods are looked up on the type, not via __getattr__
        return len(self._core_obj)

    def __getattr__(self, name):
        return getattr(self._core_obj, name)


def test_ef_runtime_and_k_are_bounded_by_what_is_stored(server):
    # (Values kept to 10**7 so that on a server without the bound this fails by the
    # recorded ef, after ~100 MB and a fraction of a second, rather than by exhausting memory.)
    import redis
    r = redis.Redis(port=server.port, socket_timeout=30, protocol=2)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((200, 8)).astype(np.float32)
    r.execute_command("FT.CREATE", "efidx", "ON", "HASH", "PREFIX", "1", "ef:", "SCHEMA", "v", "VECTOR",
                      "HNSW", "8", "TYPE", "FLOAT32", "DIM", "8", "DISTANCE_METRIC", "L2",
                      "EF_RUNTIME", "10000000")
    p = r.pipeline(transaction=False)
    for i, v in enumerate(x):
        p.hset(f"ef:{i}", "v", v.tobytes())
    p.execute()
    vf = server.server.search.indexes[b"efidx"].vectors["v"]
    spy = _EfSpy(vf._index._core)
    vf._index._core = spy
    try:
        q = x[7] + 0.01
        exact = np.argsort(((x - q) ** 2).sum(1))[:10]
        for query, params in (("*=>[KNN 10 @v $b]", []),
                              ("*=>[KNN 10 @v $b EF_RUNTIME 20000000]", []),
                              ("*=>[KNN 10 @v $b EF_RUNTIME $ef]", ["ef", "30000000"]),
                              ("*=>[KNN 4294967295 @v $b EF_RUNTIME 20000000]", [])):
            res = r.execute_command("FT.SEARCH", "efidx", query, "PARAMS", str(2 + len(params)),
                                    "b", q.tobytes(), *params, "NOCONTENT", "LIMIT", "0", "1000000000",
                                    "DIALECT", "2")
            ids = [int(k.split(b":")[1]) for k in res[1:]]
            if "4294967295" in query:
                assert res[0] == 200 and sorted(ids) == list(range(200))
            else:  # without SORTBY the nearest k come in document order, as Redis 7.4
                assert sorted(ids) == sorted(exact.tolist())
        assert spy.efs and max(spy.efs) <= 200
    finally:
        vf._index._core = spy._core_obj


def test_dimension_and_graph_limits(server):
    import redis

    from nearkit.server.ft.schema import MAX_DIM
    r = redis.Redis(port=server.port, socket_timeout=30, protocol=2)

    def create(name, *params):
        return r.execute_command("FT.CREATE", name, "ON", "HASH", "PREFIX", "1", name + ":", "SCHEMA",
                                 "v", "VECTOR", "HNSW", str(4 + len(params)), "TYPE", "FLOAT32",
                                 "DISTANCE_METRIC", "L2", *params)

    for params in (("DIM", str(MAX_DIM + 1)), ("DIM", "50000000"), ("DIM", "4", "M", "2049")):
        with pytest.raises(redis.ResponseError, match="outside acceptable bounds"):
            create("big", *params)
    assert create("wide", "DIM", str(MAX_DIM)) == b"OK"
    assert create("deep", "DIM", "4", "M", "2048", "EF_CONSTRUCTION", "1000000000") == b"OK"
    r.hset("deep:1", "v", np.ones(4, np.float32).tobytes())
    assert r.execute_command("FT.SEARCH", "deep", "*", "NOCONTENT")[0] == 1
    # the first vector of a wide field reserves a few rows, not 1024 x DIM
    r.hset("wide:1", "v", np.ones(MAX_DIM, np.float32).tobytes())
    vf = server.server.search.indexes[b"wide"].vectors["v"]
    assert vf.count == 1 and vf.memory_bytes <= 8 << 20
    res = r.execute_command("FT.SEARCH", "wide", "*=>[KNN 3 @v $b]", "PARAMS", "2", "b",
                            np.ones(MAX_DIM, np.float32).tobytes(), "NOCONTENT", "DIALECT", "2")
    assert res == [1, b"wide:1"]


# -- the password: out of the process list, compared in constant time ---------------------------

def _parse(*argv):
    import argparse

    from nearkit.server.server import add_serve_arguments
    p = argparse.ArgumentParser()
    add_serve_arguments(p)
    return p.parse_args(list(argv))


def test_config_file_and_environment(tmp_path, monkeypatch):
    from nearkit.server.server import REQUIREPASS_ENV, config_from_args
    monkeypatch.delenv(REQUIREPASS_ENV, raising=False)
    conf = tmp_path / "nearkit.conf"
    conf.write_text('# a Redis-style file\nrequirepass "s3 cret"  # quoted: holds a space\n'
                    "port 7001\nbind 127.0.0.2 ::1\ntimeout 30\nmaxclients 50\n")
    c = config_from_args(_parse("--config", str(conf)))
    assert (c.requirepass, c.port, c.host, c.timeout, c.max_clients) == ("s3 cret", 7001, "127.0.0.2", 30, 50)
    c = config_from_args(_parse("--config", str(conf), "--port", "7002", "--requirepass", "flag"))
    assert (c.requirepass, c.port, c.timeout) == ("flag", 7002, 30)  # flags win
    c = config_from_args(_parse())
    assert (c.requirepass, c.port, c.host, c.timeout, c.max_clients) == (None, 6379, "127.0.0.1", 0, 10000)
    monkeypatch.setenv(REQUIREPASS_ENV, "from-env")
    assert config_from_args(_parse()).requirepass == "from-env"
    assert config_from_args(_parse("--config", str(conf))).requirepass == "s3 cret"
    for bad, why in (("save 900 1\n", "unknown directive 'save'"), ("port x\n", "port needs an integer"),
                     ("requirepass\n", "wrong number of arguments"), ('requirepass "open\n', "line 2: No closing")):
        conf.write_text("timeout 1\n" + bad)
        with pytest.raises(ValueError, match=why):
            config_from_args(_parse("--config", str(conf)))


def test_password_from_a_file_is_not_in_the_process_list(tmp_path):
    import os
    import subprocess
    import sys

    import nearkit
    from server_helpers import free_port, wait_port

    conf = tmp_path / "nearkit.conf"
    conf.write_text("requirepass hunter2-secret\n")
    port = free_port()
    parent = os.path.dirname(os.path.dirname(os.path.abspath(nearkit.__file__)))
    env = dict(os.environ, PYTHONPATH=parent + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([sys.executable, "-m", "nearkit.server", "--port", str(port),
                             "--config", str(conf), "--no-uvloop"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, 60, proc)
        with open(f"/proc/{proc.pid}/cmdline", "rb") as f:
            assert b"hunter2" not in f.read()
        c = Raw(port)
        assert c.call("PING") == b"-NOAUTH Authentication required.\r\n"
        assert c.call("AUTH", "hunter2-secret") == b"+OK\r\n"
        assert c.call("PING") == b"+PONG\r\n"
        c.close()
    finally:
        proc.terminate()
        proc.wait(30)
    bad = tmp_path / "bad.conf"
    bad.write_text("requirepass\n")
    out = subprocess.run([sys.executable, "-m", "nearkit.server", "--config", str(bad)], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and "wrong number of arguments" in out.stderr
    assert "Traceback" not in out.stderr


def test_password_compared_in_constant_time(monkeypatch):
    import hmac

    from nearkit.server import cmd_server
    calls, real = [], hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(cmd_server.hmac, "compare_digest", spy)
    s = ThreadServer(requirepass="pässword")
    try:
        c = Raw(s.port)
        assert c.call("AUTH", "p").startswith(b"-WRONGPASS")
        assert c.call("AUTH", "pässword".encode()) == b"+OK\r\n"
        assert c.call("HELLO", "2", "AUTH", "default", "nope").startswith(b"-WRONGPASS")
        c.close()
    finally:
        s.stop()
    assert calls == [(b"p", "pässword".encode()), ("pässword".encode(),) * 2,
                     (b"nope", "pässword".encode())]


def test_reader_goes_back_to_the_fast_path():
    # After a long number (here a 1 MB value's length) the reader checks headers only
    # until that request is read; later input without long numbers is not checked.
    r = RequestReader(max_request_bytes=64 << 20)
    calls = []
    real = r._check_head
    r._check_head = lambda head: calls.append(head) or real(head)
    big = _cmd("SET", "k", b"x" * (10**7 + 1))
    assert r.feed(big[:100]) == [] and calls
    assert r.feed(big[100:]) == [[b"SET", b"k", b"x" * (10**7 + 1)]]
    calls.clear()
    assert r.feed(_cmd("PING") * 3) == [[b"PING"]] * 3
    assert calls == []
