"""Running FT.SEARCH / FT.AGGREGATE against an index, and shaping the replies.

A search is split in three so the event loop stays responsive:

1. parse and validate (event loop): bad input is answered at once;
2. ``compute`` (a worker thread, under the index's read lock): filter masks,
   vector ranges, KNN, sorting and paging -- the heavy part, mostly in numpy
   and nearkit's C++ kernels, which release the GIL;
3. ``finish`` (event loop): read the returned documents from the key space and
   build the reply in the connection's protocol.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
import random
import re
import time
from dataclasses import dataclass, field

import numpy as np

from .. import _core

from ..query.bounds import parse_bound
from ..query.evaluate import masks
from ..query.nodes import (
    And, Empty, Geo, GeoShape, MatchAll, Missing, Node, Not, Numeric, Optional, Or, TextPattern,
    TextTerm, VectorRange,
)
from ..query.words import stemming_available
from . import jsonpath
from .fulltext import highlight as _highlight
from .fulltext import rank as _text
from .fulltext import replies as _text_replies
from .commands import CommandError, Offload
from .protocol import Double, Error, Map, Raw, Simple
from .query import QueryError, parse_query, range_yield_name
from .vectors import BlobSizeError

S = Simple
log = logging.getLogger("nearkit.server")
MAX_RESULTS = 10000
# Searches below about a millisecond of work run inline on the event loop: a
# thread hop costs tens of microseconds, and a worker that needs the GIL back
# while the loop is busy can wait a whole switch interval. Units: floats scanned.
INLINE_WORK = 4_000_000
INLINE_HNSW_EF = 2000


def fmt_distance(d) -> bytes:
    """Redis prints scores like C's %.12g of the float32 value."""
    return b"%.12g" % float(d)


def fmt_number(x) -> bytes:
    if isinstance(x, float):
        if math.isnan(x):
            return b"nan"
        if math.isinf(x):
            return b"inf" if x > 0 else b"-inf"
        if x.is_integer() and abs(x) < 2.0 ** 63:
            return b"%d" % int(x)  # Redis prints integral values in full, not in e-notation
        return b"%.12g" % x
    return str(x).encode()


@dataclass
class SearchRequest:
    query: str
    nocontent: bool = False
    verbatim: bool = False
    nostopwords: bool = False
    withscores: bool = False
    withpayloads: bool = False
    withsortkeys: bool = False
    inorder: bool = False
    explainscore: bool = False
    offset: int = 0
    num: int = 10
    return_fields: list | None = None
    sortby: str | None = None
    sort_desc: bool = False
    params: dict = field(default_factory=dict)
    dialect: int = 1
    numeric_filters: list = field(default_factory=list)
    inkeys: list | None = None
    param_pos: dict = field(default_factory=dict)  # parameter name -> its value's index in args
    scorer: str = "TFIDF"
    slop: int | None = None
    infields: list | None = None
    summarize: dict | None = None   # SUMMARIZE settings (fulltext/highlight.py)
    highlight: dict | None = None   # HIGHLIGHT settings
    text_tree: object = None        # the query tree, for SUMMARIZE / HIGHLIGHT


def _parse_bound(text: str):
    """A FILTER argument's bound, ``(value, inclusive)``; the error says "upper" for either bound."""
    try:
        return parse_bound(text)
    except ValueError:
        raise CommandError("Bad upper range: " + text) from None


# --------------------------------------------------------------------------------------------
# filter evaluation (the tree is nearkit.query's; most leaves are the store's field-index masks)
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# the shared first half of SEARCH and AGGREGATE: which documents, with which distances
# --------------------------------------------------------------------------------------------

@dataclass
class Prepared:
    plan: object
    tree: Node
    knn_query: np.ndarray | None
    range_queries: list  # (node, vector, radius)
    inkeys: list | None
    heavy: bool
    phrases: bool = False  # the query has quoted phrases (checked on word positions)


# Parsed plans by (query text, dialect): clients send the same query string with a
# new vector each time, so parsing is skipped unless a non-vector parameter changed.
_PLAN_CACHE: dict = {}
_PLAN_CACHE_MAX = 4096


def cached_plan(query: str, params: dict, dialect: int):
    entry = _PLAN_CACHE.get((query, dialect))
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
    if len(_PLAN_CACHE) >= _PLAN_CACHE_MAX:
        _PLAN_CACHE.clear()
    entry = _PLAN_CACHE.setdefault((query, dialect), (frozenset(vec_names), {}))
    if entry[0] == vec_names and len(entry[1]) < 64:
        key = tuple(sorted((k, v) for k, v in params.items() if k not in vec_names))
        entry[1][key] = plan
    return plan


def prepare(idx, query: str, params: dict, dialect: int, numeric_filters=(), inkeys=None,
            verbatim=False, infields=None):
    idx.flush_vectors()
    plan = cached_plan(query, params, dialect)
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
        slots = np.flatnonzero(live if mask is None else mask)
    for node, _, _ in prep.range_queries:
        name = range_yield_name(node)
        d = ranges[id(node)][1]
        if name and d is not None:
            scores[name] = d[slots]
    return slots, scores


# --------------------------------------------------------------------------------------------
# FT.SEARCH
# --------------------------------------------------------------------------------------------

