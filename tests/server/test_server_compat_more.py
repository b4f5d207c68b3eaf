"""More of what redis-py's and redisvl's suites need from the server (issue 16): GEOSHAPE
queries, FT.CREATE FILTER, INDEXEMPTY, dialect 1, FT.EXPLAIN, RANDOM_SAMPLE, ACL SETUSER,
durable FT.DICT word lists and SKIPINITIALSCAN. Each scenario runs on nearkit with its
expected answer written out, and (when the reference Redis Stack 7.4 can be started here)
on both servers, whose answers must be equal."""

import time

import pytest

redis = pytest.importorskip("redis")

from redis.backoff import NoBackoff  # noqa: E402
from redis.retry import Retry  # noqa: E402
from server_helpers import scenario_registry  # noqa: E402


SCENARIOS, scenario = scenario_registry()  # nk and ref: tests/server/conftest.py


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
# INDEXEMPTY
# --------------------------------------------------------------------------------------

@scenario
def index_empty(r):
    r.flushall()
    r.execute_command("FT.CREATE", "e", "PREFIX", "1", "p:", "SCHEMA", "title", "TEXT", "SORTABLE",
                      "features", "TAG", "INDEXEMPTY", "description", "TEXT", "INDEXEMPTY",
                      "n", "NUMERIC")
    r.hset("p:1", mapping={"title": "Villa", "features": "pool,sea view", "description": "a villa"})
    r.hset("p:2", mapping={"title": "Flat", "features": "", "description": "modern flat"})
    r.hset("p:3", mapping={"title": "Beach", "features": "beachfront", "description": ""})
    r.hset("p:4", mapping={"title": "", "features": " ", "description": " "})
    r.hset("p:5", mapping={"title": "Nothing"})
    out = {}
    for q in ["@title:''", "@features:{$empty}", "-@features:{$empty}", '@features:{""}',
              "@features:{''}", "@description:''", '@description:""', "-@description:''",
              "@description:$empty", "@features:{$empty} | @description:''", "@n:''", "''",
              "@features:{beachfront | $empty}"]:
        out[q] = _keys(_try(r, "FT.SEARCH", "e", q, "PARAMS", "2", "empty", "", "NOCONTENT",
                            "DIALECT", "2"))
    return out


def test_index_empty(nk):
    out = index_empty(nk)
    assert out["@title:''"] == ("ERR Use `INDEXEMPTY` in field creation in order to index and "
                                "query for empty strings")
    # TAG: blank is empty; TEXT: only "" is
    for q in ["@features:{$empty}", '@features:{""}', "@features:{''}"]:
        assert out[q] == (2, ["p:2", "p:4"]), q
    assert out["-@features:{$empty}"] == (3, ["p:1", "p:3", "p:5"])
    for q in ["@description:''", '@description:""', "@description:$empty", "''"]:
        assert out[q] == (1, ["p:3"]), q
    assert out["-@description:''"] == (4, ["p:1", "p:2", "p:4", "p:5"])
    assert out["@features:{$empty} | @description:''"] == (3, ["p:2", "p:3", "p:4"])
    assert out["@n:''"] == (0, [])
    assert out["@features:{beachfront | $empty}"] == (3, ["p:2", "p:3", "p:4"])


# --------------------------------------------------------------------------------------
# DIALECT 1 and FT.EXPLAIN
# --------------------------------------------------------------------------------------

@scenario
def dialect_one(r):
    r.flushall()
    r.execute_command("FT.CREATE", "d", "PREFIX", "1", "t:", "SCHEMA", "name", "TEXT",
                      "lastname", "TEXT", "n", "NUMERIC")
    r.hset("t:1", mapping={"name": "James", "lastname": "Brown", "n": 5})
    r.hset("t:2", mapping={"name": "James Brown", "lastname": "Smith", "n": 7})
    out = {}
    for d in ("1", "2"):
        for q in ["@name: James Brown", "@name:james | smith", "@name:(@n:[5 5])", "(*)",
                  "$x", "@n:[5]", "@name:james -brown"]:
            reply = _keys(_try(r, "FT.SEARCH", "d", q, "PARAMS", "2", "x", "james", "NOCONTENT",
                               "DIALECT", d))
            # error offsets differ in places: compare only "a syntax error"
            out[d + q] = "syntax error" if str(reply).startswith("ERR Syntax error") else reply
    return out


