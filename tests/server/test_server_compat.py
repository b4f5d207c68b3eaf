"""What redis-py's and redisvl's own test suites need from the server (issue 16): GEO
fields, INFO fields, aggregation, query syntax, ... Each scenario runs on nearkit with
its expected answer, and (when the reference Redis Stack 7.4 can be started here) on both
servers, whose answers must be equal."""

import json

import pytest

redis = pytest.importorskip("redis")

from server_helpers import scenario_registry  # noqa: E402


SCENARIOS, scenario = scenario_registry()  # nk and ref: tests/server/conftest.py


def pytest_generate_tests(metafunc):
    # Every scenario defined anywhere in this module also runs on the reference.
    if metafunc.function.__name__ == "test_matches_reference":
        metafunc.parametrize("name", sorted(SCENARIOS))




def _wait_indexed(r, index):
    import time

    for _ in range(200):
        info = r.execute_command("FT.INFO", index)
        if str(info[info.index("indexing") + 1]) == "0":
            return
        time.sleep(0.01)


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
    out["GEOFILTER"] = r.execute_command("FT.SEARCH", "g", "*", "NOCONTENT", "SORTBY", "n",
                                         "GEOFILTER", "loc", "-122.4194", "37.7749", "20", "km")
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
    assert out["GEOFILTER"] == [2, "p:1", "p:2"]
    assert out["failures"] == 1 and out["types"] == ["GEO", "NUMERIC"]


def test_geo_query_errors(nk):
    geo_radius(nk)
    for bad in ["@loc:[1 2 3 parsecs]", "@loc:[1 2 -3 km]", "@loc:[1 2 3]"]:
        with pytest.raises(redis.ResponseError):
            _search(nk, "g", bad)



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


@scenario
def query_syntax(r):
    r.flushall()
    r.execute_command("FT.CREATE", "q", "ON", "HASH", "PREFIX", "1", "d:", "SCHEMA",
                      "title", "TEXT", "f", "TAG", "n", "NUMERIC")
    for i, (t, f, n) in enumerate([("quick brown fox", "a-b", 1), ("lazy dog", "c d", 2),
                                   ("fox and dog", "a-b,e", 3), ("hello world", "x", 4)]):
        r.hset(f"d:{i}", mapping={"title": t, "f": f, "n": n})
    out = {}
    for q in ["(@title:fox) AND (@n:[1 3])", "(@title:fox)=>{$weight: 2.0}", '@f:{"a-b"}',
              '@f:{"c d"}', "@f:{a\\-b}", "fox AND dog", "@title:fox=>{$weight:3; $slop:1}",
              "(@title:dog)=>{$inorder:true}", "the", "@n:[3]"]:
        out[q] = _search(r, "q", q, "NOCONTENT", "SORTBY", "n")
    return out


def test_query_syntax_redis_accepts(nk):
    out = query_syntax(nk)
    assert out["(@title:fox) AND (@n:[1 3])"] == (2, ["d:0", "d:2"])  # AND: a stop word
    assert out["(@title:fox)=>{$weight: 2.0}"] == (2, ["d:0", "d:2"])
    assert out['@f:{"a-b"}'] == (2, ["d:0", "d:2"]) == out["@f:{a\\-b}"]
    assert out['@f:{"c d"}'] == (1, ["d:1"])
    assert out["fox AND dog"] == (1, ["d:2"])
    assert out["@title:fox=>{$weight:3; $slop:1}"] == (2, ["d:0", "d:2"])
    assert out["(@title:dog)=>{$inorder:true}"] == (2, ["d:1", "d:2"])
    assert out["the"] == (0, [])
    assert out["@n:[3]"] == (1, ["d:2"])


