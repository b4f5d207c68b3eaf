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


@scenario
def aggregate_implicit_load(r):
    r.flushall()
    r.execute_command("FT.CREATE", "a", "ON", "HASH", "PREFIX", "1", "d:", "SCHEMA",
                      "t1", "TAG", "SORTABLE", "age", "NUMERIC", "name", "TEXT",
                      "s", "NUMERIC", "SORTABLE", "x", "TAG")
    for i, (t, age, nm, x) in enumerate([("a", 20, "bob", "p"), ("b", 35, "al", "q"),
                                         ("a", 28, "cy", "q"), ("c", 40, "di", "p")]):
        r.hset(f"d:{i}", mapping={"t1": t, "age": age, "name": nm, "s": i, "x": x, "extra": "e"})
    out = {}
    for q in [("SORTBY", "2", "@t1", "ASC"), ("SORTBY", "2", "@age", "DESC"),
              ("SORTBY", "2", "@name", "ASC"), ("LOAD", "1", "@name", "SORTBY", "2", "@s", "DESC"),
              ("APPLY", "@s*10", "AS", "y", "SORTBY", "2", "@y", "ASC"),
              ("GROUPBY", "1", "@t1", "REDUCE", "COUNT_DISTINCT", "1", "@x", "AS", "n"),
              ("GROUPBY", "1", "@x", "REDUCE", "SUM", "1", "@age", "AS", "n"),
              ("APPLY", "@age*10", "AS", "y"), ("FILTER", "@age<30"), ("GROUPBY", "1", "@extra")]:
        try:
            reply = r.execute_command("FT.AGGREGATE", "a", "*", *q)
            rows = reply[1:]
            out[q] = sorted(rows) if q[0] == "GROUPBY" else rows
        except redis.ResponseError as exc:
            out[q] = str(exc)
    return out


def test_aggregate_loads_what_the_pipeline_names(nk):
    out = aggregate_implicit_load(nk)
    assert out[("SORTBY", "2", "@t1", "ASC")] == [["t1", "a"], ["t1", "a"], ["t1", "b"], ["t1", "c"]]
    assert out[("SORTBY", "2", "@age", "DESC")] == [["age", v] for v in ("40", "35", "28", "20")]
    assert out[("APPLY", "@s*10", "AS", "y", "SORTBY", "2", "@y", "ASC")] == [
        ["s", str(i), "y", str(10 * i)] for i in range(4)]
    assert out[("GROUPBY", "1", "@t1", "REDUCE", "COUNT_DISTINCT", "1", "@x", "AS", "n")] == [
        ["t1", "a", "n", "2"], ["t1", "b", "n", "1"], ["t1", "c", "n", "1"]]
    assert out[("GROUPBY", "1", "@x", "REDUCE", "SUM", "1", "@age", "AS", "n")] == [
        ["x", "p", "n", "60"], ["x", "q", "n", "63"]]
    # APPLY/FILTER read only SORTABLE fields without LOAD; GROUPBY only schema fields.
    assert out[("APPLY", "@age*10", "AS", "y")] == "Property `age` not loaded nor in pipeline"
    assert out[("FILTER", "@age<30")] == "Property `age` not loaded nor in pipeline"
    assert out[("GROUPBY", "1", "@extra")] == "No such property `extra`"
