"""Metadata filters: one tree, two front ends.

A filter is a small immutable tree of nodes (``MatchAll``, ``Tag``, ``Numeric``,
``TextTerm``, ``And``, ``Or``, ``Not``, ``Optional``, ``VectorRange``). Two
front ends build it:

- ``parse_filter(text, params=None)``: the Redis query language (DIALECT 2
  subset) — ``@genre:{drama|comedy} @year:[1990 (2000] -@title:foo``, ``*``,
  ``@f:(w1 | w2)``, prefix ``word*``, ``$param`` substitution, grouping.
  ``parse_prefix`` parses only up to a ``=>`` (the KNN clause of FT.SEARCH) and
  says where it stopped, so a server can go on from there.
- ``from_python(obj)``: ``{"genre": ["drama"], "year": (1990, 2000)}`` and friends.

``to_filter(where)`` accepts either (or a ready tree). ``bind(tree, schema)``
checks the tree against declared field types; ``matches(tree, payload, schema)``
evaluates it on one document. Mask evaluation over many documents lives with
the field indexes (``store.fields``).

Syntax errors raise ``FilterSyntaxError`` (a ValueError) carrying ``offset``
(0-based character position) and ``near`` (the offending text).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import re
from dataclasses import dataclass, field

__all__ = [
    "And", "FilterError", "FilterSyntaxError", "MatchAll", "Node", "Not", "Numeric",
    "Optional", "Or", "Tag", "TextTerm", "VectorRange", "Geo", "GeoShape", "Empty", "Missing", "Phrase", "TextPattern",
    "bind", "from_python", "matches", "parse_filter", "parse_prefix", "to_filter",
    "text_tokens", "tag_values", "FIELD_TYPES",
]

FIELD_TYPES = ("tag", "numeric", "text", "geo")

# Redis's GEO radius units in metres, and the earth radius its haversine uses.
GEO_UNITS = {"m": 1.0, "km": 1000.0, "mi": 1609.34, "ft": 0.3048}
EARTH_RADIUS_M = 6372797.560856
GEO_LAT_LIMIT = 85.05112878


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


@dataclass(frozen=True)
class MatchAll(Node):
    def __str__(self):
        return "*"


@dataclass(frozen=True)
class Tag(Node):
    """Field value is any of ``values`` (exact, case-folded per field) or starts with a ``prefixes`` entry."""

    field: str
    values: tuple = ()
    prefixes: tuple = ()

    def __str__(self):
        items = [_escape_tag(v) for v in self.values] + [_escape_tag(p) + "*" for p in self.prefixes]
        return f"@{self.field}:{{{' | '.join(items)}}}"


@dataclass(frozen=True)
class Numeric(Node):
    field: str
    lo: float = -math.inf
    hi: float = math.inf
    lo_inclusive: bool = True
    hi_inclusive: bool = True

    def __str__(self):
        return (f"@{self.field}:[{'' if self.lo_inclusive else '('}{_num(self.lo)} "
                f"{'' if self.hi_inclusive else '('}{_num(self.hi)}]")

    def test(self, x: float) -> bool:
        if x is None or math.isnan(x):
            return False
        lo_ok = x >= self.lo if self.lo_inclusive else x > self.lo
        hi_ok = x <= self.hi if self.hi_inclusive else x < self.hi
        return lo_ok and hi_ok


@dataclass(frozen=True)
class Geo(Node):
    """Field's point lies within ``radius`` ``unit`` of (lon, lat) (Redis's haversine)."""

    field: str
    lon: float
    lat: float
    radius: float
    unit: str = "m"

    def __str__(self):
        return f"@{self.field}:[{_num(self.lon)} {_num(self.lat)} {_num(self.radius)} {self.unit}]"

    @property
    def radius_m(self) -> float:
        return self.radius * GEO_UNITS[self.unit]


def geo_value(value):
    """A "lon,lat" payload value as (lon, lat) floats (None if absent); ValueError if invalid."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and len(value) == 2:
        parts = list(value)
    else:
        parts = str(value).replace(",", " ").split()
    try:
        if len(parts) != 2:
            raise ValueError
        lon, lat = float(parts[0]), float(parts[1])
    except (TypeError, ValueError):
        raise ValueError(f"invalid geo value {value!r}: expected 'longitude,latitude'") from None
    if not (-180.0 <= lon <= 180.0 and -GEO_LAT_LIMIT <= lat <= GEO_LAT_LIMIT):
        raise ValueError(f"invalid geo value {value!r}: longitude or latitude out of range")
    return lon, lat


