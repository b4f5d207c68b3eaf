"""The calls ft/ makes: scores for the matched documents, and the documents that
match a word through its synonym or phonetic terms."""

from __future__ import annotations

import math

import numpy as np

import dataclasses

from ...query.evaluate import Rewrite
from ...query.nodes import And, MatchAll, Not, Optional, Or, TextPattern, TextTerm
from ...query.words import stem, stemming_available
from .forward import PHONETIC_PREFIX, SYNONYM_PREFIX, DocText, word_groups
from .scoring import SCORERS, VIRTUAL, Context, Res, match, score

DEFAULT_SCORER = "TFIDF"


def check_scorer(name: str) -> str:
    up = name.upper()
    if up not in SCORERS:
        raise ValueError(f"Scoring function `{name}` not found")
    return up


def has_text(idx) -> bool:
    return getattr(idx, "text", None) is not None


def rank(idx, tree, slots: np.ndarray, scorer: str, explain: bool = False):
    """(scores float64 array aligned with ``slots``, explanations or None)."""
    text = idx.text
    ctx = Context(idx, text, word_groups(idx))
    empty = DocText(float(idx.options.get("default_score", 1.0)))
    out = np.empty(slots.shape[0], np.float64)
    exps = [] if explain else None
    docs = text.docs
    if type(tree) is MatchAll and scorer == "TFIDF" and not explain:
        # "*" under the default scorer: document score / largest term frequency
        inf, nan = math.inf, math.nan
        for i, s in enumerate(slots.tolist()):
            doc = docs.get(s, empty)
            m = doc.max_freq
            out[i] = doc.score / m if m else (inf if doc.score > 0 else nan)
        return out, None
    for i, s in enumerate(slots.tolist()):
        doc = docs.get(s)
        if doc is None:
            empty.slot = s
            doc = empty
        r = match(tree, doc, ctx)
        if r is None:
            r = Res(VIRTUAL, 1, 1.0)
        v, e = score(scorer, r, doc, ctx, explain=explain)
        out[i] = v
        if exps is not None:
            exps.append(e)
    return out, exps


def order_by_score(doc_order: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Best first; equal scores in document order (``doc_order``: a sort key per
    result, SearchIndex.document_order); NaN last."""
    key = np.where(np.isnan(scores), -np.inf, scores)
    return np.lexsort((doc_order, -key))


def fmt_score(x: float) -> bytes:
    """As Redis prints a double: the shortest text that reads back the same."""
    if math.isnan(x):
        return b"nan"
    if math.isinf(x):
        return b"inf" if x > 0 else b"-inf"
    if x.is_integer() and abs(x) < 1e17:
        return b"%d" % int(x)
    return repr(x).encode()


def extra_slots(idx, node):
    """Slots a TEXT leaf matches through synonym groups or phonetic codes, which the
    field index (plain words) does not hold; None when there are none."""
    text = getattr(idx, "text", None)
    if text is None or not isinstance(node, (TextTerm, TextPattern)):
        return None
    if isinstance(node, TextTerm) and node.prefix:
        return None
    if isinstance(node, TextPattern) and node.kind != "stem":
        return None
    groups = word_groups(idx)
    word = node.word.lower()
    specials = [SYNONYM_PREFIX + g for g in groups.get(word, ())]
    if text.any_phonetic(node.field):
        from .forward import phonetic_codes
        codes = phonetic_codes(word)
        if codes and codes[0]:
            specials.append(PHONETIC_PREFIX + codes[0])
    if not specials:
        return None
    mask = text.field_mask(node.field)
    out = []
    for term in specials:
        for s in text.term_docs.get(term, ()):
            if text.docs[s].terms[term][1] & mask:
                out.append(s)
    return out


def filter_slop(idx, tree, slots: np.ndarray, max_slop, inorder) -> np.ndarray:
    """The slots whose match satisfies SLOP / INORDER."""
    text = idx.text
    ctx = Context(idx, text, word_groups(idx))
    ctx.slop, ctx.inorder = max_slop, inorder
    docs = text.docs
    keep = []
    for s in slots.tolist():
        doc = docs.get(s)
        if doc is None:
            doc = DocText(1.0, s)
        if match(tree, doc, ctx) is not None:
            keep.append(s)
    return np.asarray(keep, dtype=slots.dtype)


class _InFields(Rewrite):
    """The leaf hook of ``in_fields``: a word without a field becomes one word per field."""

    def __init__(self, fields):
        self.fields = fields

    def leaf(self, node):
        if type(node) not in (TextTerm, TextPattern) or node.field is not None:
            return node
        if not self.fields:
            return Not(MatchAll())  # no field at all: nothing matches
        alts = [dataclasses.replace(node, field=f) for f in self.fields]
        return alts[0] if len(alts) == 1 else Or(tuple(alts))


def in_fields(node, fields):
    """INFIELDS: words without a field of their own look only in ``fields`` (a phrase
    stays a phrase, and every combinator keeps its $weight)."""
    return _InFields(fields).visit(node)


def has_phrase(node) -> bool:
    if isinstance(node, And) and node.exact:
        return True
    if isinstance(node, (And, Or)):
        return any(has_phrase(c) for c in node.children)
    if isinstance(node, (Not, Optional)):
        return has_phrase(node.child)
    return False


def stem_slots(idx, node):
    """Slots a stem-expanded word matches (the word, its "+stem" entries and the stem
    itself, as Redis's expander unions them), from the term statistics: O(matches)
    instead of a scan of the field's vocabulary. None when the index keeps none."""
    text = getattr(idx, "text", None)
    if text is None or not stemming_available():
        return None
    word = node.word.lower()
    s = stem(word)
    mask = text.field_mask(node.field)
    out = set()
    for term in (word, "+" + s, s):
        slots = text.term_docs.get(term)
        if not slots:
            continue
        if mask == -1:
            out |= slots
        else:
            docs = text.docs
            out.update(x for x in slots if docs[x].terms[term][1] & mask)
    return out
