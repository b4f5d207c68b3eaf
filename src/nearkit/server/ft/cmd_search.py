"""FT.SEARCH: its arguments, then the search itself in three steps so the event loop
stays responsive:

1. parse and validate (event loop): bad input is answered at once;
2. ``compute`` (a worker thread, under the index's read lock): filter masks,
   vector ranges, KNN, sorting and paging -- the heavy part, mostly in numpy
   and nearkit's C++ kernels, which release the GIL;
3. ``finish`` (event loop): read the returned documents from the key space and
   build the reply in the connection's protocol.

FT.EXPLAIN, which parses a query the same way, is here too.
"""

from __future__ import annotations

import numpy as np

from ..commands import CommandError, Offload, as_str, command, parse_int
from ..fulltext import rank as _text
from ..protocol import Error
from ..query import QueryError
from .args import (
    SEARCH_FLAGS, SearchRequest, check_scorer, lookup_index, parse_dialect, parse_highlight,
    parse_params,
)
from .fastpath import fast_knn_job, remember_fast
from .plan import drop_stopwords, prepare
from .render import EXPLAINS, TEXT_SCORE, render_search
from .select import select


@command("FT.SEARCH", -2, ("readonly",), display="FT.SEARCH")
def ft_search(ctx, args):
    if len(args) < 2:
        return Error("No query string provided")
    job = fast_knn_job(ctx, args)
    if job is not None:
        return job  # the server runs it, batched with other connections' (KnnJob)
    idx = lookup_index(ctx, args[0], "{name}: no such index")
    req = SearchRequest(query=as_str(args[1]), dialect=ctx.server.search.default_dialect)
    i = 2
    n_args = len(args)
    while i < n_args:
        kw = args[i].upper()
        pos = i - 1
        flag = SEARCH_FLAGS.get(kw)
        if flag is not None:
            setattr(req, flag, True)
            i += 1
        elif kw == b"LIMIT":
            if i + 2 >= len(args):
                return Error("LIMIT requires two arguments")
            try:
                off, num = int(args[i + 1]), int(args[i + 2])
            except ValueError:
                return Error("LIMIT needs two numeric arguments")
            if off < 0 or num < 0:
                return Error("LIMIT needs two numeric arguments")
            if off > 10000:
                return Error("OFFSET exceeds maximum of 10000")
            req.offset, req.num = off, num
            i += 3
        elif kw == b"RETURN":
            try:
                n = int(args[i + 1])
            except (ValueError, IndexError):
                return Error("Bad arguments for RETURN: Could not convert argument to expected type")
            if i + 2 + n > len(args):
                return Error("Bad arguments for RETURN: Expected an argument, but none provided")
            items = args[i + 2:i + 2 + n]
            ret, j = [], 0
            while j < len(items):
                fname = as_str(items[j])
                label = fname
                if j + 1 < len(items) and items[j + 1].upper() == b"AS":
                    if j + 2 >= len(items):
                        return Error("Bad arguments for AS: Expected an argument, but none provided")
                    label = as_str(items[j + 2])
                    j += 3
                else:
                    j += 1
                if all(label != seen for _, seen in ret):  # Redis returns a field once
                    ret.append((fname, label))
            req.return_fields = ret
            if n == 0:
                req.nocontent = True
            i += 2 + n
        elif kw == b"SORTBY":
            if i + 1 >= len(args):
                return Error("Bad arguments for SORTBY: Expected an argument, but none provided")
            req.sortby = as_str(args[i + 1]).lstrip("@")
            i += 2
            while i < len(args) and args[i].upper() in (b"ASC", b"DESC", b"WITHCOUNT"):
                if args[i].upper() == b"DESC":
                    req.sort_desc = True
                elif args[i].upper() == b"ASC":
                    req.sort_desc = False
                i += 1
        elif kw == b"PARAMS":
            req.params, i = parse_params(args, i, req.param_pos)
        elif kw == b"DIALECT":
            req.dialect = parse_dialect(args, i)
            i += 2
        elif kw == b"FILTER":
            if i + 3 >= len(args):
                return Error("Bad arguments for FILTER: Expected an argument, but none provided")
            req.numeric_filters.append((as_str(args[i + 1]), as_str(args[i + 2]), as_str(args[i + 3])))
            i += 4
        elif kw == b"GEOFILTER":
            if i + 5 >= len(args):
                return Error("Bad arguments for GEOFILTER: Expected an argument, but none provided")
            try:
                lon, lat, radius = (float(args[i + k]) for k in (2, 3, 4))
            except ValueError:
                return Error("Bad arguments for GEOFILTER: Could not convert argument to expected type")
            unit = as_str(args[i + 5]).lower()
            if unit not in ("m", "km", "mi", "ft"):
                return Error("Bad arguments for GEOFILTER: Unknown argument")
            req.numeric_filters.append((as_str(args[i + 1]), lon, lat, radius, unit))
            i += 6
        elif kw in (b"INKEYS", b"INFIELDS"):
            n = parse_int(args[i + 1]) if i + 1 < len(args) else 0
            if kw == b"INKEYS":
                req.inkeys = list(args[i + 2:i + 2 + n])
            else:
                req.infields = [as_str(a) for a in args[i + 2:i + 2 + n]]
            i += 2 + n
        elif kw == b"SCORER" and i + 1 < len(args):
            req.scorer = check_scorer(args[i + 1])
            i += 2
        elif kw in (b"SUMMARIZE", b"HIGHLIGHT"):
            i = parse_highlight(req, args, i)
        elif kw == b"SLOP" and i + 1 < len(args):
            try:
                req.slop = int(args[i + 1])
            except ValueError:
                return Error("Bad arguments for SLOP: Could not convert argument to expected type")
            i += 2
        elif kw in (b"SLOP", b"TIMEOUT", b"LANGUAGE", b"EXPANDER", b"SCORER", b"PAYLOAD"):
            if i + 1 >= len(args):
                return Error(f"Bad arguments for {as_str(kw)}: Expected an argument, but none provided")
            i += 2
        else:
            return Error(f"Unknown argument `{as_str(args[i])}` at position {pos} for <main>")
    idx.number_of_uses += 1
    return search(ctx, idx, req, args)


