"""The server's durable record: two key tables in a nearkit store.

``--data DIR`` is a store directory (``nearkit.store``): the server opens it as
``nearkit.open(DIR, durability=...)`` does, so it holds the store's writer lock
(a second server, or any other writer, is refused with the holder's pid) and
writes through the store's SQLite and durability modes. Its state lives in two
key tables (``nearkit.store.KeyTable``):

- ``server.keys``:    key -> encoded value (type, expiry deadline, contents);
- ``server.indexes``: FT index name -> its definition (JSON).

The server calls ``flush()`` after each batch of requests and before it sends
their replies: the keys and index definitions the batch changed are written in
one atomic store write. What that means for a crash (``kill -9``), by mode:

- ``always``:   committed (synchronous=FULL) before any reply leaves; every
                connection served in the same loop tick shares the one commit.
- ``everysec``: written at once, committed by the store's flusher about once a
                second: a crash loses at most about a second, never half a batch.
- ``off``:      like everysec without fsync (bulk loads; a power cut may lose more).

Search indexes are rebuilt from the keys at start-up, like Redis rebuilding
from its RDB file; HNSW graphs can start from a snapshot instead (``snapshot.py``),
named by ``changes``, the count of key writes recorded so far.
"""

from __future__ import annotations

import json
import os
import struct

from ..store import DURABILITY_MODES, Database
from .fulltext.suggest import SugDict
from .keyspace import JsonDoc

MODES = DURABILITY_MODES
KEYS_TABLE = "server.keys"
INDEXES_TABLE = "server.indexes"
DICTS_TABLE = "server.dicts"
SKIPPED_TABLE = "server.skipped"
# The file of the first server format (its own SQLite, before the store held the data).
OLD_FILE = "nearkit-server.sqlite3"

# A stored value: type code (0 string, 1 hash, 2 JSON), expiry deadline in ms (-1: none), contents.
_HEADER = struct.Struct("<Bq")
_NO_EXPIRY = -1


def skipped_row(index: bytes, key: bytes) -> bytes:
    return len(index).to_bytes(4, "big") + index + key


class OldDataError(ValueError):
    """The data directory holds the server's first on-disk format, which is no longer read."""


def encode_record(value, expire_ms) -> bytes:
    head = _HEADER.pack
    exp = _NO_EXPIRY if expire_ms is None else expire_ms
    t = type(value)
    if t is bytes:
        return head(0, exp) + value
    if t is dict:
        parts = [head(1, exp), struct.pack("<I", len(value))]
        for f, v in value.items():
            parts.append(struct.pack("<II", len(f), len(v)))
            parts.append(f)
            parts.append(v)
        return b"".join(parts)
    if t is JsonDoc:
        return head(2, exp) + json.dumps(value.value, separators=(",", ":")).encode()
    if t is SugDict:
        return head(3, exp) + json.dumps(value.to_json(), separators=(",", ":")).encode()
    raise TypeError(f"cannot store {t.__name__}")


def decode_record(blob: bytes):
    """-> (value, expire_ms or None)."""
    kind, exp = _HEADER.unpack_from(blob, 0)
    pos = _HEADER.size
    exp = None if exp == _NO_EXPIRY else exp
    if kind == 0:
        return blob[pos:], exp
    if kind == 1:
        (n,) = struct.unpack_from("<I", blob, pos)
        pos, out = pos + 4, {}
        for _ in range(n):
            lf, lv = struct.unpack_from("<II", blob, pos)
            pos += 8
            f = blob[pos:pos + lf]
            pos += lf
            out[f] = blob[pos:pos + lv]
            pos += lv
        return out, exp
    if kind == 2:
        return JsonDoc(json.loads(blob[pos:])), exp
    if kind == 3:
        return SugDict.from_json(json.loads(blob[pos:])), exp
    raise ValueError(f"unknown stored value kind {kind}")


def refuse_old_format(directory: str) -> None:
    old = os.path.join(directory, OLD_FILE)
    if os.path.exists(old):
        raise OldDataError(
            f"{directory!r} holds data in the old server format ({OLD_FILE}), which this version "
            f"does not read; start with a new --data directory (or move that file away to discard it)")