def geo_distance_m(lon1, lat1, lon2, lat2):
    """Haversine distance in metres (numpy arrays or floats)."""
    import numpy as np

    lon1, lat1, lon2, lat2 = (np.radians(x) for x in (lon1, lat1, lon2, lat2))
    a = (np.sin((lat2 - lat1) / 2) ** 2
         + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(a, 1.0)))


@dataclass(frozen=True)
class TextPattern(Node):
    """A word matched loosely: ``%w%`` (edit distance 1; ``%%w%%`` 2, ``%%%w%%%`` 3),
    ``*w*`` (contains) or ``*w`` (ends with)."""

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
        return _within_distance(w, term, self.distance)


_STEMMER = []


@functools.lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """The English Snowball stem of a lower-case word (the optional ``snowballstemmer``
    package; without it every word is its own stem)."""
    if not _STEMMER:
        try:
            import snowballstemmer
            _STEMMER.append(snowballstemmer.stemmer("english").stemWord)
        except ImportError:
            _STEMMER.append(lambda w: w)
    return _STEMMER[0](word)


def stemming_available() -> bool:
    return stem("engines") != "engines"


def _within_distance(a: str, b: str, limit: int) -> bool:
    """Levenshtein distance of a and b is at most ``limit`` (rows cut off early)."""
    if abs(len(a) - len(b)) > limit:
        return False
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
        if min(cur) > limit:
            return False
        prev = cur
    return prev[-1] <= limit


@dataclass(frozen=True)
class GeoShape(Node):
    """``@field:[WITHIN|CONTAINS|INTERSECTS|DISJOINT $shape]`` on a GEOSHAPE field; ``shape``
    is the WKT text. Evaluated by the caller (the server keeps the shapes)."""

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


GEOSHAPE_OPS = ("WITHIN", "CONTAINS", "INTERSECTS", "DISJOINT")
_GEOSHAPE_OP = re.compile(r"(WITHIN|CONTAINS|INTERSECTS|DISJOINT)(?![\w])", re.IGNORECASE)


@dataclass(frozen=True)
class Missing(Node):
    """``ismissing(@field)``: the document has no value for the field."""

    field: str

    def __str__(self):
        return f"ismissing(@{self.field})"


@dataclass(frozen=True)
class TextTerm(Node):
    """A word in a TEXT field (``field`` None means any text field); ``prefix`` for ``word*``."""

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

    field: str
    radius: float
    vector_param: str
    attributes: tuple = ()   # ((name, value), ...) from the =>{...} block

    def __str__(self):
        s = f"@{self.field}:[VECTOR_RANGE {_num(self.radius)} ${self.vector_param}]"
        if self.attributes:
            s += "=>{" + "; ".join(f"${k}: {v}" for k, v in self.attributes) + "}"
        return s


def _num(x: float) -> str:
    if x == math.inf:
        return "+inf"
    if x == -math.inf:
        return "-inf"
    return repr(int(x)) if float(x).is_integer() and abs(x) < 2**53 else repr(float(x))


_TAG_SPECIAL = set(",.<>{}[]\"':;!@#$%^&*()-+=~|/\\ ")
_WORD_SPECIAL = set("{}[]()|@~:*$\"'\\=>;,!^%&+/<#") | {" ", "\t", "\n", "\r"}


def _escape_tag(v: str) -> str:
    return "".join("\\" + c if c in _TAG_SPECIAL else c for c in v)


def _escape_word(v: str) -> str:
    out = []
    for i, c in enumerate(v):
        if c in _WORD_SPECIAL or (c == "-" and i == 0):
            out.append("\\" + c)
        else:
            out.append(c)
    return "".join(out)


def _weighted(node, attrs: dict):
    """The node with its ``$weight`` attribute (kept for text scoring; filters ignore it)."""
    w = attrs.get("weight")
    if w is None or not hasattr(node, "weight"):
        return node
    try:
        return dataclasses.replace(node, weight=float(w))
    except ValueError:
        return node


def _and(children) -> Node:
    children = tuple(children)
    return children[0] if len(children) == 1 else And(children)


def _or(children) -> Node:
    children = tuple(children)
    return children[0] if len(children) == 1 else Or(children)