def test_dialect_one(nk):
    out = dialect_one(nk)
    # DIALECT 1: "@name:" applies to both words; 2: only to the first
    assert out["1@name: James Brown"] == (1, ["t:2"])
    assert out["2@name: James Brown"] == (2, ["t:1", "t:2"])
    assert out["1@name:james | smith"] == (2, ["t:1", "t:2"])  # both in @name
    assert out["2@name:james | smith"] == (2, ["t:1", "t:2"])
    assert out["1@name:(@n:[5 5])"] == (1, ["t:1"])
    assert out["2@name:(@n:[5 5])"] == "syntax error"
    for q in ["(*)", "$x", "@n:[5]"]:
        assert out["1" + q] == "syntax error", q
    assert out["2(*)"] == (2, ["t:1", "t:2"])
    assert out["2$x"] == (2, ["t:1", "t:2"])
    assert out["2@n:[5]"] == (1, ["t:1"])
    assert out["1@name:james -brown"] == (0, [])  # -brown: in no field at all


EXPLAIN_QUERIES = ["*", "hello", "running", "@t1:hello", "hello world", "hello | world",
                   "-hello", "~hello", "hel*", "@t1:hel*", '"hello world"', "@title:{foo | bar}",
                   "@title:{foo*}", "@num:[0 10]", "@num:[(0 10]", "@num:[-inf +inf]",
                   "@loc:[1 2 3 km]", "(a | b) c", "@t1:(hello world)", "@t1: hello world",
                   "%hello%", "*ell*", "*ello", "ismissing(@m)", "@e:{$em}",
                   "*=>[KNN 10 @v $vec]", "@num:[0 10]=>[KNN 5 @v $vec AS d]",
                   "@v:[VECTOR_RANGE 0.5 $vec]", "@title:{x} @num:[1 2]", "Hello", "a the hello",
                   "foo @t1:hello world", "@t1:hello world | foo", "@t1:hello -world"]


@scenario
def explain_trees(r):
    r.flushall()
    r.execute_command("FT.CREATE", "x", "SCHEMA", "title", "TAG", "t1", "TEXT", "t2", "TEXT",
                      "NOSTEM", "num", "NUMERIC", "loc", "GEO", "v", "VECTOR", "HNSW", "6", "TYPE",
                      "FLOAT32", "DIM", "1", "DISTANCE_METRIC", "COSINE", "e", "TAG", "INDEXEMPTY",
                      "m", "TAG", "INDEXMISSING")
    out = {}
    for d in ("1", "2"):
        for q in EXPLAIN_QUERIES:
            reply = _try(r, "FT.EXPLAIN", "x", q, "PARAMS", "4", "vec", "aaaa", "em", "",
                         "DIALECT", d)
            out[d + q] = "syntax error" if reply.startswith("ERR Syntax error") else reply
    return out


