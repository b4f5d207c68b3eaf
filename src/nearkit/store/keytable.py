"""Key tables: durable maps from byte keys to byte values in the store's SQLite.

    with nearkit.open("data", durability="always") as db:
        kt = db.key_table("sessions")
        kt.write(upserts=[(b"a", b"1"), (b"b", b"2")], deletes=[b"old"])
        dict(kt.items())

A key table is a plain durable record for callers that keep their own data in
memory (the Redis-compatible server keeps its key space in one): the store does
not interpret the values. Writes go through the store's ``SqliteStore`` like
collection writes, so they share its writer lock and durability mode: one
``write`` call is atomic, and under ``"always"`` it is committed before the call
returns; under ``"everysec"``/``"off"`` the store's background flusher commits it
within about a second (``db.flush()`` commits at once). Batch many keys into one
call: under ``"always"`` each call costs one commit. ``db.write_batches`` writes
several tables in one atomic call (``kt.batch(...)`` prepares each table's part).

SQLite layout: the catalog row ``key_tables(tid, name, changes)`` and one table
``kv_<tid>(key BLOB PRIMARY KEY, value BLOB) WITHOUT ROWID`` per key table.
``changes`` counts the rows ever written (upserted or deleted; a ``clear`` counts
one) and is committed in the same transaction as the rows it counts, so it names
a state of the table (useful to name snapshots of something built from it).
"""

from __future__ import annotations

import sqlite3


class KeyTableNotFound(KeyError):
    def __str__(self):
        return str(self.args[0])


def _blob(x, what: str) -> bytes:
    if type(x) is bytes:
        return x
    if isinstance(x, (bytearray, memoryview)):
        return bytes(x)
    raise TypeError(f"key table {what} must be bytes, got {type(x).__name__} ({x!r:.60})")


def list_tables(sql) -> list[tuple[int, str, int]]:
    """(tid, name, changes) of every key table, by name."""
    try:
        return [tuple(r) for r in sql.read("SELECT tid, name, changes FROM key_tables ORDER BY name")]
    except sqlite3.OperationalError:  # a read-only store written before key tables existed
        return []


def create_table(sql, name: str) -> int:
    def tx(conn):
        cur = conn.execute("INSERT INTO key_tables(name, changes) VALUES (?, 0)", (name,))
        tid = cur.lastrowid
        conn.execute(f"CREATE TABLE kv_{tid} (key BLOB PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID")
        return tid

    tid = sql.write(tx)
    sql.flush()  # a table's existence is durable at once, like a collection's
    return tid


def drop_table(sql, tid: int) -> None:
    def tx(conn):
        conn.execute(f"DROP TABLE IF EXISTS kv_{tid}")
        conn.execute("DELETE FROM key_tables WHERE tid=?", (tid,))

    sql.write(tx)
    sql.flush()


class KeyBatch:
    """One table's share of an atomic write (made by ``KeyTable.batch``)."""

    __slots__ = ("table", "upserts", "deletes", "clear")

    def __init__(self, table: "KeyTable", upserts: list, deletes: list, clear: bool):
        self.table, self.upserts, self.deletes, self.clear = table, upserts, deletes, clear

    def __len__(self) -> int:
        """Rows it writes (what it adds to the table's ``changes``)."""
        return len(self.upserts) + len(self.deletes) + (1 if self.clear else 0)

    def _apply(self, conn, changes: int) -> None:
        t = self.table._table
        if self.clear:
            conn.execute(f"DELETE FROM {t}")
        if self.deletes:
            conn.executemany(f"DELETE FROM {t} WHERE key=?", self.deletes)
        if self.upserts:
            conn.executemany(f"INSERT OR REPLACE INTO {t}(key, value) VALUES (?,?)", self.upserts)
        conn.execute("UPDATE key_tables SET changes=? WHERE tid=?", (changes, self.table._tid))


def write_batches(sql, batches) -> None:
    """Apply the batches in one ``SqliteStore.write`` call: all or none of them, one commit."""
    batches = [b for b in batches if len(b)]
    if not batches:
        return
    tables = [b.table for b in batches]
    if len(set(map(id, tables))) != len(tables):
        raise ValueError("write_batches: at most one batch per key table")
    for t in tables:
        t._check()
        if t._sql is not sql:
            raise ValueError(f"key table {t.name!r} belongs to another store")
    with sql.lock:  # the counters and the rows change together
        counts = [b.table._changes + len(b) for b in batches]

        def tx(conn):
            for b, c in zip(batches, counts):
                b._apply(conn, c)

        sql.write(tx)
        for b, c in zip(batches, counts):
            b.table._changes = c


class KeyTable:
    """Use ``Database.key_table(name)``; not constructed directly."""

    def __init__(self, db, tid: int, name: str, changes: int):
        self._db = db
        self._sql = db._sql
        self._tid = tid
        self._table = f"kv_{tid}"
        self.name = name
        self._changes = changes
        self._dropped = False

    def __repr__(self):
        return f"KeyTable({self.name!r}, changes={self._changes})"

    def _check(self):
        self._db._check()
        if self._dropped:
            raise RuntimeError(f"key table {self.name!r} was dropped")

    @property
    def changes(self) -> int:
        """Rows written so far (including writes not yet committed under everysec/off)."""
        return self._changes

    def batch(self, upserts=(), deletes=(), clear: bool = False) -> "KeyBatch":
        """Prepare (validate) a write of this table without applying it; apply it with
        ``write`` semantics, together with other tables' batches, via
        ``Database.write_batches(*batches)`` — one atomic transaction for all of them."""
        self._check()
        ups = [(_blob(k, "keys"), _blob(v, "values")) for k, v in upserts]
        dels = [(_blob(k, "keys"),) for k in deletes]
        return KeyBatch(self, ups, dels, bool(clear))

    def write(self, upserts=(), deletes=(), clear: bool = False) -> int:
        """Apply one atomic batch: ``clear`` (delete every key) first, then ``deletes``
        (keys; missing ones are ignored), then ``upserts`` (``(key, value)`` pairs).

        Durable per the store's mode when it returns (see the module docstring).
        Returns the new ``changes`` count.
        """
        write_batches(self._sql, [self.batch(upserts, deletes, clear)])
        return self._changes

    def upsert(self, key, value) -> int:
        return self.write(upserts=[(key, value)])

    def delete(self, key) -> int:
        return self.write(deletes=[key])

    def clear(self) -> int:
        return self.write(clear=True)

    def get(self, key, default=None):
        """The value stored under ``key`` (as written so far by this process), or ``default``."""
        self._check()
        rows = self._sql.read(f"SELECT value FROM {self._table} WHERE key=?", (_blob(key, "keys"),))
        return rows[0][0] if rows else default

    def __contains__(self, key) -> bool:
        return self.get(key) is not None

    def __len__(self) -> int:
        self._check()
        return self._sql.read(f"SELECT COUNT(*) FROM {self._table}")[0][0]

    def items(self):
        """Yield every ``(key, value)``, in key order (read in batches). The store's lock
        is held until the iteration ends: other threads' writes wait, and writing to
        the table from inside the loop is not supported."""
        self._check()
        for rows in self._sql.iter_rows(f"SELECT key, value FROM {self._table} ORDER BY key"):
            yield from rows

    def keys(self):
        """Yield every key, in order."""
        self._check()
        for rows in self._sql.iter_rows(f"SELECT key FROM {self._table} ORDER BY key"):
            for (k,) in rows:
                yield k
