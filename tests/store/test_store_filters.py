"""Filter parsing (Redis syntax and Python form), schema binding, and evaluation."""

import math

import numpy as np
import pytest

from nearkit.store.fields import FieldIndex
from nearkit.store.filters import (
    And, FilterError, FilterSyntaxError, MatchAll, Not, Numeric, Optional, Or, Phrase, Tag, TextTerm,
    VectorRange, bind, from_python, matches, parse_filter, parse_prefix, to_filter,
)

SCHEMA = {"genre": "tag", "year": "numeric", "title": "text", "body": "text"}


@pytest.mark.parametrize("query, tree", [
    ("*", MatchAll()),
    ("@genre:{drama}", Tag("genre", ("drama",))),
    ("@genre:{drama | comedy}", Tag("genre", ("drama", "comedy"))),
    (r"@genre:{science\ fiction|a\-b}", Tag("genre", ("science fiction", "a-b"))),
    ("@genre:{dra*}", Tag("genre", (), ("dra",))),
    ("@year:[1990 2000]", Numeric("year", 1990, 2000)),
    ("@year:[(1990 (2000]", Numeric("year", 1990, 2000, False, False)),
    ("@year:[-inf (3]", Numeric("year", -math.inf, 3, True, False)),
    ("@year:[1.5 +inf]", Numeric("year", 1.5, math.inf)),
    ("@title:foo", TextTerm("title", "foo")),
    ("@title:foo*", TextTerm("title", "foo", True)),
    ("@title:(hello)", TextTerm("title", "hello")),
    ("@title:(a b)", And((TextTerm("title", "a"), TextTerm("title", "b")))),
    ("@title:(a | b)", Or((TextTerm("title", "a"), TextTerm("title", "b")))),
    ("@title:(a -b)", And((TextTerm("title", "a"), Not(TextTerm("title", "b"))))),
    ("hello", TextTerm(None, "hello")),
    ("-@genre:{x}", Not(Tag("genre", ("x",)))),
    ("~@title:x", Optional(TextTerm("title", "x"))),
    ("@genre:{drama|comedy} @year:[1990 (2000] -@title:foo",
     And((Tag("genre", ("drama", "comedy")), Numeric("year", 1990, 2000, True, False),
          Not(TextTerm("title", "foo"))))),
    ("@genre:{a} | @genre:{b} @year:[1 2]",
     Or((Tag("genre", ("a",)), And((Tag("genre", ("b",)), Numeric("year", 1, 2)))))),
    ("((@genre:{a} @year:[1 +inf]))", And((Tag("genre", ("a",)), Numeric("year", 1, math.inf)))),
    # a phrase is the AND of its words (a Phrase: an And kept apart for FT.EXPLAIN)
    ('@title:"Hello, World"', Phrase((TextTerm("title", "hello"), TextTerm("title", "world")))),
    ("@v:[VECTOR_RANGE 0.2 $vec]=>{$YIELD_DISTANCE_AS: dist}",
     VectorRange("v", 0.2, "vec", (("YIELD_DISTANCE_AS", "dist"),))),
])
def test_parse_valid(query, tree):
    assert parse_filter(query) == tree


def test_rendering_parses_back_to_the_same_tree():
    for q in ["@genre:{drama|comedy} @year:[1990 (2000] -@title:foo",
              r"@genre:{science\ fiction} | (@year:[(1 +inf] ~@title:ab*)", "hello -world*"]:
        t = parse_filter(q)
        assert parse_filter(str(t)) == t


def test_params_are_substituted():
    t = parse_filter("@genre:{$g} @year:[$lo $hi] @title:$w", {"g": "drama", "lo": "(1990", "hi": 2000,
                                                               "w": "war"})
    assert t == And((Tag("genre", ("drama",)), Numeric("year", 1990, 2000, False, True),
                     TextTerm("title", "war")))


