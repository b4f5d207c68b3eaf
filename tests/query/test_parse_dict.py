"""The store's Python filter form -> filter tree, its errors, and ``to_filter``."""

import math

import pytest

from nearkit.query import to_filter
from nearkit.query.nodes import MAX_NESTING, And, FilterError, MatchAll, Not, Numeric, Or, Tag
from nearkit.query.parse_dict import from_python


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



def test_deep_python_filters_are_refused():
    f = {"x": 1}
    for _ in range(5000):
        f = {"$not": f}
    with pytest.raises(FilterError, match="nested too deeply"):
        from_python(f)
    g = {"x": 1}
    for _ in range(MAX_NESTING - 1):
        g = {"$and": [g]}
    from_python(g)