def test_explain_trees(nk):
    pytest.importorskip("snowballstemmer")  # the expansions name the stems
    out = explain_trees(nk)
    assert out["2*"] == "<WILDCARD>\n"
    assert out["2running"] == "UNION {\n  running\n  +run(expanded)\n  run(expanded)\n}\n"
    assert out["1@t1: hello world"] == (
        "@t1:INTERSECT {\n  @t1:UNION {\n    @t1:hello\n    @t1:+hello(expanded)\n  }\n"
        "  @t1:UNION {\n    @t1:world\n    @t1:+world(expanded)\n  }\n}\n")
    assert out["2@t1: hello world"] == (
        "INTERSECT {\n  @t1:UNION {\n    @t1:hello\n    @t1:+hello(expanded)\n  }\n"
        "  UNION {\n    world\n    +world(expanded)\n  }\n}\n")
    assert out["2-hello"] == "NOT{\n  hello\n}\n"
    assert out['2"hello world"'] == "EXACT {\n  hello\n  world\n}\n"
    assert out["2@title:{foo*}"] == "TAG:@title {\n  PREFIX{foo*}\n}\n"
    assert out["2@num:[(0 10]"] == "NUMERIC {0.000000 < @num <= 10.000000}\n"
    assert out["2@num:[-inf +inf]"] == "NUMERIC {-inf <= @num <= inf}\n"
    assert out["2@loc:[1 2 3 km]"] == "GEO loc:{1.000000,2.000000 --> 3.000000 km}\n"
    assert out["2(a | b) c"].startswith("INTERSECT {\n  UNION {\n    b\n")  # 'a': stop word
    assert out["2%hello%"] == "FUZZY{hello}\n"
    assert out["2ismissing(@m)"] == "ISMISSING{m}\n"
    assert out["2@e:{$em}"] == 'TAG:@e {\n  ""\n}\n'
    assert out["2*=>[KNN 10 @v $vec]"] == (
        "VECTOR {K=10 nearest vectors to `$vec` in vector index associated with field @v, "
        "yields distance as `__v_score`}\n")
    assert out["2@num:[0 10]=>[KNN 5 @v $vec AS d]"] == (
        "VECTOR {\n  NUMERIC {0.000000 <= @num <= 10.000000}\n} => {K=5 nearest vectors to "
        "`$vec` in vector index associated with field @v, yields distance as `d`}\n")
    for q in ["ismissing(@m)", "@e:{$em}", "*=>[KNN 10 @v $vec]", "@v:[VECTOR_RANGE 0.5 $vec]"]:
        assert out["1" + q] == "syntax error", q


# --------------------------------------------------------------------------------------
# FT.CREATE FILTER
# --------------------------------------------------------------------------------------

@scenario
def create_filter(r):
    r.flushall()
    r.hset("d:0", mapping={"t": "old", "n": 0, "f1": 32})  # there before the index
    r.execute_command("FT.CREATE", "f", "PREFIX", "1", "d:", "FILTER", "@f1==32", "SCHEMA",
                      "t", "TEXT", "n", "NUMERIC")
    _wait_indexed(r, "f")
    r.hset("d:1", mapping={"t": "hello", "n": 1, "f1": 32})
    r.hset("d:2", mapping={"t": "hello", "n": 2, "f1": 31})
    r.hset("d:3", mapping={"t": "hello", "n": 3})  # lacks f1: indexed all the same
    out = {"first": _try(r, "FT.SEARCH", "f", "*", "NOCONTENT", "SORTBY", "n")}
    r.hset("d:2", "f1", "32")  # now passes
    r.hset("d:1", "f1", "0")  # now fails: leaves the index
    out["after"] = _try(r, "FT.SEARCH", "f", "*", "NOCONTENT", "SORTBY", "n")
    r.execute_command("FT.CREATE", "k", "FILTER", 'startswith(@__key, "d:") && @n > 1',
                      "SCHEMA", "n", "NUMERIC")
    r.hset("x:1", "n", 5)
    _wait_indexed(r, "k")
    out["key"] = _try(r, "FT.SEARCH", "k", "*", "NOCONTENT", "SORTBY", "n")
    info = r.execute_command("FT.INFO", "f")
    out["definition"] = info[info.index("index_definition") + 1]
    out["bad"] = str(_try(r, "FT.CREATE", "bad", "FILTER", "@n >", "SCHEMA", "n",
                          "NUMERIC")).startswith("ERR Syntax error")
    return out


def test_create_filter(nk):
    out = create_filter(nk)
    assert out["first"] == [3, "d:0", "d:1", "d:3"]
    assert out["after"] == [3, "d:0", "d:2", "d:3"]
    assert out["key"] == [2, "d:2", "d:3"]
    assert out["definition"] == ["key_type", "HASH", "prefixes", ["d:"], "filter", "@f1==32",
                                 "default_score", "1"]
    assert out["bad"] is True


# --------------------------------------------------------------------------------------
# RANDOM_SAMPLE, and sortable values as aggregation reads them
# --------------------------------------------------------------------------------------

