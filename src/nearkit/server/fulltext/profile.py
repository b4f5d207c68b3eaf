"""FT.PROFILE: the search or aggregation's own reply plus a profile in Redis's shape.

Times are reported as 0 (nearkit does not time each iterator); the iterator tree is the
parsed query's (TEXT, UNION with its query type, INTERSECT, NOT, OPTIONAL, WILDCARD,
NUMERIC, TAG, GEO, VECTOR) with document counts as counters.
"""

from __future__ import annotations

import re

from ...store.filters import (
    And, Geo, MatchAll, Missing, Not, Numeric, Optional, Or, Tag, TextPattern, TextTerm,
    VectorRange,
)
from ..commands import CommandError, Offload, command
from ..protocol import Double, Error, Map, Simple
from .forward import word_groups
from .scoring import Context, expansions

S = Simple


def _t(b) -> str:
    return b.decode("utf-8", "replace") if isinstance(b, (bytes, bytearray)) else str(b)


def _node(kind, counter, extra=(), children=None, limited=False, resp3=False):
    items = [("Type", kind)] + list(extra) + [("Time", 0.0), ("Counter", counter)]
    if children is not None:
        if limited and kind == "UNION" and extra:
            items.append(("Child iterators", f"The number of iterators in the union is "
                                             f"{len(children)}"))
        elif children:
            items.append(("Child iterators", children))  # RESP2: one element per child
    return items


def _iterators(node, idx, ctx, limited):
    text = ctx.text if ctx is not None else None

    def df(term):
        return text.doc_freq(term) if text is not None else 0

    t = And if isinstance(node, And) else type(node)  # a Phrase is an And with ``exact``
    if t in (TextTerm, TextPattern):
        word = node.word.lower()
        if t is TextTerm and node.prefix or t is TextPattern and node.kind != "stem":
            vocab = sorted(x for x in (text.term_docs if text is not None else ())
                           if x[:1] not in "+<~" or (t is TextPattern and node.kind == "fuzzy"))
            if t is TextTerm:
                terms, qtype = [x for x in vocab if x.startswith(word)], f"PREFIX - {word}"
            else:
                terms = [x for x in vocab if node.accepts(x)]
                qtype = {"fuzzy": "FUZZY", "contains": "INFIX", "suffix": "SUFFIX"}[node.kind] \
                    + f" - {word}"
            kids = [_node("TEXT", df(x), [("Term", x)]) + [("Size", df(x))] for x in terms]
            hits = len(set().union(*(text.term_docs[x] for x in terms))) if terms else 0
            return _node("UNION", hits, [("Query type", qtype)], kids, limited)
        terms = [x for x in expansions(word, node.field, ctx, t is TextPattern)
                 if df(x)] if ctx is not None else []
        if not terms:
            return _node("EMPTY", 0)
        kids = [_node("TEXT", df(x), [("Term", x)]) + [("Size", df(x))] for x in terms]
        if len(kids) == 1:
            return kids[0]
        hits = len(set().union(*(text.term_docs[x] for x in terms)))
        return _node("UNION", hits, [("Query type", "UNION")], kids)
    if t in (And, Or):
        kids = [_iterators(c, idx, ctx, limited) for c in node.children]
        counts = [dict(k)["Counter"] for k in kids]
        if t is And:
            # an intersection stops reading a child once a sibling is exhausted
            for n, k in enumerate(kids):
                others = counts[:n] + counts[n + 1:]
                if others:
                    k[:] = [(a, min(v, max(others)) if a == "Counter" else v) for a, v in k]
            return _node("INTERSECT", min(counts) if counts else 0, (), kids)
        return _node("UNION", max(counts) if counts else 0, [("Query type", "UNION")], kids)
    if t is Not:
        return _node("NOT", idx.num_docs, (), [_iterators(node.child, idx, ctx, limited)])
    if t is Optional:
        return _node("OPTIONAL", idx.num_docs, (), [_iterators(node.child, idx, ctx, limited)])
    if t is MatchAll or t is Missing:
        return _node("WILDCARD", idx.num_docs)
    if t is Tag:
        return _node("TAG", idx.num_docs)
    if t is Numeric:
        return _node("NUMERIC", idx.num_docs, [("Term", f"{node.lo} - {node.hi}")])
    if t is Geo:
        return _node("GEO", idx.num_docs)
    if t is VectorRange:
        return _node("VECTOR", idx.num_docs)
    return _node("WILDCARD", idx.num_docs)


def _encode(items, resp3):
    """Profile items (name, value) -> RESP2 flat lists / RESP3 maps."""
    def val(v):
        if isinstance(v, list) and v and isinstance(v[0], list):  # list of child nodes
            return [_encode(c, resp3) for c in v]
        if isinstance(v, float):
            return Double(v) if resp3 else b"0"
        return v
    if resp3:
        return Map([(S(k), val(v)) for k, v in items])
    out = []
    for k, v in items:
        if k == "Child iterators" and isinstance(v, list):
            out.append(k)
            out.extend(val(v))
        else:
            out.extend([k, val(v)])
    return out


