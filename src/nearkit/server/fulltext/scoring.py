"""Redis's text scorers (RediSearch 2.10) applied to one document's match of a query tree.

``match(node, doc, ctx)`` rebuilds the result Redis's iterators would produce for a
document -- term, union, intersection or virtual results with frequencies, weights and
positions -- and ``score(name, res, doc, ctx)`` applies the named scorer to it:

- TFIDF: sum(weight * tf * idf) * doc score / max term frequency / slop, idf =
  logb(1 + N / df) with N the document table size (documents + 1);
- TFIDF.DOCNORM: the same, divided by the document length instead;
- BM25 (legacy): idf * f / (f + k1 * (1 - b + b * average length)), k1 = 1.2, b = 0.5;
- BM25STD: bm25idf * f * (k1 + 1) / (f + k1 * (1 - b + b * len / average length)),
  bm25idf = ln(1 + (N - df + 0.5) / (df + 0.5)) with N the number of documents;
- DISMAX: sum of frequencies over intersections, max over unions; DOCSCORE; HAMMING.
Float32 constants are kept as float32 (k1 = 1.2f), so values match Redis's to the last digit.
"""

from __future__ import annotations

import math

import numpy as np

from ...query.nodes import (
    And, Geo, MatchAll, Missing, Not, Numeric, Optional, Or, Tag, TextPattern, TextTerm, VectorRange,
)
from ...query.words import stem, stemming_available
from .forward import PHONETIC_PREFIX, STEM_PREFIX, SYNONYM_PREFIX, phonetic_codes

K1 = float(np.float32(1.2))
K1_PLUS_1 = float(np.float32(np.float32(1.2) + np.float32(1)))
B = 0.5

SCORERS = ("TFIDF", "TFIDF.DOCNORM", "BM25", "BM25STD", "DISMAX", "DOCSCORE", "HAMMING")

TERM, UNION, INTERSECT, VIRTUAL, NUMERIC = "term", "union", "intersect", "virtual", "numeric"


class Res:
    __slots__ = ("kind", "freq", "weight", "term", "children", "positions")

    def __init__(self, kind, freq=1, weight=1.0, term=None, children=(), positions=()):
        self.kind, self.freq, self.weight, self.term = kind, freq, weight, term
        self.children, self.positions = children, positions


class Context:
    """What the scorers need about the index, computed once per query."""

    def __init__(self, idx, text, word_groups):
        self.idx = idx
        self.text = text
        self.n_docs = text.num_docs
        self.avg_len = text.avg_doc_len(self.n_docs)
        self.groups = word_groups
        self._idf: dict = {}
        self.expanded: dict = {}  # (word, field, stem?) -> the terms it stands for
        self.slop = None      # SLOP n / INORDER: intersections must fit within it
        self.inorder = False

    def idf(self, term):
        v = self._idf.get(term)
        if v is None:
            if type(term) is tuple:  # ("tag", field, value)
                inv = self.idx.fi._inverted.get(term[1], {})
                df = len(inv.get(term[2], ()))
            else:
                df = self.text.doc_freq(term)
            total = self.n_docs + 1  # RediSearch's doc table counts from 1
            f32 = np.float32  # RediSearch computes the BM25 IDF in single precision
            bm25 = f32(1.0) + (f32(self.n_docs - df) + f32(0.5)) / (f32(df) + f32(0.5))
            v = (_logb(1.0 + total / (df if df else 1.0)), math.log(float(bm25)))
            self._idf[term] = v
        return v


def _logb(x: float) -> float:
    return float(math.frexp(x)[1] - 1) if x > 0 else -math.inf


def _weight(node) -> float:
    return float(getattr(node, "weight", 1.0) or 1.0)


def _term(doc, term, mask, weight=1.0):
    e = doc.terms.get(term)
    if e is None or not (e[1] & mask):
        return None
    return Res(TERM, e[0], weight, term, (), e[2])


def _first(doc, mask, weight, terms):
    for term in sorted(terms):
        r = _term(doc, term, mask)
        if r is not None:
            return _union([r], weight)
    return None


def _union(children, weight=1.0):
    """A union result holds only its matching children (a union of one stays a union)."""
    kids = [c for c in children if c is not None]
    if not kids:
        return None
    pos = sorted(p for c in kids for p in c.positions)
    return Res(UNION, sum(c.freq for c in kids), weight, None, kids, pos)


