"""Bounded resources in the store: nesting of filters, k, ids a snapshot may hold,
the writer lock after a failed open."""

from __future__ import annotations

import pytest

from nearkit.store.filters import FilterError, FilterSyntaxError, MAX_NESTING, from_python, parse_filter


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
