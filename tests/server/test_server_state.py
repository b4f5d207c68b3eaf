"""Two servers in one process share no state: each owns its FT.* caches and cursors
(``server.ft``) and its scripts (``server.scripts``)."""

import numpy as np
import pytest

redis = pytest.importorskip("redis")

from server_helpers import ThreadServer  # noqa: E402


@pytest.fixture()
def two():
    a, b = ThreadServer(), ThreadServer()
    yield a, b
    a.stop()
    b.stop()


def _index(r, n=5):
    r.execute_command("FT.CREATE", "i", "PREFIX", "1", "d:", "SCHEMA", "n", "NUMERIC",
                      "v", "VECTOR", "HNSW", "6", "TYPE", "FLOAT32", "DIM", "2",
                      "DISTANCE_METRIC", "L2")
    for j in range(n):
        r.hset(f"d:{j}", mapping={"n": j, "v": np.array([j, 0], np.float32).tobytes()})


def test_cursors_belong_to_their_server(two):
    a, b = (redis.Redis(port=s.port, protocol=2) for s in two)
    _index(a)
    _index(b)
    rows, cid = a.execute_command("FT.AGGREGATE", "i", "*", "LOAD", "1", "@n",
                                  "WITHCURSOR", "COUNT", "2")
    assert cid != 0 and len(rows) == 3  # the count and two rows; three rows left
    # The same index name on the other server: its cursor ids are not the first's.
    with pytest.raises(redis.ResponseError, match="Cursor not found"):
        b.execute_command("FT.CURSOR", "READ", "i", cid)
    with pytest.raises(redis.ResponseError, match="Cursor does not exist"):
        b.execute_command("FT.CURSOR", "DEL", "i", cid)
    rows, cid2 = a.execute_command("FT.CURSOR", "READ", "i", cid)
    assert len(rows) == 3


def test_plan_and_fast_path_caches_belong_to_their_server(two):
    sa, sb = two
    a = redis.Redis(port=sa.port, protocol=2)
    _index(a)
    q = np.array([1, 0], np.float32).tobytes()
    a.execute_command("FT.SEARCH", "i", "*=>[KNN 2 @v $b AS d]", "SORTBY", "d", "RETURN", "1",
                      "d", "PARAMS", "2", "b", q, "DIALECT", "2")
    assert len(sa.server.ft.plans) == 1 and len(sa.server.ft.fast) == 1
    assert len(sb.server.ft.plans) == 0 and len(sb.server.ft.fast) == 0


def test_scripts_belong_to_their_server(two):
    pytest.importorskip("lupa")
    a, b = (redis.Redis(port=s.port, protocol=2) for s in two)
    sha = a.script_load("return 7")
    assert a.evalsha(sha, 0) == 7
    assert b.script_exists(sha) == [False]
    with pytest.raises(redis.exceptions.NoScriptError):
        b.evalsha(sha, 0)
    b.script_flush()  # flushes the second server's scripts only
    assert a.evalsha(sha, 0) == 7