def expansions(word, field, ctx, stem_it):
    """The terms a query word stands for, as Redis's default expander makes them."""
    out = [word]
    for gid in ctx.groups.get(word, ()):
        out.append(SYNONYM_PREFIX + gid)
    if ctx.text.any_phonetic(field):
        codes = phonetic_codes(word)
        if codes and codes[0]:
            out.append(PHONETIC_PREFIX + codes[0])
    if stem_it and stemming_available():  # any length: MINSTEMLEN limits indexing only
        s = stem(word)
        out.append(STEM_PREFIX + s)
        if s != word:
            out.append(s)
    return out


def match(node, doc, ctx):
    """The result tree of ``node`` for one document (None: it does not match)."""
    t = And if isinstance(node, And) else type(node)  # a Phrase is an And with ``exact``
    if t is TextTerm or t is TextPattern:
        mask = ctx.text.field_mask(node.field)
        w = _weight(node)
        # Prefix and fuzzy unions stop at their first matching term (in the terms trie's
        # order); fuzzy matching walks every indexed term, stem entries ("+fox") included.
        if t is TextTerm and node.prefix:
            pre = node.word.lower()
            return _first(doc, mask, w, (term for term in doc.terms
                                         if term.startswith(pre) and term[:1] not in "+<~"))
        if t is TextPattern and node.kind != "stem":
            special = "" if node.kind == "fuzzy" else "+<~"
            return _first(doc, mask, w, (term for term in doc.terms
                                         if term[:1] not in special and node.accepts(term)))
        word = node.word.lower()
        key = (word, node.field, t is TextPattern)
        terms = ctx.expanded.get(key)
        if terms is None:
            # expansions the index does not hold make no iterator; a union of one is its term
            terms = [x for x in expansions(word, node.field, ctx, t is TextPattern)
                     if x == word or x in ctx.text.term_docs]
            if len(terms) > 1 and word not in ctx.text.term_docs:
                terms.remove(word)
            ctx.expanded[key] = terms
        if terms[0] != word:
            return _term(doc, terms[0], mask) if len(terms) == 1 else _union(
                [_term(doc, term, mask) for term in terms])
        if len(terms) == 1:
            return _term(doc, word, mask, w)
        # the query's own word keeps its $weight; the expansions weigh 1
        return _union([_term(doc, word, mask, w)] + [_term(doc, term, mask) for term in terms[1:]])
    if t is And:
        kids = []
        for c in node.children:
            r = match(c, doc, ctx)
            if r is None:
                return None
            kids.append(r)
        if len(kids) == 1:
            return kids[0]
        if node.exact:  # a quoted phrase: adjacent words, in order
            if not within_range(kids, 0, True):
                return None
        elif ctx.slop is not None or ctx.inorder:
            if not within_range(kids, ctx.slop, ctx.inorder):
                return None
        else:  # Redis's intersection visits its children fewest-documents first
            kids.sort(key=lambda c: _estimate(c, ctx))
        pos = sorted(p for c in kids for p in c.positions)
        return Res(INTERSECT, sum(c.freq for c in kids), _weight(node), None, kids, pos)
    if t is Or:
        return _union([match(c, doc, ctx) for c in node.children], _weight(node))
    if t is Optional:
        r = match(node.child, doc, ctx)
        return r if r is not None else Res(VIRTUAL, 1, 0.0)
    if t is Not:
        return None if match(node.child, doc, ctx) is not None else Res(VIRTUAL, 0, 1.0)
    if t is MatchAll or t is Missing:
        return Res(VIRTUAL, 1, 1.0)
    if t is Tag:
        return _tag(node, doc, ctx)
    if t in (Numeric, Geo, VectorRange):
        return Res(NUMERIC, 1, 1.0)
    return Res(VIRTUAL, 1, 1.0)


def within_range(kids, max_slop, inorder) -> bool:
    """IndexResult_IsWithinRange: can one position per child be picked so that at most
    ``max_slop`` unmatched words lie between them (in query order with ``inorder``)?"""
    lists = [c.positions for c in kids if c.positions]
    if not lists:
        return True
    if max_slop is None:
        max_slop = 1 << 30
    n = len(lists)
    if inorder:
        idx = [0] * n
        while True:
            span = 0
            for i in range(n):
                last = lists[i - 1][idx[i - 1]] if i else 0
                if i == 0:
                    pass
                while idx[i] < len(lists[i]) and lists[i][idx[i]] < last:
                    idx[i] += 1
                if idx[i] >= len(lists[i]):
                    return False
                if i > 0:
                    span += lists[i][idx[i]] - last - 1
                    if span > max_slop:
                        break
            if span <= max_slop:
                return True
            idx[0] += 1
            if idx[0] >= len(lists[0]):
                return False
    idx = [0] * n
    cur = [lst[0] for lst in lists]
    mx = max(cur)
    while True:
        mn = min(cur)
        k = cur.index(mn)
        if mn != mx and mx - mn - (n - 1) <= max_slop:
            return True
        idx[k] += 1
        if idx[k] >= len(lists[k]):
            return False
        cur[k] = lists[k][idx[k]]
        if cur[k] > mx:
            mx = cur[k]