# -- tokenising helpers shared with the field indexes ---------------------------------------

_TEXT_SPLIT = re.compile(r"[^\w]+", re.UNICODE)


def text_tokens(value) -> list[str]:
    """Words of a TEXT value: lower-cased, split on anything that is not a letter, digit or _."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        out = []
        for v in value:
            out.extend(text_tokens(v))
        return out
    return [t for t in _TEXT_SPLIT.split(str(value).lower()) if t]


def tag_values(value, separator: str = ",", case_sensitive: bool = False) -> list[str]:
    """Tags of a TAG value: a list of strings, or one string split on ``separator``; trimmed."""
    if value is None:
        return []
    if isinstance(value, (list, tuple, set, frozenset)):
        raw = [str(v) for v in value]
    else:
        raw = str(value).split(separator) if separator else [str(value)]
    out = [v.strip() for v in raw]
    if not case_sensitive:
        out = [v.lower() for v in out]
    return [v for v in out if v]


# -- the Redis query-language parser --------------------------------------------------------

# Deepest nesting of groups and prefix operators a query may have: the parser and
# every walk over the tree recurse once per level, and Python's stack is finite.
MAX_NESTING = 100
_ATTRS = re.compile(r"=>\s*\{")
_ISMISSING = re.compile(r"ismissing\s*\(\s*@([A-Za-z_][\w.$-]*)\s*\)", re.IGNORECASE)


class _Parser:
    def __init__(self, text: str, params: dict | None, start: int = 0, dialect: int = 2):
        if not isinstance(text, str):
            raise TypeError(f"a filter query must be a string, got {type(text).__name__}")
        self.s = text
        self.n = len(text)
        self.i = start
        self.params = params or {}
        self.depth = 0
        # RediSearch's DIALECT 1: no $params, '*' only as the whole query, no single-value
        # ranges, ismissing/'' /shape/vector-range terms; "@f:a b" puts both words in @f.
        self.v1 = dialect < 2

    def v1_refuse(self, at: int | None = None):
        """A construct DIALECT 1 does not have: a syntax error, as RediSearch answers."""
        if self.v1:
            self.error("not available in DIALECT 1", at)

    def nest(self):
        """Enter one more level of nesting (a group or a prefix operator)."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            self.error(f"query nested too deeply (more than {MAX_NESTING} levels)")

    # low-level ------------------------------------------------------------------
    def error(self, detail: str, at: int | None = None):
        at = self.i if at is None else at
        near = self.s[at:at + 12].split(" ")[0] if at < self.n else ""
        if at < self.n and not near:
            near = self.s[at]
        raise FilterSyntaxError(detail, at, near)

    def skip_ws(self):
        while self.i < self.n and self.s[self.i].isspace():
            self.i += 1

    def peek(self) -> str:
        self.skip_ws()
        return self.s[self.i] if self.i < self.n else ""

    def at_arrow(self) -> bool:
        self.skip_ws()
        return self.s.startswith("=>", self.i)

    def expect(self, ch: str, what: str):
        if self.peek() != ch:
            self.error(f"expected {ch!r} {what}")
        self.i += 1

    def param(self) -> str:
        """At '$': read a parameter name and return its (string) value."""
        start = self.i
        self.i += 1
        m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(self.s, self.i)
        if not m:
            self.error("expected a parameter name after '$'", start)
        name = m.group(0)
        if self.v1:
            raise FilterSyntaxError("no parameters in DIALECT 1", start, name)
        self.i = m.end()
        if name not in self.params:
            raise FilterSyntaxError(f"no such parameter `{name}`", start, "$" + name)
        v = self.params[name]
        if isinstance(v, (bytes, bytearray)):
            v = v.decode("utf-8", "replace")
        return str(v)

    def word(self) -> tuple[str, bool]:
        """A bare (possibly escaped) word; returns (word, is_prefix)."""
        self.skip_ws()
        start = self.i
        if self.i < self.n and self.s[self.i] == "$":
            return self.param(), False
        out = []
        while self.i < self.n:
            c = self.s[self.i]
            if c == "\\" and self.i + 1 < self.n:
                out.append(self.s[self.i + 1])
                self.i += 2
                continue
            if c in _WORD_SPECIAL or (c == "-" and not out):
                break
            out.append(c)
            self.i += 1
        if not out:
            self.error("expected a word", start)
        prefix = False
        if self.i < self.n and self.s[self.i] == "*":
            prefix = True
            self.i += 1
        return "".join(out), prefix

    # grammar --------------------------------------------------------------------
    def union(self) -> Node:
        parts = [self.intersect()]
        while self.peek() == "|":
            self.i += 1
            parts.append(self.intersect())
        return _or(parts)

    def intersect(self) -> Node:
        parts = []
        while True:
            c = self.peek()
            if c == "" or c in ")|" or self.at_arrow():
                break
            parts.append(self.unary())
        if not parts:
            self.error("expected an expression")
        return _and(parts)

    def prefixes(self, check_next: bool) -> list:
        """The run of prefix operators (``-``, ``~``) at this point, read in a loop:
        a long run must not cost one stack frame per operator."""
        ops = []
        while True:
            c = self.peek()
            if c not in ("-", "~") or not c:
                return ops
            self.i += 1
            if check_next and self.peek() in ("", ")", "|"):
                self.error(f"expected an expression after '{c}'")
            ops.append(c)

    def apply_prefixes(self, ops: list, node: Node) -> Node:
        """Wrap ``node`` in the operators, innermost last; ``--x`` is ``x`` and ``~~x``
        is ``~x``, so only alternations deepen the tree (and count as nesting)."""
        wraps = 0
        for op in reversed(ops):
            if op == "-" and isinstance(node, Not):
                node = node.child
                wraps -= 1
            elif op == "~" and isinstance(node, Optional):
                continue
            else:
                node = Not(node) if op == "-" else Optional(node)
                wraps += 1
            if self.depth + wraps > MAX_NESTING:
                self.error(f"query nested too deeply (more than {MAX_NESTING} levels)")
        return node

    def unary(self) -> Node:
        ops = self.prefixes(check_next=True)
        node = self.apply_prefixes(ops, self.atom()) if ops else self.atom()
        self.skip_ws()
        if _ATTRS.match(self.s, self.i):
            node = _weighted(node, self.attributes())
        return node

    def atom(self) -> Node:
        c = self.peek()
        start = self.i
        if c == "(":
            self.i += 1
            self.nest()
            node = self.union()
            if self.peek() != ")":
                self.error("expected ')' to close the '(' at offset %d" % start)
            self.i += 1
            self.depth -= 1
            return node
        if c == "*" and not (self.i + 1 < self.n and self.s[self.i + 1] not in _WORD_SPECIAL):
            if self.v1 and self.s.strip() != "*":
                self.error("'*' stands only for the whole query in DIALECT 1", self.i + 1)
            self.i += 1
            return MatchAll()
        if c == "@":
            return self.field_expr()
        if c == '"':
            return self.phrase(None)
        m = _ISMISSING.match(self.s, self.i)
        if m:
            self.v1_refuse(m.start(1))
            self.i = m.end()
            return Missing(m.group(1))
        if self.s.startswith("''", self.i):
            self.v1_refuse()
            self.i += 2
            return Empty(None)
        pat = self.pattern_term(None)
        if pat is not None:
            return pat
        if c in "{[":
            self.error(f"{c!r} must follow a field name (@field:{c}...)")
        if c in ")}]|:":
            self.error(f"unexpected {c!r}")
        w, prefix = self.word()
        return TextTerm(None, w, prefix) if w else Empty(None)

    def pattern_term(self, field):
        """``%word%`` / ``*word*`` / ``*word`` at the cursor, or None."""
        self.skip_ws()
        start = self.i
        c = self.s[self.i] if self.i < self.n else ""
        if c == "%":
            d = 0
            while self.i < self.n and self.s[self.i] == "%":
                d += 1
                self.i += 1
            if d > 3:
                self.error("a fuzzy term takes at most three '%'", start)
            w, _ = self.word()
            for _ in range(d):
                if self.i >= self.n or self.s[self.i] != "%":
                    self.error("unbalanced '%' around a fuzzy term", start)
                self.i += 1
            return TextPattern(field, w, "fuzzy", d)
        if c == "*" and self.i + 1 < self.n and self.s[self.i + 1] not in _WORD_SPECIAL:
            self.i += 1
            w, contains = self.word()
            return TextPattern(field, w, "contains" if contains else "suffix")
        return None

    def field_name(self) -> str:
        start = self.i
        self.i += 1  # '@'
        m = re.compile(r"[A-Za-z_][\w.$\[\]-]*").match(self.s, self.i)
        if not m:
            self.error("expected a field name after '@'", start)
        name = m.group(0)
        self.i = m.end()
        if self.i >= self.n or self.s[self.i] != ":":
            self.error(f"expected ':' after field name @{name}")
        self.i += 1
        return name

    def field_expr(self) -> Node:
        name = self.field_name()
        c = self.peek()
        if c == "{":
            return self.tag_list(name)
        if c == "[":
            return self.numeric_range(name)
        if c == "(":
            self.i += 1
            self.nest()
            node = self.text_union(name)
            if self.peek() != ")":
                self.error("expected ')' to close the text group")
            self.i += 1
            self.depth -= 1
            return node
        if c == "-":
            return self.text_unary(name)
        if c == '"':
            return self.phrase(name)
        if c == "" or c in ")|}]":
            self.error(f"expected a value after @{name}:")
        if self.s.startswith("''", self.i):
            self.v1_refuse(self.i - len(name) - 1)
            self.i += 2
            return Empty(name)
        pat = self.pattern_term(name)
        if pat is not None:
            return pat
        w, prefix = self.word()
        if self.v1 and not prefix:
            return self.v1_words(name, TextTerm(name, w))
        return TextTerm(name, w, prefix) if w else Empty(name)

    def _v1_plain_word_next(self) -> bool:
        """DIALECT 1: is the next token a plain word (one "@f:" also applies to)?"""
        save = self.i
        self.skip_ws()
        c = self.peek()
        ok = c != "" and c not in _WORD_SPECIAL and c != "-"
        if ok:  # a prefix term ends the run (RediSearch applies the field to words only)
            j = self.i
            while j < self.n and self.s[j] not in _WORD_SPECIAL:
                j += 1 + (self.s[j] == "\\")
            ok = not (j < self.n and self.s[j] == "*")
        self.i = save
        return ok

    def v1_words(self, field, first) -> Node:
        """DIALECT 1: ``@f:a b | c`` is ``@f:((a b) | c)``: the field takes the plain words
        that follow, and alternatives made of plain words."""
        alts, words = [], [first]
        while True:
            while self._v1_plain_word_next():
                w, _ = self.word()
                words.append(TextTerm(field, w))
            alts.append(_and(words))
            save = self.i
            if self.peek() == "|":
                self.i += 1
                if self._v1_plain_word_next():
                    w, _ = self.word()
                    words = [TextTerm(field, w)]
                    continue
            self.i = save
            break
        return _or(alts)

    def phrase(self, field) -> Node:
        start = self.i
        self.i += 1
        end = self.s.find('"', self.i)
        if end < 0:
            self.error("unterminated quoted phrase", start)
        words = text_tokens(self.s[self.i:end])
        self.i = end + 1
        if end == start + 1:  # "" is the empty value (INDEXEMPTY)
            return Empty(field)
        if not words:
            self.error("empty quoted phrase", start)
        if len(words) == 1:
            return TextTerm(field, words[0])
        return Phrase(tuple(TextTerm(field, w) for w in words), exact=True)

    # text group: @f:(a b | -c d*)
    def text_union(self, field) -> Node:
        parts = [self.text_intersect(field)]
        while self.peek() == "|":
            self.i += 1
            parts.append(self.text_intersect(field))
        return _or(parts)

    def text_intersect(self, field) -> Node:
        parts = []
        while True:
            c = self.peek()
            if c == "" or c in ")|":
                break
            parts.append(self.text_unary(field))
        if not parts:
            self.error("expected a word")
        return _and(parts)

    def text_unary(self, field) -> Node:
        ops = self.prefixes(check_next=False)
        if ops:
            return self.apply_prefixes(ops, self.text_unary(field))
        c = self.peek()
        if c == "(":
            self.i += 1
            self.nest()
            node = self.text_union(field)
            if self.peek() != ")":
                self.error("expected ')'")
            self.i += 1
            self.depth -= 1
            return node
        if c == '"':
            return self.phrase(field)
        pat = self.pattern_term(field)
        if pat is not None:
            return pat
        if c == "@" and self.v1:  # DIALECT 1: @title:(@num:[0 10]) is the inner expression
            return self.field_expr()
        if c in "{[@*":
            self.error(f"unexpected {c!r} inside a text group")
        w, prefix = self.word()
        node = TextTerm(field, w, prefix)
        self.skip_ws()
        if _ATTRS.match(self.s, self.i):  # @f:(word=>{$weight: 2} | ...)
            node = _weighted(node, self.attributes())
        return node

    def tag_list(self, field) -> Node:
        open_at = self.i
        self.i += 1  # '{'
        values, prefixes = [], []
        while True:
            self.skip_ws()
            start = self.i
            if self.i < self.n and self.s[self.i] == "$":
                values.append(self.param())
            elif self.s.startswith('""', self.i) or self.s.startswith("''", self.i):
                self.i += 2
                values.append("")  # the empty value (INDEXEMPTY)
            elif self.i < self.n and self.s[self.i] == '"':  # {"a-b"}: the quoted text as is
                values.append(self.quoted_tag(open_at))
            else:
                buf, raw_end, prefix = [], None, False
                while self.i < self.n:
                    ch = self.s[self.i]
                    if ch == "\\" and self.i + 1 < self.n:
                        buf.append(self.s[self.i + 1])
                        self.i += 2
                        raw_end = len(buf)
                        continue
                    if ch in "|}":
                        break
                    if ch in "{":
                        self.error("unexpected '{' inside a tag list")
                    buf.append(ch)
                    self.i += 1
                if self.i >= self.n:
                    self.error(f"unterminated tag list (opened at offset {open_at})", open_at)
                # trim unescaped trailing blanks; an escaped blank is kept
                while buf and buf[-1].isspace() and (raw_end is None or len(buf) > raw_end):
                    buf.pop()
                if buf and buf[-1] == "*" and (raw_end is None or len(buf) > raw_end):
                    buf.pop()
                    prefix = True
                tag = "".join(buf)
                if not tag:
                    self.error("empty tag", start)
                (prefixes if prefix else values).append(tag)
            c = self.peek()
            if c == "|":
                self.i += 1
                continue
            if c == "}":
                self.i += 1
                break
            self.error("expected '|' or '}' in tag list")
        if "" in values or any(not v.strip() for v in values):
            rest = [v for v in values if v.strip()]
            if not rest and not prefixes:
                return Empty(field)
            return _or([Tag(field, tuple(rest), tuple(prefixes)), Empty(field)])
        return Tag(field, tuple(values), tuple(prefixes))

    def quoted_tag(self, open_at: int) -> str:
        start = self.i
        self.i += 1
        buf = []
        while self.i < self.n and self.s[self.i] != '"':
            if self.s[self.i] == "\\" and self.i + 1 < self.n:
                self.i += 1
            buf.append(self.s[self.i])
            self.i += 1
        if self.i >= self.n:
            self.error(f"unterminated quoted tag (opened at offset {start})", start)
        self.i += 1
        if not buf:
            self.error("empty tag", start)
        return "".join(buf)

    def attributes(self) -> dict:
        """``=>{$name: value; ...}`` after an expression (weight, slop, inorder, phonetic):
        accepted and returned; nearkit's filters do not score, so none changes a match."""
        start = self.i
        self.i = _ATTRS.match(self.s, self.i).end()  # '=>{', maybe with blanks
        close = self.s.find("}", self.i)
        if close < 0:
            self.error("unterminated query attributes", start)
        out = {}
        for item in self.s[self.i:close].split(";"):
            if not item.strip():
                continue
            name, sep, value = item.partition(":")
            name, value = name.strip(), value.strip()
            if not sep or not name.startswith("$") or not value:
                self.error("expected $name: value in query attributes", start)
            out[name[1:].lower()] = value
        self.i = close + 1
        return out

    def number(self, what: str) -> tuple[float, bool]:
        self.skip_ws()
        inclusive = True
        if self.i < self.n and self.s[self.i] == "(":
            inclusive = False
            self.i += 1
        start = self.i
        if self.i < self.n and self.s[self.i] == "$":
            text = self.param().strip()
            if text.startswith("("):
                inclusive, text = False, text[1:]
        else:
            m = re.compile(r"[^\s\]\[]+").match(self.s, self.i)
            if not m:
                self.error(f"expected the {what} bound")
            text = m.group(0)
            self.i = m.end()
        low = text.lower()
        if low in ("inf", "+inf"):
            return math.inf, inclusive
        if low == "-inf":
            return -math.inf, inclusive
        try:
            v = float(text)
        except ValueError:
            self.error(f"expected a number for the {what} bound", start)
        if math.isnan(v):
            self.error(f"NaN is not a valid {what} bound", start)
        return v, inclusive

    def numeric_range(self, field) -> Node:
        self.i += 1  # '['
        self.skip_ws()
        if self.s.startswith("VECTOR_RANGE", self.i):
            self.v1_refuse()
            return self.vector_range(field)
        if _GEOSHAPE_OP.match(self.s, self.i):
            self.v1_refuse()
            return self.geoshape(field)
        lo, lo_inc = self.number("lower")
        if self.peek() == "]":  # @n:[4] is @n:[4 4]
            self.v1_refuse()
            self.i += 1
            return Numeric(field, lo, lo, lo_inc, lo_inc)
        hi, hi_inc = self.number("upper")
        if self.peek() not in ("]", ""):  # @g:[lon lat radius unit]
            return self.geo_radius(field, lo, hi)
        if self.peek() != "]":
            self.error("expected ']' after the two bounds of a numeric range")
        self.i += 1
        return Numeric(field, lo, hi, lo_inc, hi_inc)

    def geo_radius(self, field, lon, lat) -> Node:
        radius, _ = self.number("radius")
        self.skip_ws()
        start = self.i
        if self.i < self.n and self.s[self.i] == "$":
            unit = self.param().strip()
        else:
            m = re.compile(r"[A-Za-z]+").match(self.s, self.i)
            unit = m.group(0) if m else ""
            self.i = m.end() if m else self.i
        if unit.lower() not in GEO_UNITS:
            self.error("expected a geo radius unit (m, km, mi, ft)", start)
        if self.peek() != "]":
            self.error("expected ']' after a geo radius")
        self.i += 1
        if radius < 0:
            self.error("a geo radius cannot be negative", start)
        return Geo(field, lon, lat, radius, unit.lower())

    def geoshape(self, field) -> Node:
        m = _GEOSHAPE_OP.match(self.s, self.i)
        self.i = m.end()
        self.skip_ws()
        start = self.i
        if self.peek() != "$":
            self.error("expected $param naming the query shape (WKT)", start)
        shape = self.param()
        if self.peek() != "]":
            self.error("expected ']' after the query shape")
        self.i += 1
        return GeoShape(field, m.group(1).upper(), shape)

    def vector_range(self, field) -> Node:
        self.i += len("VECTOR_RANGE")
        at = self.i
        radius, inc = self.number("radius")
        if not inc:
            self.error("a radius cannot be exclusive", at)
        if radius < 0:
            raise FilterSyntaxError(f"negative radius ({_num(radius)}) given in a range query",
                                    at, _num(radius))
        self.skip_ws()
        if self.peek() != "$":
            self.error("expected $param naming the query vector")
        self.i += 1
        m = re.compile(r"[A-Za-z_][A-Za-z0-9_]*").match(self.s, self.i)
        if not m:
            self.error("expected a parameter name after '$'")
        vparam = m.group(0)
        self.i = m.end()
        if self.peek() != "]":
            self.error("expected ']' to close VECTOR_RANGE")
        self.i += 1
        attrs = []
        if self.s.startswith("=>", self.i) and self.s.startswith("{", self.i + 2):
            self.i += 3
            body_end = self.s.find("}", self.i)
            if body_end < 0:
                self.error("unterminated '=>{' attribute block")
            for part in self.s[self.i:body_end].split(";"):
                part = part.strip()
                if not part:
                    continue
                k, sep, v = part.partition(":")
                if not sep or not k.strip().startswith("$"):
                    self.error(f"bad attribute {part!r} (expected $NAME: value)", self.i)
                attrs.append((k.strip()[1:], v.strip()))
            self.i = body_end + 1
        return VectorRange(field, radius, vparam, tuple(attrs))