@scenario
def random_sample_and_sortable_case(r):
    r.flushall()
    r.execute_command("FT.CREATE", "a", "SCHEMA", "title", "TEXT", "SORTABLE", "parent", "TEXT",
                      "SORTABLE", "n", "NUMERIC", "SORTABLE", "u", "TEXT", "SORTABLE", "UNF",
                      "p", "TEXT")
    for key, title, parent, n in [("a", "RediSearch", "redis", 1), ("b", "RedisAI", "redis", 2),
                                  ("c", "RedisJson", "redis", 3), ("d", "Other", "x", 4)]:
        r.hset(key, mapping={"title": title, "parent": parent, "n": n, "u": title, "p": title})
    out = {}

    def agg(*args):
        return _try(r, "FT.AGGREGATE", "a", "*", *args)
    # a group smaller than the sample: all its values, in order
    out["all"] = agg("GROUPBY", "1", "@parent", "REDUCE", "RANDOM_SAMPLE", "2", "@p", "5", "AS", "r",
                     "SORTBY", "2", "@parent", "ASC")
    out["zero"] = agg("GROUPBY", "1", "@parent", "REDUCE", "RANDOM_SAMPLE", "2", "@p", "0", "AS", "r",
                      "SORTBY", "2", "@parent", "ASC")
    out["too large"] = agg("GROUPBY", "1", "@parent", "REDUCE", "RANDOM_SAMPLE", "2", "@p", "1001")
    out["not a number"] = agg("GROUPBY", "1", "@parent", "REDUCE", "RANDOM_SAMPLE", "2", "@p", "x")
    out["no size"] = agg("GROUPBY", "1", "@parent", "REDUCE", "RANDOM_SAMPLE", "1", "@p")
    sample = agg("GROUPBY", "1", "@parent", "REDUCE", "RANDOM_SAMPLE", "2", "@p", "2", "AS", "r",
                  "SORTBY", "2", "@parent", "ASC")
    redis_row = sample[1]
    out["sample"] = (len(redis_row[3]), set(redis_row[3]) <= {"RediSearch", "RedisAI", "RedisJson"},
                     len(set(redis_row[3])))
    # SORTABLE TEXT read by GROUPBY / SORTBY / APPLY comes lower-cased (not with UNF or LOAD)
    out["group"] = agg("GROUPBY", "1", "@title", "REDUCE", "COUNT", "0", "SORTBY", "2", "@title", "ASC")
    out["unf"] = agg("GROUPBY", "1", "@u", "SORTBY", "2", "@u", "ASC")
    # (rows only: the count Redis puts first after SORTBY/LIMIT is not nearkit's, see docs)
    out["load"] = agg("LOAD", "1", "@title", "SORTBY", "2", "@n", "ASC", "LIMIT", "0", "1")[1:]
    out["apply"] = agg("APPLY", "upper(@title)", "AS", "x", "SORTBY", "2", "@n", "ASC", "LIMIT",
                       "0", "1")[1:]
    return out


def test_random_sample_and_sortable_case(nk):
    out = random_sample_and_sortable_case(nk)
    assert out["all"] == [2, ["parent", "redis", "r", ["RediSearch", "RedisAI", "RedisJson"]],
                          ["parent", "x", "r", ["Other"]]]
    assert out["zero"] == [2, ["parent", "redis", "r", []], ["parent", "x", "r", []]]
    assert out["too large"] == "ERR Sample size too large"
    assert out["not a number"] == ("ERR Bad arguments for <sample size>: Could not convert "
                                   "argument to expected type")
    assert out["no size"] == ("ERR Bad arguments for <sample size>: Expected an argument, but "
                              "none provided")
    assert out["sample"] == (2, True, 2)
    assert out["group"][1] == ["title", "other", "__generated_aliascount", "1"]
    assert out["unf"][1] == ["u", "Other"]
    assert out["load"] == [["title", "RediSearch", "n", "1"]]
    assert out["apply"] == [["title", "redisearch", "x", "REDISEARCH", "n", "1"]]


# --------------------------------------------------------------------------------------
# ACL SETUSER
# --------------------------------------------------------------------------------------

# redis-py retries a failed AUTH (an AuthenticationError is a ConnectionError) with backoff
_NO_RETRY = Retry(NoBackoff(), 0)


