"""Auto-complete dictionaries (FT.SUGADD / SUGGET / SUGDEL / SUGLEN): a key of its own type.

Scores follow RediSearch's trie search: an exact match ranks first; a fuzzy (edit distance
1) match is scaled by exp(-2 * distance); every match is divided by
sqrt(1 + |len(suggestion) - len(prefix)|). Scores are kept as float32, as Redis keeps them.
"""

from __future__ import annotations

import math

import numpy as np

INT_MAX = float(np.float32(2 ** 31 - 1))


class SugDict:
    """Suggestion -> [score (float32 value), payload bytes or None]."""

    __slots__ = ("entries",)
    TYPE_NAME = "trietype0"

    def __init__(self, entries=None):
        self.entries: dict = entries or {}

    def add(self, string: bytes, score: float, incr: bool, payload) -> int:
        e = self.entries.get(string)
        if e is not None and incr:
            e[0] = float(np.float32(e[0] + score))
        else:
            self.entries[string] = [float(np.float32(score)), payload]
        if payload is not None and e is not None:
            self.entries[string][1] = payload
        return len(self.entries)

    def to_json(self):
        return [[k.decode("latin-1"), v[0], None if v[1] is None else v[1].decode("latin-1")]
                for k, v in self.entries.items()]

    @classmethod
    def from_json(cls, items):
        return cls({k.encode("latin-1"): [float(s), None if p is None else p.encode("latin-1")]
                    for k, s, p in items})

    def search(self, prefix: bytes, num: int, fuzzy: bool):
        q = prefix.decode("utf-8", "replace").lower()
        found = []
        for s, (score, payload) in self.entries.items():
            text = s.decode("utf-8", "replace").lower()
            dist = _prefix_distance(q, text, 1 if fuzzy else 0)
            if dist is None:
                continue
            # Redis's exact-match test compares len(q) *bytes* of 2-byte runes: equal
            # lengths and the same first half count as exact (ranked first).
            half = (len(q) + 1) // 2
            v = INT_MAX if len(text) == len(q) and text[:half] == q[:half] else score
            if fuzzy:
                v *= math.exp(-2 * dist)
            v /= math.sqrt(1 + abs(len(text) - len(q)))
            found.append((float(np.float32(v)), s, payload))
        found.sort(key=lambda e: (-e[0], e[1]))
        return found[:num]


def _prefix_distance(q: str, s: str, max_dist: int):
    """Smallest edit distance between q and a prefix of s, if at most max_dist."""
    if max_dist == 0:
        return 0 if s.startswith(q) else None
    prev = list(range(len(s) + 1))
    for i, cq in enumerate(q, 1):
        cur = [i] + [0] * len(s)
        for j, cs in enumerate(s, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (cq != cs))
        prev = cur
        if min(prev) > max_dist:
            return None
    d = min(prev)
    return d if d <= max_dist else None