def parse_prefix(text: str, params: dict | None = None, start: int = 0,
                 dialect: int = 2) -> tuple[Node, int]:
    """Parse a filter from ``start`` up to the end or to a top-level ``=>``.

    Returns ``(tree, offset)`` where ``offset`` is where parsing stopped (at ``=>``
    or ``len(text)``). An empty or all-blank query is an error.
    """
    p = _Parser(text, params, start, dialect)
    if p.peek() == "":
        p.error("empty query")
    node = p.union()
    if p.peek() == ")":
        p.error("unbalanced ')'")
    if p.peek() not in ("",) and not p.at_arrow():
        p.error("unexpected token")
    p.skip_ws()
    return node, p.i


def parse_filter(text: str, params: dict | None = None) -> Node:
    """Parse a whole Redis-syntax filter (no KNN clause) into a tree."""
    node, end = parse_prefix(text, params)
    if end != len(text):
        _Parser(text, params, end).error("unexpected '=>' in a filter")
    return node


# -- the Python form -----------------------------------------------------------------------

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
            return _or(Numeric(field, _bound(field, v), _bound(field, v)) for v in items)
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
            parts.append(_and(kids) if key == "$and" else _or(kids))
        elif key == "$not":
            parts.append(Not(from_python(value, _depth + 1)))
        elif key.startswith("$"):
            raise FilterError(f"unknown operator {key!r}; use $and, $or or $not")
        else:
            parts.append(_python_value(key, value))
    return _and(parts)


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


