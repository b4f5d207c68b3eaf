"""What redis-py's and redisvl's own test suites need from the server (issue 16): GEO
fields, INFO fields, aggregation, query syntax, ... Each scenario runs on nearkit with
its expected answer, and (when the reference Redis Stack 7.4 can be started here) on both
servers, whose answers must be equal."""

import os
import signal

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


def _search(r, index, query, *args):
    reply = r.execute_command("FT.SEARCH", index, query, *args, "DIALECT", "2")
    return reply[0], reply[1:]


@scenario
def geo_radius(r):
    r.flushall()
    r.execute_command("FT.CREATE", "g", "ON", "HASH", "PREFIX", "1", "p:", "SCHEMA",
                      "loc", "GEO", "n", "NUMERIC", "SORTABLE")
    r.hset("p:1", mapping={"loc": "-122.4194,37.7749", "n": 1})  # San Francisco
    r.hset("p:2", mapping={"loc": "-122.2711,37.8044", "n": 2})  # Oakland, ~13 km away
    r.hset("p:3", mapping={"loc": "-118.2437,34.0522", "n": 3})  # Los Angeles, ~560 km
    r.hset("p:4", mapping={"loc": "not a point", "n": 4})  # an indexing failure
    out = {}
    for q in ["@loc:[-122.4194 37.7749 1 m]", "@loc:[-122.4194 37.7749 20 km]",
              "@loc:[-122.4194 37.7749 12 mi]", "@loc:[-122.4194 37.7749 600 km]",
              "-@loc:[-122.4194 37.7749 20 km]", "@loc:[$lon $lat $r $u]", "@n:[2]"]:
        out[q] = _search(r, "g", q, "NOCONTENT", "SORTBY", "n", "PARAMS", "8", "lon",
                         "-122.3", "lat", "37.8", "r", "5", "u", "km")
    info = r.ft("g").info()
    out["failures"] = int(info["hash_indexing_failures"])
    out["types"] = [a[5] for a in info["attributes"]]
    return out


def test_geo_radius_queries(nk):
    out = geo_radius(nk)
    assert out["@loc:[-122.4194 37.7749 1 m]"] == (1, ["p:1"])
    assert out["@loc:[-122.4194 37.7749 20 km]"] == (2, ["p:1", "p:2"])
    assert out["@loc:[-122.4194 37.7749 12 mi]"] == (2, ["p:1", "p:2"])
    assert out["@loc:[-122.4194 37.7749 600 km]"] == (3, ["p:1", "p:2", "p:3"])
    assert out["-@loc:[-122.4194 37.7749 20 km]"] == (1, ["p:3"])
    assert out["@loc:[$lon $lat $r $u]"] == (1, ["p:2"])
    assert out["@n:[2]"] == (1, ["p:2"])
    assert out["failures"] == 1 and out["types"] == ["GEO", "NUMERIC"]


def test_geo_query_errors(nk):
    geo_radius(nk)
    for bad in ["@loc:[1 2 3 parsecs]", "@loc:[1 2 -3 km]", "@loc:[1 2 3]"]:
        with pytest.raises(redis.ResponseError):
            _search(nk, "g", bad)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_matches_reference(nk, ref, name):
    assert SCENARIOS[name](nk) == SCENARIOS[name](ref)
