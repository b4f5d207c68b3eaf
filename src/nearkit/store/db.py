"""The embedded store: a directory holding SQLite, the writer lock and index snapshots.

    with nearkit.open("my.db", durability="everysec") as db:
        col = db.create_collection("films", dim=128, metric="cosine", index="hnsw",
                                   fields={"genre": "tag", "year": "numeric", "title": "text"})
        col.upsert(["k1"], [vec], [{"genre": "drama", "year": 1994}])
        col.search(q, 10, where="@genre:{drama} @year:[1990 (2000]")

Layout: ``<path>/store.sqlite`` (+ WAL files), ``<path>/LOCK``,
``<path>/snapshots/<collection id>/<seq>.nki``. Besides collections, a store holds
key tables (``db.key_table(name)``, see ``keytable.py``): durable byte maps that
share the store's SQLite, writer lock and durability mode.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import weakref

from ..metrics import normalize_metric
from . import keytable, snapshots
from .collection import Collection, make_index
from .durability import DURABILITY_MODES, SqliteStore, WriterLock
from .keytable import KeyTable, KeyTableNotFound
from .schema import normalize_schema

_OPEN: "weakref.WeakSet[Database]" = weakref.WeakSet()


class CollectionNotFound(KeyError):
    def __str__(self):
        return str(self.args[0])


class Database:
    def __init__(self, path, durability: str = "always", read_only: bool = False,
                 auto_snapshot: int | None = 100_000):
        if durability not in DURABILITY_MODES:
            raise ValueError(f"durability must be one of {DURABILITY_MODES}, got {durability!r}")
        self.path = os.path.abspath(os.fspath(path))
        self.durability = durability
        self.read_only = read_only
        if auto_snapshot is not None and (isinstance(auto_snapshot, bool) or not isinstance(auto_snapshot, int)
                                          or auto_snapshot < 1):
            raise ValueError(f"auto_snapshot must be a positive number of rows or None, got {auto_snapshot!r}")
        self.auto_snapshot = auto_snapshot
        self._lock = None
        if read_only:
            if not os.path.exists(os.path.join(self.path, "store.sqlite")):
                raise FileNotFoundError(f"no store at {self.path!r} to open read-only")
        else:
            if os.path.exists(self.path) and not os.path.isdir(self.path):
                raise ValueError(f"{self.path!r} exists and is not a directory")
            os.makedirs(self.path, exist_ok=True)
            self._lock = WriterLock(self.path)
            self._lock.acquire()
        try:
            self._sql = SqliteStore(os.path.join(self.path, "store.sqlite"), durability, read_only)
        except BaseException:
            if self._lock:
                self._lock.release()
            raise
        self._mutex = threading.RLock()
        self._collections: dict[str, Collection] = {}
        self._key_tables: dict[str, KeyTable] = {}
        self._closed = False
        _OPEN.add(self)

    def __repr__(self):
        return f"Database({self.path!r}, durability={self.durability!r}{', read_only' if self.read_only else ''})"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _check(self):
        if self._closed:
            raise RuntimeError(f"database {self.path!r} is closed")

    def _meta(self, name: str) -> dict | None:
        for m in self._sql.collections():
            if m["name"] == name:
                return m
        return None

    def list_collections(self) -> list[str]:
        self._check()
        return [m["name"] for m in self._sql.collections()]

    def create_collection(self, name: str, dim: int, metric: str = "l2", index: str = "hnsw",
                          index_params: dict | None = None, fields: dict | None = None,
                          exist_ok: bool = False) -> Collection:
        """Create a collection (its definition is durable at once) and return it.

        ``exist_ok=True`` returns the existing collection of that name if its definition
        is the one asked for (``index_params`` / ``fields`` left as None are not compared;
        fields it has beyond those asked for, from ``add_field``, are fine), and raises
        ValueError naming what differs otherwise.
        """
        from .. import _validate

        self._check()
        if self.read_only:
            raise PermissionError("the store was opened read-only")
        if not isinstance(name, str) or not name:
            raise ValueError(f"collection name must be a non-empty string, got {name!r}")
        dim = _validate.check_positive_int(dim, "dim")
        metric = normalize_metric(metric)
        if not isinstance(index, str):
            raise TypeError(f"index must be an index kind name such as 'hnsw' or 'flat', got {index!r}")
        index = index.lower()
        given_params = index_params
        index_params = dict(index_params or {})
        schema = normalize_schema(fields)
        with self._mutex:
            existing = self._meta(name)
            if existing is not None:
                if not exist_ok:
                    raise ValueError(f"collection {name!r} already exists")
                # compared as stored (JSON), so (1, 2) and [1, 2] are the same parameter;
                # index_params / fields left out (None) are not compared
                wanted = dict(dim=dim, metric=metric, index_kind=index)
                if given_params is not None:
                    wanted["index_params"] = index_params
                if fields is not None:
                    wanted["fields"] = schema
                wanted = json.loads(json.dumps(wanted))
                _check_same_definition(name, existing, wanted)
                return self.get_collection(name)
            probe = make_index(index, dim, metric, index_params)  # fail now on a bad kind or params
            if getattr(probe, "is_trained", True) is False and getattr(probe, "train_size", None) is None:
                raise ValueError(
                    f"index={index!r} with train_size=None must be trained before it holds "
                    "vectors, which a collection does not do: leave train_size out (it trains "
                    "itself once it holds enough) or use index='hnsw' or 'flat'")
            self._sql.create_collection(name, dim, metric, index, index_params, schema)
            return self.get_collection(name)

    def get_collection(self, name: str) -> Collection:
        """The named collection, opened (recovered) on first use."""
        self._check()
        with self._mutex:
            col = self._collections.get(name)
            if col is not None:
                return col
            meta = self._meta(name)
            if meta is None:
                have = ", ".join(self.list_collections()) or "none"
                raise CollectionNotFound(f"no collection {name!r} (collections: {have})")
            col = Collection(self, meta)
            col._load()
            self._collections[name] = col
            return col

    def __contains__(self, name) -> bool:
        return self._meta(name) is not None

    def drop_collection(self, name: str) -> None:
        self._check()
        if self.read_only:
            raise PermissionError("the store was opened read-only")
        with self._mutex:
            meta = self._meta(name)
            if meta is None:
                raise CollectionNotFound(f"no collection {name!r}")
            col = self._collections.pop(name, None)
            if col is not None:
                col._wait_for_snapshot()  # its files must not land after the directory is gone
                with col._write_mutex:
                    col._closed = True
            self._sql.drop_collection(meta["cid"])
            snapshots.remove_all(snapshots.directory(self.path, meta["cid"]))

    # -- key tables ------------------------------------------------------------------------
    def key_table(self, name: str, create: bool = True) -> KeyTable:
        """The named key table (a durable bytes -> bytes map), created if missing
        (its existence is durable at once) unless ``create=False``."""
        self._check()
        if not isinstance(name, str) or not name:
            raise ValueError(f"key table name must be a non-empty string, got {name!r}")
        with self._mutex:
            kt = self._key_tables.get(name)
            if kt is not None:
                return kt
            row = next((r for r in keytable.list_tables(self._sql) if r[1] == name), None)
            if row is None:
                if not create or self.read_only:
                    have = ", ".join(self.list_key_tables()) or "none"
                    raise KeyTableNotFound(f"no key table {name!r} (key tables: {have})")
                tid = keytable.create_table(self._sql, name)
                row = (tid, name, 0)
            kt = KeyTable(self, *row)
            self._key_tables[name] = kt
            return kt

    def write_batches(self, *batches) -> None:
        """Apply ``KeyTable.batch(...)`` results of several key tables atomically, as one
        write call (one commit under "always")."""
        self._check()
        keytable.write_batches(self._sql, batches)

    def list_key_tables(self) -> list[str]:
        self._check()
        return [r[1] for r in keytable.list_tables(self._sql)]

    def drop_key_table(self, name: str) -> None:
        self._check()
        if self.read_only:
            raise PermissionError("the store was opened read-only")
        with self._mutex:
            row = next((r for r in keytable.list_tables(self._sql) if r[1] == name), None)
            if row is None:
                raise KeyTableNotFound(f"no key table {name!r}")
            kt = self._key_tables.pop(name, None)
            if kt is not None:
                kt._dropped = True
            keytable.drop_table(self._sql, row[0])

    def snapshot(self) -> None:
        """Snapshot every opened collection that changed since its last snapshot."""
        self._check()
        with self._mutex:
            for col in self._collections.values():
                col.snapshot()

    def flush(self) -> None:
        """Make every acknowledged write durable now (a no-op under "always")."""
        self._check()
        self._sql.flush()

    def close(self, snapshot: bool = True) -> None:
        """Snapshot changed collections (unless ``snapshot=False``), commit, release the lock."""
        if self._closed:
            return
        with self._mutex:
            try:
                for col in self._collections.values():
                    col._close(snapshot)
            finally:
                self._closed = True
                try:
                    self._sql.close()
                finally:
                    # Even when SQLite cannot commit (damaged pages): another open must
                    # not find the store locked by a Database that is gone.
                    if self._lock:
                        self._lock.release()
                    _OPEN.discard(self)


def _check_same_definition(name: str, existing: dict, wanted: dict) -> None:
    """create_collection(exist_ok=True) returns an existing collection only if it is the one asked for."""
    have = dict(existing)
    if "fields" in wanted:  # fields added later (add_field) do not make it another collection
        have["fields"] = {f: s for f, s in existing["fields"].items() if f in wanted["fields"]}
    differ = [f"{key} {have[key]!r} (asked for {value!r})" for key, value in wanted.items()
              if have[key] != value]
    if differ:
        raise ValueError(f"collection {name!r} already exists with another definition: "
                         + "; ".join(differ))


def open(path, durability: str = "always", read_only: bool = False,  # noqa: A001
         auto_snapshot: int | None = 100_000) -> Database:
    """Open (creating if needed) the store in directory ``path``.

    ``durability``: "always" (every acknowledged write survives kill -9),
    "everysec" (at most ~1 s of writes lost in a crash) or "off" (bulk loads).
    Only one process may open a store for writing; ``read_only=True`` opens a
    consistent view of what is committed, without the writer lock.
    ``auto_snapshot``: after this many changed rows (and at least half the
    collection) a write call also writes a snapshot, so that opening never has
    to replay much of SQLite; None leaves snapshots to ``snapshot()``/``close()``.
    """
    return Database(path, durability, read_only, auto_snapshot)


@atexit.register
def _close_all():
    # Commit pending everysec/off writes at interpreter exit; skip the (slow) snapshot.
    for db in list(_OPEN):
        try:
            db.close(snapshot=False)
        except Exception:
            pass
