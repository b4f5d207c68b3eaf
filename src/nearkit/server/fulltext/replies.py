"""FT.SEARCH replies carrying text scores (WITHSCORES, EXPLAINSCORE) in RESP2 and RESP3."""

from __future__ import annotations

from ..protocol import Double, Map, Simple
from . import highlight
from .rank import fmt_score

S = Simple


def render_scored(ctx, idx, req, total, keys, scores, score_names, text_scores, explains):
    """FT.SEARCH ... WITHSCORES on a text index: each row with its scorer's value."""
    from ..ft import render  # (render imports this module)

    data = ctx.server.keyspace.data
    rows = []
    for i, key in enumerate(keys):
        doc = data.get(key) if key is not None else None
        if doc is None:
            continue
        fields = None if req.nocontent else render.doc_fields(idx, doc, req, scores, i, score_names)
        if fields is not None and (req.summarize is not None or req.highlight is not None):
            fields = highlight.apply(idx, req, key, fields)
        rows.append((key, float(text_scores[i]), explains[i] if explains else None, fields))
    if ctx.resp3:
        results = []
        for key, sc, exp, fields in rows:
            entry = [(S("id"), key), (S("score"), [Double(sc), exp] if exp is not None
                                      else Double(sc))]
            if req.withpayloads:
                entry.append((S("payload"), None))
            if fields is not None:
                entry.append((S("extra_attributes"), Map(fields)))
            entry.append((S("values"), []))
            results.append(Map(entry))
        return Map([(S("attributes"), []), (S("total_results"), total),
                    (S("format"), S("STRING")), (S("results"), results), (S("warning"), [])])
    out = [total]
    for key, sc, exp, fields in rows:
        out.append(key)
        text = fmt_score(sc)
        out.append([text, exp] if exp is not None else text)
        if req.withpayloads:
            out.append(None)
        if fields is not None:
            out.append([x for kv in fields for x in kv])
    return out