class Durable:
    """The server's view of its store: keys and index definitions, flushed per batch."""

    def __init__(self, directory: str, mode: str = "always"):
        if mode not in MODES:
            raise ValueError(f"durability must be one of {', '.join(MODES)}, not {mode!r}")
        refuse_old_format(directory)
        # Raises StoreLockedError (naming the holder) if another writer has the store.
        self.db = Database(directory, durability=mode, auto_snapshot=None)
        try:
            self.keys = self.db.key_table(KEYS_TABLE)
            self.indexes = self.db.key_table(INDEXES_TABLE)
            # FT.DICTADD word lists (name -> JSON list) and the keys SKIPINITIALSCAN left out
            # of an index (skipped_row(index, key) -> b""), so both survive a restart.
            self.dicts = self.db.key_table(DICTS_TABLE)
            self.skipped = self.db.key_table(SKIPPED_TABLE)
        except BaseException:
            self.db.close(snapshot=False)
            raise
        self.mode = mode
        self.directory = self.db.path
        # Index definition changes waiting for the next flush: name -> JSON bytes or None (drop).
        self._index_ops: dict = {}
        self._drop_all_indexes = False
        self._dict_ops: dict = {}  # dict name -> JSON bytes or None (gone)
        self._skip_ops: dict = {}  # skipped_row(...) -> True (add) or False (remove)
        self.indexes_pending = False  # a plain attribute: the server checks it for every reply

    @property
    def changes(self) -> int:
        return self.keys.changes

    # -- start-up ------------------------------------------------------------
    def load_keys(self):
        for key, blob in self.keys.items():
            value, exp = decode_record(blob)
            yield key, value, exp

    def load_indexes(self):
        for name, definition in self.indexes.items():
            yield name, json.loads(definition)

    def load_dicts(self):
        for name, words in self.dicts.items():
            yield name, json.loads(words)

    def load_skipped(self) -> dict:
        """{index name: set of keys SKIPINITIALSCAN left out and no write has touched since}."""
        out: dict = {}
        for row in self.skipped.keys():
            n = int.from_bytes(row[:4], "big")
            out.setdefault(row[4:4 + n], set()).add(row[4 + n:])
        return out

    # -- writing -----------------------------------------------------------------
    def save_dict(self, name: bytes, words) -> None:
        self._dict_ops[name] = (None if words is None else
                                json.dumps(sorted(w.decode("latin-1") for w in words)).encode())
        self.indexes_pending = True

    def set_skipped(self, index: bytes, keys, skipped: bool) -> None:
        for key in keys:
            self._skip_ops[skipped_row(index, key)] = skipped
        self.indexes_pending = True

    def save_index(self, name: bytes, definition: dict) -> None:
        self._index_ops[name] = json.dumps(definition).encode()
        self.indexes_pending = True

    def drop_index(self, name: bytes) -> None:
        self._index_ops[name] = None
        self.indexes_pending = True

    def drop_all_indexes(self) -> None:
        self._index_ops.clear()
        self._skip_ops.clear()
        self._drop_all_indexes = True
        self.indexes_pending = True

    def write(self, keyspace) -> None:
        """Write the keys changed since the last call (``keyspace.dirty``) and pending
        index definition changes, in one atomic store write."""
        if not keyspace.dirty and not keyspace.flushed_all and not self.indexes_pending:
            return
        upserts, deletes = [], []
        data, expires = keyspace.data, keyspace.expires
        for key in keyspace.dirty:
            value = data.get(key)
            if value is None:
                deletes.append(key)
            else:
                upserts.append((key, encode_record(value, expires.get(key))))
        ops, dops, sops = self._index_ops, self._dict_ops, self._skip_ops
        self.db.write_batches(
            self.keys.batch(upserts, deletes, clear=keyspace.flushed_all),
            self.indexes.batch([(n, d) for n, d in ops.items() if d is not None],
                               [n for n, d in ops.items() if d is None], clear=self._drop_all_indexes),
            self.dicts.batch([(n, w) for n, w in dops.items() if w is not None],
                             [n for n, w in dops.items() if w is None]),
            self.skipped.batch([(r, b"") for r, add in sops.items() if add],
                               [r for r, add in sops.items() if not add],
                               clear=self._drop_all_indexes))
        # Only now: a write that failed is retried by the next flush.
        keyspace.dirty.clear()
        keyspace.flushed_all = False
        self._index_ops, self._dict_ops, self._skip_ops = {}, {}, {}
        self._drop_all_indexes = False
        self.indexes_pending = False

    def flush(self, keyspace, force: bool = False) -> None:
        """Write what changed; commit now when ``force`` (under always every write commits)."""
        self.write(keyspace)
        if force:
            self.db.flush()

    def close(self, keyspace=None) -> None:
        """Write what changed, commit, release the writer lock."""
        try:
            if keyspace is not None:
                self.write(keyspace)
        finally:
            self.db.close(snapshot=False)