def _sort_value(idx, slot, name):
    sv = idx.slot_sort.get(int(slot))
    if sv is not None and name in sv:
        return sv[name]
    rec = idx.slot_rec.get(int(slot), {})
    v = rec.get(name)
    if v is None:
        return None
    if isinstance(v, float):
        return v
    return " ".join(v)


class _FastSearch:
    """A plain KNN request seen before: the same arguments but the query vector."""

    __slots__ = ("idx", "vf", "field", "pos", "head", "tail", "k", "ef", "req", "score_names",
                 "knn_name", "row_tail", "lo", "hi", "plain")


_FAST: dict = {}  # (index name, query text, number of args) -> _FastSearch


def try_fast_search(ctx, args):
    """Answer a repeated plain KNN query without parsing it again (None: take the
    general path, which also produces every error reply)."""
    job = fast_knn_job(ctx, args)
    return None if job is None else job.run()


class KnnJob:
    """A repeated plain KNN request, checked and ready to search.

    The server gathers the jobs that connections hand it in one event-loop tick
    and answers them with ``run_knn_batch`` (one graph search call for many
    queries); ``run`` answers one alone. Either way the reply is what the general
    path would give.
    """

    __slots__ = ("ctx", "entry", "blob")

    def __init__(self, ctx, entry, blob):
        self.ctx, self.entry, self.blob = ctx, entry, blob

    @property
    def batchable(self) -> bool:
        return self.entry.plain and not self.ctx.resp3

    def run(self):
        entry = self.entry
        vf = entry.vf
        if self.batchable:
            # FLOAT32 graph search, RESP2, ``RETURN 1 <score>``: the commonest request of
            # all. The query bytes go to the graph as they are (its core checks them for
            # NaN/inf; such a query takes the general path, which sanitises it).
            try:
                slots, dist = vf.knn_raw(self.blob, entry.k, entry.ef)
            except ValueError:
                slots = None
            if slots is not None:
                return Raw(_plain_replies(self.ctx, entry, slots[None, :], dist[None, :])[0])
        slots, dist = vf.knn(vf.decode_blob(self.blob), entry.k, None, entry.ef)
        req = entry.req
        lo, hi = req.offset, req.offset + req.num
        idx = entry.idx
        slot_key = idx.slot_key
        keys = [slot_key[s] for s in slots[lo:hi].tolist()]
        return render_search(self.ctx, idx, req, int(slots.shape[0]), keys,
                             {entry.knn_name: dist[lo:hi]}, entry.score_names, True)


def _plain_replies(ctx, entry, ids: np.ndarray, dist: np.ndarray) -> list:
    """The RESP2 replies (Raw) of plain KNN requests, one per row of the graph's
    results ``ids``/``dist`` (sorted by distance, padded with id -1), encoded in C++."""
    return _core.resp2_knn_replies(ids, dist, entry.lo, entry.hi, entry.idx.slot_key,
                                   ctx.server.keyspace.data, entry.row_tail)


def fast_knn_job(ctx, args):
    """A KnnJob for a repeated plain KNN query (None: take the general path)."""
    entry = _FAST.get((args[0], args[1], len(args)))
    if entry is None:
        return None
    pos = entry.pos
    if args[:pos] != entry.head or args[pos + 1:] != entry.tail:
        return None
    idx = entry.idx
    vf = entry.vf
    blob = args[pos]
    if (ctx.server.search.indexes.get(args[0]) is not idx or idx.vectors.get(entry.field) is not vf
            or len(blob) != vf.blob_size or (not vf.uses_graph and vf.count * vf.dim > INLINE_WORK)
            or (vf.uses_graph and (entry.ef or vf.ef_runtime) > INLINE_HNSW_EF)):
        return None  # the general path (heavy searches go to the worker threads there)
    if idx.vectors_pending:
        idx.flush_vectors()
    idx.number_of_uses += 1
    return KnnJob(ctx, entry, blob)


def _error_reply(exc):
    if isinstance(exc, CommandError):
        return exc.reply
    log.error("search failed", exc_info=exc)
    return Error(f"ERR internal error: {type(exc).__name__}: {exc}")


def run_knn_batch(jobs: list):
    """(replies, batched): the replies to ``jobs`` (KnnJobs) in order, an error reply
    where one failed, and how many were answered by a multi-query search.

    Batchable jobs of the same cached request (same index, k, EF_RUNTIME, page and
    score label; only the vector differs) are answered by one graph search call for
    all their queries (the GIL released once) and their replies encoded together;
    the others one by one. Call on the event loop (the only thread that writes the indexes).
    """
    replies = [None] * len(jobs)
    batched = 0
    groups: dict = {}
    for i, job in enumerate(jobs):
        if job.batchable:
            e = job.entry
            groups.setdefault(id(e), []).append(i)
    for members in groups.values():
        if len(members) < 2:
            continue
        entry = jobs[members[0]].entry
        try:
            ids, dist, ok = entry.vf.knn_raw_many([jobs[i].blob for i in members], entry.k, entry.ef)
        except Exception:  # answer them one by one: each gets its own reply or error
            log.exception("batched graph search failed")
            continue
        if ok is not None:
            members = [i for i, good in zip(members, ok.tolist()) if good]
        try:
            encoded = _plain_replies(jobs[members[0]].ctx, entry, ids, dist) if members else []
        except Exception:
            log.exception("encoding batched replies failed")
            continue
        for i, raw in zip(members, encoded):
            replies[i] = Raw(raw)
        batched += len(members)
    for i, job in enumerate(jobs):
        if replies[i] is None:
            try:
                replies[i] = job.run()
            except Exception as exc:
                replies[i] = _error_reply(exc)
    return replies, batched