def test_parse_prefix_stops_at_knn_clause():
    q = "(@genre:{a} | @genre:{b})=>[KNN 10 @v $blob AS d]"
    tree, end = parse_prefix(q)
    assert tree == Or((Tag("genre", ("a",)), Tag("genre", ("b",))))
    assert q[end:].startswith("=>[KNN")
    assert parse_prefix("*=>[KNN 3 @v $b]")[1] == 1
    with pytest.raises(FilterSyntaxError):
        parse_filter(q)  # a whole filter must not contain a KNN clause


@pytest.mark.parametrize("query, offset, near, words", [
    ("@genre:{drama", 7, "{drama", "unterminated tag list"),
    ("@year:[1990 x]", 12, "x]", "expected a number for the upper bound"),
    ("@year:[1990 2000 5]", 18, "]", "geo radius unit"),
    ("@year:[1 2 3]", 12, "]", "geo radius unit"),
    ("@year:[1 2 3 parsecs]", 13, "parsecs]", "geo radius unit"),
    ("(@genre:{a}", 11, "", "expected ')'"),
    ("@genre:{a})", 10, ")", "unbalanced ')'"),
    ("", 0, "", "empty query"),
    ("@:x", 0, "@:x", "field name"),
    ("@genre {a}", 6, " ", "expected ':'"),
    ("-", 1, "", "after '-'"),
    ("@genre:{}", 8, "}", "empty tag"),
    ("@genre:{a} $nope", 11, "$nope", "no such parameter"),
    ("@year:[nan 1]", 7, "nan", "NaN"),
    ("{a}", 0, "{a}", "must follow a field name"),
    ("@title:", 7, "", "expected a value"),
    ("@v:[VECTOR_RANGE -1 $b]", 16, "-1", "negative radius"),
])
def test_parse_errors_point_at_the_bad_token(query, offset, near, words):
    with pytest.raises(FilterSyntaxError) as exc:
        parse_filter(query)
    e = exc.value
    assert e.offset == offset, str(e)
    assert e.near == near, str(e)
    assert words in str(e)
    assert f"offset {offset}" in str(e)
    assert isinstance(e, ValueError)


def test_python_form():
    assert from_python({"genre": ["drama"], "year": (1990, 2000)}) == And(
        (Tag("genre", ("drama",)), Numeric("year", 1990, 2000)))
    assert from_python({"genre": "drama"}) == Tag("genre", ("drama",))
    assert from_python({"year": 1994}) == Numeric("year", 1994, 1994)
    assert from_python({"year": (None, 2000)}) == Numeric("year", -math.inf, 2000)
    assert from_python({"year": {"gt": 1, "lte": 5}}) == Numeric("year", 1, 5, False, True)
    assert from_python({"$or": [{"genre": "a"}, {"year": 3}]}) == Or(
        (Tag("genre", ("a",)), Numeric("year", 3, 3)))
    assert from_python({"$not": {"genre": "a"}}) == Not(Tag("genre", ("a",)))
    assert to_filter(None) == MatchAll() and to_filter({}) == MatchAll()
    # the same filter written both ways gives the same tree
    assert to_filter({"genre": ["drama", "comedy"], "year": (1990, 2000)}) == to_filter(
        "@genre:{drama|comedy} @year:[1990 2000]")


@pytest.mark.parametrize("bad, words", [
    ({"genre": []}, "empty list"),
    ({"genre": ["a", 1]}, "only strings or only numbers"),
    ({"year": {"approx": 3}}, "unknown operator"),
    ({"$xor": []}, "unknown operator"),
    ({"year": object()}, "cannot use a object"),
    ([1, 2], "a query string, a dict or None"),
])
def test_python_form_errors(bad, words):
    with pytest.raises((FilterError, TypeError), match=words):
        to_filter(bad)


