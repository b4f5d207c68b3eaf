"""Filter queries: one tree, two front ends, one evaluator.

- ``nodes``: the tree (``Tag``, ``Numeric``, ``TextTerm``, ... combined by ``And``,
  ``Or``, ``Not``, ``Optional``; ``MatchAll``) and its errors.
- ``parse_text``: the Redis query language (``@genre:{drama} @year:[1990 (2000]``);
  ``parse_dict``: the store's Python form (``{"genre": ["drama"], "year": (1990, 2000)}``).
- ``evaluate``: the one walk over a tree; callers supply the leaf hook (the store its
  field indexes, the server its own).
- ``bounds`` (range bounds as text), ``values`` (payload values per field type),
  ``words`` (stems, edit distance): what the parsers and the evaluators share.

Nothing here imports ``nearkit.store`` or ``nearkit.server``; both import this.
"""

from __future__ import annotations

from .nodes import (
    And, Empty, FilterError, FilterSyntaxError, Geo, GeoShape, MatchAll, Missing, Node, Not,
    Numeric, Optional, Or, Phrase, Tag, TextPattern, TextTerm, VectorRange,
)
from .parse_dict import from_python
from .parse_text import parse_filter, parse_prefix

__all__ = [
    "And", "Empty", "FilterError", "FilterSyntaxError", "Geo", "GeoShape", "MatchAll", "Missing",
    "Node", "Not", "Numeric", "Optional", "Or", "Phrase", "Tag", "TextPattern", "TextTerm",
    "VectorRange", "from_python", "parse_filter", "parse_prefix", "to_filter",
]


def to_filter(where, params: dict | None = None) -> Node:
    """Any accepted filter form -> tree: None, a Node, a query string or a Python dict."""
    if where is None:
        return MatchAll()
    if isinstance(where, Node):
        return where
    if isinstance(where, str):
        return parse_filter(where, params)
    if isinstance(where, dict):
        return from_python(where)
    raise TypeError(f"where must be a query string, a dict or None, got {type(where).__name__}")
