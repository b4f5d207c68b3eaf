"""The Redis query language (DIALECT 2 subset, and DIALECT 1's differences) -> a filter tree.

``@genre:{drama|comedy} @year:[1990 (2000] -@title:foo``, ``*``, ``@f:(w1 | w2)``,
prefix ``word*``, fuzzy ``%word%``, ``$param`` substitution, grouping, geo radii,
shapes, ``ismissing(@f)``, ``''`` and ``@v:[VECTOR_RANGE r $blob]``.
``parse_prefix`` parses only up to a ``=>`` (the KNN clause of FT.SEARCH) and says
where it stopped, so a server can go on from there.

Syntax errors raise ``FilterSyntaxError`` (a ValueError) carrying ``offset``
(0-based character position) and ``near`` (the offending text).
"""

from __future__ import annotations

import dataclasses
import math
import re

from .bounds import bound_value, parse_bound
from .nodes import (
    MAX_NESTING, WORD_SPECIAL, Empty, FilterSyntaxError, Geo, GeoShape, MatchAll, Missing, Node,
    Not, Numeric, Optional, Phrase, Tag, TextPattern, TextTerm, VectorRange, all_of, any_of,
    number_text,
)
from .values import GEO_UNITS, text_tokens

_GEOSHAPE_OP = re.compile(r"(WITHIN|CONTAINS|INTERSECTS|DISJOINT)(?![\w])", re.IGNORECASE)
_ATTRS = re.compile(r"=>\s*\{")
_ISMISSING = re.compile(r"ismissing\s*\(\s*@([A-Za-z_][\w.$-]*)\s*\)", re.IGNORECASE)


def _weighted(node, attrs: dict):
    """The node with its ``$weight`` attribute (kept for text scoring; filters ignore it)."""
    w = attrs.get("weight")
    if w is None or not hasattr(node, "weight"):
        return node
    try:
        return dataclasses.replace(node, weight=float(w))
    except ValueError:
        return node



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
            if c in WORD_SPECIAL or (c == "-" and not out):
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
        return any_of(parts)

    def intersect(self) -> Node:
        parts = []
        while True:
            c = self.peek()
            if c == "" or c in ")|" or self.at_arrow():
                break
            parts.append(self.unary())
        if not parts:
            self.error("expected an expression")
        return all_of(parts)

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
        if c == "*" and not (self.i + 1 < self.n and self.s[self.i + 1] not in WORD_SPECIAL):
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
        if c == "*" and self.i + 1 < self.n and self.s[self.i + 1] not in WORD_SPECIAL:
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
            return self.text_group(name, "expected ')' to close the text group")
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
        ok = c != "" and c not in WORD_SPECIAL and c != "-"
        if ok:  # a prefix term ends the run (RediSearch applies the field to words only)
            j = self.i
            while j < self.n and self.s[j] not in WORD_SPECIAL:
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
            alts.append(all_of(words))
            save = self.i
            if self.peek() == "|":
                self.i += 1
                if self._v1_plain_word_next():
                    w, _ = self.word()
                    words = [TextTerm(field, w)]
                    continue
            self.i = save
            break
        return any_of(alts)

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
    def text_group(self, field, unclosed: str) -> Node:
        """At '(': a text union up to its ')'; ``unclosed`` is the error when none comes."""
        self.i += 1
        self.nest()
        node = self.text_union(field)
        if self.peek() != ")":
            self.error(unclosed)
        self.i += 1
        self.depth -= 1
        return node

    def text_union(self, field) -> Node:
        parts = [self.text_intersect(field)]
        while self.peek() == "|":
            self.i += 1
            parts.append(self.text_intersect(field))
        return any_of(parts)

    def text_intersect(self, field) -> Node:
        parts = []
        while True:
            c = self.peek()
            if c == "" or c in ")|":
                break
            parts.append(self.text_unary(field))
        if not parts:
            self.error("expected a word")
        return all_of(parts)

    def text_unary(self, field) -> Node:
        ops = self.prefixes(check_next=False)
        if ops:
            return self.apply_prefixes(ops, self.text_unary(field))
        c = self.peek()
        if c == "(":
            return self.text_group(field, "expected ')'")
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
            return any_of([Tag(field, tuple(rest), tuple(prefixes)), Empty(field)])
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
        from_param = self.i < self.n and self.s[self.i] == "$"
        if from_param:
            text = self.param()
        else:
            m = re.compile(r"[^\s\]\[]+").match(self.s, self.i)
            if not m:
                self.error(f"expected the {what} bound")
            self.i = m.end()
            text = m.group(0)
        try:
            # a parameter's value may carry its own '(' ("$lo" = "(5"); a literal's was read above
            v, also_inclusive = parse_bound(text) if from_param else (bound_value(text), True)
        except ValueError:
            self.error(f"expected a number for the {what} bound", start)
        inclusive = inclusive and also_inclusive
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
            raise FilterSyntaxError(f"negative radius ({number_text(radius)}) given in a range query",
                                    at, number_text(radius))
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

