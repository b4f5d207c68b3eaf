"""Results without SORTBY come in Redis's document order: a document indexed later
lists later, also when it takes a deleted document's slot, and an updated document
(any write to the hash, indexed field or not) moves to the end, as Redis gives it a
new id. Ties of SORTBY, KNN and text scores break the same way. The expected lists
were read from Redis Stack; with a reference Redis at hand the test also runs there."""

import numpy as np
import pytest

redis = pytest.importorskip("redis")


def _ids(reply):
    return reply[1:]


def _scenario(r):
    r.flushall()
    r.execute_command("FT.CREATE", "i", "ON", "HASH", "PREFIX", "1", "d:", "SCHEMA",
                      "t", "TAG", "n", "NUMERIC", "body", "TEXT",
                      "v", "VECTOR", "FLAT", "6", "TYPE", "FLOAT32", "DIM", "2",
                      "DISTANCE_METRIC", "L2")
    v = np.array([1, 0], np.float32).tobytes()
    for k in ["a", "b", "c"]:
        r.hset(f"d:{k}", mapping={"t": "x", "n": 1, "body": "hello", "v": v})
    out = {}
    r.delete("d:a")
    r.hset("d:d", mapping={"t": "x", "n": 1, "body": "hello", "v": v})  # takes a's slot
    out["after delete + add"] = _ids(r.execute_command("FT.SEARCH", "i", "*", "NOCONTENT"))
    r.hset("d:b", mapping={"n": 2})
    out["after update"] = _ids(r.execute_command("FT.SEARCH", "i", "*", "NOCONTENT"))
    r.hset("d:c", mapping={"other": 5})  # a field outside the schema
    out["after unindexed write"] = _ids(r.execute_command("FT.SEARCH", "i", "*", "NOCONTENT"))
    out["tag filter"] = _ids(r.execute_command("FT.SEARCH", "i", "@t:{x}", "NOCONTENT"))
    out["sortby ties"] = _ids(r.execute_command("FT.SEARCH", "i", "*", "NOCONTENT", "SORTBY", "n"))
    out["text score ties"] = _ids(r.execute_command("FT.SEARCH", "i", "hello", "NOCONTENT"))
    out["knn ties"] = _ids(r.execute_command(
        "FT.SEARCH", "i", "*=>[KNN 3 @v $q]", "PARAMS", "2", "q", v, "NOCONTENT",
        "DIALECT", "2"))
    return out


EXPECTED = {
    "after delete + add": ["d:b", "d:c", "d:d"],
    "after update": ["d:c", "d:d", "d:b"],
    "after unindexed write": ["d:d", "d:b", "d:c"],
    "tag filter": ["d:d", "d:b", "d:c"],
    "sortby ties": ["d:d", "d:c", "d:b"],
    "text score ties": ["d:d", "d:b", "d:c"],
    "knn ties": ["d:d", "d:b", "d:c"],
}


def test_document_order_on_nearkit(nk):
    assert _scenario(nk) == EXPECTED


def test_document_order_on_reference(ref):
    got = _scenario(ref)
    assert {k: got[k] for k in EXPECTED} == EXPECTED
