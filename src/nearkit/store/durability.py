"""The durable record: SQLite in WAL mode, the writer lock, and the flush policy.

Every key, vector and payload lives in SQLite; index files are only snapshots.
Each collection has two tables:

- ``items_<cid>(id, key, seq, vector, payload)``: one row per live key. Rows are
  never updated in place: an upsert of an existing key deletes the old row and
  inserts a new one with a fresh id, so an index snapshot taken at sequence S
  holds exactly the rows with seq <= S.
- ``tomb_<cid>(id, seq)``: ids deleted (or replaced) at change sequence ``seq``,
  kept until no retained snapshot predates them.

Key tables (``keytable.py``) live in the same database: ``key_tables(tid, name,
changes)`` and ``kv_<tid>(key, value)``, written through the same ``write``.

Durability modes (how a write call becomes durable):

- ``always``: synchronous=FULL and a COMMIT at the end of every write call, so
  an acknowledged write survives kill -9 (and power loss, as far as fsync goes).
- ``everysec``: writes go into an open transaction; a background thread commits
  (synchronous=FULL) about once a second. A crash loses at most ~1 s of writes.
  Each write call runs inside a SAVEPOINT, so a record is never half-written.
- ``off``: like everysec without fsync (synchronous=OFF) — for bulk loads.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sqlite3
import threading

DURABILITY_MODES = ("always", "everysec", "off")
FLUSH_INTERVAL = 1.0


class StoreLockedError(RuntimeError):
    """Another process (or another open Database in this one) holds the store's writer lock."""


class WriterLock:
    """An exclusive fcntl lock on ``<store>/LOCK`` whose file names the holder's pid."""

    def __init__(self, directory: str):
        self.path = os.path.join(directory, "LOCK")
        self._fd = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            where = " (this process)" if holder == str(os.getpid()) else ""
            raise StoreLockedError(
                f"store {os.path.dirname(self.path)!r} is already open for writing by "
                f"process {holder}{where}; open it with read_only=True or close the other writer"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None


class SqliteStore:
    """One SQLite connection shared by the store, serialised by ``self.lock``."""

    def __init__(self, path: str, durability: str = "always", read_only: bool = False):
        if durability not in DURABILITY_MODES:
            raise ValueError(f"durability must be one of {DURABILITY_MODES}, got {durability!r}")
        self.durability = durability
        self.read_only = read_only
        self.lock = threading.RLock()
        if read_only:
            self.conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None,
                                        check_same_thread=False)
        else:
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            try:
                self.conn.execute("PRAGMA journal_mode=WAL")
                sync = "OFF" if durability == "off" else "FULL"
                self.conn.execute(f"PRAGMA synchronous={sync}")
                self._create_catalog()
            except BaseException:  # e.g. "file is not a database": no connection left behind
                self.conn.close()
                raise
        self._in_txn = False
        self._stop = threading.Event()
        self._flusher = None
        if not read_only and durability != "always":
            self._flusher = threading.Thread(target=self._flush_loop, name="nearkit-store-flusher",
                                             daemon=True)
            self._flusher.start()

    def _create_catalog(self):
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS collections ("
            " cid INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, dim INTEGER NOT NULL,"
            " metric TEXT NOT NULL, index_kind TEXT NOT NULL, index_params TEXT NOT NULL,"
            " fields TEXT NOT NULL, next_id INTEGER NOT NULL, seq INTEGER NOT NULL)")
        # Key tables (keytable.py): durable byte maps for callers that keep their own data.
        self.conn.execute(
            "CREATE TABLE IF NOT EXISTS key_tables ("
            " tid INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, changes INTEGER NOT NULL)")

    # -- transactions --------------------------------------------------------------------
    def write(self, fn):
        """Run ``fn(conn)`` atomically as one write call, then make it durable per the mode."""
        if self.read_only:
            raise PermissionError("this store was opened read-only")
        with self.lock:
            if not self._in_txn:
                self.conn.execute("BEGIN IMMEDIATE")
                self._in_txn = True
            self.conn.execute("SAVEPOINT nk_write")
            try:
                result = fn(self.conn)
            except BaseException:
                self.conn.execute("ROLLBACK TO nk_write")
                self.conn.execute("RELEASE nk_write")
                raise
            self.conn.execute("RELEASE nk_write")
            if self.durability == "always":
                self._commit()
            return result

    def _commit(self):
        if self._in_txn:
            self.conn.execute("COMMIT")
            self._in_txn = False

    def flush(self):
        """Commit whatever is pending (everysec/off) now."""
        with self.lock:
            self._commit()

    def _flush_loop(self):
        while not self._stop.wait(FLUSH_INTERVAL):
            try:
                self.flush()
            except sqlite3.Error:  # a closed connection during shutdown
                return

    def read(self, sql: str, args=()):
        with self.lock:
            return self.conn.execute(sql, args).fetchall()

    def iter_rows(self, sql: str, args=(), batch: int = 65536):
        """Yield row batches; holds the lock per batch only."""
        with self.lock:
            cur = self.conn.execute(sql, args)
            while True:
                rows = cur.fetchmany(batch)
                if not rows:
                    return
                yield rows

    def close(self):
        self._stop.set()
        if self._flusher is not None:
            self._flusher.join()
        with self.lock:
            try:
                if not self.read_only:
                    self._commit()
                    try:
                        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                    except sqlite3.Error:
                        pass
            finally:
                self.conn.close()

    # -- catalog -------------------------------------------------------------------------
    def collections(self) -> list[dict]:
        rows = self.read("SELECT cid, name, dim, metric, index_kind, index_params, fields, next_id, seq"
                         " FROM collections ORDER BY name")
        return [dict(cid=r[0], name=r[1], dim=r[2], metric=r[3], index_kind=r[4],
                     index_params=json.loads(r[5]), fields=json.loads(r[6]), next_id=r[7], seq=r[8])
                for r in rows]

    def create_collection(self, name, dim, metric, index_kind, index_params, fields) -> int:
        def tx(conn):
            cur = conn.execute(
                "INSERT INTO collections(name, dim, metric, index_kind, index_params, fields, next_id, seq)"
                " VALUES (?,?,?,?,?,?,0,0)",
                (name, dim, metric, index_kind, json.dumps(index_params), json.dumps(fields)))
            cid = cur.lastrowid
            conn.execute(f"CREATE TABLE items_{cid} (id INTEGER PRIMARY KEY, key TEXT UNIQUE NOT NULL,"
                         " seq INTEGER NOT NULL, vector BLOB NOT NULL, payload TEXT)")
            conn.execute(f"CREATE INDEX items_{cid}_seq ON items_{cid}(seq)")
            conn.execute(f"CREATE TABLE tomb_{cid} (id INTEGER PRIMARY KEY, seq INTEGER NOT NULL)")
            conn.execute(f"CREATE INDEX tomb_{cid}_seq ON tomb_{cid}(seq)")
            return cid

        cid = self.write(tx)
        self.flush()   # a collection's existence is always durable at once
        return cid

    def drop_collection(self, cid: int) -> None:
        def tx(conn):
            conn.execute(f"DROP TABLE IF EXISTS items_{cid}")
            conn.execute(f"DROP TABLE IF EXISTS tomb_{cid}")
            conn.execute("DELETE FROM collections WHERE cid=?", (cid,))

        self.write(tx)
        self.flush()
