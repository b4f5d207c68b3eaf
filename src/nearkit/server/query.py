"""The FT.SEARCH query string: filter, KNN clause and vector ranges.

The filter part (everything before a top-level ``=>``) is parsed by the query
package's parser (``nearkit.query.parse_text.parse_prefix``), which also understands
``@v:[VECTOR_RANGE r $blob]=>{...}`` nodes. This module parses what follows
``=>``: the KNN clause and its attribute block (redis-vector-spec.md 5.3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..query.evaluate import leaves
from ..query.nodes import FilterSyntaxError, MatchAll, Node, VectorRange
from ..query.parse_text import parse_prefix


class QueryError(ValueError):
    """A query that Redis rejects; ``str()`` is the exact error reply text."""


@dataclass
class Knn:
    k: int
    field: str
    vector_param: str
    ef_runtime: int | None = None
    epsilon: float | None = None
    hybrid_policy: str | None = None
    batch_size: int | None = None
    score_name: str | None = None


@dataclass
class Plan:
    tree: Node
    knn: Knn | None = None
    ranges: list = field(default_factory=list)  # VectorRange nodes in the tree

    def score_names(self) -> list:
        names = []
        if self.knn is not None:
            names.append(self.knn.score_name)
        for r in self.ranges:
            y = range_yield_name(r)
            if y:
                names.append(y)
        return names


def range_yield_name(node: VectorRange):
    for k, v in node.attributes:
        if k.upper() == "YIELD_DISTANCE_AS":
            return v
    return None


def syntax_error(offset: int, near: str) -> QueryError:
    return QueryError(f"Syntax error at offset {offset} near {near}")


def _from_filter_error(exc: FilterSyntaxError) -> QueryError:
    detail = exc.detail
    if detail.startswith("no such parameter"):
        return QueryError("No such parameter " + detail[len("no such parameter "):])
    if detail.startswith("negative radius"):
        return QueryError("Error parsing vector similarity query: " + detail)
    near = exc.near if exc.near else "end of query"
    return syntax_error(exc.offset, near)


_TOKEN = re.compile(r"\S+")


def _param_or_literal(tok: str, params: dict, offset: int, kind):
    if tok.startswith("$"):
        name = tok[1:]
        if name not in params:
            raise QueryError(f"No such parameter `{name}`")
        tok = params[name].decode("utf-8", "replace") if isinstance(params[name], bytes) else str(params[name])
    try:
        v = kind(tok)
    except ValueError:
        raise syntax_error(offset, tok) from None
    return v


def _parse_knn(text: str, start: int, params: dict) -> tuple[Knn, int]:
    """Parse ``[KNN ...]`` starting at text[start] == '['; returns (Knn, end offset)."""
    close = text.find("]", start)
    if close < 0:
        raise syntax_error(start, text[start:start + 2])
    body = text[start + 1:close]
    toks = [(m.group(0), start + 1 + m.start()) for m in _TOKEN.finditer(body)]
    if not toks or toks[0][0].upper() != "KNN":
        near = toks[0][0] if toks else "]"
        raise syntax_error(toks[0][1] if toks else close, near)
    if len(toks) < 4:
        raise syntax_error(close, "]")
    k_tok, k_off = toks[1]
    k = _param_or_literal(k_tok, params, k_off, int)
    if k < 0:
        raise syntax_error(k_off, k_tok)
    f_tok, f_off = toks[2]
    if not f_tok.startswith("@") or len(f_tok) < 2:
        raise syntax_error(f_off, f_tok)
    v_tok, v_off = toks[3]
    if not v_tok.startswith("$") or len(v_tok) < 2:
        raise syntax_error(v_off, v_tok)
    knn = Knn(k=k, field=f_tok[1:], vector_param=v_tok[1:])
    i = 4
    while i < len(toks):
        word, off = toks[i]
        up = word.upper()
        if i + 1 >= len(toks):
            raise syntax_error(off, word)
        val, voff = toks[i + 1]
        if up == "EF_RUNTIME":
            knn.ef_runtime = _param_or_literal(val, params, voff, int)
            if knn.ef_runtime <= 0:
                raise QueryError("Error parsing vector similarity parameters: "
                                 "Invalid value was given")
        elif up == "EPSILON":
            knn.epsilon = _param_or_literal(val, params, voff, float)
        elif up == "HYBRID_POLICY":
            pol = _param_or_literal(val, params, voff, str).upper()
            if pol not in ("ADHOC_BF", "BATCHES"):
                raise QueryError("Error parsing vector similarity parameters: "
                                 "invalid hybrid policy was given")
            knn.hybrid_policy = pol
        elif up == "BATCH_SIZE":
            knn.batch_size = _param_or_literal(val, params, voff, int)
        elif up == "AS":
            knn.score_name = val
        else:
            raise syntax_error(off, word)
        i += 2
    return knn, close + 1


def _parse_attributes(text: str, start: int, params: dict) -> tuple[dict, int]:
    """``{$NAME: value; ...}`` starting at text[start] == '{'."""
    close = text.find("}", start)
    if close < 0:
        raise syntax_error(start, text[start:start + 2])
    attrs = {}
    for part in text[start + 1:close].split(";"):
        part = part.strip()
        if not part:
            continue
        k, sep, v = part.partition(":")
        k, v = k.strip(), v.strip()
        if not sep or not k.startswith("$"):
            raise syntax_error(start + 1, part.split()[0] if part.split() else part)
        if v.startswith("$") and v[1:] in params:
            v = params[v[1:]].decode("utf-8", "replace")
        attrs[k[1:].upper()] = v
    return attrs, close + 1


def parse_query(text: str, params: dict, dialect: int) -> Plan:
    """Parse an FT.SEARCH / FT.AGGREGATE query string into a Plan."""
    try:
        tree, end = parse_prefix(text, params if dialect >= 2 else {}, dialect=dialect)
    except FilterSyntaxError as exc:
        raise _from_filter_error(exc) from None
    plan = Plan(tree, ranges=[n for n in leaves(tree) if isinstance(n, VectorRange)])
    if end < len(text):
        # At a top-level "=>": the KNN clause.
        if dialect < 2:
            raise syntax_error(end, text[end + 1:end + 3])
        pos = end + 2
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text) or text[pos] != "[":
            raise syntax_error(end, text[end + 1:end + 3])
        knn, pos = _parse_knn(text, pos, params)
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if text.startswith("=>", pos):
            p2 = pos + 2
            while p2 < len(text) and text[p2].isspace():
                p2 += 1
            if p2 < len(text) and text[p2] == "{":
                attrs, pos = _parse_attributes(text, p2, params)
                if "YIELD_DISTANCE_AS" in attrs:
                    knn.score_name = attrs["YIELD_DISTANCE_AS"]
                if "EF_RUNTIME" in attrs:
                    try:
                        knn.ef_runtime = int(attrs["EF_RUNTIME"])
                    except ValueError:
                        raise syntax_error(p2, attrs["EF_RUNTIME"]) from None
                if "EPSILON" in attrs:
                    knn.epsilon = float(attrs["EPSILON"])
            else:
                raise syntax_error(pos, text[pos + 1:pos + 3])
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos < len(text):
            raise syntax_error(pos, text[pos + 1:pos + 3] if text.startswith("=>", pos)
                               else text[pos:].split()[0])
        if knn.score_name is None:
            knn.score_name = f"__{knn.field}_score"
        if isinstance(tree, MatchAll) and not plan.ranges:
            if knn.hybrid_policy is not None or knn.batch_size is not None:
                raise QueryError("Error parsing vector similarity parameters: hybrid query "
                                 "attributes were sent for a non-hybrid query")
        if knn.hybrid_policy == "ADHOC_BF" and knn.batch_size is not None:
            raise QueryError("Error parsing vector similarity parameters: 'batch size' is "
                             "irrelevant for 'ADHOC_BF' policy")
        plan.knn = knn
    return plan