def _remember_fast(idx, req, prep, args, score_names):
    knn = prep.plan.knn
    vf = idx.vectors.get(knn.field)
    pos = req.param_pos.get(knn.vector_param)
    if (args is None or vf is None or pos is None or knn.k <= 0 or prep.range_queries
            or type(prep.tree) is not MatchAll or req.inkeys is not None or req.numeric_filters
            or req.withscores or req.withpayloads or req.sortby is None
            or req.sortby != knn.score_name or req.sort_desc):
        return
    if len(_FAST) >= 1024:
        _FAST.clear()
    e = _FastSearch()
    e.idx, e.vf, e.field, e.pos = idx, vf, knn.field, pos
    e.head, e.tail = list(args[:pos]), list(args[pos + 1:])
    e.k, e.ef, e.req = knn.k, knn.ef_runtime, req
    e.score_names, e.knn_name = score_names, knn.score_name
    rf = req.return_fields
    e.lo, e.hi = req.offset, req.offset + req.num
    # The lean RESP2 path: only the KNN distance returned, straight from the graph.
    e.plain = bool(vf.uses_graph and vf.data_type == "FLOAT32" and not req.nocontent
                   and rf and len(rf) == 1 and rf[0][0] == knn.score_name)
    if e.plain:
        label = rf[0][1].encode()
        e.row_tail = b"*2\r\n$%d\r\n%s\r\n" % (len(label), label)
    _FAST[(args[0], args[1], len(args))] = e


def search(ctx, idx, req: SearchRequest, args=None):
    prep = prepare(idx, req.query, req.params, req.dialect, req.numeric_filters, req.inkeys,
                   req.verbatim, req.infields)
    score_names = prep.plan.score_names()
    if req.sortby is not None and req.sortby not in score_names and idx.field(req.sortby) is None:
        raise CommandError(f"Property `{req.sortby}` not loaded nor in schema")
    is_knn = prep.plan.knn is not None
    if is_knn:
        _remember_fast(idx, req, prep, args, score_names)
    if req.summarize is not None or req.highlight is not None:
        for flag in ("nooffsets", "nohl"):
            if idx.options.get(flag):
                raise CommandError("Cannot use highlight/summarize because NOOFFSETS/NOHL was "
                                   "specified at index level")
        req.text_tree = prep.tree

    knn_name = prep.plan.knn.score_name if is_knn else None

    def work():
        slots, scores = select(idx, prep)
        if (req.slop is not None or req.inorder or prep.phrases) and _text.has_text(idx):
            slots = _text.filter_slop(idx, prep.tree, slots, req.slop, req.inorder)
        total = int(slots.shape[0])
        order = None
        text_scores = explains = None
        if knn_name is None and _text.has_text(idx) and (req.sortby is None or req.withscores):
            # Redis ranks text matches by the scorer (TFIDF unless SCORER says otherwise).
            text_scores, explains = _text.rank(idx, prep.tree, slots, req.scorer,
                                               req.explainscore)
            if req.sortby is None:
                order = _text.order_by_score(slots, text_scores)
        if req.sortby is None and knn_name is not None:
            # Without SORTBY, Redis lists the k nearest in document order.
            order = np.argsort(slots, kind="stable")
        elif req.sortby is not None:
            if req.sortby == knn_name and not req.sort_desc:
                order = None  # KNN results come sorted by distance already
            elif req.sortby in scores:
                key = scores[req.sortby].astype(np.float64)
                key = np.where(np.isnan(key), np.inf if not req.sort_desc else -np.inf, key)
                order = np.lexsort((slots, -key if req.sort_desc else key))
            else:
                vals = [_sort_value(idx, s, req.sortby) for s in slots]
                present = [i for i, v in enumerate(vals) if v is not None]
                missing = [i for i, v in enumerate(vals) if v is None]
                present.sort(key=lambda i: (vals[i], int(slots[i])), reverse=req.sort_desc)
                order = np.array(present + missing, dtype=np.int64)
        lo, hi = req.offset, req.offset + req.num
        if order is not None:
            page = order[lo:hi]
            sel = slots[page]
            page_scores = {name: d[page] for name, d in scores.items()}
        else:
            sel = slots[lo:hi]
            page_scores = {name: d[lo:hi] for name, d in scores.items()}
        if text_scores is not None:
            pick = page if order is not None else np.arange(lo, min(hi, total))
            page_scores[_TEXT_SCORE] = text_scores[pick]
            if explains is not None:
                page_scores[_EXPLAIN] = [explains[i] for i in pick.tolist()]
        slot_key = idx.slot_key
        keys = [slot_key[s] for s in sel.tolist()]
        return total, keys, page_scores

    def compute():
        idx.lock.acquire_read()
        try:
            return work()
        finally:
            idx.lock.release_read()

    def finish(result):
        total, keys, page_scores = result
        return render_search(ctx, idx, req, total, keys, page_scores, score_names, is_knn)

    return Offload(compute, finish, heavy=prep.heavy, inline=work)


_TEXT_SCORE, _EXPLAIN = "\0score", "\0explain"  # text scores riding with the distances


def _json_text(v) -> bytes:
    if isinstance(v, str):
        return v.encode()
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode()