def search(ctx, idx, req: SearchRequest, args=None):
    prep = prepare(ctx.server.ft.plans, idx, req.query, req.params, req.dialect, req.numeric_filters, req.inkeys,
                   req.verbatim, req.infields)
    score_names = prep.plan.score_names()
    if req.sortby is not None and req.sortby not in score_names and idx.field(req.sortby) is None:
        raise CommandError(f"Property `{req.sortby}` not loaded nor in schema")
    is_knn = prep.plan.knn is not None
    if is_knn:
        remember_fast(ctx.server.ft.fast, idx, req, prep, args, score_names)
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
                order = _text.order_by_score(idx.document_order(slots), text_scores)
        if req.sortby is None and knn_name is not None:
            # Without SORTBY, Redis lists the k nearest in document order.
            order = np.argsort(idx.document_order(slots), kind="stable")
        elif req.sortby is not None:
            if req.sortby == knn_name and not req.sort_desc:
                order = None  # KNN results come sorted by distance already
            elif req.sortby in scores:
                key = scores[req.sortby].astype(np.float64)
                key = np.where(np.isnan(key), np.inf if not req.sort_desc else -np.inf, key)
                order = np.lexsort((idx.document_order(slots), -key if req.sort_desc else key))
            else:
                vals = [_sort_value(idx, s, req.sortby) for s in slots]
                present = [i for i, v in enumerate(vals) if v is not None]
                missing = [i for i, v in enumerate(vals) if v is None]
                docord = idx.document_order(slots)
                present.sort(key=lambda i: (vals[i], int(docord[i])), reverse=req.sort_desc)
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
            page_scores[TEXT_SCORE] = text_scores[pick]
            if explains is not None:
                page_scores[EXPLAINS] = [explains[i] for i in pick.tolist()]
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


@command("FT.EXPLAIN", -3, ("readonly",), display="FT.EXPLAIN")
def ft_explain(ctx, args):
    lookup_index(ctx, args[0], "{name}: no such index")
    from ..query import parse_query

    params, dialect, i = {}, ctx.server.search.default_dialect, 2
    while i < len(args):
        if args[i].upper() == b"PARAMS":
            params, i = parse_params(args, i)
        elif args[i].upper() == b"DIALECT":
            dialect = parse_dialect(args, i)
            i += 2
        else:
            i += 1
    try:
        plan = parse_query(as_str(args[1]), params, dialect)
    except QueryError as exc:
        return Error(str(exc))
    for name in ([plan.knn.vector_param] if plan.knn is not None else []) + [
            r.vector_param for r in plan.ranges]:
        if name not in params:
            return Error(f"No such parameter `{name}`")
    from .explain import render

    idx = ctx.server.search.lookup(args[0])
    tree = drop_stopwords(plan.tree, idx.stopwords) or plan.tree
    return render(tree, plan.knn, {f.alias for f in idx.fields if f.type == "TAG"})
