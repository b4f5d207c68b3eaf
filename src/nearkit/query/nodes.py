"""The filter tree: immutable nodes, rendered back to query syntax by ``str()``.

Leaves test one field (``Tag``, ``Numeric``, ``Geo``, ``TextTerm``, ``TextPattern``,
``Missing``, ``Empty``, ``GeoShape``, ``VectorRange``); ``And``, ``Or``, ``Not``,
``Optional`` and ``MatchAll`` combine them. The combinators are walked in one place
(``evaluate.py``); a new leaf is a class here plus the leaf hook of whoever evaluates it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from .values import GEO_UNITS
from .words import stem, within_distance

# Deepest nesting of groups and prefix operators a tree may have: the parsers and
# every walk over the tree recurse once per level, and Python's stack is finite.
MAX_NESTING = 100


class FilterError(ValueError):
    """A filter refers to an unknown field or uses a field the wrong way."""


class FilterSyntaxError(FilterError):
    """A query string does not parse; ``offset`` and ``near`` locate the bad token."""

    def __init__(self, detail: str, offset: int, near: str):
        self.detail = detail
        self.offset = offset
        self.near = near
        shown = near if near else "end of query"
        super().__init__(f"Syntax error at offset {offset} near {shown!r}: {detail}")


# -- the tree ------------------------------------------------------------------------------

class Node:
    """Base of every filter node. ``str(node)`` renders it in query syntax."""

    __slots__ = ()
    # The field type a leaf tests ("tag", "numeric", "text", ...; None: any or none), so
    # that schema checks need no per-type table: a new leaf sets it and is checked.
    field_type: ClassVar[str | None] = None


@dataclass(frozen=True)
class MatchAll(Node):
    def __str__(self):
        return "*"


@dataclass(frozen=True)
class Tag(Node):
    """Field value is any of ``values`` (exact, case-folded per field) or starts with a ``prefixes`` entry."""

    field_type: ClassVar[str | None] = "tag"
    field: str
    values: tuple = ()
    prefixes: tuple = ()

    def __str__(self):
        items = [_escape_tag(v) for v in self.values] + [_escape_tag(p) + "*" for p in self.prefixes]
        return f"@{self.field}:{{{' | '.join(items)}}}"


@dataclass(frozen=True)
class Numeric(Node):
    field_type: ClassVar[str | None] = "numeric"
    field: str
    lo: float = -math.inf
    hi: float = math.inf
    lo_inclusive: bool = True
    hi_inclusive: bool = True

    def __str__(self):
        return (f"@{self.field}:[{'' if self.lo_inclusive else '('}{number_text(self.lo)} "
                f"{'' if self.hi_inclusive else '('}{number_text(self.hi)}]")

    def test(self, x: float) -> bool:
        if x is None or math.isnan(x):
            return False
        lo_ok = x >= self.lo if self.lo_inclusive else x > self.lo
        hi_ok = x <= self.hi if self.hi_inclusive else x < self.hi
        return lo_ok and hi_ok


@dataclass(frozen=True)
class Geo(Node):
    """Field's point lies within ``radius`` ``unit`` of (lon, lat) (Redis's haversine)."""

    field_type: ClassVar[str | None] = "geo"
    field: str
    lon: float
    lat: float
    radius: float
    unit: str = "m"

    def __str__(self):
        return f"@{self.field}:[{number_text(self.lon)} {number_text(self.lat)} {number_text(self.radius)} {self.unit}]"

    @property
    def radius_m(self) -> float:
        return self.radius * GEO_UNITS[self.unit]


@dataclass(frozen=True)
class TextPattern(Node):
    """A word matched loosely: ``%w%`` (edit distance 1; ``%%w%%`` 2, ``%%%w%%%`` 3),
    ``*w*`` (contains) or ``*w`` (ends with)."""

    field_type: ClassVar[str | None] = "text"
    field: str | None
    word: str
    kind: str  # "fuzzy" | "contains" | "suffix" | "stem" (same English stem, see stem())
    distance: int = 0
    weight: float = field(default=1.0, compare=False)  # $weight: scoring only

    def __str__(self):
        w = _escape_word(self.word)
        body = {"fuzzy": "%" * self.distance + w + "%" * self.distance,
                "contains": f"*{w}*", "suffix": f"*{w}", "stem": w}[self.kind]
        return f"@{self.field}:{body}" if self.field else body

    def accepts(self, term: str) -> bool:
        w = self.word.lower()
        if self.kind == "contains":
            return w in term
        if self.kind == "suffix":
            return term.endswith(w)
        if self.kind == "stem":
            return term == w or stem(term) == stem(w)
        return within_distance(w, term, self.distance)


@dataclass(frozen=True)
class GeoShape(Node):
    """``@field:[WITHIN|CONTAINS|INTERSECTS|DISJOINT $shape]`` on a GEOSHAPE field; ``shape``
    is the WKT text. Evaluated by the caller (the server keeps the shapes)."""

    field_type: ClassVar[str | None] = "geoshape"
    field: str
    op: str  # upper case
    shape: str

    def __str__(self):
        return f"@{self.field}:[{self.op} {self.shape!r}]"


@dataclass(frozen=True)
class Empty(Node):
    """``@field:''`` / ``@tag:{$p}`` with an empty value: the document's value is empty
    (Redis's INDEXEMPTY); ``field`` None means any text field. Evaluated by the caller."""

    field: str | None

    def __str__(self):
        return f"@{self.field}:''" if self.field else "''"


@dataclass(frozen=True)
class Missing(Node):
    """``ismissing(@field)``: the document has no value for the field."""

    field: str

    def __str__(self):
        return f"ismissing(@{self.field})"


@dataclass(frozen=True)
class TextTerm(Node):
    """A word in a TEXT field (``field`` None means any text field); ``prefix`` for ``word*``."""

    field_type: ClassVar[str | None] = "text"
    field: str | None
    word: str
    prefix: bool = False
    weight: float = field(default=1.0, compare=False)  # $weight: scoring only

    def __str__(self):
        w = _escape_word(self.word) + ("*" if self.prefix else "")
        return w if self.field is None else f"@{self.field}:{w}"


@dataclass(frozen=True)
class And(Node):
    children: tuple
    weight: float = field(default=1.0, compare=False)
    # a quoted phrase: the words adjacent and in order (text search only)
    exact: bool = field(default=False, compare=False)

    def __str__(self):
        return "(" + " ".join(str(c) for c in self.children) + ")"


@dataclass(frozen=True)
class Phrase(And):
    """A quoted phrase: its words adjacent and in order (``exact``); its own type for FT.EXPLAIN."""

    def __str__(self):
        return '"' + " ".join(str(c) for c in self.children) + '"'


@dataclass(frozen=True)
class Or(Node):
    children: tuple
    weight: float = field(default=1.0, compare=False)

    def __str__(self):
        return "(" + " | ".join(str(c) for c in self.children) + ")"


@dataclass(frozen=True)
class Not(Node):
    child: Node

    def __str__(self):
        return f"-{self.child}"


@dataclass(frozen=True)
class Optional(Node):
    """``~expr``: affects ranking only in Redis, so as a filter it matches everything."""

    child: Node

    def __str__(self):
        return f"~{self.child}"


@dataclass(frozen=True)
class VectorRange(Node):
    """``@v:[VECTOR_RANGE radius $blob]=>{$YIELD_DISTANCE_AS: d}`` — evaluated by a server, not by masks."""

    field_type: ClassVar[str | None] = "vector"
    field: str
    radius: float
    vector_param: str
    attributes: tuple = ()   # ((name, value), ...) from the =>{...} block

    def __str__(self):
        s = f"@{self.field}:[VECTOR_RANGE {number_text(self.radius)} ${self.vector_param}]"
        if self.attributes:
            s += "=>{" + "; ".join(f"${k}: {v}" for k, v in self.attributes) + "}"
        return s


def number_text(x: float) -> str:
    """A bound as query syntax writes it: +inf/-inf, integers without '.0'."""
    if x == math.inf:
        return "+inf"
    if x == -math.inf:
        return "-inf"
    return repr(int(x)) if float(x).is_integer() and abs(x) < 2**53 else repr(float(x))


_TAG_SPECIAL = set(",.<>{}[]\"':;!@#$%^&*()-+=~|/\\ ")
# Characters that end a bare word (the parser) and so are escaped when one is rendered.
WORD_SPECIAL = set("{}[]()|@~:*$\"'\\=>;,!^%&+/<#") | {" ", "\t", "\n", "\r"}


def _escape_tag(v: str) -> str:
    return "".join("\\" + c if c in _TAG_SPECIAL else c for c in v)


def _escape_word(v: str) -> str:
    out = []
    for i, c in enumerate(v):
        if c in WORD_SPECIAL or (c == "-" and i == 0):
            out.append("\\" + c)
        else:
            out.append(c)
    return "".join(out)


def all_of(children) -> Node:
    """The AND of ``children``; one child is itself (no one-child And is ever built)."""
    children = tuple(children)
    return children[0] if len(children) == 1 else And(children)


def any_of(children) -> Node:
    """The OR of ``children``; one child is itself."""
    children = tuple(children)
    return children[0] if len(children) == 1 else Or(children)
