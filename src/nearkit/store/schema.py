"""A collection's declared payload fields, and filter trees checked against them.

``normalize_schema`` validates ``{"genre": "tag", "title": {"type": "text"}}``;
``bind(tree, schema)`` raises FilterError for unknown fields and type mismatches
before any row is looked at, and turns a ``Tag`` on a TEXT field (the Python form's
lists of strings) into an OR of its words.
"""

from __future__ import annotations

from ..query.evaluate import Rewrite
from ..query.nodes import (
    Empty, FilterError, Geo, GeoShape, Missing, Node, Numeric, Tag, TextPattern, TextTerm,
    VectorRange, all_of, any_of,
)
from ..query.values import text_tokens

FIELD_TYPES = ("tag", "numeric", "text", "geo")


def normalize_schema(fields) -> dict:
    """``{"genre": "tag", "title": {"type": "text"}}`` -> {name: {"type", options...}}."""
    if fields is None:
        return {}
    if not isinstance(fields, dict):
        raise TypeError(f"fields must be a dict of name -> type, got {type(fields).__name__}")
    out = {}
    for name, spec in fields.items():
        if not isinstance(name, str) or not name:
            raise ValueError(f"field names must be non-empty strings, got {name!r}")
        if isinstance(spec, str):
            spec = {"type": spec}
        if not isinstance(spec, dict) or "type" not in spec:
            raise TypeError(f"field {name!r}: give a type name or a dict with 'type', got {spec!r}")
        spec = dict(spec)
        spec["type"] = str(spec["type"]).lower()
        if spec["type"] not in FIELD_TYPES:
            raise ValueError(f"field {name!r}: unknown type {spec['type']!r}; expected one of {FIELD_TYPES}")
        allowed = {"type"} | ({"separator", "case_sensitive"} if spec["type"] == "tag" else set())
        extra = set(spec) - allowed
        if extra:
            raise ValueError(f"field {name!r}: unknown option(s) {sorted(extra)} for a {spec['type']} field")
        if spec["type"] == "tag":
            sep = spec.setdefault("separator", ",")
            if not isinstance(sep, str) or len(sep) != 1:
                raise ValueError(f"field {name!r}: separator must be one character, got {sep!r}")
            spec["case_sensitive"] = bool(spec.get("case_sensitive", False))
        out[name] = spec
    return out


def _field_type(schema: dict, field: str) -> str:
    spec = schema.get(field)
    if spec is None:
        known = ", ".join(sorted(schema)) or "none"
        raise FilterError(
            f"unknown field {field!r} in filter (declared fields: {known}); only declared payload "
            f"fields can be filtered: declare it with collection.add_field({field!r}, 'tag'), "
            "'numeric' or 'text' (existing payloads are indexed), or in create_collection(fields=...)")
    return spec if isinstance(spec, str) else spec["type"]




_MISMATCH_HINTS = {Numeric: "a range does not apply", Geo: "a radius does not apply"}


def _any_text_field(schema: dict, word: str) -> None:
    if not any(_field_type(schema, f) == "text" for f in schema):
        raise FilterError(f"bare word {word!r} needs a text field, and none is declared")


class _SchemaCheck(Rewrite):
    """The leaf hook of ``bind``: each leaf checked (or rewritten) against the schema."""

    def __init__(self, schema: dict):
        self.schema = schema

    def leaf(self, node: Node) -> Node:
        schema = self.schema
        if isinstance(node, VectorRange):  # answered by search_radius, not by a field
            return node
        if isinstance(node, Tag):
            t = _field_type(schema, node.field)
            if t == "tag":
                return node
            if t == "text":
                alts = [all_of(TextTerm(node.field, w) for w in text_tokens(v))
                        for v in node.values if text_tokens(v)]
                alts += [TextTerm(node.field, p.lower(), True) for p in node.prefixes]
                if not alts:
                    raise FilterError(f"text filter on {node.field!r} has no words")
                return any_of(alts)
            raise FilterError(f"field {node.field!r} is {t}, not tag: use a numeric range")
        if isinstance(node, Missing):
            _field_type(schema, node.field)
            return node
        if isinstance(node, Empty):
            raise FilterError("empty-value queries ('') apply to the server's INDEXEMPTY fields only")
        if isinstance(node, GeoShape):
            raise FilterError(f"field {node.field!r}: shape queries apply to the server's GEOSHAPE fields only")
        if isinstance(node, TextPattern):
            if node.field is None:
                _any_text_field(schema, node.word)
            elif _field_type(schema, node.field) != "text":
                raise FilterError(f"field {node.field!r} is not text: {node} does not apply")
            return node
        if isinstance(node, TextTerm):
            if node.field is None:
                _any_text_field(schema, node.word)
                return node
            t = _field_type(schema, node.field)
            if t != "text":
                raise FilterError(
                    f"field {node.field!r} is {t}, not text: use @{node.field}:{{...}}" if t == "tag"
                    else f"field {node.field!r} is {t}, not text: use @{node.field}:[lo hi]")
            return node
        # any other leaf (Numeric, Geo, a new one): its field declared with the type it tests
        t = _field_type(schema, node.field)
        if node.field_type is not None and t != node.field_type:
            hint = _MISMATCH_HINTS.get(type(node), f"{node} does not apply")
            raise FilterError(f"field {node.field!r} is {t}, not {node.field_type}: {hint}")
        return node


def bind(tree: Node, schema: dict) -> Node:
    """``tree`` checked against ``schema`` ({field: "tag"|"numeric"|"text"|"geo" or
    {"type": ...}}): FilterError for unknown fields and type mismatches."""
    return _SchemaCheck(schema).visit(tree)
