"""What FT.DICTADD word lists and SKIPINITIALSCAN leave behind survives a restart of a
durable server (--data), as Redis keeps both in its RDB."""

import pytest

redis = pytest.importorskip("redis")

from server_helpers import ProcessServer  # noqa: E402


def _search_keys(r, index, query="*"):
    reply = r.execute_command("FT.SEARCH", index, query, "NOCONTENT", "DIALECT", "2")
    return reply[0], sorted(reply[1:])


@pytest.mark.parametrize("stop", ["clean", "kill9"])
def test_dicts_and_skipped_keys_survive_a_restart(tmp_path, stop):
    data = str(tmp_path / "data")
    srv = ProcessServer("--data", data, "--durability", "always")
    try:
        r = redis.Redis(port=srv.port, decode_responses=True, protocol=2)
        assert r.execute_command("FT.DICTADD", "d1", "alpha", "beta", "gamma") == 3
        assert r.execute_command("FT.DICTDEL", "d1", "beta") == 1
        r.execute_command("FT.DICTADD", "d2", "x")
        r.execute_command("FT.DICTDEL", "d2", "x")  # emptied, still there
        r.hset("doc:old1", "t", "hello")
        r.hset("doc:old2", "t", "hello")
        r.execute_command("FT.CREATE", "s", "PREFIX", "1", "doc:", "SKIPINITIALSCAN", "SCHEMA",
                          "t", "TEXT")
        r.hset("doc:new", "t", "hello")
        r.hset("doc:old2", "t", "hello again")  # written after: now indexed
        assert _search_keys(r, "s") == (2, ["doc:new", "doc:old2"])
    finally:
        srv.kill9() if stop == "kill9" else srv.stop()

    srv = ProcessServer("--data", data, "--durability", "always")
    try:
        r = redis.Redis(port=srv.port, decode_responses=True, protocol=2)
        assert sorted(r.execute_command("FT.DICTDUMP", "d1")) == ["alpha", "gamma"]
        assert r.execute_command("FT.DICTDUMP", "d2") == []
        # doc:old1 stays out of the index after the restart; a write brings it in
        assert _search_keys(r, "s") == (2, ["doc:new", "doc:old2"])
        r.hset("doc:old1", "t", "hello there")
        assert _search_keys(r, "s") == (3, ["doc:new", "doc:old1", "doc:old2"])
        r.execute_command("FT.DROPINDEX", "s")
        r.execute_command("FT.CREATE", "s", "PREFIX", "1", "doc:", "SCHEMA", "t", "TEXT")
        assert _search_keys(r, "s")[0] == 3
        r.flushall()  # FLUSHALL also removes the word lists
    finally:
        srv.stop()

    srv = ProcessServer("--data", data, "--durability", "always")
    try:
        r = redis.Redis(port=srv.port, decode_responses=True, protocol=2)
        with pytest.raises(redis.ResponseError, match="could not open dict key"):
            r.execute_command("FT.DICTDUMP", "d1")
    finally:
        srv.stop()