def _tag(node, doc, ctx):
    """A tag query: a union of the tag values the document has, each a term whose IDF
    counts the documents holding that value."""
    idx = ctx.idx
    slot = doc.slot
    rec = idx.slot_rec.get(slot, {}) if slot is not None else {}
    have = rec.get(node.field, ())
    spec = idx.fi.schema.get(node.field, {})
    fold = (lambda v: v) if spec.get("case_sensitive") else str.lower
    kids = []
    for v in node.values:
        v = fold(v)
        if v in have:
            kids.append(Res(TERM, 1, 1.0, ("tag", node.field, v)))
    for p in node.prefixes:
        p = fold(p)
        kids.extend(Res(TERM, 1, 1.0, ("tag", node.field, v)) for v in have if v.startswith(p))
    return _union(kids) if kids else Res(VIRTUAL, 1, 1.0)


def _estimate(r, ctx) -> int:
    if r.kind == TERM and r.term is not None:
        return ctx.idf(r.term) and (ctx.text.doc_freq(r.term) if type(r.term) is str else 0)
    if r.kind == UNION:
        return sum(_estimate(c, ctx) for c in r.children)
    if r.kind == INTERSECT:
        return min(_estimate(c, ctx) for c in r.children)
    return ctx.n_docs


# -- the scorers ---------------------------------------------------------------------------------

def slop(res) -> int:
    """IndexResult_MinOffsetDelta: sqrt of the summed squared gaps between consecutive
    children's nearest positions (1 for a single result)."""
    if res.kind not in (UNION, INTERSECT) or len(res.children) <= 1:
        return 1
    kids = [c for c in res.children if c.positions]
    dist = 0
    for a, b in zip(kids, kids[1:]):
        pa, pb = a.positions, b.positions
        i = j = 0
        cd = abs(pb[0] - pa[0])
        while cd > 1 and i < len(pa) and j < len(pb):
            cd = min(abs(pb[j] - pa[i]), cd)
            if pb[j] > pa[i]:
                i += 1
            else:
                j += 1
        dist += cd * cd
    return int(math.sqrt(dist)) if dist else len(res.children) - 1


def _tfidf_raw(r, ctx, explain):
    if r.kind == TERM:
        idf = ctx.idf(r.term)[0] if r.term is not None else 0.0
        v = r.weight * r.freq * idf
        explain is not None and explain.append(f"(TFIDF {v:.2f} = Weight {r.weight:.2f} * TF {r.freq} * IDF {idf:.2f})")
        return v
    if r.kind in (UNION, INTERSECT):
        sub = [] if explain is not None else None
        total = sum(_tfidf_raw(c, ctx, sub) for c in r.children)
        explain is not None and explain.append([f"(Weight {r.weight:.2f} * total children TFIDF {total:.2f})", sub])
        return r.weight * total
    v = r.weight * r.freq
    explain is not None and explain.append(f"(TFIDF {v:.2f} = Weight {r.weight:.2f} * Frequency {r.freq})")
    return v


def _bm25_raw(r, ctx, explain):
    f = float(r.freq)
    avg = ctx.avg_len
    if r.kind == TERM:
        idf = ctx.idf(r.term)[0] if r.term is not None else 0.0
        v = idf * f / (f + K1 * (1.0 - B + B * avg))
        explain is not None and explain.append(f"({v:.2f} = IDF {idf:.2f} * F {r.freq} / (F {r.freq} + k1 1.2 * "
                       f"(1 - b 0.5 + b 0.5 * Average Len {avg:.2f})))")
        return v
    if r.kind in (UNION, INTERSECT):
        sub = [] if explain is not None else None
        total = sum(_bm25_raw(c, ctx, sub) for c in r.children)
        explain is not None and explain.append([f"(Weight {r.weight:.2f} * children BM25 {total:.2f})", sub])
        return total * r.weight
    if f:
        v = r.weight * f / (f + K1 * (1.0 - B + B * avg))
        explain is not None and explain.append(f"({v:.2f} = Weight {r.weight:.2f} * F {r.freq} / (F {r.freq} + k1 1.2 * "
                       f"(1 - b 0.5 + b 0.5 * Average Len {avg:.2f})))")
        return v
    explain is not None and explain.append("Frequency 0 -> value 0")
    return 0.0


