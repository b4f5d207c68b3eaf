"""Repeated plain KNN queries: the same FT.SEARCH arguments but the query vector are
answered without parsing, and the server batches them across connections (one graph
search for many queries, replies encoded in C++)."""

from __future__ import annotations

import logging

import numpy as np

from ... import _core
from ...store.filters import MatchAll
from ..commands import CommandError
from ..protocol import Error, Raw
from .plan import INLINE_HNSW_EF, INLINE_WORK
from .render import render_search

log = logging.getLogger("nearkit.server")


class _FastSearch:
    """A plain KNN request seen before: the same arguments but the query vector."""

    __slots__ = ("idx", "vf", "field", "pos", "head", "tail", "k", "ef", "req", "score_names",
                 "knn_name", "row_tail", "lo", "hi", "plain")


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
    entry = ctx.server.ft.fast.get((args[0], args[1], len(args)))
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


def remember_fast(fast: dict, idx, req, prep, args, score_names):
    """Keep a plain KNN request in ``fast`` (the server's ``ft.fast``) for ``fast_knn_job``."""
    knn = prep.plan.knn
    vf = idx.vectors.get(knn.field)
    pos = req.param_pos.get(knn.vector_param)
    if (args is None or vf is None or pos is None or knn.k <= 0 or prep.range_queries
            or type(prep.tree) is not MatchAll or req.inkeys is not None or req.numeric_filters
            or req.withscores or req.withpayloads or req.sortby is None
            or req.sortby != knn.score_name or req.sort_desc):
        return
    if len(fast) >= 1024:
        fast.clear()
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
    fast[(args[0], args[1], len(args))] = e
