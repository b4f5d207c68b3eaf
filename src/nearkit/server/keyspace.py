"""The key space: strings, hashes and JSON documents, with expiry.

Values by type (``TYPE`` name in brackets):

- ``bytes``            a string   (``string``)
- ``dict[bytes,bytes]`` a hash    (``hash``; insertion-ordered like Redis's listpack)
- ``JsonDoc``          a JSON document (``ReJSON-RL``)

Every mutation goes through ``_changed(key)``, which tells the search indexes
(``listeners``) and records the key as dirty for the durability layer, so
nothing can change a key behind their backs.
"""

from __future__ import annotations

import bisect
import time

from .glob import compile_glob


class JsonDoc:
    """A JSON document stored under a key (the parsed Python value)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


def type_name(value) -> str:
    if type(value) is dict:
        return "hash"
    if type(value) is bytes:
        return "string"
    if type(value) is JsonDoc:
        return "ReJSON-RL"
    return getattr(value, "TYPE_NAME", "none")  # module types (suggestion dictionaries)


def now_ms() -> int:
    return int(time.time() * 1000)


def glob_to_regex(pattern: bytes, nocase: bool = False):
    """A Redis glob (``*``, ``?``, ``[a-z]``, ``[^x]``, ``\\x``) compiled for ``.match(key)``
    in time linear in the key for each pattern piece (see ``glob.py``)."""
    return compile_glob(pattern, nocase)


class Keyspace:
    def __init__(self):
        self.data: dict[bytes, object] = {}
        self.expires: dict[bytes, int] = {}  # key -> deadline in ms since the epoch
        self.listeners: list = []  # callables (key, value_or_None)
        self.dirty: set = set()  # keys changed since the last durability flush
        self.flushed_all = False  # FLUSHALL since the last durability flush
        # SCAN order: (seq, key) in creation order; stale entries are skipped and compacted.
        self._seq = 0
        self._key_seq: dict[bytes, int] = {}
        self._order_seq: list[int] = []
        self._order_key: list[bytes] = []

    # -- reading --------------------------------------------------------------
    def get(self, key: bytes):
        """The live value under ``key`` or None (expired keys are reclaimed here)."""
        if key in self.expires and self.expires[key] <= now_ms():
            self.delete(key)
            return None
        return self.data.get(key)

    def __len__(self) -> int:
        return len(self.data)

    def ttl_ms(self, key: bytes) -> int:
        if self.get(key) is None:
            return -2
        deadline = self.expires.get(key)
        return -1 if deadline is None else max(0, deadline - now_ms())

    # -- writing ----------------------------------------------------------------
    def _changed(self, key: bytes, value) -> None:
        self.dirty.add(key)
        for fn in self.listeners:
            fn(key, value)

    def set(self, key: bytes, value, keep_ttl: bool = False) -> None:
        """Store ``value`` under ``key`` (replacing whatever was there)."""
        if key not in self.data:
            self._seq += 1
            self._key_seq[key] = self._seq
            self._order_seq.append(self._seq)
            self._order_key.append(key)
        self.data[key] = value
        if not keep_ttl:
            self.expires.pop(key, None)
        self._changed(key, value)

    def touch(self, key: bytes) -> None:
        """A value was mutated in place (a hash field was set): re-announce it."""
        self._changed(key, self.data[key])

    def delete(self, key: bytes) -> bool:
        if key not in self.data:
            return False
        del self.data[key]
        self.expires.pop(key, None)
        self._key_seq.pop(key, None)
        self._changed(key, None)
        if len(self._order_key) > 64 and len(self._order_key) > 2 * len(self.data):
            self._compact_order()
        return True

    def expire_at(self, key: bytes, deadline_ms: int) -> bool:
        if self.get(key) is None:
            return False
        if deadline_ms <= now_ms():
            self.delete(key)
        else:
            self.expires[key] = deadline_ms
            self.dirty.add(key)
        return True

    def persist(self, key: bytes) -> bool:
        if self.get(key) is None or key not in self.expires:
            return False
        del self.expires[key]
        self.dirty.add(key)
        return True

    def flush(self) -> None:
        keys = list(self.data)
        self.data.clear()
        self.expires.clear()
        self._key_seq.clear()
        self._order_seq.clear()
        self._order_key.clear()
        self.dirty.clear()
        self.flushed_all = True
        for key in keys:
            for fn in self.listeners:
                fn(key, None)

    def load(self, key: bytes, value, deadline_ms) -> None:
        """Restore a key at start-up (not dirty: it came from the durable record)."""
        self.set(key, value)
        if deadline_ms is not None:
            self.expires[key] = deadline_ms
        self.dirty.discard(key)

    def expire_some(self, limit: int = 1000) -> int:
        """Active expiry: reclaim up to ``limit`` keys whose deadline has passed."""
        if not self.expires:
            return 0
        t = now_ms()
        dead = [k for k, d in self.expires.items() if d <= t][:limit]
        for k in dead:
            self.delete(k)
        return len(dead)

    # -- iteration ----------------------------------------------------------------
    def _compact_order(self) -> None:
        live = [(s, k) for s, k in zip(self._order_seq, self._order_key) if self._key_seq.get(k) == s]
        self._order_seq = [s for s, _ in live]
        self._order_key = [k for _, k in live]

    def scan(self, cursor: int, count: int, match=None, type_filter=None):
        """One SCAN step: (next_cursor, keys). Keys that exist throughout a full
        iteration are returned exactly once; cursor 0 means done."""
        start = bisect.bisect_left(self._order_seq, cursor)
        out, i, n = [], start, len(self._order_seq)
        t = now_ms()
        while i < n and i - start < count:
            s, k = self._order_seq[i], self._order_key[i]
            i += 1
            if self._key_seq.get(k) != s:
                continue
            d = self.expires.get(k)
            if d is not None and d <= t:
                continue
            if match is not None and not match.match(k):
                continue
            if type_filter is not None and type_name(self.data[k]).lower() != type_filter:
                continue
            out.append(k)
        next_cursor = 0 if i >= n else self._order_seq[i]
        return next_cursor, out

    def keys(self, match=None) -> list:
        t = now_ms()
        return [k for k in self.data
                if (match is None or match.match(k))
                and not (k in self.expires and self.expires[k] <= t)]
