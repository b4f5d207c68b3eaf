"""FT.EXPLAIN: a parsed query printed as RediSearch prints its query tree.

The tree is the store parser's (stop words already dropped). Each plain word shows its
stem expansions (``+stem(expanded)``, and ``stem(expanded)`` when the stem differs from
the word), as RediSearch does whether or not the field stems. A group whose text leaves
all name one field carries that field (``@t1:INTERSECT {``), as RediSearch's field masks do.
"""

from __future__ import annotations

import math

from ...store.filters import (
    And, Empty, Phrase, Geo, GeoShape, MatchAll, Missing, Not, Numeric, Optional, Or, Tag, TextPattern,
    TextTerm, VectorRange, stem,
)

INDENT = "  "

# RediSearch's GEOSHAPE query-type numbers, as FT.EXPLAIN prints them.
_GEOSHAPE_CODES = {"CONTAINS": 0, "DISJOINT": 1, "INTERSECTS": 3, "WITHIN": 2}


def _num(x: float) -> str:
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:f}"


def _text_field(node):
    """The one field every text leaf under ``node`` names, else None."""
    if isinstance(node, (TextTerm, TextPattern, Empty)):
        return node.field
    if isinstance(node, (And, Or)):
        fields = {_text_field(c) if isinstance(c, (TextTerm, TextPattern, And, Or, Empty))
                  else None for c in node.children}
        return fields.pop() if len(fields) == 1 else None
    return None


def _block(head: str, children: list, depth: int, close: str = "}") -> list:
    lines = [INDENT * depth + head]
    for c in children:
        lines += c
    lines.append(INDENT * depth + close)
    return lines


class _Renderer:
    def __init__(self, tag_fields):
        self.tags = frozenset(tag_fields)  # an empty value on a TAG field prints as a tag

    def lines(self, node, depth: int, expand: bool = True) -> list:
        """``expand``: show stem expansions (RediSearch does not under NOT, OPTIONAL, phrases)."""
        pad = INDENT * depth
        if isinstance(node, MatchAll):
            return [pad + "<WILDCARD>"]
        if isinstance(node, TextTerm):
            p = f"@{node.field}:" if node.field else ""
            w = node.word.lower()
            if node.prefix:
                return [f"{pad}{p}PREFIX{{{w}*}}"]
            if not expand:
                return [pad + p + w]
            s = stem(w)
            kids = [[f"{pad}{INDENT}{p}{w}"], [f"{pad}{INDENT}{p}+{s}(expanded)"]]
            if s != w:
                kids.append([f"{pad}{INDENT}{p}{s}(expanded)"])
            return _block(f"{p}UNION {{", kids, depth)
        if isinstance(node, TextPattern):
            p = f"@{node.field}:" if node.field else ""
            w = node.word.lower()
            body = {"fuzzy": f"FUZZY{{{w}}}", "contains": f"INFIX{{*{w}*}}",
                    "suffix": f"SUFFIX{{*{w}}}", "stem": w}[node.kind]
            return [pad + p + body]
        if isinstance(node, Empty):
            if node.field in self.tags:
                return _block(f"TAG:@{node.field} {{", [[pad + INDENT + '""']], depth)
            p = f"@{node.field}:" if node.field else ""
            return [pad + p + '""']
        if isinstance(node, Phrase):
            f = _text_field(node)
            return _block((f"@{f}:" if f else "") + "EXACT {",
                          [self.lines(c, depth + 1, False) for c in node.children], depth)
        if isinstance(node, (And, Or)):
            f = _text_field(node)
            head = (f"@{f}:" if f else "") + ("INTERSECT {" if isinstance(node, And) else "UNION {")
            return _block(head, [self.lines(c, depth + 1, expand) for c in node.children], depth)
        if isinstance(node, Not):
            return _block("NOT{", [self.lines(node.child, depth + 1, False)], depth)
        if isinstance(node, Optional):
            return _block("OPTIONAL{", [self.lines(node.child, depth + 1, False)], depth)
        if isinstance(node, Tag):
            kids = [[f"{pad}{INDENT}{v}"] for v in node.values]
            kids += [[f"{pad}{INDENT}PREFIX{{{v}*}}"] for v in node.prefixes]
            return _block(f"TAG:@{node.field} {{", kids, depth)
        if isinstance(node, Numeric):
            lo = "<=" if node.lo_inclusive else "<"
            hi = "<=" if node.hi_inclusive else "<"
            return [f"{pad}NUMERIC {{{_num(node.lo)} {lo} @{node.field} {hi} {_num(node.hi)}}}"]
        if isinstance(node, Geo):
            return [f"{pad}GEO {node.field}:{{{_num(node.lon)},{_num(node.lat)} --> "
                    f"{_num(node.radius)} {node.unit}}}"]
        if isinstance(node, GeoShape):
            return [f"{pad}GEOSHAPE{{{_GEOSHAPE_CODES[node.op]} {node.shape}}}"]
        if isinstance(node, Missing):
            return [f"{pad}ISMISSING{{{node.field}}}"]
        if isinstance(node, VectorRange):
            return [f"{pad}VECTOR {{Vectors that are within {node.radius:g} distance radius from "
                    f"`${node.vector_param}` in vector index associated with field @{node.field}}}"]
        return [pad + str(node)]


def render(tree, knn=None, tag_fields=frozenset()) -> str:
    """The FT.EXPLAIN reply for a parsed query (``knn``: the plan's KNN clause or None;
    ``tag_fields``: the index's TAG field names, where an empty value prints as a tag)."""
    r = _Renderer(tag_fields)
    if knn is None:
        return "\n".join(r.lines(tree, 0)) + "\n"
    what = (f"K={knn.k} nearest vectors to `${knn.vector_param}` in vector index associated "
            f"with field @{knn.field}, yields distance as `{knn.score_name}`")
    if isinstance(tree, MatchAll):
        return f"VECTOR {{{what}}}\n"
    return "\n".join(["VECTOR {"] + r.lines(tree, 1) + [f"}} => {{{what}}}"]) + "\n"
