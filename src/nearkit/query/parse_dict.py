"""The store's Python filter form -> a filter tree.

``{"genre": ["drama"], "year": (1990, 2000)}``: each key a field, all must hold;
``{"gt"|"gte"|"lt"|"lte"|"eq": x}`` ranges; ``"$and"``/``"$or"``/``"$not"``.
"""

from __future__ import annotations

import math
import numbers

from .nodes import MAX_NESTING, FilterError, MatchAll, Node, Not, Numeric, Tag, all_of, any_of

_NUM_OPS = {"gt", "gte", "lt", "lte", "eq"}


def _is_number(x) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _bound(field: str, v) -> float:
    """A Python number as a filter bound; FilterError (not OverflowError) past float64."""
    try:
        return float(v)
    except OverflowError:
        raise FilterError(f"field {field!r}: {'-' if v < 0 else ''}an integer beyond the "
                          "float64 range is not a valid bound (use math.inf)") from None


def _python_value(field: str, value) -> Node:
    if isinstance(value, Node):
        return value
    if isinstance(value, str):
        return Tag(field, (value,))
    if _is_number(value):
        v = _bound(field, value)
        return Numeric(field, v, v)
    if isinstance(value, tuple) and len(value) == 2 and all(v is None or _is_number(v) for v in value):
        lo = -math.inf if value[0] is None else _bound(field, value[0])
        hi = math.inf if value[1] is None else _bound(field, value[1])
        if math.isnan(lo) or math.isnan(hi):
            raise FilterError(f"field {field!r}: NaN is not a valid bound")
        return Numeric(field, lo, hi)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)
        if not items:
            raise FilterError(f"field {field!r}: an empty list matches nothing; give at least one value")
        if all(isinstance(v, str) for v in items):
            return Tag(field, tuple(items))
        if all(_is_number(v) for v in items):
            return any_of(Numeric(field, _bound(field, v), _bound(field, v)) for v in items)
        raise FilterError(f"field {field!r}: a list must hold only strings or only numbers")
    if isinstance(value, dict):
        unknown = set(value) - _NUM_OPS
        if unknown or not value:
            raise FilterError(
                f"field {field!r}: unknown operator(s) {sorted(unknown)}; use gt, gte, lt, lte, eq")
        lo, hi, lo_inc, hi_inc = -math.inf, math.inf, True, True
        for op, v in value.items():
            if not _is_number(v):
                raise FilterError(f"field {field!r}: {op} needs a number, got {v!r}")
            v = _bound(field, v)
            if op == "eq":
                lo = hi = v
            elif op in ("gt", "gte"):
                lo, lo_inc = v, op == "gte"
            else:
                hi, hi_inc = v, op == "lte"
        return Numeric(field, lo, hi, lo_inc, hi_inc)
    raise FilterError(f"field {field!r}: cannot use a {type(value).__name__} as a filter value")


def from_python(obj, _depth: int = 0) -> Node:
    """``{"genre": ["drama"], "year": (1990, 2000)}`` -> tree.

    Each key is a field (all must hold: AND). Values: a string or list of strings
    (tag/text match any), a number (equality), a ``(lo, hi)`` tuple (inclusive,
    None for open), or ``{"gt"|"gte"|"lt"|"lte"|"eq": x}``. Special keys:
    ``"$and"``/``"$or"`` (lists of such dicts) and ``"$not"`` (one dict).
    """
    if obj is None:
        return MatchAll()
    if isinstance(obj, Node):
        return obj
    if not isinstance(obj, dict):
        raise FilterError(f"a Python filter must be a dict, got {type(obj).__name__}")
    if not obj:
        return MatchAll()
    if _depth >= MAX_NESTING:
        raise FilterError(f"filter nested too deeply (more than {MAX_NESTING} levels of $and/$or/$not)")
    parts = []
    for key, value in obj.items():
        if not isinstance(key, str):
            raise FilterError(f"filter keys must be field names (strings), got {key!r}")
        if key in ("$and", "$or"):
            if not isinstance(value, (list, tuple)) or not value:
                raise FilterError(f"{key} needs a non-empty list of filters")
            kids = [from_python(v, _depth + 1) for v in value]
            parts.append(all_of(kids) if key == "$and" else any_of(kids))
        elif key == "$not":
            parts.append(Not(from_python(value, _depth + 1)))
        elif key.startswith("$"):
            raise FilterError(f"unknown operator {key!r}; use $and, $or or $not")
        else:
            parts.append(_python_value(key, value))
    return all_of(parts)