def _doc_fields(idx, doc, req, scores, i, score_names):
    """The (name, value) pairs returned for one document."""
    out = []
    if req.return_fields is None:
        for name in score_names:
            if name in scores:
                d = scores[name][i]
                if not np.isnan(d):
                    out.append((name.encode(), fmt_distance(d)))
        if type(doc) is dict:
            out.extend(doc.items())
        else:
            out.append((b"$", _json_text(doc.value) if not isinstance(doc.value, str)
                        else json.dumps(doc.value).encode()))
        return out
    for name, label in req.return_fields:
        if name in scores:
            d = scores[name][i]
            if not np.isnan(d):
                out.append((label.encode(), fmt_distance(d)))
            continue
        f = idx.field(name)
        if type(doc) is dict:
            ident = f.identifier if f is not None else name
            v = doc.get(ident.encode())
            if v is not None:
                out.append((label.encode(), v))
        else:
            path = f.path if f is not None and f.path is not None else None
            if path is None:
                try:
                    path = jsonpath.parse(name if name.startswith("$") else "$." + name)
                except ValueError:
                    continue
            found = jsonpath.find(doc.value, path)
            if found:
                v = found if (f is not None and "*" in f.identifier and len(found) > 1) else found[0]
                out.append((label.encode(), _json_text(v)))
    return out


