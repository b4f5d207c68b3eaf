"""A collection: string keys -> (vector, payload), an ANN index, field filters.

A collection is its in-memory ``Table`` (store/table.py: keys, slots, payloads,
field indexes and the index, which holds the only in-memory copy of the vectors)
plus SQLite, the durable record (vectors as given, payloads, tombstones). Ids are
what the index and SQLite know; every upsert gets fresh ids (never reused), so the
index only ever sees ``add`` of new ids and ``remove`` of old ones, and a snapshot
taken at change sequence S plus the SQLite rows/tombstones after S always
reproduce the current state.

Filtered search is ``Table.select``: the filter becomes a mask over slots; few
allowed rows are scanned exactly, more walk the index with the mask, and a query
the index cannot fill is answered exactly instead.
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from .. import _heap, _validate
from .._sync import RWLock
from ..query import Node, to_filter
from . import snapshots
from .fields import FieldIndex
from .table import Table, import_state

@dataclass(frozen=True)
class Hit:
    key: str
    distance: float
    payload: dict | None


@dataclass(frozen=True)
class Record:
    key: str
    vector: np.ndarray
    payload: dict | None


def _as_keys(keys, name="keys") -> tuple[list[str], bool]:
    if isinstance(keys, str):
        return [keys], True
    if isinstance(keys, (bytes, bytearray)):
        raise TypeError(f"{name} must be strings, got bytes (decode them first)")
    try:
        out = list(keys)
    except TypeError:
        raise TypeError(f"{name} must be a string or a list of strings, got {type(keys).__name__}") from None
    for k in out:
        if not isinstance(k, str):
            raise TypeError(f"{name} must be strings, got {type(k).__name__} ({k!r})")
    return out, False


def _load_in_background(path: str) -> Future:
    """``nearkit.load(path, mmap="private")`` on a worker thread."""
    from ..indexes import load

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nearkit-load")
    future = pool.submit(load, path, mmap="private")
    pool.shutdown(wait=False)
    return future


def make_index(kind: str, dim: int, metric: str, params: dict):
    cls = index_class(kind)
    if getattr(cls, "needs_training", False) and "train_size" not in params:
        # A collection never calls train(): the index trains itself on the first
        # vectors (searching them exactly until then).
        params = {**params, "train_size": "auto"}
    try:
        return cls(dim, metric, **params)
    except TypeError as exc:
        raise ValueError(f"bad index_params for {kind!r}: {exc}") from None


def index_class(kind: str):
    from ..indexes import index_class as _index_class

    return _index_class(kind)


class Collection:
    """Use ``Database.create_collection`` / ``get_collection``; not constructed directly."""

    def __init__(self, db, meta: dict):
        self._db = db
        self._sql = db._sql
        self.name = meta["name"]
        self._cid = meta["cid"]
        self.dim = meta["dim"]
        self.metric = meta["metric"]
        self.index_kind = meta["index_kind"]
        self.index_params = meta["index_params"]
        self._next_id = meta["next_id"]
        self._seq = meta["seq"]
        self._snapshot_seq = -1
        self._snapshot_thread: threading.Thread | None = None
        self._snapdir = snapshots.directory(db.path, self._cid)
        self._write_mutex = threading.Lock()
        self._rw = RWLock()
        self._closed = False
        # keys, slots, payload fields and the index (which holds the vectors)
        self._t = Table(self.dim, self.metric, meta["fields"])
        # An index that keeps only lossy codes leaves the exact scans a float copy to keep.
        self._t.own_vectors = not make_index(self.index_kind, self.dim, self.metric,
                                             self.index_params).keeps_vectors
        self._changes = 0         # rows written since the last snapshot (drives auto-snapshots)
        self.recovery: dict = {}

    @property
    def fields(self) -> dict:
        return {f: dict(s) for f, s in self._t.fields.schema.items()}

    def __repr__(self):
        return (f"Collection({self.name!r}, dim={self.dim}, metric={self.metric!r}, "
                f"index={self.index_kind!r}, n={len(self)})")

    # -- opening -------------------------------------------------------------------------
    def _reset_memory(self) -> None:
        self._t.reset()

    def _load(self) -> None:
        """Bring memory up (state snapshot + replay, or every SQLite row), then the index."""
        t0 = time.perf_counter()
        # Reading, checking and attaching the newest index snapshot is mostly I/O,
        # checksums and C++ without the GIL: do it on another thread while this one
        # rebuilds the Python-side memory.
        early = None  # (path, Future)
        newest = snapshots.list_snapshots(self._snapdir)[:1]
        if newest and newest[0][0] <= self._seq:
            early = (newest[0][1], _load_in_background(newest[0][1]))
        state_errors, state_seq = [], None
        for seq, path in snapshots.list_snapshots(self._snapdir, snapshots.STATE):
            try:
                if seq > self._seq:
                    raise ValueError(f"state snapshot seq {seq} is ahead of the store (seq {self._seq})")
                self._import_state(path, seq)
                self._replay_memory(seq)
                state_seq = seq
                break
            except Exception as exc:  # damaged or inconsistent: try an older one, else SQLite
                state_errors.append(f"{path}: {type(exc).__name__}: {exc}")
                self._reset_memory()
        if state_seq is None:
            self._load_rows()
        t_rows = time.perf_counter() - t0
        self._t.index = self._recover_index(early)
        self._changes = self.recovery["replayed"]   # a big replay makes the next write snapshot
        self.recovery.update(state_source="snapshot" if state_seq is not None else "sqlite",
                             state_seq=state_seq, state_errors=state_errors,
                             rows_seconds=round(t_rows, 4),
                             total_seconds=round(time.perf_counter() - t0, 4))

    def _load_rows(self) -> None:
        """Memory from every row in SQLite (no usable state snapshot)."""
        table = f"items_{self._cid}"
        chunks_ids, chunks_vec = [], []
        recs = []
        # The vectors go to the index (read again by _recover_index), unless the
        # table keeps its own copy.
        vcol = "vector" if self._t.own_vectors else "NULL"
        for rows in self._sql.iter_rows(f"SELECT id, key, {vcol}, payload FROM {table} ORDER BY id"):
            chunks_ids.append(np.fromiter((r[0] for r in rows), np.int64, len(rows)))
            if self._t.own_vectors:
                chunks_vec.append(np.frombuffer(b"".join(r[2] for r in rows), np.float32)
                                  .reshape(len(rows), self.dim))
            self._t.slot_keys.extend(r[1] for r in rows)
            self._t.slot_payload.extend(r[3] for r in rows)
            # one json.loads per batch: far cheaper than one call per row
            decoded = json.loads("[" + ",".join(r[3] if r[3] is not None else "null" for r in rows) + "]")
            recs.extend(map(self._t.fields.extract, decoded))
        ids = np.concatenate(chunks_ids) if chunks_ids else np.empty(0, np.int64)
        n = ids.shape[0]
        self._t.reserve(n)
        self._t.n_slots = n
        self._t.slot_ids[:n] = ids
        self._t.live[:n] = True
        if self._t.own_vectors:
            self._t.store_vectors(np.arange(n), np.concatenate(chunks_vec) if chunks_vec
                                  else np.empty((0, self.dim), np.float32))
        self._t.ids_reserve(self._next_id)
        self._t.slot_of_id[ids] = np.arange(n)
        self._t.key_to_slot = {k: i for i, k in enumerate(self._t.slot_keys)}
        self._t.fields.insert_many(np.arange(n), recs)

    def _export_state(self) -> tuple[dict, dict]:
        return self._t.export()

    def _import_state(self, path: str, seq: int) -> None:
        from ..io import read_index

        # Copy-on-write map: the big arrays are adopted as they are, no copy up front;
        # snapshot files are only ever replaced, never rewritten.
        f = read_index(path, mmap="private")
        if f.kind != snapshots.STATE_KIND or f.dim != self.dim or f.metric != self.metric:
            raise ValueError(f"not this collection's state (kind {f.kind!r}, dim {f.dim}, metric {f.metric!r})")
        if f.params.get("fields") != self._t.fields.schema:
            raise ValueError("the state snapshot was written for other payload fields")
        import_state(self._t, f, self._next_id)

    def _replay_memory(self, since: int) -> None:
        """Apply SQLite's changes after ``since`` to memory loaded from a state snapshot."""
        cid = self._cid
        gone = [r[0] for r in self._sql.read(f"SELECT id FROM tomb_{cid} WHERE seq > ?", (since,))]
        if gone:
            g = np.array(gone, np.int64)
            g = g[g < self._t.slot_of_id.shape[0]]
            slots = self._t.slot_of_id[g]
            self._t.delete(slots[slots >= 0].tolist(), self._record_of)
        # "ORDER BY seq, id" is id order (ids only grow) and lets SQLite walk the seq
        # index; "ORDER BY id" made it scan the whole table.
        for rows in self._sql.iter_rows(f"SELECT id, key, vector, payload FROM items_{cid} WHERE seq > ? "
                                        "ORDER BY seq, id", (since,)):
            keys = [r[1] for r in rows]
            if any(k in self._t.key_to_slot for k in keys):
                raise ValueError("a replayed row's key is already present: state and SQLite disagree")
            ids = np.array([r[0] for r in rows], np.int64)
            x = np.frombuffer(b"".join(r[2] for r in rows), np.float32).reshape(len(rows), self.dim)
            texts = [r[3] for r in rows]
            recs = [self._t.fields.extract(json.loads(t)) if t is not None else {} for t in texts]
            self._t.put(keys, x, ids, texts, recs, self._record_of)
        n_rows = self._sql.read(f"SELECT COUNT(*) FROM items_{cid}")[0][0]
        if n_rows != len(self._t.key_to_slot):
            raise ValueError(f"after replay memory holds {len(self._t.key_to_slot)} rows, SQLite {n_rows}")

    def _recover_index(self, early=None):
        """The index: newest usable snapshot + SQLite's changes after it, else a rebuild.
        ``early`` is (path, Future loading that snapshot file), started by _load."""
        from ..indexes import load

        errors = []
        cls = index_class(self.index_kind)
        cid = self._cid
        for snap_seq, path in snapshots.list_snapshots(self._snapdir):
            try:
                if snap_seq > self._seq:
                    raise ValueError(f"snapshot seq {snap_seq} is ahead of the store (seq {self._seq})")
                if early is not None and early[0] == path:
                    idx = early[1].result()
                else:
                    idx = load(path, mmap="private")  # snapshots are replaced, never rewritten
                if not isinstance(idx, cls) or idx.dim != self.dim or idx.metric != self.metric:
                    raise ValueError(f"snapshot holds a {type(idx).__name__} dim={idx.dim} metric={idx.metric}")
                gone = np.array([r[0] for r in self._sql.read(
                    f"SELECT id FROM tomb_{cid} WHERE seq > ?", (snap_seq,))], np.int64)
                if gone.size:
                    idx.remove(gone)
                replayed = int(gone.size)
                for rows in self._sql.iter_rows(f"SELECT id, vector FROM items_{cid} WHERE seq > ?",
                                                (snap_seq,)):
                    ids = np.array([r[0] for r in rows], np.int64)
                    x = np.frombuffer(b"".join(r[1] for r in rows), np.float32).reshape(len(rows), self.dim)
                    self._index_add(idx, x, ids)
                    replayed += len(rows)
                if len(idx) != len(self._t.key_to_slot):
                    raise ValueError(f"after replay the snapshot index holds {len(idx)} vectors, "
                                     f"the store {len(self._t.key_to_slot)}")
                self._check_index_ids(idx)
                self._snapshot_seq = snap_seq
                self.recovery.update(source="snapshot", snapshot_seq=snap_seq, replayed=replayed, errors=errors)
                self._warn_unused_snapshots(errors)
                return idx
            except Exception as exc:  # damaged, foreign or stale: fall back to an older one or a rebuild
                errors.append(f"{path}: {type(exc).__name__}: {exc}")
        self._warn_unused_snapshots(errors)
        idx = make_index(self.index_kind, self.dim, self.metric, self.index_params)
        # The vectors come from SQLite (memory keeps none besides the index's), added
        # in one call: the index then sizes its storage once.
        chunks_ids, chunks_vec = [], []
        for rows in self._sql.iter_rows(f"SELECT id, vector FROM items_{cid} ORDER BY id"):
            chunks_ids.append(np.fromiter((r[0] for r in rows), np.int64, len(rows)))
            chunks_vec.append(np.frombuffer(b"".join(r[1] for r in rows), np.float32)
                              .reshape(len(rows), self.dim))
        if chunks_ids:
            ids = np.concatenate(chunks_ids)
            x = np.concatenate(chunks_vec)
            del chunks_vec
            self._index_add(idx, x, ids)
        added = sum(c.shape[0] for c in chunks_ids)
        self.recovery.update(source="rebuild", snapshot_seq=None, replayed=added, errors=errors)
        return idx

    def _check_index_ids(self, idx) -> None:
        """Raise unless the index holds exactly the ids of the live rows: a snapshot with
        the right count but ids this store never issued (another store's file, a damaged
        one) would make every later search fail to map its hits to keys."""
        labels = idx.slot_labels()
        labels = labels[labels >= 0]
        n_ids = self._t.slot_of_id.shape[0]
        if labels.size and (labels.max() >= n_ids):
            raise ValueError(f"the snapshot index holds id {int(labels.max())}, which this store "
                             f"never issued (next id {self._next_id})")
        known = self._t.slot_of_id[labels] >= 0
        if not known.all():
            raise ValueError(f"the snapshot index holds id {int(labels[~known][0])}, which is not a "
                             "live row of this store")
        seen = np.zeros(n_ids, bool)
        seen[labels] = True
        if int(np.count_nonzero(seen)) != len(self._t.key_to_slot):
            raise ValueError("the snapshot index holds an id twice (or misses a live row)")

    def _warn_unused_snapshots(self, errors: list) -> None:
        if errors:
            warnings.warn(f"collection {self.name!r}: index snapshot(s) not used, recovered from "
                          f"{'an older snapshot' if self.recovery.get('source') == 'snapshot' else 'SQLite'}"
                          f" instead: {'; '.join(errors)}", RuntimeWarning, stacklevel=4)

    @staticmethod
    def _index_add(index, vecs, ids):
        """Add with all cores when the index can build in parallel."""
        if index.parallel_add:
            index.add(vecs, ids, threads=-1)
        else:
            index.add(vecs, ids)

    # A bulk upsert's payload handling and SQLite transaction are single-threaded
    # Python, and the index build runs in C++ without the GIL: starting the build
    # first and doing the rest meanwhile keeps both cores busy. Small batches are
    # not worth a thread.
    OVERLAP_MIN_ROWS = 1000

    def _write_and_index(self, prepare, x, new_ids):
        """Add the new rows to the index and write ``prepare()``'s transaction to SQLite.

        ``prepare()`` checks the payloads and returns ``(tx, prepared)``; this returns
        ``(prepared, index_error)``. If ``prepare`` or the write raises, the exception
        propagates and the index keeps none of the rows. A failed index add after a
        good write is returned, for the caller to raise once its counters match SQLite."""
        if len(new_ids) < self.OVERLAP_MIN_ROWS:
            tx, prepared = prepare()
            self._sql.write(tx)
            try:
                self._index_add(self._t.index, x, new_ids)
            except Exception as exc:
                return prepared, exc
            return prepared, None

        failure = []

        def build():
            try:
                self._index_add(self._t.index, x, new_ids)
            except Exception as exc:  # handed back to the calling thread
                failure.append(exc)

        worker = threading.Thread(target=build, name="nearkit-index-add")
        worker.start()
        try:
            tx, prepared = prepare()
            self._sql.write(tx)
        except BaseException:
            worker.join()
            if not failure:
                self._t.index.remove(new_ids)
            raise
        worker.join()
        return prepared, (failure[0] if failure else None)

    # -- checks --------------------------------------------------------------------------------
    def _check_writable(self):
        if self._closed:
            raise RuntimeError(f"collection {self.name!r} is closed")
        if self._sql.read_only:
            raise PermissionError(f"collection {self.name!r}: the store was opened read-only")

    def _check_open(self):
        if self._closed:
            raise RuntimeError(f"collection {self.name!r} is closed")

    # -- writes ------------------------------------------------------------------------------
    def upsert(self, keys, vectors, payloads=None) -> int:
        """Insert or replace ``keys`` with their vectors and payloads; returns how many were new.

        The call is atomic and, once it returns, durable according to the store's
        durability mode. A single key may be given with a 1-D vector and a dict payload.
        """
        self._check_writable()
        keys, single = _as_keys(keys)
        x, _ = _validate.as_vectors(vectors, self.dim, "vectors")
        n = len(keys)
        if x.shape[0] != n:
            raise ValueError(f"got {n} keys for {x.shape[0]} vectors")
        if len(set(keys)) != n:
            seen = set()
            dup = next(k for k in keys if k in seen or seen.add(k))
            raise ValueError(f"duplicate key {dup!r} in one upsert call")
        if payloads is None:
            payloads = [None] * n
        elif isinstance(payloads, dict):
            if n != 1:
                raise TypeError(f"payloads must be a list of {n} dicts (one per key), got one dict")
            payloads = [payloads]
        else:
            payloads = list(payloads)
            if len(payloads) != n:
                raise ValueError(f"got {len(payloads)} payloads for {n} keys")
        if n == 0:
            return 0

        with self._write_mutex:
            n_new = self._upsert_locked(keys, x, payloads)
        self._after_write(n)
        return n_new

    def _upsert_locked(self, keys, x, payloads) -> int:
        """The body of upsert, with its arguments checked; the caller holds the write mutex."""
        n = len(keys)
        self._check_writable()
        old_slots = [self._t.key_to_slot.get(k) for k in keys]
        replaced = [s for s in old_slots if s is not None]
        old_ids = self._t.slot_ids[replaced] if replaced else np.empty(0, np.int64)
        new_ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        seq = self._seq + 1

        def prepare():
            # Runs while a bulk index build is under way (see _write_and_index).
            recs, texts = self._encode_payloads(payloads)
            return self._upsert_tx(keys, x, new_ids, old_ids, seq, texts), (recs, texts)

        with self._rw.write():
            (recs, texts), index_error = self._write_and_index(prepare, x, new_ids)
            self._next_id += n
            self._seq = seq
            if index_error is not None:  # SQLite has the rows; a reopen rebuilds them
                raise index_error
            self._t.version += 1
            if old_ids.size:
                self._t.index.remove(old_ids)
            self._t.put(keys, x, new_ids, texts, recs, self._record_of)
        return sum(s is None for s in old_slots)

    def update_payloads(self, keys, payloads) -> None:
        """Replace the payloads of existing ``keys``, keeping their vectors.

        Atomic and durable as ``upsert`` (it is one: the stored vectors are written
        again under the new payloads). A missing key raises KeyError and changes nothing.
        """
        self._check_writable()
        keys, single = _as_keys(keys)
        if single and (payloads is None or isinstance(payloads, dict)):
            payloads = [payloads]
        if isinstance(payloads, dict) or payloads is None:
            raise TypeError(f"payloads must be a list of {len(keys)} dicts (one per key)")
        payloads = list(payloads)
        if len(payloads) != len(keys):
            raise ValueError(f"got {len(payloads)} payloads for {len(keys)} keys")
        if len(set(keys)) != len(keys):
            raise ValueError("duplicate key in one update_payloads call")
        if not keys:
            return
        with self._write_mutex:  # the vectors read here are the ones written back
            records = self.get(keys)
            missing = [k for k, r in zip(keys, records) if r is None]
            if missing:
                raise KeyError(f"no key {missing[0]!r} in collection {self.name!r}")
            # get() gives what upsert was given (the original vector for cosine)
            self._upsert_locked(keys, np.stack([r.vector for r in records]), payloads)
        self._after_write(len(keys))

    def add_field(self, name: str, field_type) -> None:
        """Declare a payload field on an existing collection; rows already stored are indexed
        from their payloads at once (a payload whose value does not fit the type raises
        TypeError/ValueError naming its key, and nothing changes)."""
        from .schema import normalize_schema

        self._check_writable()
        if name in self._t.fields.schema:
            raise ValueError(f"collection {self.name!r} already has a field {name!r}")
        schema = normalize_schema({**self._t.fields.schema, name: field_type})
        with self._write_mutex:
            fields = FieldIndex(schema)
            fields.reserve(max(self._t.live.shape[0], self._t.n_slots))
            live = np.flatnonzero(self._t.live[: self._t.n_slots])
            recs = []
            for s in live.tolist():
                p = self._t.slot_payload[s]
                try:
                    recs.append(fields.extract(json.loads(p)) if p is not None else {})
                except (TypeError, ValueError) as exc:
                    raise type(exc)(f"key {self._t.slot_keys[s]!r}: {exc}") from None
            fields.insert_many(live, recs)
            seq, cid = self._seq + 1, self._cid

            def tx(conn):
                conn.execute("UPDATE collections SET fields = ?, seq = ? WHERE cid = ?",
                             (json.dumps(schema), seq, cid))

            self._sql.write(tx)
            with self._rw.write():
                self._seq = seq
                self._t.fields = fields
                self._t.version += 1

    def _encode_payloads(self, payloads) -> tuple[list, list]:
        """Field records (checked against the schema) and JSON texts of the payloads."""
        recs = [self._t.fields.extract(p) for p in payloads]
        try:
            # JSON has no NaN or infinity (json.dumps would write the non-standard NaN and
            # Infinity): refused anywhere in a payload, as NaN always was in numeric fields.
            texts = [None if p is None else json.dumps(p, allow_nan=False) for p in payloads]
        except ValueError as exc:
            if "Out of range float" in str(exc):
                raise ValueError("payloads must not hold NaN or infinity: JSON (the payloads' "
                                 "stored form) has no such numbers") from None
            raise TypeError(f"payloads must be JSON-serialisable: {exc}") from None
        except TypeError as exc:
            raise TypeError(f"payloads must be JSON-serialisable: {exc}") from None
        return recs, texts

    def _upsert_tx(self, keys, x, new_ids, old_ids, seq, texts):
        """The SQLite transaction of one upsert: tombstone replaced ids, insert the rows."""
        cid, n = self._cid, len(keys)

        def tx(conn):
            blobs = [x[i].tobytes() for i in range(n)]
            if old_ids.size:
                conn.executemany(f"INSERT OR REPLACE INTO tomb_{cid}(id, seq) VALUES (?, ?)",
                                 [(int(i), seq) for i in old_ids])
                conn.executemany(f"DELETE FROM items_{cid} WHERE id = ?", [(int(i),) for i in old_ids])
            conn.executemany(
                f"INSERT INTO items_{cid}(id, key, seq, vector, payload) VALUES (?, ?, ?, ?, ?)",
                zip(new_ids.tolist(), keys, [seq] * n, blobs, texts))
            conn.execute("UPDATE collections SET next_id = ?, seq = ? WHERE cid = ?",
                         (int(new_ids[-1]) + 1, seq, cid))

        return tx

    def delete(self, keys) -> int:
        """Delete keys (missing ones are ignored); returns how many were deleted."""
        self._check_writable()
        keys, _ = _as_keys(keys)
        with self._write_mutex:
            self._check_writable()
            present = list(dict.fromkeys(k for k in keys if k in self._t.key_to_slot))
            if not present:
                return 0
            slots = [self._t.key_to_slot[k] for k in present]
            ids = self._t.slot_ids[slots].copy()
            seq = self._seq + 1
            cid = self._cid

            def tx(conn):
                conn.executemany(f"INSERT OR REPLACE INTO tomb_{cid}(id, seq) VALUES (?, ?)",
                                 [(int(i), seq) for i in ids])
                conn.executemany(f"DELETE FROM items_{cid} WHERE id = ?", [(int(i),) for i in ids])
                conn.execute("UPDATE collections SET seq = ? WHERE cid = ?", (seq, cid))

            self._sql.write(tx)
            self._seq = seq
            with self._rw.write():
                self._t.version += 1
                self._t.index.remove(ids)
                self._t.delete(slots, self._record_of)
        self._after_write(len(present))
        return len(present)

    def _record_of(self, text):
        """The field record of a row's stored payload text (what its field indexes hold)."""
        return self._t.fields.extract(json.loads(text)) if text is not None else {}

    # -- reads ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._t.key_to_slot)

    def __contains__(self, key) -> bool:
        return key in self._t.key_to_slot

    def get(self, keys):
        """Record(key, vector, payload) per key, None for a missing key (a list for a list).

        The vector is the one given to ``upsert`` (for cosine it is read back from
        SQLite, since memory holds the normalised copy).
        """
        self._check_open()
        keys, single = _as_keys(keys)
        out = []
        # Memory holds no copy of the vectors beyond the index's (normalised for cosine):
        # read the given ones from SQLite, which has every committed or pending write.
        for k in keys:
            rows = self._sql.read(f"SELECT vector, payload FROM items_{self._cid} WHERE key = ?", (k,))
            out.append(Record(k, np.frombuffer(rows[0][0], np.float32).copy(),
                              None if rows[0][1] is None else json.loads(rows[0][1])) if rows else None)
        return out[0] if single else out

    def _bind(self, where, params=None) -> Node:
        return self._t.fields.bind(to_filter(where, params))

    def count(self, where=None, params=None) -> int:
        self._check_open()
        tree = self._bind(where, params)
        with self._rw.read():
            mask = self._t.mask(tree)
            return len(self._t.key_to_slot) if mask is None else int(np.count_nonzero(mask))

    def keys(self, where=None, params=None, limit: int | None = None, offset: int = 0) -> list[str]:
        """Keys of rows matching ``where`` (all keys when None), in storage order, paged."""
        self._check_open()
        tree = self._bind(where, params)
        with self._rw.read():
            mask = self._t.mask(tree)
            slots = np.flatnonzero(self._t.live[: self._t.n_slots] if mask is None else mask)
            slots = slots[offset:] if limit is None else slots[offset:offset + limit]
            return [self._t.slot_keys[s] for s in slots.tolist()]

    def search(self, vectors, k: int, where=None, params=None, **search_params):
        """The k nearest rows passing ``where``: a list of Hit per query (one list for a 1-D query).

        ``where`` is a Redis-syntax query string, a Python dict filter or a filter tree;
        ``params`` fills ``$name`` placeholders in a query string. Extra keyword
        arguments go to the index's search (e.g. ``ef`` for HNSW).
        """
        self._check_open()
        q, was_1d = _validate.as_vectors(vectors, self.dim, "queries")
        k = _validate.check_k(k)
        tree = self._bind(where, params)
        with self._rw.read():
            # More hits than rows cannot exist: k=10**8 on 50 rows must not size
            # result arrays (and the index's heaps) for 10**8.
            k = min(k, max(1, len(self._t.key_to_slot)))
            slots, dists = self._t.select(q, k, tree, search_params)
            hits = [[Hit(self._t.slot_keys[s], float(d), self._payload(s))
                     for s, d in zip(srow.tolist(), drow.tolist()) if s >= 0]
                    for srow, drow in zip(slots, dists)]
        return hits[0] if was_1d else hits

    def _payload(self, slot):
        p = self._t.slot_payload[slot]
        return None if p is None else json.loads(p)

    def search_radius(self, vector, radius, where=None, params=None, limit: int | None = None):
        """Every row within ``radius`` (inclusive) of ``vector`` passing ``where``, nearest first."""
        self._check_open()
        q, _ = _validate.as_vectors(vector, self.dim, "vector")
        if q.shape[0] != 1:
            raise ValueError(f"search_radius takes one vector, got {q.shape[0]}")
        r = _validate.check_radius(radius)
        if r < 0:
            raise ValueError(f"radius must be >= 0, got {radius}")
        tree = self._bind(where, params)
        pq = self._t.prepare(q)
        with self._rw.read():
            slots, dist = self._t.within(pq, r, tree)
            if limit is not None:
                slots, dist = slots[:limit], dist[:limit]
            return [Hit(self._t.slot_keys[i], float(d), self._payload(i))
                    for i, d in zip(slots.tolist(), dist.tolist())]

    # -- snapshots -------------------------------------------------------------------------------
    def snapshot(self, force: bool = False) -> str | None:
        """Write the index as a snapshot covering every change so far; returns its path.

        Skipped (returns None) when nothing changed since the last snapshot, unless forced.
        """
        self._check_writable()
        self._wait_for_snapshot()
        with self._write_mutex:
            if self._seq == self._snapshot_seq and not force:
                return None
            job = self._take_snapshot()
        return self._write_snapshot(job)

    def _take_snapshot(self) -> dict:
        """Copy what a snapshot holds (caller has the write mutex): a memory copy,
        after which writing the files needs no lock and the collection may change."""
        self._sql.flush()   # the snapshot must never cover an uncommitted change
        with self._rw.read():
            image = self._t.index.image()
            params, sections = self._export_state()
            sections = {name: np.array(a, copy=True) for name, a in sections.items()}
        job = {"seq": self._seq, "previous": self._snapshot_seq, "changes": self._changes,
               "image": image, "state": (params, sections)}
        self._snapshot_seq = self._seq
        self._changes = 0
        return job

    def _write_snapshot(self, job: dict) -> str:
        """Write a taken snapshot's files, then drop old snapshots and the tombstones
        no remaining snapshot needs. On failure the collection counts the changes
        as unsnapshotted again; SQLite still holds everything."""
        seq = job["seq"]
        try:
            path = snapshots.write_snapshot(self._snapdir, seq, job["image"])
            params, sections = job["state"]
            snapshots.write_state(self._snapdir, seq, self.dim, self.metric, params, sections)
            oldest = snapshots.prune(self._snapdir)
            if oldest is not None:
                cid = self._cid
                self._sql.write(lambda conn: conn.execute(f"DELETE FROM tomb_{cid} WHERE seq <= ?", (oldest,)))
        except BaseException:
            with self._write_mutex:
                if self._snapshot_seq == seq:
                    self._snapshot_seq = job["previous"]
                    self._changes += job["changes"]
            raise
        return path

    # Automatic snapshots are written by a background thread: the write call that
    # triggers one only pays for the memory copy, not for checksums and fsync.
    def _snapshot_in_background(self) -> None:
        self._wait_for_snapshot()
        with self._write_mutex:
            if self._closed or self._seq == self._snapshot_seq:
                return
            job = self._take_snapshot()

        def run():
            try:
                self._write_snapshot(job)
            except Exception as exc:  # noqa: BLE001 - reported, the data is safe in SQLite
                warnings.warn(f"collection {self.name!r}: automatic snapshot failed ({exc}); "
                              "every write is still in SQLite", RuntimeWarning, stacklevel=1)
            _heap.release_free_heap()  # the snapshot's buffers

        self._snapshot_thread = threading.Thread(target=run, name=f"nearkit-snapshot-{self.name}")
        self._snapshot_thread.start()

    def _wait_for_snapshot(self) -> None:
        thread = self._snapshot_thread
        if thread is not None:
            thread.join()
            self._snapshot_thread = None

    def _after_write(self, rows: int) -> None:
        """Snapshot once enough has changed that replaying SQLite on open would get slow."""
        self._changes += rows
        if rows >= _heap.BULK_ROWS:
            _heap.release_free_heap()
        every = self._db.auto_snapshot
        if every and self._changes >= max(every, len(self) // 2):
            self._snapshot_in_background()

    def _close(self, snapshot: bool) -> None:
        if self._closed:
            return
        self._wait_for_snapshot()
        if snapshot and not self._sql.read_only:
            self.snapshot()
        self._closed = True

    @property
    def index(self):
        """The underlying index (read-only use: mutate through the collection only)."""
        return self._t.index

    @property
    def _index(self):
        return self._t.index
