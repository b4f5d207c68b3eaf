"""Store calls a newcomer reaches for: create_collection(exist_ok=True) that checks the
definition, IVF refused at creation, payload-only updates, add_field with back-fill,
and filters on undeclared fields that say what to do."""

import numpy as np
import pytest

import nearkit
import nearkit.datasets
import nearkit.evaluate
from nearkit.query import FilterError


@pytest.fixture
def db(tmp_path):
    with nearkit.open(tmp_path / "store", durability="always") as store:
        yield store


def films(db, **kw):
    return db.create_collection("films", dim=4, metric="cosine", index="hnsw",
                                fields={"genre": "tag"}, **kw)


def test_exist_ok_returns_the_same_collection_only_for_the_same_definition(db):
    first = films(db)
    assert films(db, exist_ok=True) is first
    for change, words in (({"dim": 5}, "dim 4 (asked for 5)"),
                          ({"metric": "l2"}, "metric 'cosine'"),
                          ({"index": "flat"}, "index_kind 'hnsw'"),
                          ({"fields": {"genre": "text"}}, "fields"),
                          ({"index_params": {"M": 8}}, "index_params {}")):
        args = dict(dim=4, metric="cosine", index="hnsw", fields={"genre": "tag"}, exist_ok=True)
        args.update(change)
        with pytest.raises(ValueError, match="already exists with another definition") as exc:
            db.create_collection("films", **args)
        assert words in str(exc.value)
    with pytest.raises(ValueError, match="already exists"):
        films(db)


def test_an_ivf_collection_trains_itself_once_it_holds_enough(tmp_path):
    x = nearkit.datasets.synthetic_clustered(700, 8, seed=5)
    keys = [f"k{i}" for i in range(600)]
    payloads = [{"genre": "a" if i % 2 else "b"} for i in range(600)]
    exact = nearkit.Flat(8)
    exact.add(x[:600])
    path = tmp_path / "s"
    with nearkit.open(path) as db:
        col = db.create_collection("v", dim=8, index="ivf", index_params={"nlist": 8},
                                   fields={"genre": "tag"})
        col.upsert(keys[:200], x[:200], payloads[:200])  # 200 < 39 * 8: kept, searched exactly
        assert not col._index.is_trained
        got = [h.key for h in col.search(x[650], 5)]
        small = nearkit.Flat(8)
        small.add(x[:200])
        assert got == [f"k{i}" for i in small.search(x[650], 5)[0]]
        assert all(h.payload["genre"] == "a" for h in col.search(x[650], 5, where="@genre:{a}"))
        col.snapshot()
    with nearkit.open(path) as db:
        col = db.get_collection("v")
        assert len(col) == 200 and not col._index.is_trained
        col.upsert(keys[200:], x[200:600], payloads[200:])
        assert col._index.is_trained and len(col._index) == 600
        q = x[600:]
        found = [[int(h.key[1:]) for h in hits] for hits in col.search(q, 10)]
        assert nearkit.evaluate.recall_at_k(found, exact.search(q, 10)[0]) >= 0.9
        col.delete(["k1"])
    with nearkit.open(path) as db:
        col = db.get_collection("v")
        assert len(col) == 599 and col._index.is_trained and "k1" not in col
    with nearkit.open(path) as db:
        with pytest.raises(ValueError, match="train_size=None must be trained"):
            db.create_collection("w", dim=4, index="ivf", index_params={"train_size": None})
        assert "w" not in db


def test_update_payloads_keeps_vectors_and_is_durable(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 4)).astype(np.float32)
    keys = [f"k{i}" for i in range(50)]
    with nearkit.open(tmp_path / "s") as db:
        col = films(db)
        col.upsert(keys, x, [{"genre": "drama"}] * 50)
        col.update_payloads(["k1", "k2"], [{"genre": "comedy"}, {"genre": "comedy", "note": 1}])
        col.update_payloads("k3", {"genre": "comedy"})
        assert sorted(h.key for h in col.search(x[1], 10, where="@genre:{comedy}")) == ["k1", "k2", "k3"]
        np.testing.assert_array_equal(col.get("k1").vector, x[1])  # what upsert was given
        assert col.get("k2").payload == {"genre": "comedy", "note": 1}
        with pytest.raises(KeyError, match="no key 'nope'"):
            col.update_payloads(["k4", "nope"], [{"genre": "x"}, {"genre": "y"}])
        assert col.get("k4").payload == {"genre": "drama"}  # nothing changed
        with pytest.raises(ValueError, match="2 payloads for 1 keys"):
            col.update_payloads(["k4"], [{}, {}])
        assert len(col) == 50
    with nearkit.open(tmp_path / "s") as db:
        col = db.get_collection("films")
        assert col.count("@genre:{comedy}") == 3
        np.testing.assert_array_equal(col.get("k2").vector, x[2])


def test_add_field_back_fills_and_survives_reopening(tmp_path):
    x = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0]]
    payloads = [{"genre": "a", "year": 1990}, {"genre": "b", "year": 2005},
                {"genre": "a"}, None, {"genre": "b", "year": 2020}]
    with nearkit.open(tmp_path / "s") as db:
        col = films(db)
        col.upsert([f"k{i}" for i in range(5)], x, payloads)
        col.snapshot()  # a state snapshot written for the old fields must not be trusted later
        with pytest.raises(FilterError, match="add_field\\('year'"):
            col.count("@year:[2000 +inf]")
        col.add_field("year", "numeric")
        assert col.fields["year"]["type"] == "numeric"
        assert sorted(col.keys("@year:[2000 +inf]")) == ["k1", "k4"]
        col.upsert("k5", np.ones(4), {"genre": "c", "year": 2001})
        assert sorted(col.keys("@year:[2000 +inf]")) == ["k1", "k4", "k5"]
        with pytest.raises(ValueError, match="already has a field 'year'"):
            col.add_field("year", "numeric")
        col.upsert("bad", np.ones(4), {"rank": "high"})
        with pytest.raises((TypeError, ValueError), match="key 'bad'"):
            col.add_field("rank", "numeric")
        assert "rank" not in col.fields
        col.delete("bad")
    with nearkit.open(tmp_path / "s") as db:
        col = db.get_collection("films")
        assert sorted(col.keys("@year:[2000 +inf]")) == ["k1", "k4", "k5"]
        assert films(db, exist_ok=True) is col  # asked for genre only: year came later
        with pytest.raises(ValueError, match="another definition"):
            db.create_collection("films", dim=4, metric="cosine", fields={"year": "tag"},
                                 exist_ok=True)


def test_filter_on_an_undeclared_field_explains_itself(db):
    col = films(db)
    col.upsert("a", np.ones(4), {"genre": "x", "year": 3})
    for where in ("@year:[1 5]", {"year": (1, 5)}):
        with pytest.raises(FilterError) as exc:
            col.search(np.ones(4), 1, where=where)
        msg = str(exc.value)
        assert "unknown field 'year'" in msg and "declared fields: genre" in msg
        assert "add_field('year'" in msg and "fields=" in msg
