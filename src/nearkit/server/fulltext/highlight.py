"""HIGHLIGHT and SUMMARIZE: RediSearch's fragmenter (2.10) over one returned field.

The matched words come from the document's match of the query (their positions); the
field is re-tokenized to map positions to character offsets. Fragments group matches at
most 8 words apart; SUMMARIZE keeps the FRAGS best-scoring ones (score: the IDF of each
distinct term), in document order, each widened by LEN words of context (estimated at 6
characters a word, cut back to whole words), joined by SEPARATOR.
"""

from __future__ import annotations

import re

from .forward import word_groups
from .scoring import INTERSECT, TERM, UNION, Context, match

MAX_DISTANCE = 8
EST_WORD = 6
_TOKSEP = set(" \t,./(){}[]:;~!@#$%^&*-=+|'`\"<>?\\\n\r\v\f")


def _seps(c: str) -> bool:
    return c in _TOKSEP


def matched_positions(res, ctx):
    """[(position, term, idf)] of every matched word in the result tree, by position."""
    out = []

    def walk(r):
        if r.kind == TERM and r.term is not None and type(r.term) is str:
            idf = ctx.idf(r.term)[0]
            out.extend((p, r.term, idf) for p in r.positions)
        elif r.kind in (UNION, INTERSECT):
            for c in r.children:
                walk(c)
    walk(res)
    out.sort(key=lambda e: e[0])
    return out


def _field_tokens(text: str, start: int, stopwords):
    """[(position, char offset)] of the field's indexed words (as forward.py numbers them)."""
    out, pos = [], start
    for m in _iter_words(text):
        w = m.group(0).lower()
        if w in stopwords:
            continue
        pos += 1
        out.append((pos, m.start()))
    return out


def _iter_words(text):
    # the same word boundaries as forward._SPLIT (runs of word characters)
    return re.finditer(r"\w+", text)


class _Frag:
    __slots__ = ("buf", "len", "last", "score", "matches", "total", "locs", "terms", "order")

    def __init__(self, buf, order):
        self.buf, self.len, self.last, self.score = buf, 0, 0, 0.0
        self.matches = self.total = 0
        self.locs, self.terms, self.order = [], set(), order


def fragmentize(text: str, field_toks, matches):
    frags = []
    since = 0
    last_pos = None
    last_end = 0
    mi = 0
    if not field_toks or not matches:
        return frags
    # skip matches before the field
    first = field_toks[0][0]
    while mi < len(matches) and matches[mi][0] < first:
        mi += 1
    ti = 0
    while mi < len(matches) and ti < len(field_toks):
        pos, term, idf = matches[mi]
        tpos, off = field_toks[ti]
        if tpos < pos:
            ti += 1
            since += 1
            continue
        # this word is a match
        nxt = mi + 1
        while nxt < len(matches) and matches[nxt][0] == pos:
            nxt += 1
        if nxt >= len(matches) or matches[nxt][0] != pos:
            ti += 1
        mi = nxt
        if pos == last_pos or off < last_end:
            continue
        n = 0
        while off + n < len(text) and not _seps(text[off + n]):
            n += 1
        cur = frags[-1] if frags else None
        if cur is not None and pos - cur.last > MAX_DISTANCE:
            cur = None
        if cur is None:
            cur = _Frag(off, len(frags))
            frags.append(cur)
            since = 0
        if term not in cur.terms:
            cur.score += idf
            cur.terms.add(term)
        cur.len = off - cur.buf + n
        cur.last = pos
        cur.matches += 1
        cur.total += since + 1
        since = 0
        cur.locs.append((off - cur.buf, n))
        last_pos, last_end = pos, off + n
    return frags


def _write(text, frag, open_tag, close_tag, pre):
    out = []
    if pre is None:
        pre = frag.buf
    for rel, n in frag.locs:
        at = frag.buf + rel
        if at > pre:
            out.append(text[pre:at])
        out.append(open_tag + text[at:at + n] + close_tag)
        pre = at + n
    return "".join(out), pre


def highlight_whole(text, frags, open_tag, close_tag) -> str:
    if not frags:
        return text
    out, pre = [], 0
    for f in frags:
        s, pre = _write(text, f, open_tag, close_tag, pre)
        out.append(s)
    out.append(text[pre:])
    return "".join(out)