def render_search(ctx, idx, req, total, keys, scores, score_names, is_knn):
    data = ctx.server.keyspace.data
    resp3 = ctx.resp3
    score_text = b"0" if is_knn else b"1"
    rows = []
    rf = req.return_fields
    text_scores = scores.pop(_TEXT_SCORE, None)
    explains = scores.pop(_EXPLAIN, None)
    if text_scores is not None and req.withscores:
        return _text_replies.render_scored(ctx, idx, req, total, keys, scores, score_names,
                                           text_scores, explains)
    if not req.nocontent and rf and all(name in scores for name, _ in rf):
        # Only distances asked for (RETURN 1 dist): no document fields to read.
        if len(rf) == 1 and not resp3 and not req.withscores and not req.withpayloads:
            # The commonest query of all, encoded in one pass.
            label = rf[0][1].encode()
            head = b"*2\r\n$%d\r\n%s\r\n" % (len(label), label)
            parts, n = [], 0
            for key, d in zip(keys, scores[rf[0][0]].tolist()):
                if key is None or key not in data:
                    continue
                n += 1
                if d != d:
                    parts.append(b"$%d\r\n%s\r\n*0\r\n" % (len(key), key))
                    continue
                v = b"%.12g" % d
                parts.append(b"$%d\r\n%s\r\n%s$%d\r\n%s\r\n" % (len(key), key, head, len(v), v))
            return Raw(b"*%d\r\n:%d\r\n" % (1 + 2 * n, total) + b"".join(parts))
        cols = [(label.encode(), scores[name].tolist()) for name, label in rf]
        for i, key in enumerate(keys):
            if key is None or key not in data:
                continue
            rows.append((key, [(label, b"%.12g" % vals[i]) for label, vals in cols
                               if vals[i] == vals[i]]))
    else:
        for i, key in enumerate(keys):
            doc = data.get(key) if key is not None else None
            if doc is None:
                continue
            fields = None if req.nocontent else _doc_fields(idx, doc, req, scores, i, score_names)
            if fields is not None and (req.summarize is not None or req.highlight is not None):
                fields = _highlight.apply(idx, req, key, fields)
            rows.append((key, fields))
    if resp3:
        results = []
        for key, fields in rows:
            entry = [(S("id"), key)]
            if req.withscores:
                entry.append((S("score"), Double(0.0 if is_knn else 1.0)))
            if req.withpayloads:
                entry.append((S("payload"), None))  # documents carry no payloads here
            if fields is not None:
                entry.append((S("extra_attributes"), Map(fields)))
            entry.append((S("values"), []))
            results.append(Map(entry))
        return Map([(S("attributes"), []), (S("total_results"), total),
                    (S("format"), S("STRING")), (S("results"), results), (S("warning"), [])])
    # RESP2 [total, id, (score,) [f, v, ...], ...], encoded here directly: this is the
    # hottest reply of the server.
    per_row = 1 + bool(req.withscores) + bool(req.withpayloads) + (not req.nocontent)
    parts = [b"*%d\r\n:%d\r\n" % (1 + per_row * len(rows), total)]
    ap = parts.append
    for key, fields in rows:
        ap(b"$%d\r\n%s\r\n" % (len(key), key))
        if req.withscores:
            ap(b"$1\r\n%s\r\n" % score_text)
        if req.withpayloads:
            ap(b"$-1\r\n")
        if fields is not None:
            ap(b"*%d\r\n" % (2 * len(fields)))
            for k, v in fields:
                ap(b"$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
    return Raw(b"".join(parts))


# --------------------------------------------------------------------------------------------
# FT.AGGREGATE (the common cases) and cursors
# --------------------------------------------------------------------------------------------

_EXPR_TOKEN = re.compile(r"""\s*(?:(?P<num>\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+)|(?P<field>@[\w.$]+)|(?P<str>"[^"]*"|'[^']*')|(?P<op>==|!=|<=|>=|&&|\|\||[-+*/%^()<>!,])|(?P<name>[A-Za-z_]\w*))""")


class _Expr:
    """A tiny evaluator for APPLY / FILTER expressions: numbers, @fields, strings,
    + - * / % ^, comparisons, && || !, parentheses and a few functions."""

    _FUNCS = {
        "abs": abs, "floor": math.floor, "ceil": math.ceil, "sqrt": math.sqrt,
        "log": math.log, "log2": math.log2, "exp": math.exp,
        "upper": lambda s: str(s).upper(), "lower": lambda s: str(s).lower(),
        "exists": lambda v: 0 if v is None else 1,
        "startswith": lambda s, p: float(_text_of(s).startswith(_text_of(p))),
        "contains": lambda s, p: float(_text_of(s).count(_text_of(p))),
        "strlen": lambda s: float(len(_text_of(s))),
    }

    def __init__(self, text: str):
        self.toks = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            m = _EXPR_TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise CommandError(f"Syntax error at offset {pos} near {text[pos:pos + 8]}")
            kind = m.lastgroup
            self.toks.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0
        self.depth = 0
        self.tree = self._or()
        if self.i != len(self.toks):
            raise CommandError(f"Syntax error near {self.toks[self.i][1]}")

    def _peek(self):
        return self.toks[self.i][1] if self.i < len(self.toks) else None

    def _take(self):
        t = self.toks[self.i]
        self.i += 1
        return t

    # Deepest expression tree: parsing and evaluating recurse once per level.
    MAX_DEPTH = 100

    def _nest(self, levels: int = 1):
        self.depth += levels
        if self.depth > self.MAX_DEPTH:
            raise CommandError(f"Syntax error: expression nested too deeply "
                               f"(more than {self.MAX_DEPTH} levels)")

    def _bin(self, sub, ops):
        # A run of operators of one precedence is one flat node, folded left to right
        # by a loop: "1+1+...+1" must not make a tree as deep as it is long.
        first = sub()
        rest = []
        while self._peek() in ops:
            op = self._take()[1]
            rest.append((op, sub()))
        return ("chain", first, tuple(rest)) if rest else first

    def _or(self):
        return self._bin(self._and, ("||",))

    def _and(self):
        return self._bin(self._cmp, ("&&",))

    def _cmp(self):
        return self._bin(self._add, ("==", "!=", "<", "<=", ">", ">="))

    def _add(self):
        return self._bin(self._mul, ("+", "-"))

    def _mul(self):
        return self._bin(self._pow, ("*", "/", "%"))

    def _pow(self):
        return self._bin(self._unary, ("^",))

    def _unary(self):
        if self._peek() in ("-", "!"):
            op = self._take()[1]
            self._nest()
            node = ("un", op, self._unary())
            self.depth -= 1
            return node
        return self._atom()

    def _atom(self):
        if self.i >= len(self.toks):
            raise CommandError("Syntax error: unexpected end of expression")
        kind, val = self._take()
        if kind == "num":
            return ("const", float(val))
        if kind == "str":
            return ("const", val[1:-1])
        if kind == "field":
            return ("field", val[1:])
        if val == "(":
            self._nest()
            e = self._or()
            if self._peek() != ")":
                raise CommandError("Syntax error: missing ')'")
            self._take()
            self.depth -= 1
            return e
        if kind == "name" and self._peek() == "(":
            self._take()
            self._nest()
            args = []
            if self._peek() != ")":
                args.append(self._or())
                while self._peek() == ",":
                    self._take()
                    args.append(self._or())
            if self._peek() != ")":
                raise CommandError("Syntax error: missing ')'")
            self._take()
            if val.lower() not in self._FUNCS:
                raise CommandError(f"Unknown function name '{val}'")
            self.depth -= 1
            return ("call", val.lower(), args)
        raise CommandError(f"Syntax error near {val}")

    def eval(self, row: dict):
        return self._ev(self.tree, row)

    def fields(self) -> list:
        """The @names the expression reads, in order of appearance."""
        out = []

        def walk(n):
            if n[0] == "field":
                if n[1] not in out:
                    out.append(n[1])
            elif n[0] == "un":
                walk(n[2])
            elif n[0] == "chain":  # ("chain", first, ((op, operand), ...))
                walk(n[1])
                for _, operand in n[2]:
                    walk(operand)
            elif n[0] == "call":
                for a in n[2]:
                    walk(a)
        walk(self.tree)
        return out

    def _ev(self, n, row):
        kind = n[0]
        if kind == "const":
            return n[1]
        if kind == "field":
            v = row.get(n[1])
            return _as_number(v)
        if kind == "un":
            v = self._ev(n[2], row)
            return -_num(v) if n[1] == "-" else float(not _truthy(v))
        if kind == "call":
            args = [self._ev(a, row) for a in n[2]]
            try:
                return self._FUNCS[n[1]](*args)
            except (TypeError, ValueError):
                return None
        v = self._ev(n[1], row)
        for op, right in n[2]:
            v = self._apply(op, v, self._ev(right, row))
        return v

    @staticmethod
    def _apply(op, a, b):
        if op == "&&":
            return float(_truthy(a) and _truthy(b))
        if op == "||":
            return float(_truthy(a) or _truthy(b))
        if op in ("==", "!="):
            eq = (_num(a) == _num(b)) if _isnum(a) and _isnum(b) else str(a) == str(b)
            return float(eq if op == "==" else not eq)
        if op in ("<", "<=", ">", ">="):
            x, y = (_num(a), _num(b)) if _isnum(a) and _isnum(b) else (str(a), str(b))
            return float({"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op])
        x, y = _num(a), _num(b)
        try:
            if op == "+":
                return x + y
            if op == "-":
                return x - y
            if op == "*":
                return x * y
            if op == "/":
                return x / y if y else math.nan
            if op == "%":
                return float(int(x) % int(y)) if y else math.nan
            return x ** y
        except (OverflowError, ValueError):
            return math.nan


def _as_number(v):
    if isinstance(v, (bytes, bytearray)):
        v = v.decode("utf-8", "replace")
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


def _text_of(v) -> str:
    if isinstance(v, (bytes, bytearray)):
        return v.decode("utf-8", "replace")
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return "" if v is None else str(v)


def _isnum(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _num(v) -> float:
    if _isnum(v):
        return float(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _truthy(v) -> bool:
    if v is None:
        return False
    if _isnum(v):
        return v != 0 and not math.isnan(v)
    return bool(v)


_SAMPLER = random.Random()


def _reduce(fn: str, values: list, extra=()):
    nums = [_num(v) for v in values if v is not None]
    nums = [x for x in nums if not math.isnan(x)]
    if fn == "COUNT":
        return float(len(values))
    if fn in ("COUNT_DISTINCT", "COUNT_DISTINCTISH"):
        return float(len({str(v) for v in values if v is not None}))
    if fn == "SUM":
        return float(sum(nums))
    if fn == "MIN":
        return min(nums) if nums else math.inf
    if fn == "MAX":
        return max(nums) if nums else -math.inf
    if fn == "AVG":
        return sum(nums) / len(nums) if nums else math.nan
    if fn == "STDDEV":
        if len(nums) < 2:
            return 0.0
        m = sum(nums) / len(nums)
        return math.sqrt(sum((x - m) ** 2 for x in nums) / (len(nums) - 1))
    if fn == "TOLIST":
        seen = []
        for v in values:
            if v is not None and v not in seen:
                seen.append(v)
        return seen
    if fn == "FIRST_VALUE":
        return values[0] if values else None
    if fn == "RANDOM_SAMPLE":  # RANDOM_SAMPLE 2 @f N: up to N of the group's values
        if not extra:
            raise CommandError("Bad arguments for <sample size>: Expected an argument, but none provided")
        try:
            k = int(extra[0])
        except ValueError:
            raise CommandError("Bad arguments for <sample size>: Could not convert argument to expected type") from None
        if k > 1000:
            raise CommandError("Sample size too large")
        present = [v for v in values if v is not None]
        if k <= 0:
            return []
        # A reservoir that never fills keeps every value in order, as Redis's does.
        return present if len(present) <= k else _SAMPLER.sample(present, k)
    if fn == "QUANTILE":
        try:
            q = float(extra[0])
        except (IndexError, ValueError):
            raise CommandError("Bad arguments for QUANTILE: Could not convert argument to expected type") from None
        if not 0.0 <= q <= 1.0:
            raise CommandError("Quantile must be between 0.0 and 1.0")
        if not nums:
            return math.nan
        ordered = sorted(nums)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
    raise CommandError(f"Unknown reducer `{fn}`")


def _value_bytes(v):
    if v is None:
        return None
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    if isinstance(v, float):
        return fmt_number(v)
    if isinstance(v, list):
        return [_value_bytes(x) for x in v]
    return str(v).encode()


_CURSORS: dict = {}
_cursor_ids = itertools.count(1000003, 7919)


def aggregate(ctx, idx, query: str, args: list):
    """Parse the pipeline, select documents like FT.SEARCH, then run the steps in order."""
    steps, params, dialect, cursor, i = [], {}, ctx.server.search.default_dialect, None, 0
    addscores = False
    scorer = _text.DEFAULT_SCORER
    while i < len(args):
        kw = args[i].upper()
        if kw == b"LOAD":
            if i + 1 < len(args) and args[i + 1] == b"*":
                steps.append(("load", None))
                i += 2
                continue
            n = _int_arg(args, i + 1, "LOAD")
            steps.append(("load", [_t(a).lstrip("@") for a in args[i + 2:i + 2 + n]]))
            i += 2 + n
        elif kw == b"GROUPBY":
            n = _int_arg(args, i + 1, "GROUPBY")
            keys = [_t(a).lstrip("@") for a in args[i + 2:i + 2 + n]]
            i += 2 + n
            reducers = []
            while i < len(args) and args[i].upper() == b"REDUCE":
                fn = _t(args[i + 1]).upper() if i + 1 < len(args) else ""
                na = _int_arg(args, i + 2, "REDUCE")
                rargs = [_t(a).lstrip("@") for a in args[i + 3:i + 3 + na]]
                i += 3 + na
                name = None
                if i + 1 < len(args) and args[i].upper() == b"AS":
                    name = _t(args[i + 1])
                    i += 2
                if name is None:
                    name = f"__generated_alias{fn.lower()}{','.join(rargs)}"
                reducers.append((fn, rargs, name))
            steps.append(("group", keys, reducers))
        elif kw == b"APPLY":
            expr = _Expr(_t(args[i + 1])) if i + 1 < len(args) else None
            if expr is None or i + 3 >= len(args) + 1 or i + 2 >= len(args) or args[i + 2].upper() != b"AS":
                raise CommandError("Bad arguments for APPLY: AS is required")
            steps.append(("apply", expr, _t(args[i + 3])))
            i += 4
        elif kw == b"FILTER":
            steps.append(("filter", _Expr(_t(args[i + 1]))))
            i += 2
        elif kw == b"SORTBY":
            n = _int_arg(args, i + 1, "SORTBY")
            toks = [_t(a) for a in args[i + 2:i + 2 + n]]
            i += 2 + n
            keys, j = [], 0
            while j < len(toks):
                name = toks[j].lstrip("@")
                desc = False
                if j + 1 < len(toks) and toks[j + 1].upper() in ("ASC", "DESC"):
                    desc = toks[j + 1].upper() == "DESC"
                    j += 1
                keys.append((name, desc))
                j += 1
            mx = None
            if i + 1 < len(args) and args[i].upper() == b"MAX":
                mx = _int_arg(args, i + 1, "MAX")
                i += 2
            steps.append(("sort", keys, mx))
        elif kw == b"LIMIT":
            steps.append(("limit", _int_arg(args, i + 1, "LIMIT"), _int_arg(args, i + 2, "LIMIT")))
            i += 3
        elif kw == b"PARAMS":
            from .ftcommands import parse_params

            params, i = parse_params(args, i)
        elif kw == b"DIALECT":
            dialect = _int_arg(args, i + 1, "DIALECT")
            if not 1 <= dialect <= 4:
                raise CommandError("DIALECT requires a non negative integer >=1 and <= 4")
            i += 2
        elif kw == b"WITHCURSOR":
            cursor = {"count": 1000}
            i += 1
            while i + 1 < len(args) and args[i].upper() in (b"COUNT", b"MAXIDLE"):
                cursor[_t(args[i]).lower()] = _int_arg(args, i + 1, "WITHCURSOR")
                i += 2
        elif kw in (b"VERBATIM", b"ADDSCORES"):
            addscores = addscores or kw == b"ADDSCORES"
            i += 1
        elif kw == b"SCORER" and i + 1 < len(args):
            scorer = _check_scorer(args[i + 1])
            i += 2
        elif kw == b"TIMEOUT":
            i += 2
        else:
            raise CommandError(f"Unknown argument `{_t(args[i])}` at position {i} for <main>")
    prep = prepare(idx, query, params, dialect)

    def compute():
        idx.lock.acquire_read()
        try:
            slots, scores = select(idx, prep)
            if prep.phrases and _text.has_text(idx) and prep.plan.knn is None:
                keep = np.isin(slots, _text.filter_slop(idx, prep.tree, slots, None, False))
                slots = slots[keep]
                scores = {k: v[keep] for k, v in scores.items()}
            slots = slots[:MAX_RESULTS]
            scores = {k: v[:MAX_RESULTS] for k, v in scores.items()}
            if addscores and _text.has_text(idx) and prep.plan.knn is None:
                scores[_TEXT_SCORE] = _text.rank(idx, prep.tree, slots, scorer)[0]
            return [idx.slot_key[int(s)] for s in slots], scores
        finally:
            idx.lock.release_read()

    def finish(result):
        keys, scores = result
        rows = _run_pipeline(ctx, idx, keys, scores, steps, addscores)
        if cursor is not None:
            return _cursor_reply(ctx, idx, rows, cursor["count"], new=True)
        return _aggregate_reply(ctx, rows)

    return Offload(compute, finish, heavy=prep.heavy)


def _check_scorer(name) -> str:
    try:
        return _text.check_scorer(_t(name))
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _t(b) -> str:
    return b.decode("utf-8", "replace") if isinstance(b, (bytes, bytearray)) else str(b)


def _int_arg(args, i, what):
    try:
        return int(args[i])
    except (IndexError, ValueError):
        raise CommandError(f"Bad arguments for {what}: Could not convert argument to expected type") from None


def _load_field(idx, doc, name):
    if name == "__key":
        return None
    f = idx.field(name)
    if type(doc) is dict:
        return doc.get((f.identifier if f is not None else name).encode())
    path = f.path if f is not None and f.path is not None else None
    if path is None:
        try:
            path = jsonpath.parse(name if name.startswith("$") else "$." + name)
        except ValueError:
            return None
    found = jsonpath.find(doc.value, path)
    return _json_text(found[0]) if found else None


def _run_pipeline(ctx, idx, keys, scores, steps, addscores):
    ks = ctx.server.keyspace
    rows = []
    for i, key in enumerate(keys):
        doc = ks.data.get(key)
        if doc is None:
            continue
        row = {"__key": key, "__doc": doc}
        for name, d in scores.items():
            if name != _TEXT_SCORE and not np.isnan(d[i]):
                row[name] = float(d[i])
        if addscores:
            ts = scores.get(_TEXT_SCORE)
            row["__score"] = float(ts[i]) if ts is not None else 0.0
        rows.append(row)
    visible = [n for n in scores if n != _TEXT_SCORE]
    if addscores:
        visible.append("__score")
    grouped = False
    for step in steps:
        kind = step[0]
        if not grouped:
            # Redis loads schema fields a step names without LOAD: SORTBY any schema field
            # (which then shows in the rows), APPLY/FILTER the SORTABLE ones, GROUPBY/REDUCE
            # any schema field (read for grouping only).
            _implicit_load(idx, rows, visible, step)
        if kind == "load":
            names = step[1]
            for row in rows:
                doc = row["__doc"]
                if names is None:
                    if type(doc) is dict:
                        for k, v in doc.items():
                            row[_t(k)] = v
                    else:
                        row["$"] = _json_text(doc.value)
                else:
                    for n in names:
                        if row.get(n) is not None:
                            continue  # a distance the query yielded: LOAD keeps it
                        row[n] = row["__key"] if n == "__key" else _load_field(idx, doc, n)
            if names is None:
                for row in rows[:1]:
                    visible += [k for k in row if not k.startswith("__") and k not in visible]
            else:
                visible += [n for n in names if n not in visible]
        elif kind == "apply":
            _, expr, name = step
            for row in rows:
                row[name] = expr.eval({k: v for k, v in row.items()})
            if name not in visible:
                visible.append(name)
        elif kind == "filter":
            rows = [r for r in rows if _truthy(step[1].eval(r))]
        elif kind == "group":
            _, gkeys, reducers = step
            for row in rows:
                for g in gkeys:
                    if g not in row:
                        row[g] = _load_field(idx, row["__doc"], g)
            groups: dict = {}
            for row in rows:
                gk = tuple(_value_bytes(_as_number(row.get(g))) if not isinstance(row.get(g), bytes)
                           else row.get(g) for g in gkeys)
                groups.setdefault(gk, []).append(row)
            new_rows = []
            for gk, members in groups.items():
                out = {g: members[0].get(g) for g in gkeys}
                for fn, rargs, name in reducers:
                    vals = [_as_number(m.get(rargs[0])) if rargs else 1 for m in members]
                    out[name] = _reduce(fn, vals, rargs[1:])
                new_rows.append(out)
            rows = new_rows
            visible = list(gkeys) + [r[2] for r in reducers]
            grouped = True
        elif kind == "sort":
            _, skeys, mx = step
            for name, desc in reversed(skeys):
                present = [r for r in rows if r.get(name) is not None]
                missing = [r for r in rows if r.get(name) is None]

                def key(r, name=name):
                    v = _as_number(r.get(name))
                    return (0, v, "") if _isnum(v) else (1, 0.0, _t(v))
                present.sort(key=key, reverse=desc)
                rows = present + missing
            if mx is not None:
                rows = rows[:mx]
        elif kind == "limit":
            rows = rows[step[1]:step[1] + step[2]]
    return [[(n, _value_bytes(r[n])) for n in visible if n in r and r[n] is not None]
            for r in rows]


def _implicit_load(idx, rows, visible, step) -> None:
    kind = step[0]
    if kind == "sort":
        names, show, sortable_only = [name for name, _ in step[1]], True, False
    elif kind in ("apply", "filter"):
        names, show, sortable_only = step[1].fields(), True, True
    elif kind == "group":
        names = list(step[1]) + [a for _, rargs, _ in step[2] for a in rargs[:1]]
        show, sortable_only = False, False
    else:
        return
    for name in names:
        if name in visible or (rows and name in rows[0]):
            continue
        f = idx.field(name)
        if f is None or f.type == "VECTOR" or (sortable_only and "SORTABLE" not in f.flags):
            if kind in ("apply", "filter"):
                raise CommandError(f"Property `{name}` not loaded nor in pipeline")
            if kind == "group":
                raise CommandError(f"No such property `{name}`")
            continue
        # Taken from the sorting vector, as Redis does: a SORTABLE TEXT/TAG value lower-cased
        # (unless UNF).
        fold = f.type in ("TEXT", "TAG") and "SORTABLE" in f.flags and "UNF" not in f.flags
        for row in rows:
            if name not in row and "__doc" in row:
                v = _load_field(idx, row["__doc"], name)
                if fold and v is not None:
                    v = (v.decode("utf-8", "replace").lower().encode() if isinstance(v, bytes)
                         else str(v).lower())
                row[name] = v
        if show:
            visible.append(name)


def _aggregate_reply(ctx, rows):
    if ctx.resp3:
        return Map([(S("attributes"), []), (S("total_results"), len(rows)),
                    (S("format"), S("STRING")),
                    (S("results"), [Map([(S("extra_attributes"), Map([(k.encode(), v) for k, v in r])),
                                         (S("values"), [])]) for r in rows]),
                    (S("warning"), [])])
    out = [len(rows)]
    for r in rows:
        flat = []
        for k, v in r:
            flat += [k.encode(), v]
        out.append(flat)
    return out


def _cursor_reply(ctx, idx, rows, count, new=False, cid=None):
    page, rest = rows[:count], rows[count:]
    if rest:
        if cid is None:
            cid = next(_cursor_ids)
        _CURSORS[cid] = (idx.name, rest, count, time.time())
    else:
        if cid is not None:
            _CURSORS.pop(cid, None)
        cid = 0
    return [_aggregate_reply(ctx, page), cid]


def cursor(ctx, args):
    sub = args[0].upper()
    try:
        cid = int(args[2])
    except ValueError:
        return Error("Bad cursor ID")
    entry = _CURSORS.get(cid)
    if sub == b"DEL":
        if entry is None:
            return Error("Cursor does not exist")
        del _CURSORS[cid]
        return Simple("OK")
    if sub == b"READ":
        if entry is None or entry[0] != args[1]:
            return Error("Cursor not found, id: %d" % cid)
        count = entry[2]
        if len(args) >= 5 and args[3].upper() == b"COUNT":
            count = int(args[4])
        idx = ctx.server.search.indexes.get(entry[0])
        return _cursor_reply(ctx, idx, entry[1], count, cid=cid)
    return Error("Unknown subcommand")