@scenario
def ft_config_and_stopwords(r):
    r.flushall()
    out = {}
    for name, value in [("TIMEOUT", "100"), ("TIMEOUT", "null"), ("DEFAULT_DIALECT", "7"),
                        ("NOPE", "1"), ("DEFAULT_DIALECT", "2")]:
        try:
            out[(name, value)] = r.execute_command("FT.CONFIG", "SET", name, value)
        except redis.ResponseError as exc:
            out[(name, value)] = str(exc)
    out["timeout"] = r.execute_command("FT.CONFIG", "GET", "TIMEOUT")
    out["dialect"] = r.execute_command("FT.CONFIG", "GET", "DEFAULT_DIALECT")
    r.execute_command("FT.CREATE", "sw", "PREFIX", "1", "s:", "STOPWORDS", "2", "foo", "Bar",
                      "SCHEMA", "t", "TEXT", "v", "VECTOR", "FLAT", "6", "TYPE", "FLOAT32",
                      "DIM", "2", "DISTANCE_METRIC", "L2")
    r.hset("s:1", mapping={"t": "foo and bar", "v": b"\0" * 8})
    info = r.execute_command("FT.INFO", "sw")
    out["stopwords_list"] = info[info.index("stopwords_list") + 1]
    out["and"] = _search(r, "sw", "and", "NOCONTENT")
    out["foo"] = _search(r, "sw", "foo", "NOCONTENT")
    # DEFAULT_DIALECT 2: a KNN query without DIALECT is accepted.
    out["knn"] = r.execute_command("FT.SEARCH", "sw", "*=>[KNN 1 @v $b]", "PARAMS", "2", "b",
                                   b"\0" * 8, "NOCONTENT")
    r.execute_command("FT.CONFIG", "SET", "DEFAULT_DIALECT", "1")
    r.execute_command("FT.CONFIG", "SET", "TIMEOUT", "500")
    return out


def test_ft_config_and_stopwords(nk):
    out = ft_config_and_stopwords(nk)
    assert out[("TIMEOUT", "100")] == "OK" and out["timeout"] == [["TIMEOUT", "100"]]
    assert out[("TIMEOUT", "null")] == "Could not convert argument to expected type"
    assert out[("DEFAULT_DIALECT", "7")] == "Default dialect version cannot be higher than 4"
    assert out[("NOPE", "1")] == "Invalid option"
    assert out["dialect"] == [["DEFAULT_DIALECT", "2"]]
    assert out["stopwords_list"] == ["bar", "foo"]
    assert out["and"] == (1, ["s:1"])  # a custom list replaces the default one
    assert out["foo"] == (0, [])
    assert out["knn"] == [1, "s:1"]


JSON_DOC = ('{"a": ["foo"], "nested1": {"a": ["hello", null, "world"], "b": {"x": 1}}, '
            '"nested2": {"a": 31}, "s": "ab", "t": true, '
            '"store": {"book": [{"price": 8.95, "size": [10, 20]}, {"price": 12.5, "size": [5]}]}}')

JSON_STEPS = [
    ("JSON.GET", "d", "$..a"), ("JSON.GET", "d", "$.store.book[?(@.price<10)].size"),
    ("JSON.GET", "d", "$.nested1.a[1:]"), ("JSON.GET", "d", "$.nested1.a[::2]"),
    ("JSON.GET", "d", "$.nested1.a[0,2]"), ("JSON.GET", "d", "$..book[-1].price"),
    ("JSON.GET", "d", "$.store.book[?(@.price>9 || @.price<1)].price"),
    ("JSON.STRLEN", "d", "$..a"), ("JSON.STRAPPEND", "d", "$.s", '"cd"'), ("JSON.STRLEN", "d", ".s"),
    ("JSON.ARRLEN", "d", "$..a"), ("JSON.ARRAPPEND", "d", "$..a", '"x"', "2"),
    ("JSON.ARRINSERT", "d", "$.a", "0", '"first"'), ("JSON.ARRINDEX", "d", "$.a", '"x"'),
    ("JSON.ARRPOP", "d", "$..a", "1"), ("JSON.ARRTRIM", "d", "$.nested1.a", "0", "1"),
    ("JSON.OBJKEYS", "d", "$.nested1"), ("JSON.OBJLEN", "d", "$..b"),
    ("JSON.NUMINCRBY", "d", "$.nested2.a", "2"), ("JSON.NUMMULTBY", "d", "$.nested2.a", "1.5"),
    ("JSON.TOGGLE", "d", "$.t"), ("JSON.TYPE", "d", "$..a"), ("JSON.RESP", "d", "$.nested1"),
    ("JSON.CLEAR", "d", "$.nested1.*"), ("JSON.MERGE", "d", "$", '{"s": null, "m": {"k": 1}}'),
    ("JSON.MSET", "e", "$", '{"z": 1}', "d", "$.n", "5"), ("JSON.GET", "e", "$"),
    ("JSON.DEL", "d", "$..a"), ("JSON.GET", "d", "$"),
    ("JSON.GET", "d", "NOESCAPE", "."), ("JSON.STRLEN", "nokey", "$..a"),
    ("JSON.ARRAPPEND", "nokey", "$", "1"), ("JSON.GET", "d", "$.m[?(@.k==)]"),
    ("JSON.OBJLEN", "d", ".nowhere"), ("JSON.OBJKEYS", "d", ".nowhere"),
    ("JSON.ARRLEN", "d", ".nowhere"),
]


