"""Redis glob patterns (KEYS, SCAN MATCH, CONFIG GET) matched in O(key × pattern) time.

Semantics are those of Redis's ``stringmatchlen``: ``*`` any run of bytes, ``?`` one
byte, ``[abc]`` / ``[^abc]`` a byte in (not in) a set with ``a-z`` ranges (reversed
ranges are swapped) and ``\\x`` escapes inside, ``\\x`` outside a class the literal
``x``; an unclosed ``[`` takes the rest of the pattern as its set.

A naive translation to a backtracking regex (``.*x.*y...``) takes time exponential in
the number of stars on a key that does not match, which let one KEYS request stall
the server. Every piece between two stars has a fixed length, so matching it at its
leftmost place is always right (a later place only leaves less room for the rest):
the compiled regex says so with atomic groups, ``(?>.*?piece)``, and never goes back
into them. Python before 3.11 has no atomic groups; there the same greedy walk runs
in Python (``_GreedyMatcher``).
"""

from __future__ import annotations

import re
import sys

_STAR, _ANY, _LIT, _SET = range(4)


def tokens(pattern: bytes) -> list:
    """The pattern as a list of (kind, arg): _STAR, _ANY, (_LIT, byte) or
    (_SET, frozenset of allowed byte values), consecutive stars collapsed."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == 0x2A:  # *
            if not out or out[-1][0] != _STAR:
                out.append((_STAR, None))
        elif c == 0x3F:  # ?
            out.append((_ANY, None))
        elif c == 0x5B:  # [
            i += 1
            negate = i < n and pattern[i] == 0x5E  # ^
            if negate:
                i += 1
            members: set = set()
            while True:
                if i < n - 1 and pattern[i] == 0x5C:  # backslash escapes the next byte
                    i += 1
                    members.add(pattern[i])
                elif i < n and pattern[i] == 0x5D:  # ]
                    break
                elif i >= n:  # unclosed: the set ends with the pattern
                    i -= 1
                    break
                elif i + 2 < n and pattern[i + 1] == 0x2D:  # a-z
                    lo, hi = sorted((pattern[i], pattern[i + 2]))
                    members.update(range(lo, hi + 1))
                    i += 2
                else:
                    members.add(pattern[i])
                i += 1
            allowed = frozenset(range(256)) - members if negate else frozenset(members)
            out.append((_SET, allowed))
        elif c == 0x5C and i + 1 < n:  # \x
            i += 1
            out.append((_LIT, pattern[i]))
        else:
            out.append((_LIT, c))
        i += 1
    return out


def _set_regex(allowed: frozenset) -> bytes:
    if not allowed:
        return b"(?!)"
    if len(allowed) == 256:
        return b"."
    parts, values = [], sorted(allowed)
    start = prev = values[0]
    for v in values[1:] + [None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        parts.append(b"\\x%02x" % start if start == prev else b"\\x%02x-\\x%02x" % (start, prev))
        if v is not None:
            start = prev = v
    return b"[" + b"".join(parts) + b"]"


def _piece_regex(piece: list) -> bytes:
    out = []
    for kind, arg in piece:
        if kind == _ANY:
            out.append(b".")
        elif kind == _LIT:
            out.append(re.escape(bytes((arg,))))
        else:
            out.append(_set_regex(arg))
    return b"".join(out)


def _pieces(toks: list) -> list:
    """The runs of tokens between stars (the first and last may be empty)."""
    pieces = [[]]
    for t in toks:
        if t[0] == _STAR:
            pieces.append([])
        else:
            pieces[-1].append(t)
    return pieces


class _LowerKey:
    """A compiled pattern matched against the lowercased key (Redis's nocase)."""

    __slots__ = ("_rx",)

    def __init__(self, rx):
        self._rx = rx

    def match(self, s: bytes):
        return self._rx.match(s.lower())


class _GreedyMatcher:
    """The same leftmost-piece walk as the compiled regex, in Python (before 3.11)."""

    def __init__(self, toks: list, nocase: bool):
        self._pieces = _pieces(toks)
        self._nocase = nocase

    @staticmethod
    def _fits(piece, s: bytes, at: int) -> bool:
        for j, (kind, arg) in enumerate(piece):
            c = s[at + j]
            if (kind == _LIT and c != arg) or (kind == _SET and c not in arg):
                return False
        return True

    def match(self, s: bytes):
        if self._nocase:
            s = s.lower()
        pieces, n = self._pieces, len(s)
        first = pieces[0]
        if len(pieces) == 1:
            return len(first) == n and self._fits(first, s, 0) or None
        if len(first) > n or not self._fits(first, s, 0):
            return None
        pos = len(first)
        for piece in pieces[1:-1]:
            while pos + len(piece) <= n and not self._fits(piece, s, pos):
                pos += 1
            if pos + len(piece) > n:
                return None
            pos += len(piece)
        last = pieces[-1]
        return (n - len(last) >= pos and self._fits(last, s, n - len(last))) or None


def compile_glob(pattern: bytes, nocase: bool = False):
    """An object whose ``match(key: bytes)`` is truthy when the whole key matches."""
    # Redis's nocase lowers the pattern's characters (a range's two ends, not the
    # characters between them) and the key's: [*-a] holds 'B' but never 'b'.
    # So: tokens of the lowered pattern, matched case-sensitively against the
    # lowered key (re.IGNORECASE would also let 'b' in through 'B').
    toks = tokens(pattern.lower() if nocase else pattern)
    if sys.version_info < (3, 11):  # pragma: no cover - no atomic groups
        return _GreedyMatcher(toks, nocase)
    pieces = [_piece_regex(p) for p in _pieces(toks)]
    if len(pieces) == 1:
        rx = pieces[0] + b"\\Z"
    else:
        middle = b"".join(b"(?>.*?" + p + b")" for p in pieces[1:-1])
        rx = pieces[0] + middle + b".*" + pieces[-1] + b"\\Z"
    compiled = re.compile(rx, re.DOTALL)
    return _LowerKey(compiled) if nocase else compiled
