"""Which documents a prepared query matches: the filter tree evaluated to a mask over
the index's slots (nearkit.query's one walk; most leaves are the store's field-index
masks), then KNN or vector ranges within it."""

from __future__ import annotations

import numpy as np

from ...query.evaluate import masks
from ...query.nodes import Empty, GeoShape, MatchAll, Missing, Node, TextPattern, TextTerm, VectorRange
from ..commands import CommandError
from ..fulltext import rank as _text
from ..query import range_yield_name
from .plan import Prepared, _is_match_all


def _leaf_ok(idx, node) -> bool:
    """Redis answers a leaf on an unknown field, or a field of another type, with no match."""
    if isinstance(node, TextPattern):
        node = TextTerm(node.field, node.word)
    if isinstance(node, TextTerm) and node.field is None:
        return any(f.type == "TEXT" for f in idx.fields)
    f = idx.field(node.field)
    return f is not None and f.type == node.field_type.upper() and "NOINDEX" not in f.flags


def eval_mask(idx, node: Node, live: np.ndarray, ranges: dict) -> np.ndarray:
    """The mask of the query tree over the index's slots (the query package's one walk)."""
    return masks(node, live, lambda leaf, live: _leaf_mask(idx, leaf, live, ranges))


def _leaf_mask(idx, node: Node, live: np.ndarray, ranges: dict) -> np.ndarray:
    """The server's leaf hook: vector ranges, missing and empty values and shapes are the
    server's own; the rest come from the field indexes (plus synonyms, stems, phonetics)."""
    if isinstance(node, VectorRange):
        return ranges[id(node)][0] & live
    if isinstance(node, Missing):
        f = idx.field(node.field)
        if f is None or "INDEXMISSING" not in f.flags:
            raise CommandError(f"'ismissing' requires field '{node.field}' to be defined with "
                               "'INDEXMISSING'")
        m = live.copy()
        for slot, present in idx.slot_present.items():
            if slot < m.shape[0] and f.alias in present:
                m[slot] = False
        return m
    if isinstance(node, Empty):
        return _empty_mask(idx, node, live)
    if isinstance(node, GeoShape):
        f = idx.field(node.field)
        if f is None or f.type != "GEOSHAPE" or "NOINDEX" in f.flags:
            return np.zeros(live.shape[0], bool)
        try:
            m = idx.shapes.mask(f.alias, node.op, node.shape, live.shape[0])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        return m & live
    if not _leaf_ok(idx, node):
        return np.zeros(live.shape[0], bool)
    if type(node) is TextPattern and node.kind == "stem":
        slots = _text.stem_slots(idx, node)
        if slots is not None:
            m = np.zeros(live.shape[0], bool)
            if slots:
                m[np.fromiter(slots, np.int64, len(slots))] = True
            extra = _text.extra_slots(idx, node)
            if extra:
                m[[s for s in extra if s < m.shape[0]]] = True
            return m & live
    m = idx.fi.leaf_mask(node, live) & live
    extra = _text.extra_slots(idx, node)  # synonym groups and phonetic codes
    if extra:
        m[[s for s in extra if s < m.shape[0]]] = True
        m &= live
    return m


def _empty_mask(idx, node, live: np.ndarray) -> np.ndarray:
    """Documents whose value is empty (INDEXEMPTY): ``@f:''``, ``@tag:{$p}`` with p = ""."""
    if node.field is None:
        aliases = {f.alias for f in idx.fields if f.type == "TEXT" and "INDEXEMPTY" in f.flags}
    else:
        f = idx.field(node.field)
        if f is None or f.type not in ("TEXT", "TAG"):
            return np.zeros(live.shape[0], bool)
        if "INDEXEMPTY" not in f.flags:
            raise CommandError("Use `INDEXEMPTY` in field creation in order to index and query "
                               "for empty strings")
        aliases = {f.alias}
    m = np.zeros(live.shape[0], bool)
    for slot, empty in idx.slot_empty.items():
        if slot < m.shape[0] and not aliases.isdisjoint(empty):
            m[slot] = True
    return m & live


def select(idx, prep: Prepared):
    """(slots, {score name: distances}) of every document the query matches; KNN results
    are sorted by distance. Call under the index's read lock."""
    knn = prep.plan.knn
    if (knn is not None and not prep.range_queries and prep.inkeys is None
            and type(prep.tree) is MatchAll):
        # Plain KNN (the common case): no masks at all.
        vf = idx.vectors.get(knn.field)
        if vf is None or prep.knn_query is None or knn.k == 0:
            return np.zeros(0, np.int64), {knn.score_name: np.zeros(0, np.float32)}
        slots, dist = vf.knn(prep.knn_query, knn.k, None, knn.ef_runtime)
        return slots, {knn.score_name: dist}
    n = len(idx.slot_key)
    live = idx.live[:n]
    ranges, scores = {}, {}
    for node, vec, radius in prep.range_queries:
        vf = idx.vectors.get(node.field)
        m = np.zeros(n, bool)
        dist = None
        if vf is not None and vec is not None:
            slots, d = vf.range(vec, radius, None)
            m[slots[slots < n]] = True
            dist = np.full(n, np.nan, np.float32)
            dist[slots[slots < n]] = d[slots < n]
        ranges[id(node)] = (m, dist)
    tree = prep.tree
    only_all = _is_match_all(tree) and prep.inkeys is None
    mask = None if only_all else eval_mask(idx, tree, live, ranges)
    if prep.inkeys is not None:
        km = np.zeros(n, bool)
        for k in prep.inkeys:
            s = idx.key_slot.get(k)
            if s is not None:
                km[s] = True
        mask = km & (mask if mask is not None else live)
    if knn is not None:
        vf = idx.vectors.get(knn.field)
        if vf is None or prep.knn_query is None or knn.k == 0:
            slots, dist = np.zeros(0, np.int64), np.zeros(0, np.float32)
        else:
            allowed = None if mask is None else mask
            slots, dist = vf.knn(prep.knn_query, knn.k, allowed, knn.ef_runtime)
            slots = slots[slots < n]
            dist = dist[: slots.shape[0]]
        scores[knn.score_name] = dist
    else:
        slots = idx.in_document_order(np.flatnonzero(live if mask is None else mask))
    for node, _, _ in prep.range_queries:
        name = range_yield_name(node)
        d = ranges[id(node)][1]
        if name and d is not None:
            scores[name] = d[slots]
    return slots, scores