@scenario
def json_commands(r):
    r.flushall()
    r.execute_command("JSON.SET", "d", "$", JSON_DOC)
    out = []
    for step in JSON_STEPS:
        try:
            reply = r.execute_command(*step)
        except redis.ResponseError:
            reply = "error"  # the texts differ (RedisJSON's parser messages)
        if step[0] == "JSON.GET" and reply != "error" and reply is not None:
            reply = json.loads(reply)  # RedisJSON's member order is its own
        out.append(reply)
    return out


def test_json_commands(nk):
    out = dict(zip([" ".join(s) for s in JSON_STEPS], json_commands(nk)))
    assert out["JSON.GET d $..a"] == [["foo"], ["hello", None, "world"], 31]
    assert out["JSON.GET d $.store.book[?(@.price<10)].size"] == [[10, 20]]
    assert out["JSON.GET d $.nested1.a[1:]"] == [None, "world"]
    assert out["JSON.GET d $.nested1.a[::2]"] == ["hello", "world"]
    assert out["JSON.GET d $..book[-1].price"] == [12.5]
    assert out["JSON.STRLEN d $..a"] == [None, None, None]
    assert out['JSON.STRAPPEND d $.s "cd"'] == [4]
    assert out['JSON.ARRAPPEND d $..a "x" 2'] == [3, 5, None]
    assert out["JSON.ARRPOP d $..a 1"] == ['"foo"', "null", None]
    assert out["JSON.NUMINCRBY d $.nested2.a 2"] == "[33]"
    assert out["JSON.NUMMULTBY d $.nested2.a 1.5"] == "[49.5]"
    assert out["JSON.TOGGLE d $.t"] == [0]
    assert out["JSON.DEL d $..a"] == 3
    assert out["JSON.STRLEN nokey $..a"] == "error"
    assert out["JSON.GET d $.m[?(@.k==)]"] == "error"
    assert out["JSON.OBJLEN d .nowhere"] is None and out["JSON.OBJKEYS d .nowhere"] is None
    assert out["JSON.ARRLEN d .nowhere"] == "error"


@scenario
def knn_order_and_return(r):
    import numpy as np

    r.flushall()
    r.execute_command("FT.CREATE", "k", "ON", "HASH", "PREFIX", "1", "d:", "SCHEMA", "t", "TAG",
                      "v", "VECTOR", "FLAT", "6", "TYPE", "FLOAT32", "DIM", "2",
                      "DISTANCE_METRIC", "L2")
    for i in range(6):
        r.hset(f"d:{i}", mapping={"t": "x", "v": np.array([i, 0], np.float32).tobytes()})
    q = np.array([2.2, 0], np.float32).tobytes()
    knn = ("FT.SEARCH", "k", "*=>[KNN 4 @v $b AS d]", "PARAMS", "2", "b", q)
    out = []
    for extra in [("RETURN", "1", "d"), ("RETURN", "2", "d", "d", "LIMIT", "0", "2"),
                  ("RETURN", "1", "d", "SORTBY", "d"), ("RETURN", "1", "d")]:  # twice: cached path
        out.append(r.execute_command(*knn, *extra, "DIALECT", "2"))
    reply = r.execute_command(*knn, "RETURN", "3", "t", "d", "t", "DIALECT", "2")
    out.append([reply[0]] + [x if isinstance(x, str) else sorted(zip(x[::2], x[1::2]))
                             for x in reply[1:]])
    return out


def test_knn_without_sortby_is_in_document_order(nk):
    out = knn_order_and_return(nk)
    assert [k for k in out[0][1::2]] == ["d:1", "d:2", "d:3", "d:4"] == out[3][1::2]
    assert out[1] == [4, "d:1", ["d", "1.44000005722"], "d:2", ["d", "0.0400000177324"]]
    assert out[2][1::2] == ["d:2", "d:3", "d:1", "d:4"]
    assert out[4][2] == [("d", "1.44000005722"), ("t", "x")]  # a repeated RETURN field once


