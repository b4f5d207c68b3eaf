"""More of what redis-py's and redisvl's suites need from the server (issue 16): GEOSHAPE
queries, FT.CREATE FILTER, INDEXEMPTY, dialect 1, FT.EXPLAIN, RANDOM_SAMPLE, ACL SETUSER,
durable FT.DICT word lists and SKIPINITIALSCAN. Each scenario runs on nearkit with its
expected answer written out, and (when the reference Redis Stack 7.4 can be started here)
on both servers, whose answers must be equal."""

import os
import signal
import time

import pytest

redis = pytest.importorskip("redis")

from server_helpers import ThreadServer, start_reference_redis  # noqa: E402


@pytest.fixture(scope="module")
def nk():
    s = ThreadServer()
    yield redis.Redis(port=s.port, decode_responses=True, protocol=2)
    s.stop()


@pytest.fixture(scope="module")
def ref():
    started = start_reference_redis()
    if started is None:
        pytest.skip("reference Redis with the search module cannot be started here")
    port, pid = started
    yield redis.Redis(port=port, decode_responses=True, protocol=2)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)


SCENARIOS = {}


def scenario(fn):
    SCENARIOS[fn.__name__] = fn
    return fn


def pytest_generate_tests(metafunc):
    if metafunc.function.__name__ == "test_matches_reference":
        metafunc.parametrize("name", sorted(SCENARIOS))


def _try(r, *args):
    """The reply, or the error text (errors are compared too)."""
    try:
        return r.execute_command(*args)
    except redis.ResponseError as exc:
        return "ERR " + str(exc)


def _wait_indexed(r, index):
    for _ in range(200):
        info = r.execute_command("FT.INFO", index)
        if str(info[info.index("indexing") + 1]) == "0":
            return
        time.sleep(0.01)


def _keys(reply):
    """FT.SEARCH ... NOCONTENT: (count, sorted keys)."""
    if isinstance(reply, str):
        return reply
    return reply[0], sorted(reply[1:])


# --------------------------------------------------------------------------------------
# GEOSHAPE
# --------------------------------------------------------------------------------------

AREA = "POLYGON((15 15, 75 15, 50 70, 20 40, 15 15))"


@scenario
def geoshape_queries(r):
    r.flushall()
    r.execute_command("FT.CREATE", "gs", "PREFIX", "1", "d:", "SCHEMA", "g", "GEOSHAPE", "FLAT")
    r.hset("d:point1", "g", "POINT (10 10)")
    r.hset("d:point2", "g", "POINT (50 50)")
    r.hset("d:poly1", "g", "POLYGON ((20 20, 25 35, 35 25, 20 20))")
    r.hset("d:poly2", "g", "POLYGON ((60 60, 65 75, 70 70, 65 55, 60 60))")
    r.hset("d:line", "g", "LINESTRING (1 1, 2 2)")  # kept, without a shape; a failure
    out = {}
    for op, shape in [("intersects", AREA), ("disjoint", AREA), ("within", AREA),
                      ("contains", "POINT(25 25)"), ("CONTAINS", "POLYGON((24 24, 24 26, 25 25, 24 24))"),
                      ("contains", "POINT(20 20)")]:
        out[op + shape] = _keys(_try(r, "FT.SEARCH", "gs", f"@g:[{op} $s]", "PARAMS", "2", "s",
                                     shape, "NOCONTENT", "DIALECT", "3"))
    out["not"] = _keys(_try(r, "FT.SEARCH", "gs", "-@g:[within $s]", "PARAMS", "2", "s", AREA,
                            "NOCONTENT", "DIALECT", "3"))
    out["missing param"] = _try(r, "FT.SEARCH", "gs", "@g:[within $nope]", "DIALECT", "3")
    info = r.execute_command("FT.INFO", "gs")
    out["attributes"] = info[info.index("attributes") + 1]
    out["num_docs"] = info[info.index("num_docs") + 1]
    out["failures"] = info[info.index("hash_indexing_failures") + 1]
    # SPHERICAL (the default): longitude, latitude
    r.execute_command("FT.CREATE", "sph", "PREFIX", "1", "s:", "SCHEMA", "g", "GEOSHAPE")
    r.hset("s:paris", "g", "POINT (2.35 48.85)")
    r.hset("s:square", "g", "POLYGON ((2 48, 3 48, 3 49, 2 49, 2 48))")
    r.hset("s:nyc", "g", "POINT (-74 40.7)")
    out["sph within"] = _keys(_try(r, "FT.SEARCH", "sph", "@g:[within $s]", "PARAMS", "2", "s",
                                   "POLYGON((0 40, 10 40, 10 55, 0 55, 0 40))", "NOCONTENT",
                                   "DIALECT", "3"))
    out["sph contains"] = _keys(_try(r, "FT.SEARCH", "sph", "@g:[contains $s]", "PARAMS", "2",
                                     "s", "POINT(2.5 48.5)", "NOCONTENT", "DIALECT", "3"))
    return out


def test_geoshape_queries(nk):
    pytest.importorskip("shapely")
    out = geoshape_queries(nk)
    assert out["intersects" + AREA] == (2, ["d:point2", "d:poly1"])
    assert out["disjoint" + AREA] == (2, ["d:point1", "d:poly2"])
    assert out["within" + AREA] == (2, ["d:point2", "d:poly1"])
    assert out["containsPOINT(25 25)"] == (1, ["d:poly1"])
    assert out["CONTAINSPOLYGON((24 24, 24 26, 25 25, 24 24))"] == (1, ["d:poly1"])
    assert out["containsPOINT(20 20)"] == (0, [])  # a vertex is on the boundary, not inside
    # The document whose shape failed is still in the index (as in Redis), so NOT finds it.
    assert out["not"] == (3, ["d:line", "d:point1", "d:poly2"])
    assert out["missing param"].startswith("ERR No such parameter")
    assert out["attributes"] == [["identifier", "g", "attribute", "g", "type", "GEOSHAPE",
                                  "coord_system", "FLAT"]]
    assert (out["num_docs"], out["failures"]) == (5, 1)
    assert out["sph within"] == (2, ["s:paris", "s:square"])
    assert out["sph contains"] == (1, ["s:square"])


def test_geoshape_bad_query_shape(nk):
    pytest.importorskip("shapely")
    nk.flushall()
    nk.execute_command("FT.CREATE", "gs", "SCHEMA", "g", "GEOSHAPE", "FLAT")
    nk.hset("k", "g", "POINT (1 1)")
    with pytest.raises(redis.ResponseError, match="Error querying geoshape index"):
        nk.execute_command("FT.SEARCH", "gs", "@g:[within $s]", "PARAMS", "2", "s",
                           "POLYGON((1 1, 2", "DIALECT", "3")


# --------------------------------------------------------------------------------------
# the reference
# --------------------------------------------------------------------------------------

def test_matches_reference(nk, ref, name):
    if name.startswith("geoshape"):
        pytest.importorskip("shapely")
    assert SCENARIOS[name](nk) == SCENARIOS[name](ref)
