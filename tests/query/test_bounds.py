"""Range bounds written as text: one reader for the query parser and the server's FILTER."""

import math

import pytest

from nearkit.query.bounds import bound_value, parse_bound
from nearkit.query.nodes import FilterSyntaxError
from nearkit.query.parse_text import parse_filter


@pytest.mark.parametrize("text, value, inclusive", [
    ("5", 5.0, True), ("(5", 5.0, False), (" 7 ", 7.0, True), ("-2.5", -2.5, True),
    ("1e3", 1000.0, True), ("inf", math.inf, True), ("+inf", math.inf, True),
    ("-inf", -math.inf, True), ("(-inf", -math.inf, False), ("+INF", math.inf, True),
])
def test_parse_bound(text, value, inclusive):
    assert parse_bound(text) == (value, inclusive)


def test_bad_bounds_are_value_errors_and_nan_is_left_to_the_caller():
    for bad in ("x", "", "(", "((5", "5]"):
        with pytest.raises(ValueError):
            parse_bound(bad)
    assert math.isnan(bound_value("nan"))  # the server's FILTER takes it; the parser refuses it


@pytest.mark.parametrize("text", ["5", "(5", "-inf", "(-inf", "+inf", "1e3", "-2.5"])
def test_the_parser_reads_a_bound_as_parse_bound_does(text):
    value, inclusive = parse_bound(text)
    literal = parse_filter(f"@n:[{text} +inf]")
    param = parse_filter("@n:[$lo +inf]", {"lo": text})
    for tree in (literal, param):
        assert (tree.lo, tree.lo_inclusive) == (value, inclusive)


def test_the_parser_refuses_what_parse_bound_refuses():
    with pytest.raises(FilterSyntaxError, match="expected a number for the lower bound"):
        parse_filter("@n:[((5 6]")
    with pytest.raises(FilterSyntaxError, match="NaN is not a valid upper bound"):
        parse_filter("@n:[1 $hi]", {"hi": "nan"})