def _context(text, frag, lim_before, lim_after, context_len):
    if lim_before is None:
        lim_before = 0
    if lim_after is None:
        lim_after = len(text) - 1
    if context_len <= frag.total - frag.matches:
        return "", ""
    size = (context_len - (frag.total - frag.matches)) // 2 * EST_WORD
    lb = max(frag.buf - size, lim_before)
    end = frag.buf + frag.len
    la = min(end + size, lim_after)
    while lb < frag.buf and not _seps(text[lb]):
        lb += 1
    while lb < frag.buf and _seps(text[lb]):
        lb += 1
    while la > end and not _seps(text[la]):
        la -= 1
    while la > end and _seps(text[la]):
        la -= 1
    return text[lb:frag.buf], text[end:la + 1]


def _strip_spaces(s: str) -> str:
    return re.sub(r"\s+", " ", s)


def summarize(text, frags, open_tag, close_tag, n_frags, context_len, separator) -> str:
    n = min(n_frags, len(frags))
    best = sorted(frags, key=lambda f: (-f.score, f.order))[:n]
    best.sort(key=lambda f: f.order)
    out = []
    for i, f in enumerate(best):
        before_lim = best[i - 1].buf + best[i - 1].len if i > 0 else None
        after_lim = best[i + 1].buf if i + 1 < n else None
        before, after = _context(text, f, before_lim, after_lim, context_len)
        body, _ = _write(text, f, open_tag, close_tag, None)
        out.append(_strip_spaces(before + body + after) + separator)
    return "".join(out)


def trim_head(text, n_frags, context_len) -> str:
    """SUMMARIZE of a field without matches: its head, cut back to whole words."""
    head = EST_WORD * context_len * n_frags + EST_WORD
    buf = _strip_spaces(text[:head])
    while len(buf) > 1 and not _seps(buf[-1]):
        buf = buf[:-1]
    return buf.rstrip()


def render_field(text: str, alias: str, doc, res, ctx, stopwords, synopsis, hl):
    """The field's text as SUMMARIZE (``synopsis``: dict) and/or HIGHLIGHT (``hl``: dict)
    make it; None leaves it unchanged."""
    frags = []
    if res is not None and alias in ctx.text.fields and alias in doc.starts:
        toks = _field_tokens(text, doc.starts[alias], stopwords)
        frags = fragmentize(text, toks, matched_positions(res, ctx))
    if not frags:
        if synopsis is not None and hl is None:
            return trim_head(text, synopsis["frags"], synopsis["len"])
        return None
    open_tag, close_tag = (hl["open"], hl["close"]) if hl is not None else ("", "")
    if synopsis is None:
        return highlight_whole(text, frags, open_tag, close_tag)
    return summarize(text, frags, open_tag, close_tag, synopsis["frags"], synopsis["len"],
                     synopsis["sep"])


def apply(idx, req, key, fields):
    """The returned (name, value) pairs of one document with SUMMARIZE / HIGHLIGHT applied."""
    text_index = idx.text
    slot = idx.key_slot.get(key)
    doc = text_index.docs.get(slot) if text_index is not None and slot is not None else None
    ctx = res = None
    if doc is not None and req.text_tree is not None:
        ctx = Context(idx, text_index, word_groups(idx))
        res = match(req.text_tree, doc, ctx)
    # With FIELDS in either clause only the fields listed are processed (each also with
    # the other clause's settings when that clause names no fields), as Redis does.
    explicit = set((req.summarize or {}).get("fields") or ()) | set(
        (req.highlight or {}).get("fields") or ())
    out = []
    for name, value in fields:
        alias = name.decode("utf-8", "replace")
        if explicit and alias not in explicit:
            out.append((name, value))
            continue
        syn = req.summarize if req.summarize is not None and (
            req.summarize["fields"] is None or alias in req.summarize["fields"]) else None
        hl = req.highlight if req.highlight is not None and (
            req.highlight["fields"] is None or alias in req.highlight["fields"]) else None
        if syn is None and hl is None:
            out.append((name, value))
            continue
        text = value.decode("utf-8", "replace")
        new = render_field(text, alias, doc, res, ctx, idx.stopwords, syn, hl) \
            if doc is not None else (trim_head(text, syn["frags"], syn["len"])
                                     if syn is not None and hl is None else None)
        out.append((name, value if new is None else new.encode()))
    return out
