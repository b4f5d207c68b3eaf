"""The Redis query language -> filter tree: valid queries, rendering back, parameters,
the KNN clause boundary, errors that point at the bad token, and nesting limits."""

import math

import pytest

from nearkit.query.nodes import (
    MAX_NESTING, And, FilterSyntaxError, MatchAll, Not, Numeric, Optional, Or, Phrase, Tag, TextTerm,
    VectorRange,
)
from nearkit.query.parse_text import parse_filter, parse_prefix


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



def test_deep_filter_strings_are_syntax_errors():
    for q in ("(" * 1000 + "a" + ")" * 1000, "-~" * 500 + "a", "@f:(" + "-~" * 500 + "a)",
              "@f:" + "-(" * 600 + "a" + ")" * 600, "@f:(" + "(" * 600 + "a" + ")" * 601):
        with pytest.raises(FilterSyntaxError, match="nested too deeply"):
            parse_filter(q)
    depth = MAX_NESTING - 1
    assert str(parse_filter("(" * depth + "a" + ")" * depth)) == str(parse_filter("a"))
    # a run of one prefix operator is not nesting: --a is a, ~~a is ~a (Redis takes them too)
    assert parse_filter("-" * 1000 + "a") == parse_filter("a")
    assert parse_filter("-" * 1001 + "a") == parse_filter("-a")
    assert parse_filter("~" * 1000 + "a") == parse_filter("~a")
    assert parse_filter("@f:" + "-" * 1001 + "a") == parse_filter("@f:-a")