def test_bind_checks_fields_and_types():
    with pytest.raises(FilterError, match="unknown field 'rating'"):
        bind(parse_filter("@rating:[1 2]"), SCHEMA)
    with pytest.raises(FilterError, match="is numeric, not tag"):
        bind(parse_filter("@year:{x}"), SCHEMA)
    with pytest.raises(FilterError, match="is tag, not text"):
        bind(parse_filter("@genre:drama"), SCHEMA)
    with pytest.raises(FilterError, match="not numeric"):
        bind(parse_filter("@genre:[1 2]"), SCHEMA)
    with pytest.raises(FilterError, match="needs a text field"):
        bind(parse_filter("word"), {"genre": "tag"})
    # a Python-form list on a text field means "any of these words"
    assert bind(from_python({"title": ["War", "peace"]}), SCHEMA) == Or(
        (TextTerm("title", "war"), TextTerm("title", "peace")))


def _docs(rng, n):
    genres = ["drama", "comedy", "Horror", "sci fi", "noir"]
    words = ["war", "peace", "love", "warden", "space", "time", "night"]
    docs = []
    for i in range(n):
        d = {}
        if rng.random() < 0.9:
            d["genre"] = ",".join(rng.choice(genres, size=rng.integers(1, 3), replace=False))
        if rng.random() < 0.9:
            d["year"] = int(rng.integers(1950, 2020))
        if rng.random() < 0.9:
            d["title"] = " ".join(rng.choice(words, size=3))
        if rng.random() < 0.5:
            d["body"] = " ".join(rng.choice(words, size=2)).upper()
        docs.append(d)
    return docs


QUERIES = [
    "*", "@genre:{drama}", "@genre:{DRAMA|noir}", r"@genre:{sci\ fi}", "@genre:{ho*}",
    "@year:[1990 2000]", "@year:[(1990 (2000]", "@year:[-inf 1960]", "@title:war", "@title:war*",
    "@title:(war peace)", "@title:(war | love)", "@title:(war -peace)", "war", "space*",
    "-@genre:{drama}", "@genre:{drama} @year:[1990 (2000] -@title:war",
    "@genre:{comedy} | @year:[2010 +inf] @title:time", "~@title:war @genre:{noir}",
    "-(@genre:{drama} | @title:love)",
]


@pytest.mark.parametrize("query", QUERIES)
def test_mask_agrees_with_single_document_evaluation(query):
    rng = np.random.default_rng(7)
    docs = _docs(rng, 400)
    fi = FieldIndex(SCHEMA)
    fi.reserve(len(docs))
    for i, d in enumerate(docs):
        fi.insert(i, fi.extract(d))
    live = np.ones(len(docs), bool)
    live[::7] = False  # dead slots never match
    tree = fi.bind(parse_filter(query))
    got = fi.mask(tree, live)
    want = np.array([live[i] and matches(tree, d, fi.schema) for i, d in enumerate(docs)])
    assert (got == want).all()
    if query not in ("*",):
        assert 0 < want.sum() < live.sum() or query.startswith("~")


def test_field_index_removal_and_payload_validation():
    fi = FieldIndex(SCHEMA)
    fi.reserve(3)
    recs = [fi.extract({"genre": "a,b", "year": "1999", "title": "Hello world"}),
            fi.extract({"genre": ["B"], "year": 5})]
    for i, r in enumerate(recs):
        fi.insert(i, r)
    live = np.array([True, True, False])
    assert fi.mask(fi.bind(parse_filter("@genre:{b}")), live).tolist() == [True, True, False]
    fi.remove(0, recs[0])
    assert fi.mask(fi.bind(parse_filter("@genre:{b}")), live).tolist() == [False, True, False]
    assert fi.mask(fi.bind(parse_filter("@year:[1 2000]")), live).tolist() == [False, True, False]
    with pytest.raises(ValueError, match="payload field 'year': invalid numeric value 'abc'"):
        fi.extract({"year": "abc"})
    with pytest.raises(TypeError, match="payload must be a dict"):
        fi.extract(["x"])
