"""FT.SEARCH and FT.AGGREGATE replies in the connection's protocol (RESP2 encoded here
directly: the hottest replies of the server)."""

from __future__ import annotations

import json
import math

import numpy as np

from .. import jsonpath
from ..fulltext import highlight as _highlight
from ..fulltext import replies as _text_replies
from ..protocol import Double, Map, Raw, Simple


S = Simple

MAX_RESULTS = 10000


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


TEXT_SCORE, EXPLAINS = "\0score", "\0explain"  # text scores riding with the distances


def json_text(v) -> bytes:
    if isinstance(v, str):
        return v.encode()
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode()


def doc_fields(idx, doc, req, scores, i, score_names):
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
            out.append((b"$", json_text(doc.value) if not isinstance(doc.value, str)
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
                out.append((label.encode(), json_text(v)))
    return out


def render_search(ctx, idx, req, total, keys, scores, score_names, is_knn):
    data = ctx.server.keyspace.data
    resp3 = ctx.resp3
    score_text = b"0" if is_knn else b"1"
    rows = []
    rf = req.return_fields
    text_scores = scores.pop(TEXT_SCORE, None)
    explains = scores.pop(EXPLAINS, None)
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
            fields = None if req.nocontent else doc_fields(idx, doc, req, scores, i, score_names)
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


def aggregate_reply(ctx, rows):
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
