"""Words as text queries match them: English stems and edit distance."""

from __future__ import annotations

import functools

_STEMMER = []


@functools.lru_cache(maxsize=1 << 16)
def stem(word: str) -> str:
    """The English Snowball stem of a lower-case word (the optional ``snowballstemmer``
    package; without it every word is its own stem)."""
    if not _STEMMER:
        try:
            import snowballstemmer
            _STEMMER.append(snowballstemmer.stemmer("english").stemWord)
        except ImportError:
            _STEMMER.append(lambda w: w)
    return _STEMMER[0](word)


def stemming_available() -> bool:
    return stem("engines") != "engines"


def within_distance(a: str, b: str, limit: int) -> bool:
    """Levenshtein distance of a and b is at most ``limit`` (rows cut off early)."""
    if abs(len(a) - len(b)) > limit:
        return False
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
        if min(cur) > limit:
            return False
        prev = cur
    return prev[-1] <= limit

