"""`nearkit serve --data DIR` keeps its record in a nearkit store: it holds the store's
writer lock (a second server or writer is refused, naming it), the store's own API
can read what it wrote, and a directory in the old server format is refused."""

import os
import subprocess
import sys

import pytest

redis = pytest.importorskip("redis")

import nearkit  # noqa: E402
from nearkit.store import StoreLockedError  # noqa: E402
from server_helpers import ProcessServer, ThreadServer, free_port  # noqa: E402


def _serve(*args, timeout=60):
    """Run `python -m nearkit serve ...` expecting it to exit by itself: (returncode, stderr)."""
    parent = os.path.dirname(os.path.dirname(os.path.abspath(nearkit.__file__)))
    env = dict(os.environ, PYTHONPATH=parent)
    out = subprocess.run([sys.executable, "-m", "nearkit", "serve", "--port", str(free_port()), *args],
                         env=env, capture_output=True, text=True, timeout=timeout)
    return out.returncode, out.stderr


def test_second_server_on_the_same_data_is_refused(tmp_path):
    data = str(tmp_path / "data")
    first = ProcessServer("--data", data, "--durability", "always")
    try:
        r = redis.Redis(port=first.port, protocol=2)
        r.set("a", "1")
        code, err = _serve("--data", data)
        assert code != 0
        assert "Traceback" not in err
        assert f"already open for writing by process {first.proc.pid}" in err, err
        assert data in err
        with pytest.raises(StoreLockedError, match=f"process {first.proc.pid}"):
            nearkit.open(data)  # nor can another program open it to write
        # The first keeps serving, reads and writes.
        assert r.get("a") == b"1"
        r.set("b", "2")
        assert r.dbsize() == 2
    finally:
        first.stop()
    # Once the first is gone, the directory opens again with everything in it.
    second = ProcessServer("--data", data)
    try:
        r = redis.Redis(port=second.port, protocol=2)
        assert r.mget("a", "b") == [b"1", b"2"]
    finally:
        second.stop()


def test_store_writer_refused_while_the_server_runs(tmp_path):
    data = str(tmp_path / "data")
    s = ThreadServer(data=data)
    try:
        r = redis.Redis(port=s.port, protocol=2)
        r.hset("doc:1", mapping={"t": "x"})
        r.execute_command("FT.CREATE", "idx", "PREFIX", "1", "doc:", "SCHEMA", "t", "TAG")
        with pytest.raises(StoreLockedError, match=f"process {os.getpid()} \\(this process\\)"):
            nearkit.open(data)
        from nearkit.server import Config, Server

        with pytest.raises(StoreLockedError, match="already open for writing"):
            Server(Config(port=0, data=data))
        # What the server acknowledged (durability=always) is in the store: a read-only
        # view, which takes no lock, sees its key tables.
        with nearkit.open(data, read_only=True) as db:
            assert db.list_key_tables() == ["server.dicts", "server.indexes", "server.keys",
                                            "server.skipped"]
            assert list(db.key_table("server.keys").keys()) == [b"doc:1"]
            assert list(db.key_table("server.indexes").keys()) == [b"idx"]
        assert r.hget("doc:1", "t") == b"x"  # still serving
    finally:
        s.stop()
    with nearkit.open(data) as db:  # the lock went with the server
        assert db.key_table("server.keys").changes == 1


def test_everysec_kill9_loses_at_most_about_a_second(tmp_path):
    import time

    data = str(tmp_path / "data")
    srv = ProcessServer("--data", data, "--durability", "everysec")
    acked = []
    try:
        r = redis.Redis(port=srv.port, protocol=2)
        t_end = time.time() + 2.5
        while time.time() < t_end:
            r.set(f"k{len(acked)}", str(len(acked)))
            acked.append(time.time())
        srv.kill9()
        t_kill = time.time()
    finally:
        srv.stop()
    srv = ProcessServer("--data", data, "--durability", "everysec")
    try:
        r = redis.Redis(port=srv.port, protocol=2)
        n = r.dbsize()
        # One client wrote in order: what survived is a prefix, never a hole...
        assert n == 0 or r.get(f"k{n - 1}") == str(n - 1).encode()
        assert not r.exists(f"k{n}")
        # ...that holds every write acknowledged more than 1.5 s before the kill.
        old = sum(t < t_kill - 1.5 for t in acked)
        assert old > 0 and n >= old, (n, old, len(acked))
    finally:
        srv.stop()


def test_old_server_format_is_refused_not_ignored(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "nearkit-server.sqlite3").write_bytes(b"SQLite format 3\x00")
    code, err = _serve("--data", str(data))
    assert code != 0
    assert "Traceback" not in err
    assert "old server format" in err and "nearkit-server.sqlite3" in err, err
    assert not (data / "store.sqlite").exists()  # nothing was created beside it


def test_everysec_and_off_keep_what_a_clean_shutdown_commits(tmp_path):
    for mode in ("everysec", "off"):
        data = str(tmp_path / mode)
        s = ThreadServer(data=data, durability=mode)
        try:
            r = redis.Redis(port=s.port, protocol=2)
            p = r.pipeline(transaction=False)
            for i in range(300):
                p.hset(f"k:{i}", mapping={"n": i})
            p.execute()
            r.delete("k:7")
            r.expire("k:8", 1000)
        finally:
            s.stop()
        s = ThreadServer(data=data, durability=mode)
        try:
            r = redis.Redis(port=s.port, protocol=2)
            assert r.dbsize() == 299 and r.hget("k:299", "n") == b"299" and not r.exists("k:7")
            assert 990 <= r.ttl("k:8") <= 1000 and r.ttl("k:9") == -1
        finally:
            s.stop()


def test_record_encoding_round_trips_every_value_type():
    from nearkit.server.keyspace import JsonDoc
    from nearkit.server.persist import decode_record, encode_record

    for value in (b"", b"\x00\xff" * 300, {}, {b"": b"", b"f": b"\x00" * 512, b"g\x00": b"v"}):
        for exp in (None, 0, 1_700_000_000_123):
            assert decode_record(encode_record(value, exp)) == (value, exp)
    doc, exp = decode_record(encode_record(JsonDoc({"a": [1, 2.5, None, "é"]}), 5))
    assert isinstance(doc, JsonDoc) and doc.value == {"a": [1, 2.5, None, "é"]} and exp == 5
    with pytest.raises(TypeError, match="cannot store list"):
        encode_record([1], None)
    with pytest.raises(ValueError, match="unknown stored value kind 9"):
        decode_record(b"\x09" + b"\xff" * 8 + b"x")
