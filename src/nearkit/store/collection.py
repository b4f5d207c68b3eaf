"""A collection: string keys -> (vector, payload), an ANN index, field filters.

In memory each live key occupies a *slot* (a dense row reused after deletes)
holding its vector, payload (as JSON text) and current *id*. Ids are what the
index and SQLite know; every upsert gets fresh ids (never reused), so the index
only ever sees ``add`` of new ids and ``remove`` of old ones, and a snapshot
taken at change sequence S plus the SQLite rows/tombstones after S always
reproduce the current state.

Filtered search: the filter becomes a mask over slots. Few allowed rows are
scanned exactly here (so recall is 1 however small the filter); many allowed
rows go to the index as an id mask, and if the index returns fewer hits than
it should, the exact scan answers instead.
"""

from __future__ import annotations

import inspect
import json
import threading
import time
from dataclasses import dataclass

import numpy as np

from .. import _validate
from ..metrics import COSINE, IP, L2
from . import snapshots
from .fields import FieldIndex
from .filters import MatchAll, Node, to_filter

# A filter allowing at most this many rows (or this fraction of the collection)
# is answered by an exact scan instead of a filtered index walk.
EXACT_SCAN_ROWS = 20_000
EXACT_SCAN_FRACTION = 0.05


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


class _RWLock:
    """Many readers or one writer; a waiting writer blocks new readers (no starvation)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting = 0

    def acquire_read(self):
        with self._cond:
            while self._writer or self._waiting:
                self._cond.wait()
            self._readers += 1

    def release_read(self):
        with self._cond:
            self._readers -= 1
            if not self._readers:
                self._cond.notify_all()

    def acquire_write(self):
        with self._cond:
            self._waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting -= 1
            self._writer = True

    def release_write(self):
        with self._cond:
            self._writer = False
            self._cond.notify_all()


class _Reading:
    def __init__(self, lock):
        self.lock = lock

    def __enter__(self):
        self.lock.acquire_read()

    def __exit__(self, *exc):
        self.lock.release_read()


class _Writing(_Reading):
    def __enter__(self):
        self.lock.acquire_write()

    def __exit__(self, *exc):
        self.lock.release_write()


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


def _grow(arr: np.ndarray, n: int, fill) -> np.ndarray:
    if arr.shape[0] >= n:
        return arr
    shape = (max(n, 2 * arr.shape[0], 1024),) + arr.shape[1:]
    new = np.zeros(shape, dtype=arr.dtype) if not fill else np.full(shape, fill, dtype=arr.dtype)
    new[: arr.shape[0]] = arr
    return new


def make_index(kind: str, dim: int, metric: str, params: dict):
    cls = index_class(kind)
    try:
        return cls(dim, metric, **params)
    except TypeError as exc:
        raise ValueError(f"bad index_params for {kind!r}: {exc}") from None


def index_class(kind: str):
    from ..io import index_kinds

    kinds = index_kinds()
    if kind not in kinds:
        have = ", ".join(sorted(kinds)) or "none"
        raise ValueError(f"index kind {kind!r} is not available (available: {have})")
    return kinds[kind]


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
        self._fields = FieldIndex(meta["fields"])
        self._next_id = meta["next_id"]
        self._seq = meta["seq"]
        self._snapshot_seq = -1
        self._snapdir = snapshots.directory(db.path, self._cid)
        self._write_mutex = threading.Lock()
        self._rw = _RWLock()
        self._closed = False
        # slot storage
        self._n_slots = 0
        self._free: list[int] = []
        self._key_to_slot: dict[str, int] = {}
        self._slot_keys: list = []
        self._slot_payload: list = []
        self._slot_ids = np.full(0, -1, np.int64)
        self._live = np.zeros(0, bool)
        self._vectors = np.zeros((0, self.dim), np.float32)
        self._sqnorm = np.zeros(0, np.float32)
        self._slot_of_id = np.full(0, -1, np.int64)
        self._index = None
        self.recovery: dict = {}

    @property
    def fields(self) -> dict:
        return {f: dict(s) for f, s in self._fields.schema.items()}

    def __repr__(self):
        return (f"Collection({self.name!r}, dim={self.dim}, metric={self.metric!r}, "
                f"index={self.index_kind!r}, n={len(self)})")

    # -- opening -------------------------------------------------------------------------
    def _load(self) -> None:
        """Read every row from SQLite, then bring the index up from a snapshot or a rebuild."""
        t0 = time.perf_counter()
        table = f"items_{self._cid}"
        chunks_ids, chunks_vec, chunks_seq = [], [], []
        recs = []
        for rows in self._sql.iter_rows(f"SELECT id, key, seq, vector, payload FROM {table} ORDER BY id"):
            ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
            chunks_ids.append(ids)
            chunks_seq.append(np.fromiter((r[2] for r in rows), np.int64, len(rows)))
            chunks_vec.append(np.frombuffer(b"".join(r[3] for r in rows), np.float32).reshape(len(rows), self.dim))
            self._slot_keys.extend(r[1] for r in rows)
            self._slot_payload.extend(r[4] for r in rows)
            # one json.loads per batch: far cheaper than one call per row
            decoded = json.loads("[" + ",".join(r[4] if r[4] is not None else "null" for r in rows) + "]")
            recs.extend(map(self._fields.extract, decoded))
        ids = np.concatenate(chunks_ids) if chunks_ids else np.empty(0, np.int64)
        seqs = np.concatenate(chunks_seq) if chunks_seq else np.empty(0, np.int64)
        vecs = np.concatenate(chunks_vec) if chunks_vec else np.empty((0, self.dim), np.float32)
        n = ids.shape[0]
        self._reserve(n)
        self._n_slots = n
        self._slot_ids[:n] = ids
        self._live[:n] = True
        self._vectors[:n] = vecs
        self._sqnorm[:n] = np.einsum("ij,ij->i", vecs, vecs)
        self._slot_of_id = _grow(self._slot_of_id, self._next_id, -1)
        self._slot_of_id[ids] = np.arange(n)
        self._key_to_slot = {k: i for i, k in enumerate(self._slot_keys)}
        self._fields.reserve(n)
        self._fields.insert_many(np.arange(n), recs)
        t_rows = time.perf_counter() - t0
        self._index = self._recover_index(ids, vecs, seqs)
        self.recovery["rows_seconds"] = round(t_rows, 4)
        self.recovery["total_seconds"] = round(time.perf_counter() - t0, 4)

    def _recover_index(self, ids, vecs, seqs):
        from ..io import load

        errors = []
        cls = index_class(self.index_kind)
        for snap_seq, path in snapshots.list_snapshots(self._snapdir):
            try:
                if snap_seq > self._seq:
                    raise ValueError(f"snapshot seq {snap_seq} is ahead of the store (seq {self._seq})")
                idx = load(path)
                if not isinstance(idx, cls) or idx.dim != self.dim or idx.metric != self.metric:
                    raise ValueError(f"snapshot holds a {type(idx).__name__} dim={idx.dim} metric={idx.metric}")
                gone = np.array([r[0] for r in self._sql.read(
                    f"SELECT id FROM tomb_{self._cid} WHERE seq > ?", (snap_seq,))], np.int64)
                if gone.size:
                    idx.remove(gone)
                newer = seqs > snap_seq
                if newer.any():
                    self._index_add(idx, vecs[newer], ids[newer])
                if len(idx) != ids.shape[0]:
                    raise ValueError(f"after replay the snapshot index holds {len(idx)} vectors, "
                                     f"SQLite {ids.shape[0]}")
                self._snapshot_seq = snap_seq
                self.recovery.update(source="snapshot", snapshot_seq=snap_seq,
                                     replayed=int(newer.sum()) + int(gone.size), errors=errors)
                return idx
            except Exception as exc:  # damaged, foreign or stale: fall back to an older one or a rebuild
                errors.append(f"{path}: {type(exc).__name__}: {exc}")
        idx = make_index(self.index_kind, self.dim, self.metric, self.index_params)
        if ids.shape[0]:
            self._index_add(idx, vecs, ids)
        self.recovery.update(source="rebuild", snapshot_seq=None, replayed=int(ids.shape[0]), errors=errors)
        return idx

    @staticmethod
    def _index_add(index, vecs, ids):
        """Add with all cores when the index's add takes a ``threads`` argument."""
        try:
            takes_threads = "threads" in inspect.signature(type(index)._add).parameters
        except (TypeError, ValueError):
            takes_threads = False
        if takes_threads:
            index.add(vecs, ids, threads=-1)
        else:
            index.add(vecs, ids)

    # -- slot bookkeeping ------------------------------------------------------------------
    def _reserve(self, n: int) -> None:
        self._slot_ids = _grow(self._slot_ids, n, -1)
        self._live = _grow(self._live, n, False)
        self._vectors = _grow(self._vectors, n, 0.0)
        self._sqnorm = _grow(self._sqnorm, n, 0.0)
        self._fields.reserve(n)

    def _take_slots(self, count: int) -> np.ndarray:
        reuse = [self._free.pop() for _ in range(min(count, len(self._free)))]
        fresh = np.arange(self._n_slots, self._n_slots + count - len(reuse), dtype=np.int64)
        self._n_slots += fresh.shape[0]
        self._reserve(self._n_slots)
        while len(self._slot_keys) < self._n_slots:
            self._slot_keys.append(None)
            self._slot_payload.append(None)
        return np.concatenate([np.array(reuse, np.int64), fresh])

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
        recs = [self._fields.extract(p) for p in payloads]
        try:
            texts = [None if p is None else json.dumps(p) for p in payloads]
        except (TypeError, ValueError) as exc:
            raise TypeError(f"payloads must be JSON-serialisable: {exc}") from None
        if n == 0:
            return 0

        with self._write_mutex:
            self._check_writable()
            old_slots = [self._key_to_slot.get(k) for k in keys]
            replaced = [s for s in old_slots if s is not None]
            old_ids = self._slot_ids[replaced] if replaced else np.empty(0, np.int64)
            new_ids = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
            seq = self._seq + 1
            cid = self._cid
            blobs = [x[i].tobytes() for i in range(n)]

            def tx(conn):
                if old_ids.size:
                    conn.executemany(f"INSERT OR REPLACE INTO tomb_{cid}(id, seq) VALUES (?, ?)",
                                     [(int(i), seq) for i in old_ids])
                    conn.executemany(f"DELETE FROM items_{cid} WHERE id = ?", [(int(i),) for i in old_ids])
                conn.executemany(
                    f"INSERT INTO items_{cid}(id, key, seq, vector, payload) VALUES (?, ?, ?, ?, ?)",
                    zip(new_ids.tolist(), keys, [seq] * n, blobs, texts))
                conn.execute("UPDATE collections SET next_id = ?, seq = ? WHERE cid = ?",
                             (int(new_ids[-1]) + 1, seq, cid))

            self._sql.write(tx)
            self._next_id += n
            self._seq = seq

            with _Writing(self._rw):
                if old_ids.size:
                    self._index.remove(old_ids)
                    self._slot_of_id[old_ids] = -1
                    for s in replaced:
                        self._fields.remove(s, self._fields.extract(json.loads(self._slot_payload[s]))
                                            if self._slot_payload[s] is not None else {})
                n_new = sum(s is None for s in old_slots)
                fresh = iter(self._take_slots(n_new).tolist())
                slots = np.array([s if s is not None else next(fresh) for s in old_slots], np.int64)
                self._slot_of_id = _grow(self._slot_of_id, self._next_id, -1)
                self._slot_of_id[new_ids] = slots
                self._slot_ids[slots] = new_ids
                self._live[slots] = True
                self._vectors[slots] = x
                self._sqnorm[slots] = np.einsum("ij,ij->i", x, x)
                for k, s, t in zip(keys, slots.tolist(), texts):
                    self._key_to_slot[k] = s
                    self._slot_keys[s] = k
                    self._slot_payload[s] = t
                self._fields.insert_many(slots, recs)
                self._index_add(self._index, x, new_ids)
            return n_new

    def delete(self, keys) -> int:
        """Delete keys (missing ones are ignored); returns how many were deleted."""
        self._check_writable()
        keys, _ = _as_keys(keys)
        with self._write_mutex:
            self._check_writable()
            present = list(dict.fromkeys(k for k in keys if k in self._key_to_slot))
            if not present:
                return 0
            slots = [self._key_to_slot[k] for k in present]
            ids = self._slot_ids[slots].copy()
            seq = self._seq + 1
            cid = self._cid

            def tx(conn):
                conn.executemany(f"INSERT OR REPLACE INTO tomb_{cid}(id, seq) VALUES (?, ?)",
                                 [(int(i), seq) for i in ids])
                conn.executemany(f"DELETE FROM items_{cid} WHERE id = ?", [(int(i),) for i in ids])
                conn.execute("UPDATE collections SET seq = ? WHERE cid = ?", (seq, cid))

            self._sql.write(tx)
            self._seq = seq
            with _Writing(self._rw):
                self._index.remove(ids)
                self._slot_of_id[ids] = -1
                for k, s in zip(present, slots):
                    p = self._slot_payload[s]
                    self._fields.remove(s, self._fields.extract(json.loads(p)) if p is not None else {})
                    del self._key_to_slot[k]
                    self._slot_keys[s] = None
                    self._slot_payload[s] = None
                    self._slot_ids[s] = -1
                    self._live[s] = False
                    self._free.append(s)
            return len(present)

    # -- reads ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._key_to_slot)

    def __contains__(self, key) -> bool:
        return key in self._key_to_slot

    def get(self, keys):
        """Record(key, vector, payload) per key, None for a missing key (a list for a list)."""
        self._check_open()
        keys, single = _as_keys(keys)
        out = []
        with _Reading(self._rw):
            for k in keys:
                s = self._key_to_slot.get(k)
                if s is None:
                    out.append(None)
                    continue
                p = self._slot_payload[s]
                out.append(Record(k, self._vectors[s].copy(), None if p is None else json.loads(p)))
        return out[0] if single else out

    def _bind(self, where, params=None) -> Node:
        return self._fields.bind(to_filter(where, params))

    def _allowed_slots(self, tree: Node) -> np.ndarray | None:
        """Slots passing the filter (None = every live slot). Call under the read lock."""
        if isinstance(tree, MatchAll):
            return None
        live = self._live[: self._n_slots]
        return np.flatnonzero(self._fields.mask(tree, live))

    def count(self, where=None, params=None) -> int:
        self._check_open()
        tree = self._bind(where, params)
        with _Reading(self._rw):
            allowed = self._allowed_slots(tree)
            return len(self._key_to_slot) if allowed is None else int(allowed.shape[0])

    def keys(self, where=None, params=None, limit: int | None = None) -> list[str]:
        """Keys of rows matching ``where`` (all keys when None), in storage order."""
        self._check_open()
        tree = self._bind(where, params)
        with _Reading(self._rw):
            allowed = self._allowed_slots(tree)
            if allowed is None:
                allowed = np.flatnonzero(self._live[: self._n_slots])
            if limit is not None:
                allowed = allowed[:limit]
            return [self._slot_keys[s] for s in allowed.tolist()]

    def _prepare_queries(self, q: np.ndarray) -> np.ndarray:
        if self.metric == COSINE:
            norms = np.linalg.norm(q, axis=1, keepdims=True)
            norms[norms == 0] = 1
            q = (q / norms).astype(np.float32)
        return q

    def _exact_distances(self, q: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """(nq, len(slots)) distances under the collection's metric; q already prepared."""
        v = self._vectors[slots]
        dots = q @ v.T
        if self.metric == L2:
            d = self._sqnorm[slots][None, :] - 2 * dots + np.einsum("ij,ij->i", q, q)[:, None]
            return np.maximum(d, 0, out=d)
        if self.metric == IP:
            return 1 - dots
        norms = np.sqrt(self._sqnorm[slots])
        norms[norms == 0] = 1
        return 1 - dots / norms[None, :]

    def _exact_search(self, q, k, slots):
        """Top-k (slot, distance) per query among ``slots`` by brute force."""
        out_s = np.full((q.shape[0], k), -1, np.int64)
        out_d = np.full((q.shape[0], k), np.inf, np.float32)
        if slots.shape[0] == 0:
            return out_s, out_d
        chunk = max(1, 4_000_000 // max(1, slots.shape[0]))
        for a in range(0, q.shape[0], chunk):
            d = self._exact_distances(q[a:a + chunk], slots)
            kk = min(k, slots.shape[0])
            part = np.argpartition(d, kk - 1, axis=1)[:, :kk] if kk < slots.shape[0] else \
                np.broadcast_to(np.arange(slots.shape[0]), (d.shape[0], slots.shape[0]))
            pd = np.take_along_axis(d, part, axis=1)
            order = np.argsort(pd, axis=1, kind="stable")
            out_s[a:a + chunk, :kk] = slots[np.take_along_axis(part, order, axis=1)]
            out_d[a:a + chunk, :kk] = np.take_along_axis(pd, order, axis=1)
        return out_s, out_d

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
        with _Reading(self._rw):
            slots, dists = self._search_slots(q, k, tree, search_params)
            hits = [[Hit(self._slot_keys[s], float(d), self._payload(s))
                     for s, d in zip(srow.tolist(), drow.tolist()) if s >= 0]
                    for srow, drow in zip(slots, dists)]
        return hits[0] if was_1d else hits

    def _payload(self, slot):
        p = self._slot_payload[slot]
        return None if p is None else json.loads(p)

    def _search_slots(self, q, k, tree, search_params):
        allowed = self._allowed_slots(tree)
        n_live = len(self._key_to_slot)
        if n_live == 0 or (allowed is not None and allowed.shape[0] == 0):
            return np.full((q.shape[0], k), -1, np.int64), np.full((q.shape[0], k), np.inf, np.float32)
        pq = self._prepare_queries(q)
        if allowed is not None and self.index_kind != "flat" and (
                allowed.shape[0] <= max(EXACT_SCAN_ROWS, EXACT_SCAN_FRACTION * n_live)):
            return self._exact_search(pq, k, allowed)
        id_filter = None
        if allowed is not None:
            id_filter = np.zeros(self._next_id, dtype=bool)
            id_filter[self._slot_ids[allowed]] = True
        ids, dist = self._index.search(q, k, filter=id_filter, **search_params)
        valid = ids >= 0
        slots = np.where(valid, self._slot_of_id[np.where(valid, ids, 0)], -1)
        want = min(k, n_live if allowed is None else allowed.shape[0])
        short = (slots >= 0).sum(axis=1) < want
        if short.any():  # the index could not fill k from the allowed set: answer those exactly
            scan = allowed if allowed is not None else np.flatnonzero(self._live[: self._n_slots])
            es, ed = self._exact_search(pq[short], k, scan)
            slots[short], dist[short] = es, ed
        return slots, dist

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
        pq = self._prepare_queries(q)
        with _Reading(self._rw):
            allowed = self._allowed_slots(tree)
            if allowed is None:
                allowed = np.flatnonzero(self._live[: self._n_slots])
            found_s, found_d = [], []
            for a in range(0, allowed.shape[0], 262144):
                part = allowed[a:a + 262144]
                d = self._exact_distances(pq, part)[0]
                m = d <= r
                found_s.append(part[m])
                found_d.append(d[m])
            s = np.concatenate(found_s) if found_s else np.empty(0, np.int64)
            d = np.concatenate(found_d) if found_d else np.empty(0, np.float32)
            order = np.argsort(d, kind="stable")
            if limit is not None:
                order = order[:limit]
            return [Hit(self._slot_keys[i], float(dd), self._payload(i))
                    for i, dd in zip(s[order].tolist(), d[order].tolist())]

    # -- snapshots -------------------------------------------------------------------------------
    def snapshot(self, force: bool = False) -> str | None:
        """Write the index as a snapshot covering every change so far; returns its path.

        Skipped (returns None) when nothing changed since the last snapshot, unless forced.
        """
        self._check_writable()
        with self._write_mutex:
            if self._seq == self._snapshot_seq and not force:
                return None
            self._sql.flush()   # the snapshot must never cover an uncommitted change
            seq = self._seq
            with _Reading(self._rw):
                path = snapshots.write_snapshot(self._snapdir, seq, self._index)
            self._snapshot_seq = seq
            oldest = snapshots.prune(self._snapdir)
            if oldest is not None:
                cid = self._cid
                self._sql.write(lambda conn: conn.execute(f"DELETE FROM tomb_{cid} WHERE seq <= ?", (oldest,)))
            return path

    def _close(self, snapshot: bool) -> None:
        if self._closed:
            return
        if snapshot and not self._sql.read_only:
            self.snapshot()
        self._closed = True

    @property
    def index(self):
        """The underlying index (read-only use: mutate through the collection only)."""
        return self._index