def _bm25std_one(idf, f, doc_len, avg, name, explain):
    ratio = float(np.float32(doc_len)) / avg if avg else math.inf
    v = idf * f * K1_PLUS_1 / (f + K1 * (1.0 - B + B * ratio))
    explain is not None and explain.append(f"{name}: ({v:.2f} = IDF {idf:.2f} * (F {f:.2f} * (k1 1.2 + 1)) / (F {f:.2f} + "
                   f"k1 1.2 * (1 - b 0.5 + b 0.5 * Doc Len {doc_len} / Average Doc Len {avg:.2f})))")
    return v


def _bm25std_raw(r, doc, ctx, explain):
    if r.kind == TERM and r.term is not None:
        name = r.term if type(r.term) is str else r.term[2]
        return _bm25std_one(ctx.idf(r.term)[1], float(r.freq), doc.length, ctx.avg_len,
                            name, explain)
    if r.kind in (UNION, INTERSECT):
        sub = [] if explain is not None else None
        total = sum(_bm25std_raw(c, doc, ctx, sub) for c in r.children)
        explain is not None and explain.append([f"(Weight {r.weight:.2f} * children BM25 {total:.2f})", sub])
        return total * r.weight
    if r.kind == VIRTUAL and r.freq and r.weight:
        return r.weight * _bm25std_one(1.0, 1.0, doc.length, ctx.avg_len, "*", explain)
    explain is not None and explain.append("Irrelevant token -> score is 0")
    return 0.0


def _dismax(r, explain):
    if r.kind == INTERSECT or r.kind == UNION:
        sub = [] if explain is not None else None
        vals = [_dismax(c, sub) for c in r.children]
        total = sum(vals) if r.kind == INTERSECT else max(vals + [0.0])
        explain is not None and explain.append([f"{r.weight * total:.2f} = Weight {r.weight:.2f} * children DISMAX "
                        f"{total:.2f}", sub])
        return r.weight * total
    explain is not None and explain.append(f"DISMAX {r.weight * r.freq:.2f} = Weight {r.weight:.2f} * Frequency {r.freq}")
    return r.weight * r.freq


def score(name: str, r, doc, ctx, payload=None, qpayload=None, explain=True):
    """(score, explanation or None) of one document under the named scorer."""
    exp = [] if explain else None
    if name in ("TFIDF", "TFIDF.DOCNORM"):
        if doc.score == 0:
            return 0.0, ["Document score is 0"]
        norm = doc.max_freq if name == "TFIDF" else doc.length
        raw = _tfidf_raw(r, ctx, exp)
        num = doc.score * raw
        if norm:
            v = num / norm
        else:  # C's division by zero
            v = math.inf if num > 0 else -math.inf if num < 0 else math.nan
        s = slop(r)
        v = v / s if s else (math.inf if v > 0 else math.nan if v == 0 else -math.inf)
        return v, exp and [f"Final TFIDF : words TFIDF {raw:.2f} * document score "
                           f"{doc.score:.2f} / norm {norm} / slop {s}", exp]
    if name == "BM25":
        raw = _bm25_raw(r, ctx, exp)
        s = slop(r)
        v = doc.score * raw / s if s else math.inf
        return v, exp and [f"Final BM25 : words BM25 {raw:.2f} * document score "
                           f"{doc.score:.2f} / slop {s}", exp]
    if name == "BM25STD":
        raw = _bm25std_raw(r, doc, ctx, exp)
        return doc.score * raw, exp and [f"Final BM25 : words BM25 {raw:.2f} * document "
                                         f"score {doc.score:.2f}", exp]
    if name == "DISMAX":
        v = _dismax(r, exp)
        return v, exp and exp[0]
    if name == "DOCSCORE":
        return doc.score, f"Document's score is {doc.score:.2f}"
    if name == "HAMMING":
        if not payload or not qpayload or len(payload) != len(qpayload):
            return 0.0, "Payloads provided to scorer vary in length"
        bits = sum(bin(a ^ b).count("1") for a, b in zip(payload, qpayload))
        v = 1.0 / (bits + 1)
        return v, (f"String length is {len(qpayload)}. Bit count is {bits}. "
                   f"Result is (1 / count + 1) = {v:.2f}")
    raise ValueError(name)