# -- schema binding and single-document evaluation ------------------------------------------

def _field_type(schema: dict, field: str) -> str:
    spec = schema.get(field)
    if spec is None:
        known = ", ".join(sorted(schema)) or "none"
        raise FilterError(
            f"unknown field {field!r} in filter (declared fields: {known}); only declared payload "
            f"fields can be filtered: declare it with collection.add_field({field!r}, 'tag'), "
            "'numeric' or 'text' (existing payloads are indexed), or in create_collection(fields=...)")
    return spec if isinstance(spec, str) else spec["type"]


def bind(node: Node, schema: dict) -> Node:
    """Check ``node`` against ``schema`` ({field: "tag"|"numeric"|"text" or {"type": ...}}).

    Raises FilterError for unknown fields and type mismatches. A ``Tag`` on a TEXT
    field (the Python form's lists of strings) becomes an OR of its words.
    """
    if isinstance(node, (MatchAll, VectorRange)):
        return node
    if isinstance(node, Tag):
        t = _field_type(schema, node.field)
        if t == "tag":
            return node
        if t == "text":
            alts = [_and(TextTerm(node.field, w) for w in text_tokens(v)) for v in node.values if text_tokens(v)]
            alts += [TextTerm(node.field, p.lower(), True) for p in node.prefixes]
            if not alts:
                raise FilterError(f"text filter on {node.field!r} has no words")
            return _or(alts)
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
            if not any(_field_type(schema, f) == "text" for f in schema):
                raise FilterError(f"bare word {node.word!r} needs a text field, and none is declared")
        elif _field_type(schema, node.field) != "text":
            raise FilterError(f"field {node.field!r} is not text: {node} does not apply")
        return node
    if isinstance(node, Geo):
        t = _field_type(schema, node.field)
        if t != "geo":
            raise FilterError(f"field {node.field!r} is {t}, not geo: a radius does not apply")
        return node
    if isinstance(node, Numeric):
        t = _field_type(schema, node.field)
        if t != "numeric":
            raise FilterError(f"field {node.field!r} is {t}, not numeric: a range does not apply")
        return node
    if isinstance(node, TextTerm):
        if node.field is None:
            if not any(_field_type(schema, f) == "text" for f in schema):
                raise FilterError(f"bare word {node.word!r} needs a text field, and none is declared")
            return node
        t = _field_type(schema, node.field)
        if t != "text":
            raise FilterError(
                f"field {node.field!r} is {t}, not text: use @{node.field}:{{...}}" if t == "tag"
                else f"field {node.field!r} is {t}, not text: use @{node.field}:[lo hi]")
        return node
    if isinstance(node, And):
        return And(tuple(bind(c, schema) for c in node.children))
    if isinstance(node, Or):
        return Or(tuple(bind(c, schema) for c in node.children))
    if isinstance(node, Not):
        return Not(bind(node.child, schema))
    if isinstance(node, Optional):
        return Optional(bind(node.child, schema))
    raise TypeError(f"not a filter node: {node!r}")


def _spec(schema, field):
    spec = schema[field]
    return {"type": spec} if isinstance(spec, str) else spec


def numeric_value(value):
    """A payload value as a float for NUMERIC fields (None if absent); ValueError if not numeric."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"invalid numeric value {value!r}")
    try:
        v = float(value)
    except OverflowError:  # an int past float64's range (10**400)
        raise ValueError("invalid numeric value: an integer beyond the float64 range") from None
    except (TypeError, ValueError):
        raise ValueError(f"invalid numeric value {value!r}") from None
    if math.isnan(v):
        raise ValueError("invalid numeric value NaN")
    return v


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
