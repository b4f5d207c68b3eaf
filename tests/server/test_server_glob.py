"""Redis glob matching (KEYS / SCAN MATCH / CONFIG GET): Redis's semantics, linear time."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nearkit.server.glob import _GreedyMatcher, compile_glob, tokens
from server_helpers import ThreadServer


def redis_match(p: bytes, s: bytes, nocase: bool = False) -> bool:
    """Reference: Redis's stringmatchlen walked literally, backtracking recursively
    at every star (exponential; only for small inputs)."""
    if nocase:
        p, s = p.lower(), s.lower()
    i = j = 0
    while i < len(p) and (j < len(s) or p[i:i + 1] == b"*"):
        c = p[i:i + 1]
        if c == b"*":
            while p[i + 1:i + 2] == b"*":
                i += 1
            if i + 1 == len(p):
                return True
            return any(redis_match(p[i + 1:], s[k:]) for k in range(j, len(s) + 1))
        if c == b"?":
            j += 1
        elif c == b"[":
            i += 1
            neg = p[i:i + 1] == b"^"
            if neg:
                i += 1
            hit = False
            while True:
                if p[i:i + 1] == b"\\" and len(p) - i >= 2:
                    i += 1
                    hit |= p[i] == s[j]
                elif p[i:i + 1] == b"]":
                    break
                elif i >= len(p):
                    i -= 1
                    break
                elif len(p) - i >= 3 and p[i + 1:i + 2] == b"-":
                    lo, hi = sorted((p[i], p[i + 2]))
                    hit |= lo <= s[j] <= hi
                    i += 2
                else:
                    hit |= p[i] == s[j]
                i += 1
            if hit == neg:
                return False
            j += 1
        else:
            if c == b"\\" and len(p) - i >= 2:
                i += 1
            if p[i] != s[j]:
                return False
            j += 1
        i += 1
    return i == len(p) and j == len(s)


CASES = [
    (b"h?llo", b"hello", True), (b"h?llo", b"hllo", False),
    (b"h*llo", b"hllo", True), (b"h*llo", b"heeeello", True), (b"h*llo", b"hellox", False),
    (b"h[ae]llo", b"hallo", True), (b"h[ae]llo", b"hillo", False),
    (b"h[^e]llo", b"hallo", True), (b"h[^e]llo", b"hello", False),
    (b"h[a-b]llo", b"hbllo", True), (b"h[b-a]llo", b"hallo", True), (b"h[a-b]llo", b"hcllo", False),
    (b"h\\*llo", b"h*llo", True), (b"h\\*llo", b"hello", False),
    (b"[\\]]", b"]", True), (b"[abc", b"b", True), (b"[abc", b"d", False),
    (b"[]", b"a", False), (b"[^]", b"a", True), (b"", b"", True), (b"", b"a", False),
    (b"a\\", b"a\\", True), (b"*", b"", True), (b"**", b"abc", True),
    (b"*a*b", b"xaxb", True), (b"*a*b", b"xbxa", False), (b"a*a", b"a", False),
    (b"a\nb", b"a\nb", True), (b"a?b", b"a\nb", True), (b".*", b"xx", False),
]


# nocase lowers a range's ends and the key's character, not the characters in
# between: [*-a] spans 'B' (0x42) but lowered 'b' (0x62) is outside it.
NOCASE_CASES = [(b"[*-a", b"b", False), (b"[*-a", b"B", False), (b"[*-a", b"A", True),
                (b"[A-C]", b"b", True), (b"H[A]LLO", b"hallo", True), (b"h\\Ello", b"HELLO", True)]


@pytest.mark.parametrize("pattern,key,expected", NOCASE_CASES)
def test_nocase_lowers_range_ends_not_members(pattern, key, expected):
    assert redis_match(pattern, key, True) is expected
    assert bool(compile_glob(pattern, True).match(key)) is expected
    assert bool(_GreedyMatcher(tokens(pattern.lower()), True).match(key)) is expected


@pytest.mark.parametrize("pattern,key,expected", CASES)
def test_redis_cases(pattern, key, expected):
    assert redis_match(pattern, key) is expected  # the reference agrees with Redis's behaviour
    assert bool(compile_glob(pattern).match(key)) is expected
    assert bool(_GreedyMatcher(tokens(pattern), False).match(key)) is expected


_alphabet = st.sampled_from([b"a", b"b", b"*", b"?", b"[", b"]", b"^", b"-", b"\\", b"A"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_alphabet, max_size=9).map(b"".join),
       st.lists(st.sampled_from([b"a", b"b", b"A", b"-", b"]", b"*"]), max_size=8).map(b"".join),
       st.booleans())
def test_matches_reference(pattern, key, nocase):
    expected = redis_match(pattern, key, nocase)
    assert bool(compile_glob(pattern, nocase).match(key)) is expected
    assert bool(_GreedyMatcher(tokens(pattern.lower() if nocase else pattern), nocase)
                .match(key)) is expected


def test_many_stars_are_fast_on_a_long_key():
    # Exponential for a backtracking regex; the leftmost walk finishes at once.
    key = b"a" * 20000
    for pattern in (b"**********x", b"*a*a*a*a*a*a*a*a*a*a*b", b"*?*?*?*?*?*?*?*?*?*?*x"):
        assert not compile_glob(pattern).match(key)
        assert not _GreedyMatcher(tokens(pattern), False).match(key[:2000])
    assert compile_glob(b"*a*a*a*a*a*a*a*a*a*a*a").match(key)


def test_server_keeps_answering_after_hostile_patterns():
    srv = ThreadServer()
    try:
        import redis
        r = redis.Redis(port=srv.port, socket_timeout=20)
        r.set(b"a" * 3000, b"v")
        r.set(b"hello", b"v")
        for pattern in (b"**********x", b"*a*a*a*a*a*a*a*a*a*a*b", b"*?*?*?*?*?*?*?*?*x"):
            assert r.keys(pattern) == []
            assert r.scan(0, match=pattern, count=100) == (0, [])
            assert r.config_get(pattern.decode()) == {}
            assert r.ping()
        assert r.keys(b"h[a-f]ll?") == [b"hello"]
        assert r.config_get("MAXCL*") != {}  # CONFIG GET ignores case, as Redis's does
    finally:
        srv.stop()