def _as_user(r, user, password, calls):
    port = r.connection_pool.connection_kwargs["port"]
    c = redis.Redis(port=port, username=user, password=password, decode_responses=True,
                    retry=_NO_RETRY)
    out = []
    for fn in calls:
        try:
            out.append(fn(c))
        except redis.RedisError as exc:
            out.append(f"{type(exc).__name__}: {exc}")
    c.close()
    return out


@scenario
def acl_users(r):
    r.flushall()
    for u in ("t_rw", "t_keys", "t_bad"):
        r.execute_command("ACL", "DELUSER", u)
    out = {"setuser": r.execute_command("ACL", "SETUSER", "t_rw", "reset", "on", ">pw1", "~*",
                                        "&*", "+@read", "+@write"),
           "getuser": r.execute_command("ACL", "GETUSER", "t_rw"),
           "keys user": r.execute_command("ACL", "SETUSER", "t_keys", "on", "nopass", "~k:*",
                                          "+get", "+set"),
           "bad category": _try(r, "ACL", "SETUSER", "t_bad", "+@nosuch"),
           "bad command": _try(r, "ACL", "SETUSER", "t_bad", "+nosuchcmd"),
           "bad rule": _try(r, "ACL", "SETUSER", "t_bad", "bogus")}
    out["list"] = [x for x in r.execute_command("ACL", "LIST") if x.split()[1].startswith("t_")]
    out["rw"] = _as_user(r, "t_rw", "pw1", [
        lambda c: c.exists("x"), lambda c: c.set("a", "1"), lambda c: c.get("a"),
        lambda c: c.client_setinfo("LIB-NAME", "probe"), lambda c: c.execute_command("FT._LIST"),
        lambda c: c.ping(), lambda c: c.execute_command("CONFIG", "GET", "maxmemory")])
    out["keys"] = _as_user(r, "t_keys", "any", [
        lambda c: c.set("k:1", "v"), lambda c: c.set("other", "v"), lambda c: c.get("k:1"),
        lambda c: c.exists("k:1")])
    out["wrong password"] = _as_user(r, "t_rw", "nope", [lambda c: c.ping()])
    out["deluser"] = r.execute_command("ACL", "DELUSER", "t_rw", "t_keys", "t_nobody")
    out["gone"] = _as_user(r, "t_rw", "pw1", [lambda c: c.ping()])
    return out


def test_acl_users(nk):
    out = acl_users(nk)
    assert out["getuser"] == ["flags", ["on", "sanitize-payload"], "passwords",
                              ["c592df4a86933b92addc9842402ddf198c638ea9be58916ee6e3734e1e3152f8"],
                              "commands", "-@all +@read +@write", "keys", "~*", "channels", "&*",
                              "selectors", []]
    assert out["bad category"].startswith("ERR Error in ACL SETUSER modifier '+@nosuch'")
    assert out["bad rule"].startswith("ERR Error in ACL SETUSER modifier 'bogus'")
    assert out["list"][0] == "user t_keys on nopass sanitize-payload ~k:* resetchannels -@all +get +set"
    deny = "NoPermissionError: User t_rw has no permissions to run the '{}' command"
    assert out["rw"] == [0, True, "1", deny.format("client|setinfo"), deny.format("FT._LIST"),
                         deny.format("ping"), deny.format("config|get")]
    assert out["keys"] == [True, "NoPermissionError: No permissions to access a key", "v",
                           "NoPermissionError: User t_keys has no permissions to run the 'exists' command"]
    assert out["wrong password"][0].startswith("AuthenticationError")
    assert out["deluser"] == 2
    assert out["gone"][0].startswith("AuthenticationError")


def test_acl_deleted_user_is_disconnected(nk):
    nk.execute_command("ACL", "SETUSER", "t_tmp", "on", ">p", "~*", "+@all")
    port = nk.connection_pool.connection_kwargs["port"]
    c = redis.Redis(port=port, username="t_tmp", password="p", retry=_NO_RETRY)
    assert c.ping() is True
    assert nk.execute_command("ACL", "WHOAMI") == "default"
    nk.execute_command("ACL", "DELUSER", "t_tmp")
    with pytest.raises(redis.RedisError):
        c.ping()
    c.close()


# --------------------------------------------------------------------------------------
# FT.MGET / FT.GET
# --------------------------------------------------------------------------------------