def _profile(ctx, idx, query, params, dialect, limited, knn_k, total, processors):
    from ..ft import plan as _plan

    try:
        plan = ctx.server.ft.plans.plan(query, params, dialect)
    except CommandError:
        plan = None
    tctx = Context(idx, idx.text, word_groups(idx)) if idx.text is not None else None
    if plan is None:
        it = _node("EMPTY", 0)
    else:
        tree = _plan.drop_stopwords(plan.tree, idx.stopwords, idx.stem_fields) \
            or Not(MatchAll())
        it = _iterators(tree, idx, tctx, limited)
        if total is not None:  # the root iterator is read once per result
            it = [(k, total if k == "Counter" else v) for k, v in it]
        if plan.knn is not None:
            it = _node("VECTOR", min(plan.knn.k, total if total is not None else plan.knn.k),
                       (), [] if isinstance(tree, MatchAll) else [it])
    iters = _encode(it, ctx.resp3)
    procs = [_encode([("Type", p), ("Time", 0.0), ("Counter", total or 0)], ctx.resp3)
             for p in processors]
    if ctx.resp3:
        return Map([(S("Total profile time"), Double(0.0)), (S("Parsing time"), Double(0.0)),
                    (S("Pipeline creation time"), Double(0.0)), (S("Warning"), S("None")),
                    (S("Iterators profile"), [iters]), (S("Result processors profile"), procs)])
    return [["Total profile time", b"0"], ["Parsing time", b"0"],
            ["Pipeline creation time", b"0"], ["Warning"], ["Iterators profile", iters],
            ["Result processors profile", *procs]]


def _total(reply, resp3):
    if isinstance(reply, Map):
        for k, v in reply:
            if _t(k) == "total_results":
                return v
        return None
    if isinstance(reply, (bytes, bytearray)):  # a pre-encoded RESP2 array: ':<total>' second
        line = bytes(reply).split(b"\r\n", 2)
        return int(line[1][1:]) if len(line) > 1 and line[1][:1] == b":" else None
    if isinstance(reply, list) and reply and isinstance(reply[0], int):
        return reply[0]
    return None


@command("FT.PROFILE", -5, ("readonly",), display="FT.PROFILE")
def ft_profile(ctx, args):
    from ..ft import args as _args, cmd_aggregate, cmd_search

    idx = ctx.server.search.lookup(args[0])
    if idx is None:
        return Error(f"{_t(args[0])}: no such index")
    kind = args[1].upper()
    if kind not in (b"SEARCH", b"AGGREGATE"):
        return Error("No `SEARCH` or `AGGREGATE` provided")
    i, limited = 2, False
    if args[i].upper() == b"LIMITED":
        limited, i = True, i + 1
    if i >= len(args) or args[i].upper() != b"QUERY" or i + 1 >= len(args):
        return Error("The QUERY keyword is expected")
    query, rest = args[i + 1], list(args[i + 2:])
    params, dialect = {}, ctx.server.search.default_dialect
    j = 0
    while j < len(rest):
        kw = rest[j].upper()
        if kw == b"PARAMS":
            params, j = _args.parse_params(rest, j)
        elif kw == b"DIALECT" and j + 1 < len(rest):
            dialect = int(rest[j + 1]) if rest[j + 1].isdigit() else dialect
            j += 2
        else:
            j += 1
    nocontent = any(a.upper() == b"NOCONTENT" for a in rest)
    if kind == b"SEARCH":
        handler = cmd_search.ft_search
        processors = ["Index", "Scorer", "Sorter"] + ([] if nocontent else ["Loader"])
    else:
        handler = cmd_aggregate.ft_aggregate
        processors = ["Index", "Loader"]
        for k in range(len(rest) - 1):
            if rest[k].upper() == b"APPLY":
                m = re.match(r"\s*([A-Za-z_]\w*)\s*\(", _t(rest[k + 1]))
                processors.append(f"Projector - Function {m.group(1)}" if m else "Projector")
    call = [args[0], query] + rest
    reply = handler(ctx, call)
    # never leave this request in the plain-KNN fast path (it would skip the profile)
    ctx.server.ft.fast.pop((call[0], call[1], len(call)), None)
    qtext = _t(query)

    def wrap(r):
        if isinstance(r, Error):
            return r
        prof = _profile(ctx, idx, qtext, params, dialect, limited, None, _total(r, ctx.resp3),
                        processors)
        if ctx.resp3 and isinstance(r, Map):
            return Map(list(r) + [(S("profile"), prof)])
        return [r, prof]

    if isinstance(reply, Offload):
        finish = reply.finish
        return Offload(reply.compute, lambda res: wrap(finish(res)), reply.heavy, reply.inline)
    return wrap(reply)