@scenario
def aliases_missing_and_skip_scan(r):
    r.flushall()
    out = []

    def run(*cmd):
        try:
            out.append(r.execute_command(*cmd))
        except redis.ResponseError as exc:
            out.append(str(exc))
    r.hset("old:1", mapping={"t": "x"})
    run("FT.CREATE", "i1", "PREFIX", "1", "old:", "SKIPINITIALSCAN", "SCHEMA", "t", "TAG",
        "INDEXMISSING", "n", "NUMERIC")
    run("FT.CREATE", "i2", "PREFIX", "1", "old:", "SCHEMA", "t", "TAG", "n", "NUMERIC")
    _wait_indexed(r, "i2")  # Redis scans existing keys in the background
    r.hset("old:2", mapping={"n": 1})
    r.hset("old:3", mapping={"t": "y", "n": 2})
    for cmd in [("FT.ALIASADD", "a", "i1"), ("FT.ALIASADD", "a", "i2"), ("FT.ALIASADD", "b", "nope"),
                ("FT.SEARCH", "a", "*", "NOCONTENT", "SORTBY", "n"), ("FT.ALIASUPDATE", "a", "i2"),
                ("FT.SEARCH", "a", "*", "NOCONTENT", "SORTBY", "n"), ("FT.ALIASDEL", "zz"),
                ("FT.SEARCH", "i1", "ismissing(@t)", "NOCONTENT", "DIALECT", "2"),
                ("FT.SEARCH", "i1", "-ismissing(@t)", "NOCONTENT", "DIALECT", "2"),
                ("FT.SEARCH", "i2", "ismissing(@t)", "NOCONTENT", "DIALECT", "2"),
                ("FT.DROPINDEX", "a"), ("FT.SEARCH", "a", "*"), ("FT._LIST",)]:
        run(*cmd)
    out[-1] = sorted(out[-1])
    return out


def test_aliases_missing_and_skip_scan(nk):
    out = aliases_missing_and_skip_scan(nk)
    assert out[2:5] == ["OK", "Alias already exists",
                        "Unknown index name (or name is an alias itself)"]
    assert out[5] == [2, "old:2", "old:3"]  # SKIPINITIALSCAN: old:1 left out
    assert out[7] == [3, "old:2", "old:3", "old:1"]
    assert out[8] == "Alias does not exist"
    assert out[9] == [1, "old:2"] and out[10] == [1, "old:3"]
    assert "INDEXMISSING" in out[11]
    assert out[12] == "OK" and out[14] == ["i1"]


@scenario
def noindex_and_info_flags(r):
    r.flushall()
    out = []
    try:
        r.execute_command("FT.CREATE", "bad", "SCHEMA", "t", "TAG", "INDEXMISSING", "NOINDEX")
    except redis.ResponseError as exc:
        out.append(str(exc))
    r.execute_command("FT.CREATE", "i", "PREFIX", "1", "d:", "SCHEMA", "t", "TAG", "INDEXMISSING",
                      "INDEXEMPTY", "WITHSUFFIXTRIE", "CASESENSITIVE", "SORTABLE", "UNF",
                      "n", "NUMERIC", "NOINDEX", "SORTABLE", "x", "TEXT", "NOSTEM", "SORTABLE",
                      "g", "GEO", "SORTABLE", "m", "TEXT", "z", "TEXT", "NOINDEX")
    r.hset("d:1", mapping={"t": "a", "n": 5, "x": "hello", "m": "m", "z": "q"})
    r.hset("d:2", mapping={"t": "b", "n": 3, "x": "world", "m": "m", "z": "q"})
    for q in ["@m:m", "@n:[0 10]", "@z:q"]:
        out.append(r.execute_command("FT.SEARCH", "i", q, "NOCONTENT", "SORTBY", "n"))
    out.append(r.execute_command("FT.INFO", "i")[7])
    return out


def test_noindex_fields_sort_but_do_not_match(nk):
    out = noindex_and_info_flags(nk)
    assert out[0] == "'Field `t` cannot be defined with both `NOINDEX` and `INDEXMISSING`'"
    assert out[1] == [2, "d:2", "d:1"]  # sorted by the NOINDEX field n
    assert out[2] == [0] and out[3] == [0]
    attrs = {a[1]: a for a in out[4]}
    assert attrs["n"][-3:] == ["SORTABLE", "UNF", "NOINDEX"]
    assert attrs["t"][-6:] == ["CASESENSITIVE", "SORTABLE", "UNF", "WITHSUFFIXTRIE",
                               "INDEXEMPTY", "INDEXMISSING"]