@scenario
def ft_mget(r):
    r.flushall()
    r.execute_command("FT.CREATE", "m", "PREFIX", "1", "doc", "SCHEMA", "f1", "TEXT", "f2", "TEXT")
    out = {"empty": _try(r, "FT.MGET", "m", "doc2", "doc1")}
    r.hset("doc1", mapping={"f1": "some dd1", "f2": "text f1", "extra": "x"})
    r.hset("doc2", "f1", "dd2")
    r.hset("other", "f1", "z")  # not under the prefix
    out["mget"] = _try(r, "FT.MGET", "m", "doc2", "doc1", "other", "nope")
    out["get"] = _try(r, "FT.GET", "m", "doc1")
    out["no index"] = _try(r, "FT.MGET", "nosuch", "doc1")
    r.execute_command("FT.CREATE", "j", "ON", "JSON", "PREFIX", "1", "j:", "SCHEMA", "$.a", "AS",
                      "a", "TEXT")
    r.execute_command("JSON.SET", "j:1", "$", '{"a": "hi"}')
    out["json"] = _try(r, "FT.MGET", "j", "j:1")
    return out


def test_ft_mget(nk):
    out = ft_mget(nk)
    assert out["empty"] == [None, None]
    assert out["mget"] == [["f1", "dd2"], ["f1", "some dd1", "f2", "text f1", "extra", "x"],
                           None, None]
    assert out["get"] == ["f1", "some dd1", "f2", "text f1", "extra", "x"]
    assert out["no index"] == "ERR Unknown Index name"
    assert out["json"] == [[]]


def test_temporary_index_expires_when_unused(nk):
    nk.flushall()
    nk.execute_command("FT.CREATE", "tmp", "TEMPORARY", "2", "SCHEMA", "t", "TEXT")
    assert nk.execute_command("FT.DEBUG", "TTL", "tmp") in (1, 2)
    with pytest.raises(redis.ResponseError, match="Index is not temporary"):
        nk.execute_command("FT.CREATE", "keep", "SCHEMA", "t", "TEXT")
        nk.execute_command("FT.DEBUG", "TTL", "keep")
    time.sleep(1.2)
    nk.execute_command("FT.SEARCH", "tmp", "*")  # a search restarts the idle time
    assert nk.execute_command("FT.DEBUG", "TTL", "tmp") == 1
    time.sleep(2.1)
    assert "tmp" not in nk.execute_command("FT._LIST")
    with pytest.raises(redis.ResponseError, match="Unknown index name"):
        nk.execute_command("FT.DEBUG", "TTL", "tmp")


@scenario
def json_arrindex_types(r):
    r.flushall()
    r.execute_command("JSON.SET", "t", ".", '[{"arr":[0,1,3.0,3,2,1,0,3]},{"n":{"arr":[5,4,3,2,1,'
                      '0,1,2,3.0,2,4,5]}},{"arr":"3"},{"arr":[true,1,[1,2],{"a":1},null]}]')
    return {v: _try(r, "JSON.ARRINDEX", "t", "$..arr", v)
            for v in ["3", "3.0", "true", "1", "[1,2]", "[1.0,2]", '{"a":1}', "null"]}


def test_json_arrindex_tells_int_from_float(nk):
    out = json_arrindex_types(nk)
    assert out["3"] == [3, 2, None, -1]
    assert out["3.0"] == [2, 8, None, -1]
    assert out["true"] == [-1, -1, None, 0]
    assert out["1"] == [1, 4, None, 1]
    assert out["[1,2]"] == [-1, -1, None, 2]
    assert out["[1.0,2]"] == [-1, -1, None, -1]
    assert out['{"a":1}'] == [-1, -1, None, 3]
    assert out["null"] == [-1, -1, None, 4]


# --------------------------------------------------------------------------------------
# the reference
# --------------------------------------------------------------------------------------

def test_matches_reference(nk, ref, name):
    if name.startswith("geoshape"):
        pytest.importorskip("shapely")
    if name == "explain_trees":
        pytest.importorskip("snowballstemmer")
    assert SCENARIOS[name](nk) == SCENARIOS[name](ref)
