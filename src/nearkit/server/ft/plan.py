"""From query text to a ``Prepared`` search: the parsed plan (cached by query text),
stop words dropped and words stemmed, FILTER / GEOFILTER arguments added, query
vectors decoded, and whether the work is heavy enough for a worker thread."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from ...store.filters import (
    And, Geo, MatchAll, Node, Not, Numeric, Optional, Or, TextPattern, TextTerm,
    stemming_available,
)
from ..commands import CommandError
from ..fulltext import rank as _text
from ..query import QueryError, parse_query
from ..vectors import BlobSizeError


# Searches below about a millisecond of work run inline on the event loop: a
# thread hop costs tens of microseconds, and a worker that needs the GIL back
# while the loop is busy can wait a whole switch interval. Units: floats scanned.
INLINE_WORK = 4_000_000
INLINE_HNSW_EF = 2000


def _parse_bound(text: str):
    t = text.strip()
    inclusive = not t.startswith("(")
    if not inclusive:
        t = t[1:]
    low = t.lower()
    if low in ("inf", "+inf"):
        return math.inf, inclusive
    if low == "-inf":
        return -math.inf, inclusive
    try:
        return float(t), inclusive
    except ValueError:
        raise CommandError("Bad upper range: " + text) from None


_NOTHING = Not(MatchAll())
MIN_STEM_LEN = 4  # Redis's MINSTEMLEN: shorter words are matched as they are


def drop_stopwords(node: Node, stopwords, stem_fields=None) -> Node:
    """The query without its stop-word terms, as Redis ignores them ("a AND b" is "a b");
    with ``stem_fields`` (the TEXT fields without NOSTEM), a plain word also matches the
    words sharing its English stem, as Redis expands it."""
    if isinstance(node, TextTerm):
        if not node.prefix and node.word.lower() in stopwords:
            return None
        # Redis expands every query word by its stem (MINSTEMLEN limits only the words
        # indexed: "fox" finds "foxes", indexed with the stem entry "+fox").
        if (stem_fields and not node.prefix
                and (node.field is None or node.field in stem_fields)):
            return TextPattern(node.field, node.word, "stem", weight=node.weight)
        return node
    if isinstance(node, (And, Or)):
        if getattr(node, "exact", False):
            stem_fields = None  # a quoted phrase is matched verbatim
        kids = [drop_stopwords(c, stopwords, stem_fields) for c in node.children]
        kids = [c for c in kids if c is not None]
        if len(kids) == len(node.children) and all(a is b for a, b in zip(kids, node.children)):
            return node
        if not kids:
            return None
        return kids[0] if len(kids) == 1 else dataclasses.replace(node, children=tuple(kids))
    if isinstance(node, (Not, Optional)):
        # Redis's expander leaves negated and optional words as they are
        child = drop_stopwords(node.child, stopwords, None)
        if child is node.child:
            return node
        return None if child is None else type(node)(child)
    return node


def _is_match_all(node) -> bool:
    return isinstance(node, MatchAll)


@dataclass
class Prepared:
    plan: object
    tree: Node
    knn_query: np.ndarray | None
    range_queries: list  # (node, vector, radius)
    inkeys: list | None
    heavy: bool
    phrases: bool = False  # the query has quoted phrases (checked on word positions)


class PlanCache:
    """Parsed plans by (query text, dialect), one cache per server (``server.ft.plans``):
    clients send the same query string with a new vector each time, so parsing is
    skipped unless a non-vector parameter changed."""

    MAX = 4096  # entries (query texts); the cache starts over when full

    def __init__(self):
        self._entries: dict = {}  # (query, dialect) -> (vector param names, {other params: plan})

    def __len__(self) -> int:
        return len(self._entries)

    def plan(self, query: str, params: dict, dialect: int):
        entry = self._entries.get((query, dialect))
        if entry is not None:
            vec_names, plans = entry
            if len(params) == len(vec_names) and all(k in vec_names for k in params):
                key = ()  # only the vector changes: the usual case
            else:
                key = tuple(sorted((k, v) for k, v in params.items() if k not in vec_names))
            plan = plans.get(key)
            if plan is not None:
                return plan
        try:
            plan = parse_query(query, params, dialect)
        except QueryError as exc:
            raise CommandError(str(exc)) from None
        vec_names = {r.vector_param for r in plan.ranges}
        if plan.knn is not None:
            vec_names.add(plan.knn.vector_param)
        if len(self._entries) >= self.MAX:
            self._entries.clear()
        entry = self._entries.setdefault((query, dialect), (frozenset(vec_names), {}))
        if entry[0] == vec_names and len(entry[1]) < 64:
            key = tuple(sorted((k, v) for k, v in params.items() if k not in vec_names))
            entry[1][key] = plan
        return plan


def prepare(plans: PlanCache, idx, query: str, params: dict, dialect: int, numeric_filters=(),
            inkeys=None, verbatim=False, infields=None):
    idx.flush_vectors()
    plan = plans.plan(query, params, dialect)
    stem_fields = idx.stem_fields if stemming_available() and not verbatim else None
    tree = drop_stopwords(plan.tree, idx.stopwords, stem_fields)
    if infields is not None and tree is not None:
        tree = _text.in_fields(tree, infields)
    if tree is None:  # a query of stop words only matches nothing
        tree = _NOTHING
    extra = []
    for entry in numeric_filters:
        if len(entry) == 5:  # GEOFILTER field lon lat radius unit
            extra.append(Geo(*entry))
            continue
        fname, lo, hi = entry
        lo_v, lo_inc = _parse_bound(lo)
        hi_v, hi_inc = _parse_bound(hi)
        extra.append(Numeric(fname, lo_v, hi_v, lo_inc, hi_inc))
    if extra:
        tree = And(((tree,) if not _is_match_all(tree) else ()) + tuple(extra)) \
            if not (_is_match_all(tree) and len(extra) == 1) else extra[0]
    for name in plan.score_names():
        if idx.field(name) is not None:
            raise CommandError(f"Property `{name}` already exists in schema")
    knn_q = None
    # Filter masks touch every document; exact scans every vector.
    work = 0 if type(tree) is MatchAll else idx.num_docs * 8
    if plan.knn is not None:
        vf = idx.vectors.get(plan.knn.field)
        if plan.knn.vector_param not in params:
            raise CommandError(f"No such parameter `{plan.knn.vector_param}`")
        if vf is not None:
            try:
                knn_q = vf.decode_blob(params[plan.knn.vector_param])
            except BlobSizeError as exc:
                raise CommandError(f"Error parsing vector similarity query: query vector blob size "
                                   f"({exc.got}) does not match index's expected size "
                                   f"({exc.expected}).") from None
            if vf.uses_graph:
                ef = max(plan.knn.ef_runtime or vf.ef_runtime, plan.knn.k)
                if ef > INLINE_HNSW_EF:
                    work += INLINE_WORK + 1
            else:
                work += vf.count * vf.dim
    rq = []
    for node in plan.ranges:
        vf = idx.vectors.get(node.field)
        if node.vector_param not in params:
            raise CommandError(f"No such parameter `{node.vector_param}`")
        if vf is None:
            rq.append((node, None, node.radius))
            continue
        try:
            v = vf.decode_blob(params[node.vector_param])
        except BlobSizeError as exc:
            raise CommandError(f"Error parsing vector similarity query: query vector blob size "
                               f"({exc.got}) does not match index's expected size "
                               f"({exc.expected}).") from None
        rq.append((node, v, node.radius))
        work += vf.count * vf.dim
    heavy = work > INLINE_WORK
    return Prepared(plan, tree, knn_q, rq, inkeys, heavy, _text.has_phrase(tree))
