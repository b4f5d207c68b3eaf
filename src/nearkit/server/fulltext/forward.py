"""Per-document term statistics of an index's TEXT fields, as RediSearch keeps them.

For each document: every indexed term with its frequency (each occurrence counts
``max(1, int(field weight))``; a stem entry ``+stem`` counts ``max(1, int(weight * 0.2))``),
the fields it occurs in and its positions; the document length (raw words, weighted) and its
largest term frequency. Also, per term, the documents holding it (across fields), which give
the IDFs. Phonetic codes (``<CODE``) and synonym groups (``~group``) are terms too, written
when the document is indexed, as Redis does.
"""

from __future__ import annotations

import functools
import re

from ...query.words import stem, stemming_available

MIN_STEM_LEN = 4           # RediSearch's default MINSTEMLEN
STEM_TOKEN_FACTOR = 0.2    # a stem entry weighs a fifth of the word
STEM_PREFIX, PHONETIC_PREFIX, SYNONYM_PREFIX = "+", "<", "~"
_SPLIT = re.compile(r"[^\w]+", re.UNICODE)


@functools.lru_cache(maxsize=1)
def _metaphone():
    try:
        from doublemetaphone import doublemetaphone
    except ImportError:
        return None
    return doublemetaphone


@functools.lru_cache(maxsize=1 << 16)
def phonetic_codes(word: str):
    """(primary, secondary) Double Metaphone codes of a word, from the optional
    ``doublemetaphone`` package; None without it."""
    dm = _metaphone()
    if dm is None:
        return None
    p, s = dm(word)
    return p or None, s or None


def phonetics_available() -> bool:
    return phonetic_codes("john") is not None


class DocText:
    __slots__ = ("terms", "length", "max_freq", "score", "slot", "starts")

    def __init__(self, score: float, slot=None):
        self.slot = slot
        self.starts: dict = {}  # field alias -> position before its first word
        self.terms: dict = {}   # term -> [freq, field bit mask, positions]
        self.length = 0
        self.max_freq = 0
        self.score = score

    def add(self, term: str, inc: int, bit: int, pos: int) -> None:
        e = self.terms.get(term)
        if e is None:
            e = self.terms[term] = [0, 0, []]
        e[0] += inc
        e[1] |= bit
        e[2].append(pos)
        if e[0] > self.max_freq:
            self.max_freq = e[0]


class TextFieldInfo:
    __slots__ = ("alias", "bit", "weight", "stem", "phonetic")

    def __init__(self, alias, bit, weight, stem_, phonetic):
        self.alias, self.bit, self.weight, self.stem, self.phonetic = alias, bit, weight, stem_, phonetic


class TextIndex:
    """Kept by a SearchIndex with TEXT fields; updated from its on_change/_remove."""

    def __init__(self, idx):
        self.fields = {}
        bit = 1
        for f in idx.fields:
            if f.type == "TEXT" and "NOINDEX" not in f.flags:
                self.fields[f.alias] = TextFieldInfo(
                    f.alias, bit, float(f.options.get("WEIGHT", 1.0)), "NOSTEM" not in f.flags,
                    f.options.get("PHONETIC"))
                bit <<= 1
        self.docs: dict[int, DocText] = {}
        self.term_docs: dict[str, set] = {}
        self.total_len = 0

    # -- maintenance -----------------------------------------------------------------------
    def index(self, idx, slot: int, payload: dict) -> None:
        self.remove(slot)
        doc = DocText(float(idx.options.get("default_score", 1.0)), slot)
        stopwords = idx.stopwords
        synonyms = idx.options.get("synonyms") or {}
        word_groups = _word_groups(synonyms) if synonyms else None
        do_stem = stemming_available()
        pos = 0
        for alias, info in self.fields.items():
            value = payload.get(alias)
            if value is None:
                continue
            parts = value if isinstance(value, list) else [value]
            doc.starts[alias] = pos
            inc = max(1, int(info.weight))
            stem_inc = max(1, int(info.weight * STEM_TOKEN_FACTOR))
            for part in parts:
                for tok in _SPLIT.split(str(part).lower()):
                    if not tok or tok in stopwords:
                        continue
                    pos += 1
                    doc.add(tok, inc, info.bit, pos)
                    doc.length += inc
                    if info.stem and do_stem and len(tok) >= MIN_STEM_LEN:
                        s = stem(tok)
                        if s != tok:
                            doc.add(STEM_PREFIX + s, stem_inc, info.bit, pos)
                    if word_groups:
                        for gid in word_groups.get(tok, ()):
                            doc.add(SYNONYM_PREFIX + gid, inc, info.bit, pos)
                    if info.phonetic:
                        codes = phonetic_codes(tok)
                        if codes and codes[0]:
                            doc.add(PHONETIC_PREFIX + codes[0], inc, info.bit, pos)
        self.docs[slot] = doc
        self.total_len += doc.length
        td = self.term_docs
        for term in doc.terms:
            s = td.get(term)
            if s is None:
                td[term] = {slot}
            else:
                s.add(slot)

    def remove(self, slot: int) -> None:
        doc = self.docs.pop(slot, None)
        if doc is None:
            return
        self.total_len -= doc.length
        for term in doc.terms:
            s = self.term_docs.get(term)
            if s is not None:
                s.discard(slot)
                if not s:
                    del self.term_docs[term]

    # -- statistics ------------------------------------------------------------------------
    @property
    def num_docs(self) -> int:
        return len(self.docs)

    def avg_doc_len(self, num_docs: int) -> float:
        return self.total_len / num_docs if num_docs else 0.0

    def doc_freq(self, term: str) -> int:
        s = self.term_docs.get(term)
        return len(s) if s else 0

    def field_mask(self, field) -> int:
        if field is None:
            return -1
        info = self.fields.get(field)
        return info.bit if info is not None else 0

    def any_phonetic(self, field) -> bool:
        if field is None:
            return any(i.phonetic for i in self.fields.values())
        info = self.fields.get(field)
        return bool(info and info.phonetic)


def _word_groups(synonyms: dict) -> dict:
    out: dict = {}
    for gid, words in synonyms.items():
        for w in words:
            out.setdefault(w, []).append(gid)
    return out


def word_groups(idx) -> dict:
    syn = idx.options.get("synonyms")
    return _word_groups(syn) if syn else {}


def make_text_index(idx):
    """A TextIndex for an index with TEXT fields, else None."""
    if any(f.type == "TEXT" and "NOINDEX" not in f.flags for f in idx.fields):
        return TextIndex(idx)
    return None
