"""Durable record of the key space and the index definitions, in SQLite (WAL).

The server calls ``flush()`` after each batch of requests and before it sends
their replies: the keys changed by the batch are written in one transaction.
What that means for a crash (``kill -9``) by durability mode:

- ``always``:   the transaction is committed (synchronous=FULL) before any reply
                leaves, so every acknowledged write survives, even power loss.
- ``everysec``: rows are written at once but committed about once a second;
                a crash loses at most about a second of writes, never half a key.
- ``off``:      committed only every few seconds and at shutdown (bulk loads).

Search indexes are rebuilt from the keys at start-up, like Redis rebuilding
from its RDB file; HNSW graphs can start from a snapshot instead (``snapshot.py``),
named by ``changes``, the count of key writes committed here so far.
"""

from __future__ import annotations

import json
import os
import sqlite3
import struct
import time

from .keyspace import JsonDoc

MODES = ("always", "everysec", "off")


def encode_value(value) -> tuple[int, bytes]:
    t = type(value)
    if t is bytes:
        return 0, value
    if t is dict:
        parts = [struct.pack("<I", len(value))]
        for f, v in value.items():
            parts.append(struct.pack("<II", len(f), len(v)))
            parts.append(f)
            parts.append(v)
        return 1, b"".join(parts)
    if t is JsonDoc:
        return 2, json.dumps(value.value, separators=(",", ":")).encode()
    raise TypeError(f"cannot store {t.__name__}")


def decode_value(kind: int, blob: bytes):
    if kind == 0:
        return bytes(blob)
    if kind == 1:
        (n,) = struct.unpack_from("<I", blob, 0)
        pos, out = 4, {}
        for _ in range(n):
            lf, lv = struct.unpack_from("<II", blob, pos)
            pos += 8
            f = bytes(blob[pos:pos + lf])
            pos += lf
            out[f] = bytes(blob[pos:pos + lv])
            pos += lv
        return out
    if kind == 2:
        return JsonDoc(json.loads(blob))
    raise ValueError(f"unknown stored value kind {kind}")


class Durable:
    """SQLite-backed record of keys and index definitions."""

    def __init__(self, directory: str, mode: str = "always"):
        if mode not in MODES:
            raise ValueError(f"durability must be one of {', '.join(MODES)}, not {mode!r}")
        os.makedirs(directory, exist_ok=True)
        self.mode = mode
        self.path = os.path.join(directory, "nearkit-server.sqlite3")
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=" + ("FULL" if mode == "always" else "NORMAL"))
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS keys (key BLOB PRIMARY KEY, kind INTEGER NOT NULL,"
            " value BLOB NOT NULL, expire_ms INTEGER) WITHOUT ROWID")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS indexes (name BLOB PRIMARY KEY, definition TEXT NOT NULL)")
        self.db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER)")
        row = self.db.execute("SELECT value FROM meta WHERE name = 'changes'").fetchone()
        self.changes = int(row[0]) if row else 0
        self.directory = directory
        self._in_tx = False
        self._last_commit = time.monotonic()
        self._commit_every = {"always": 0.0, "everysec": 1.0, "off": 5.0}[mode]

    # -- start-up ------------------------------------------------------------
    def load_keys(self):
        for key, kind, blob, exp in self.db.execute("SELECT key, kind, value, expire_ms FROM keys"):
            yield bytes(key), decode_value(kind, blob), exp

    def load_indexes(self):
        for name, definition in self.db.execute("SELECT name, definition FROM indexes"):
            yield bytes(name), json.loads(definition)

    # -- writing -----------------------------------------------------------------
    def _begin(self) -> None:
        if not self._in_tx:
            self.db.execute("BEGIN")
            self._in_tx = True

    def write(self, keyspace) -> None:
        """Write the keys changed since the last call (``keyspace.dirty``)."""
        if not keyspace.dirty and not keyspace.flushed_all:
            return
        self._begin()
        if keyspace.flushed_all:
            self.db.execute("DELETE FROM keys")
            keyspace.flushed_all = False
        upserts, deletes = [], []
        data, expires = keyspace.data, keyspace.expires
        for key in keyspace.dirty:
            value = data.get(key)
            if value is None:
                deletes.append((key,))
            else:
                kind, blob = encode_value(value)
                upserts.append((key, kind, blob, expires.get(key)))
        keyspace.dirty.clear()
        self.changes += len(upserts) + len(deletes)
        self.db.execute("INSERT OR REPLACE INTO meta (name, value) VALUES ('changes', ?)",
                        (self.changes,))
        if deletes:
            self.db.executemany("DELETE FROM keys WHERE key = ?", deletes)
        if upserts:
            self.db.executemany(
                "INSERT OR REPLACE INTO keys (key, kind, value, expire_ms) VALUES (?, ?, ?, ?)",
                upserts)

    def save_index(self, name: bytes, definition: dict) -> None:
        self._begin()
        self.db.execute("INSERT OR REPLACE INTO indexes (name, definition) VALUES (?, ?)",
                        (name, json.dumps(definition)))

    def drop_index(self, name: bytes) -> None:
        self._begin()
        self.db.execute("DELETE FROM indexes WHERE name = ?", (name,))

    def drop_all_indexes(self) -> None:
        self._begin()
        self.db.execute("DELETE FROM indexes")

    def flush(self, keyspace, force: bool = False) -> None:
        """Write dirty keys; commit if the mode says it is time (always: every call)."""
        self.write(keyspace)
        if self._in_tx and (force or time.monotonic() - self._last_commit >= self._commit_every):
            self.db.execute("COMMIT")
            self._in_tx = False
            self._last_commit = time.monotonic()

    def close(self, keyspace=None) -> None:
        if keyspace is not None:
            self.flush(keyspace, force=True)
        elif self._in_tx:
            self.db.execute("COMMIT")
            self._in_tx = False
        self.db.close()
