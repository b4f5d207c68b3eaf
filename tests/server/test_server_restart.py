"""Crash safety: kill -9 the server while clients write; every acknowledged write
(durability=always) is there after a restart, and the search index is rebuilt."""

import threading
import time

import numpy as np
import pytest

redis = pytest.importorskip("redis")

from server_helpers import ProcessServer  # noqa: E402


def _writer(port, acked, pending, stop, worker):
    """Write and delete keys; ``acked`` gets (key, value or None) once the server answered,
    ``pending`` holds the writes of the one request in flight (applied or not)."""
    r = redis.Redis(port=port)
    i = 0
    try:
        while not stop.is_set():
            key = f"doc:{worker}:{i}"
            vec = np.full(4, i, np.float32).tobytes()
            if i % 3 == 0:
                ops = [(key, i), (f"{key}:b", i)]
                pending[:] = ops
                p = r.pipeline(transaction=True)
                p.hset(key, mapping={"n": i, "v": vec})
                p.hset(f"{key}:b", mapping={"n": i, "v": vec})
                p.execute()
            else:
                ops = [(key, i)]
                pending[:] = ops
                r.hset(key, mapping={"n": i, "v": vec})
            acked.extend(ops)
            if i % 5 == 4:
                ops = [(f"doc:{worker}:{i - 1}", None)]
                pending[:] = ops
                r.delete(f"doc:{worker}:{i - 1}")
                acked.extend(ops)
            pending[:] = []
            i += 1
    except (redis.ConnectionError, redis.TimeoutError, ConnectionError):
        pass


@pytest.mark.parametrize("round_", range(2))
def test_kill9_keeps_acknowledged_writes(tmp_path, round_):
    data = str(tmp_path / "data")
    srv = ProcessServer("--data", data, "--durability", "always")
    try:
        r = redis.Redis(port=srv.port)
        r.execute_command("FT.CREATE", "idx", "PREFIX", "1", "doc:", "SCHEMA", "n", "NUMERIC",
                          "v", "VECTOR", "FLAT", "6", "TYPE", "FLOAT32", "DIM", "4",
                          "DISTANCE_METRIC", "L2")
        r.set("before", "x")
        acked = [[] for _ in range(3)]
        pending = [[] for _ in range(3)]
        stop = threading.Event()
        threads = [threading.Thread(target=_writer, args=(srv.port, acked[w], pending[w], stop, w))
                   for w in range(3)]
        for t in threads:
            t.start()
        time.sleep(0.8 + 0.4 * round_)
        srv.kill9()
        stop.set()
        for t in threads:
            t.join(10)
    finally:
        srv.stop()
    assert sum(len(a) for a in acked) > 50
    srv = ProcessServer("--data", data, "--durability", "always")
    try:
        r = redis.Redis(port=srv.port, protocol=2)
        assert r.get("before") == b"x"
        expect = {}
        for a in acked:
            for key, val in a:
                expect[key] = val
        in_flight = {key: val for p in pending for key, val in p}
        for key, val in expect.items():
            got = r.hget(key, "n")
            allowed = {val, in_flight[key]} if key in in_flight else {val}
            assert (None if got is None else int(got)) in allowed, key
            if got is not None:
                assert r.hget(key, "v") == np.full(4, int(got), np.float32).tobytes()
        # The index definition survived and the documents are indexed again.
        info = r.ft("idx").info()
        assert int(info["num_docs"]) == r.dbsize() - 1
        res = r.execute_command("FT.SEARCH", "idx", "*=>[KNN 1 @v $b AS d]", "PARAMS", "2", "b",
                                np.full(4, 3, np.float32).tobytes(), "SORTBY", "d",
                                "RETURN", "1", "d", "DIALECT", "2")
        assert res[0] == 1
    finally:
        srv.stop()


def test_cli_serve_persists_between_runs(tmp_path):
    """`nearkit serve --data DIR` (the CLI entry point) keeps keys and index definitions."""
    import os
    import subprocess
    import sys

    import nearkit
    from server_helpers import free_port, wait_port

    parent = os.path.dirname(os.path.dirname(os.path.abspath(nearkit.__file__)))
    env = dict(os.environ, PYTHONPATH=parent)
    for run in range(2):
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "nearkit", "serve", "--port", str(port),
                                 "--data", str(tmp_path), "--durability", "everysec"], env=env,
                                stdout=subprocess.DEVNULL, stderr=open(tmp_path / f"log{run}", "w"))
        try:
            wait_port(port, 60, proc)
            r = redis.Redis(port=port, protocol=2)
            if run == 0:
                r.execute_command("FT.CREATE", "i", "PREFIX", "1", "k:", "SCHEMA", "t", "TAG")
                r.hset("k:1", "t", "a")
            else:
                assert r.hget("k:1", "t") == b"a"
                assert r.execute_command("FT.SEARCH", "i", "@t:{a}", "NOCONTENT") == [1, b"k:1"]
        finally:
            proc.terminate()  # a clean shutdown commits everything (everysec)
            proc.wait(30)
            assert "Traceback" not in open(tmp_path / f"log{run}").read()
