"""A plain reference for filter evaluation: one document at a time, one hand-written
``isinstance`` chain, sharing no code with ``nearkit.query.evaluate``; the mask
evaluators (the store's field indexes, the generic walk) are tested against it."""

from nearkit.query.nodes import (
    And, FilterError, Geo, MatchAll, Missing, Node, Not, Numeric, Optional, Or, Tag, TextPattern,
    TextTerm, VectorRange,
)
from nearkit.query.values import geo_distance_m, geo_value, numeric_value, tag_values, text_tokens


def _spec(schema, field):
    spec = schema[field]
    return {"type": spec} if isinstance(spec, str) else spec


def matches(node: Node, payload: dict | None, schema: dict) -> bool:
    """Evaluate a (bound) tree on one document's payload."""
    payload = payload or {}
    if isinstance(node, (MatchAll, Optional)):
        return True
    if isinstance(node, Tag):
        spec = _spec(schema, node.field)
        cs = spec.get("case_sensitive", False)
        have = set(tag_values(payload.get(node.field), spec.get("separator", ","), cs))
        fold = (lambda v: v) if cs else str.lower
        if any(fold(v) in have for v in node.values):
            return True
        return any(h.startswith(fold(p)) for p in node.prefixes for h in have)
    if isinstance(node, Numeric):
        try:
            v = numeric_value(payload.get(node.field))
        except ValueError:
            return False
        return v is not None and node.test(v)
    if isinstance(node, Missing):
        return payload.get(node.field) is None
    if isinstance(node, TextPattern):
        fields = [node.field] if node.field else [f for f in schema if _spec(schema, f)["type"] == "text"]
        return any(node.accepts(t) for f in fields for t in text_tokens(payload.get(f)))
    if isinstance(node, Geo):
        try:
            p = geo_value(payload.get(node.field))
        except ValueError:
            return False
        return p is not None and float(geo_distance_m(node.lon, node.lat, *p)) <= node.radius_m
    if isinstance(node, TextTerm):
        fields = [node.field] if node.field else [f for f in schema if _spec(schema, f)["type"] == "text"]
        word = node.word.lower()
        for f in fields:
            toks = text_tokens(payload.get(f))
            if any(t.startswith(word) if node.prefix else t == word for t in toks):
                return True
        return False
    if isinstance(node, And):
        return all(matches(c, payload, schema) for c in node.children)
    if isinstance(node, Or):
        return any(matches(c, payload, schema) for c in node.children)
    if isinstance(node, Not):
        return not matches(node.child, payload, schema)
    if isinstance(node, VectorRange):
        raise FilterError("VECTOR_RANGE cannot be evaluated on a payload; the caller must handle it")
    raise TypeError(f"not a filter node: {node!r}")