@scenario
def aggregate_quantile_and_numbers(r):
    r.flushall()
    r.execute_command("FT.CREATE", "a", "ON", "HASH", "PREFIX", "1", "d:", "SCHEMA",
                      "p", "TAG", "SORTABLE", "n", "NUMERIC", "SORTABLE")
    for i, v in enumerate([3, 8, 10, 1, 7, 2 ** 40]):
        r.hset(f"d:{i}", mapping={"p": "x" if i < 3 else "y", "n": v})
    return [sorted(r.execute_command("FT.AGGREGATE", "a", "*", *q)[1:]) for q in [
        ("GROUPBY", "1", "@p", "REDUCE", "QUANTILE", "2", "@n", "0.5"),
        ("GROUPBY", "1", "@p", "REDUCE", "QUANTILE", "2", "@n", "0.9", "AS", "q"),
        ("APPLY", "@n*1000", "AS", "big", "SORTBY", "2", "@n", "ASC"),
        ("APPLY", "@n/3", "AS", "f", "SORTBY", "2", "@n", "ASC")]]


def test_aggregate_quantile_and_number_format(nk):
    out = aggregate_quantile_and_numbers(nk)
    assert out[0] == [["p", "x", "__generated_aliasquantilen,0.5", "8"],
                      ["p", "y", "__generated_aliasquantilen,0.5", "7"]]
    assert ["n", str(2 ** 40), "big", str(1000 * 2 ** 40)] in out[2]  # integral: no e-notation
    assert ["n", "10", "f", "3.33333333333"] in out[3]


@scenario
def dicts_and_payloads(r):
    r.flushall()
    out = []
    for cmd in [("FT.DICTADD", "d", "a", "b", "a"), ("FT.DICTADD", "d", "b", "c"),
                ("FT.DICTDEL", "d", "a", "zz"), ("FT.DICTDUMP", "d"), ("FT.DICTDUMP", "nope"),
                ("FT.DICTDEL", "d", "b", "c"), ("FT.DICTDUMP", "d")]:
        try:
            out.append(r.execute_command(*cmd))
        except redis.ResponseError as exc:
            out.append(str(exc))
    r.execute_command("FT.CREATE", "p", "SCHEMA", "txt", "TEXT")
    r.hset("doc1", mapping={"txt": "foo bar"})
    r.hset("doc2", mapping={"txt": "foo bar"})
    out.append(r.execute_command("FT.SEARCH", "p", "foo bar", "WITHPAYLOADS"))
    out.append(r.execute_command("FT.SEARCH", "p", "foo", "WITHPAYLOADS", "NOCONTENT"))
    return out


def test_dicts_and_payloads(nk):
    out = dicts_and_payloads(nk)
    assert out[:7] == [2, 1, 1, ["b", "c"], "could not open dict key", 2, []]
    assert out[7] == [2, "doc1", None, ["txt", "foo bar"], "doc2", None, ["txt", "foo bar"]]
    assert out[8] == [2, "doc1", None, "doc2", None]


@scenario
def aggregate_load_keeps_yielded_distance(r):
    import numpy as np

    r.flushall()
    r.execute_command("FT.CREATE", "mv", "PREFIX", "1", "d:", "SCHEMA",
                      "v", "VECTOR", "FLAT", "6", "TYPE", "FLOAT32", "DIM", "2",
                      "DISTANCE_METRIC", "L2")
    for i in range(4):
        r.hset(f"d:{i}", mapping={"v": np.array([i, 1], np.float32).tobytes()})
    q = np.array([1, 1], np.float32).tobytes()
    # redisvl's MultiVectorQuery shape: LOAD (first) names the yielded distance.
    reply = r.execute_command(
        "FT.AGGREGATE", "mv", "@v:[VECTOR_RANGE 5 $q]=>{$YIELD_DISTANCE_AS: dist}",
        "LOAD", "1", "dist", "APPLY", "(2 - @dist)/2", "AS", "s",
        "SORTBY", "2", "@s", "DESC", "PARAMS", "2", "q", q, "DIALECT", "2")
    return reply[1:]


def test_aggregate_load_keeps_yielded_distance(nk):
    rows = aggregate_load_keeps_yielded_distance(nk)
    assert rows == [["dist", "0", "s", "1"], ["dist", "1", "s", "0.5"], ["dist", "1", "s", "0.5"],
                    ["dist", "4", "s", "-1"]]


