"""A plain reference for filter evaluation: one document at a time, one hand-written
``isinstance`` chain, sharing no code with ``nearkit.query.evaluate``; the mask
evaluators (the store's field indexes, the generic walk) are tested against it,
on documents from ``random_docs``."""

import numpy as np

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


GENRES = ["drama", "comedy", "Horror", "sci fi", "noir"]
WORDS = ["war", "peace", "love", "warden", "space", "time", "night"]


def random_docs(n: int, seed: int, geo: bool = False) -> list:
    """Payloads for the fields genre (tag), year (numeric), title and body (text) and,
    with ``geo``, place (lon,lat near 0,45): each present with some probability."""
    rng = np.random.default_rng(seed)
    docs = []
    for _ in range(n):
        d = {}
        if rng.random() < 0.9:
            d["genre"] = ",".join(rng.choice(GENRES, size=rng.integers(1, 3), replace=False))
        if rng.random() < 0.9:
            d["year"] = int(rng.integers(1950, 2020))
        if rng.random() < 0.9:
            d["title"] = " ".join(rng.choice(WORDS, size=3))
        if rng.random() < 0.5:
            d["body"] = " ".join(rng.choice(WORDS, size=2)).upper()
        if geo and rng.random() < 0.8:
            d["place"] = f"{rng.uniform(-5, 5):.4f},{rng.uniform(40, 50):.4f}"
        docs.append(d)
    return docs