@scenario
def text_patterns_and_stems(r):
    r.flushall()
    r.execute_command("FT.CREATE", "q", "ON", "HASH", "PREFIX", "1", "d:", "SCHEMA",
                      "title", "TEXT", "raw", "TEXT", "NOSTEM", "n", "NUMERIC")
    for i, t in enumerate(["engine room", "engines roar", "the engineer", "machine",
                           "enjine fail", "hello world"]):
        r.hset(f"d:{i}", mapping={"title": t, "raw": t, "n": i})
    out = {}
    for q in ["%engine%", "%%engine%%", "@title:%engine%", "*gine*", "*gine", "*ine",
              "@title:(%%engine%% | hello)", "@title:(engine=>{$weight:2} | hello)",
              "@title:*orl*", "@title:engine", "@raw:engine", "@title:engineering"]:
        out[q] = _search(r, "q", q, "NOCONTENT", "SORTBY", "n")
    return out


def test_fuzzy_infix_and_suffix_terms(nk):
    out = text_patterns_and_stems(nk)
    assert out["%engine%"] == (3, ["d:0", "d:1", "d:4"])  # one edit: engines, enjine
    assert out["%%engine%%"] == (4, ["d:0", "d:1", "d:2", "d:4"])
    assert out["*gine*"] == (3, ["d:0", "d:1", "d:2"])
    assert out["*ine"] == (3, ["d:0", "d:3", "d:4"])
    assert out["@title:*orl*"] == (1, ["d:5"])
    assert out["@raw:engine"] == (1, ["d:0"])  # NOSTEM: the word itself only


def test_words_match_by_english_stem(nk):
    pytest.importorskip("snowballstemmer")
    out = text_patterns_and_stems(nk)
    assert out["@title:engine"] == (3, ["d:0", "d:1", "d:2"])
    assert out["@title:engineering"] == (3, ["d:0", "d:1", "d:2"])
    assert out["@title:(engine=>{$weight:2} | hello)"] == (4, ["d:0", "d:1", "d:2", "d:5"])


@scenario
def missing_is_not_empty(r):
    r.flushall()
    r.execute_command("FT.CREATE", "m", "PREFIX", "1", "d:", "SCHEMA", "t", "TAG", "INDEXMISSING",
                      "x", "TEXT", "INDEXMISSING", "n", "NUMERIC", "SORTABLE")
    r.hset("d:1", mapping={"t": "", "x": "", "n": 1})
    r.hset("d:2", mapping={"n": 2})
    r.hset("d:3", mapping={"t": "a", "x": "word", "n": 3})
    return [_search(r, "m", q, "NOCONTENT", "SORTBY", "n")
            for q in ["ismissing(@t)", "ismissing(@x)", "-ismissing(@t)"]]


def test_missing_is_not_empty(nk):
    assert missing_is_not_empty(nk) == [(1, ["d:2"]), (1, ["d:2"]), (2, ["d:1", "d:3"])]


@scenario
def sortby_text_and_unf(r):
    r.flushall()
    r.execute_command("FT.CREATE", "s", "PREFIX", "1", "d:", "SCHEMA", "a", "TEXT", "SORTABLE",
                      "b", "TEXT", "SORTABLE", "UNF")
    for i, t in enumerate(["ZEBRA", "apple", "Banana", "the shining"]):
        r.hset(f"d:{i}", mapping={"a": t, "b": t})
    return [_search(r, "s", "*", "NOCONTENT", "SORTBY", f)[1] for f in ("a", "b")]


def test_sortby_text_lowercases_unless_unf(nk):
    assert sortby_text_and_unf(nk) == [["d:1", "d:2", "d:3", "d:0"], ["d:2", "d:0", "d:1", "d:3"]]


@scenario
def renamenx_and_spaced_attributes(r):
    r.flushall()
    out = []
    r.set("a", "1")
    r.set("b", "2")
    for cmd in [("RENAMENX", "a", "b"), ("RENAMENX", "a", "c"), ("RENAMENX", "zz", "q"),
                ("GET", "c"), ("EXISTS", "a")]:
        try:
            out.append(r.execute_command(*cmd))
        except redis.ResponseError as exc:
            out.append(str(exc))
    r.execute_command("FT.CREATE", "w", "PREFIX", "1", "d:", "SCHEMA", "t", "TEXT")
    r.hset("d:1", "t", "hello world")
    out.append(_search(r, "w", "@t:(hello) => { $weight: 3 }", "NOCONTENT"))
    return out


def test_renamenx_and_spaced_attributes(nk):
    assert renamenx_and_spaced_attributes(nk) == [False, True, "no such key", "1", 0, (1, ["d:1"])]


def test_matches_reference(nk, ref, name):
    if name == "text_patterns_and_stems":
        pytest.importorskip("snowballstemmer")
    assert SCENARIOS[name](nk) == SCENARIOS[name](ref)
