"""VECTOR fields of a search index: blob decoding and the nearest-neighbour index.

Each vector is held once. FLAT fields keep theirs (float32, unit-normalised for
COSINE) in a dense matrix by document slot and search it with nearkit's exact
Flat kernel (``_core.flat_search``), recomputing the winners' distances directly.
HNSW fields keep them only in their ``nearkit.HNSW`` graph (ids = slots), read
back with ``slot_vectors`` for exact scans, ranges and re-checks. A field is a
vector column of the index's ``Table``: whether a filtered query scans or walks is
decided by ``nearkit.store.table.nearest``, as for the store. Distances follow
Redis (redis-vector-spec.md section 5.5): L2 squared, IP ``1 - a.b``, COSINE
``1 - cos``; smaller is closer -- the same conventions as nearkit's metrics.
"""

from __future__ import annotations

import numpy as np

from .. import _core
from ..indexes.base import SlotFilter
from ..store.table import GATHER_ROWS, nearest, within
from .pending import PendingRows

# Redis TYPE -> (numpy dtype of the blob, bytes per element)
DTYPES = {
    "FLOAT32": (np.dtype("<f4"), 4),
    "FLOAT64": (np.dtype("<f8"), 8),
    "FLOAT16": (np.dtype("<f2"), 2),
    "BFLOAT16": (np.dtype("<u2"), 2),
}
METRICS = {"L2": "l2", "IP": "ip", "COSINE": "cosine"}


class BlobSizeError(ValueError):
    def __init__(self, got: int, expected: int):
        super().__init__(f"blob size ({got}) does not match index's expected size ({expected})")
        self.got, self.expected = got, expected


def _nearkit_index_class(name: str):
    """nearkit's index class of that name when this build has it (None otherwise)."""
    import nearkit

    return getattr(nearkit, name, None)


MAX_EF_CONSTRUCTION = 4096


class VectorField:
    def __init__(self, algorithm: str, data_type: str, dim: int, metric: str, params: dict):
        self.algorithm = algorithm
        self.data_type = data_type
        self.dim = dim
        self.metric = METRICS[metric]
        self.redis_metric = metric
        self.params = params
        self.dtype, self.elem = DTYPES[data_type]
        self.blob_size = dim * self.elem
        self.ef_runtime = int(params.get("EF_RUNTIME", 10))
        self.epsilon = float(params.get("EPSILON", 0.01))
        # Slot-addressed storage of FLAT fields (the exact kernels scan it directly);
        # an HNSW field's vectors live in its graph only (``_vecs`` stays empty).
        self._vecs = np.zeros((0, dim), np.float32)
        self._sqn = np.zeros(0, np.float32)
        self._has = np.zeros(0, bool)
        self._hi = 0  # slots below this may hold a vector
        self.count = 0
        # The graph index for HNSW fields, when this build has nearkit.HNSW.
        self._index = None
        self._pending = PendingRows(dim)  # vectors not yet in the graph (added in batches)
        # While restoring from a snapshot: which slots its graph holds and which of
        # them no key has confirmed yet (see snapshot.py).
        self._snap_has = None
        self._snap_open = None
        self._graph_slots = None  # (graph slot per document slot, graph slots), until the graph changes
        if algorithm == "HNSW":
            cls = _nearkit_index_class("HNSW")
            if cls is not None:
                self._index = self._make_index(cls)

    def _make_index(self, cls):
        # The build's candidate list is sized up front on every insert: past a few
        # thousand it only costs time and memory (EF_CONSTRUCTION 10**8 took 50 s and
        # 800 MB for 100 vectors), so the graph is built with at most MAX_EF_CONSTRUCTION.
        kw = {"M": int(self.params.get("M", 16)),
              "ef_construction": min(int(self.params.get("EF_CONSTRUCTION", 200)),
                                     MAX_EF_CONSTRUCTION)}
        try:
            return cls(self.dim, metric=self.metric, **kw)
        except TypeError:
            return cls(self.dim, metric=self.metric)

    @property
    def uses_graph(self) -> bool:
        return self._index is not None

    # -- decoding -----------------------------------------------------------------------
    def decode_blob(self, blob: bytes) -> np.ndarray:
        """A vector blob (TYPE's little-endian bytes) as float32 (dim,); BlobSizeError if wrong size."""
        if len(blob) != self.blob_size:
            raise BlobSizeError(len(blob), self.blob_size)
        raw = np.frombuffer(blob, dtype=self.dtype)
        if self.data_type == "BFLOAT16":
            v = (raw.astype(np.uint32) << 16).view(np.float32)
        elif self.data_type == "FLOAT32":
            v = raw  # read-only view of the request's bytes: nothing writes to it
        else:
            v = raw.astype(np.float32)
        if not np.isfinite(v).all():
            # NaN/inf components would poison every distance; treat them like Redis's clamp.
            v = np.nan_to_num(v, nan=0.0, posinf=3.4e38, neginf=-3.4e38).astype(np.float32)
        return v

    def decode_list(self, values) -> np.ndarray:
        """A JSON array of numbers as float32 (dim,); ValueError if it is not one."""
        if not isinstance(values, list) or len(values) != self.dim or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            raise ValueError("not a numeric array of the index's dimension")
        arr = np.asarray(values, dtype=np.float64)
        if self.data_type == "FLOAT16":
            return arr.astype(np.float16).astype(np.float32)
        if self.data_type == "BFLOAT16":
            return (arr.astype(np.float32).view(np.uint32) & 0xFFFF0000).view(np.float32)
        return arr.astype(np.float32)

    def _prepare(self, v: np.ndarray) -> np.ndarray:
        v = np.ascontiguousarray(v, dtype=np.float32)
        if not np.isfinite(v).all():
            v = np.nan_to_num(v, nan=0.0, posinf=3.4e38, neginf=-3.4e38).astype(np.float32)
        if self.metric == "cosine":
            n = float(np.linalg.norm(v.astype(np.float64)))
            return (v / n).astype(np.float32) if n > 0 else v
        return v

    # -- maintenance (event-loop thread, under the index's write lock) -------------------
    def _reserve(self, slot: int) -> None:
        if slot >= self._has.shape[0]:
            # Grow by doubling; the first block is 1024 rows, or fewer for wide vectors
            # (at most ~4 MB): memory follows what is stored, not the declared DIM.
            first = max(1, min(1024, (4 << 20) // (4 * self.dim)))
            cap = max(slot + 1, 2 * self._has.shape[0], first)
            if self._index is None:
                vecs = np.zeros((cap, self.dim), np.float32)
                vecs[: self._vecs.shape[0]] = self._vecs
                sqn = np.zeros(cap, np.float32)
                sqn[: self._sqn.shape[0]] = self._sqn
                self._vecs, self._sqn = vecs, sqn
            has = np.zeros(cap, bool)
            has[: self._has.shape[0]] = self._has
            self._has = has

    def upsert(self, slot: int, vec: np.ndarray) -> None:
        self._reserve(slot)
        v = self._prepare(vec)
        if not self._has[slot]:
            self.count += 1
        self._has[slot] = True
        self._hi = max(self._hi, slot + 1)
        if self._index is None:
            self._vecs[slot] = v
            self._sqn[slot] = float(np.dot(v, v))
        else:
            if self._snap_open is not None and slot < self._snap_open.shape[0]:
                # Confirmed by a key; whether its vector changed is checked for all
                # of them at once in finish_restore.
                self._snap_open[slot] = False
            # Graph insertions are batched (``flush``): a pipelined load then builds
            # with every core. nearkit.HNSW replaces the vector of a re-added id.
            # The pending copy is the index's only one until then.
            self._pending.put(slot, v)

    def adopt_graph(self, graph, has: np.ndarray) -> None:
        """Start from a snapshot's graph (slots as ids) before the keys are loaded."""
        self._index = graph
        self._graph_slots = None
        self._snap_has = has
        self._snap_open = has.copy()

    def finish_restore(self) -> int:
        """After every key is loaded: drop graph entries no key confirmed; returns how many."""
        if self._snap_open is None:
            return 0
        stale = np.flatnonzero(self._snap_open)
        if len(self._pending):
            # Pending vectors the snapshot's graph already holds, unchanged, stay out.
            slots, x = self._pending.held()
            n = self._snap_has.shape[0]
            inside = slots < n
            inside[inside] = self._snap_has[slots[inside]]
            if inside.any():
                cand = slots[inside]
                want = x[inside]
                held = self._rows(cand)
                if self.metric == "cosine":  # the graph normalised them again: allow its rounding
                    same_c = (np.abs(held - want) <= 1e-6).all(axis=1)
                else:
                    same_c = (held == want).all(axis=1)
                for s in cand[same_c].tolist():
                    self._pending.drop(s)
        self._snap_open = self._snap_has = None
        if stale.size:
            self._index.remove(stale.astype(np.int64))
            self._graph_slots = None
        return int(stale.size)

    def remove(self, slot: int) -> None:
        if self._snap_open is not None and slot < self._snap_open.shape[0] \
                and self._snap_open[slot] and not (slot < self._has.shape[0] and self._has[slot]):
            # The key's snapshot entry goes; the slot may be reused before finish_restore.
            self._snap_open[slot] = False
            self._snap_has[slot] = False
            self._index.remove(np.array([slot], np.int64))
            self._graph_slots = None
            return
        if slot < self._has.shape[0] and self._has[slot]:
            self._has[slot] = False
            self.count -= 1
            if self._index is not None:
                self._pending.drop(slot)
                self._index.remove(np.array([slot], np.int64))
                self._graph_slots = None

    @property
    def needs_flush(self) -> bool:
        return len(self._pending) > 0

    def flush(self) -> None:
        """Insert the pending vectors into the graph, in one parallel batch."""
        slots, x = self._pending.take()
        if slots.size == 0:  # nothing waited, or every waiting slot was dropped
            return
        self._graph_slots = None
        self._index.add(x, slots, threads=0 if len(slots) >= 64 else 1)

    @property
    def memory_bytes(self) -> int:
        if self._index is not None:
            return int(self._index.nbytes)
        return int(self._vecs.nbytes + self._sqn.nbytes)

    def _rows(self, slots: np.ndarray) -> np.ndarray:
        """The stored vectors (unit rows for COSINE) of document ``slots`` that hold one:
        the FLAT matrix, or gathered from the graph (its ids are the slots)."""
        if self._index is None:
            return self._vecs[slots]
        return self._index.slot_vectors(self._graph_map()[0][slots])

    def _graph_map(self):
        """(graph slot per document slot, -1 for none; the graph's slot count), cached
        until the graph changes."""
        cached = self._graph_slots
        if cached is None:
            labels = self._index.slot_labels()
            held = np.flatnonzero(labels >= 0)
            where = np.full(int(labels.max()) + 1 if held.size else 0, -1, np.int64)
            where[labels[held]] = held
            cached = self._graph_slots = (where, labels.shape[0])
        return cached

    # -- search (worker threads, under the index's read lock) -----------------------------
    def _ef(self, ef: int | None, k: int) -> int:
        """The graph's candidate list size: EF_RUNTIME (the query's, else the field's),
        at least k, and at most what is stored: a longer list finds nothing more, and
        a client's EF_RUNTIME 1000000000 must not make the search reserve gigabytes."""
        return max(k, min(int(ef or self.ef_runtime), self.count))

    def _exact(self, q: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Redis-convention distances from q to the vectors in ``slots`` (float32,
        computed directly, not through the |x|^2 - 2xq + |q|^2 expansion)."""
        if slots.size == 0:
            return np.zeros(0, np.float32)
        return self._distances_to(q, self._rows(slots))

    def _distances_to(self, q: np.ndarray, base: np.ndarray) -> np.ndarray:
        if self.metric == "l2":
            return _core.pairwise(q[None, :], base, "l2sq")[0]
        return (np.float32(1.0) - _core.pairwise(q[None, :], base, "dot")[0]).astype(np.float32)

    def _scan(self, q: np.ndarray, kk: int, live: np.ndarray):
        """Exact top-kk candidates over the slots in ``live`` (nearkit's Flat kernel)."""
        hi = self._hi
        code = 0 if self.metric == "l2" else 1  # cosine: vectors are unit-normalised already
        if self._index is None:
            ids, _ = _core.flat_search(self._vecs[:hi], self._sqn[:hi], None, q[None, :], kk, code,
                                       np.ascontiguousarray(live).view(np.uint8), 1, False)
            ids = ids[0]
            return ids[ids >= 0]
        # Graph fields: the graph scans the allowed rows of its own storage (ids = slots).
        where, n_graph = self._graph_map()
        gmask = np.zeros(n_graph, bool)
        docs = np.flatnonzero(live)
        docs = docs[docs < where.shape[0]]
        g = where[docs]
        gmask[g[g >= 0]] = True
        ids, _ = self._index.scan(q[None, :], kk, SlotFilter(gmask))
        ids = ids[0]
        return ids[ids >= 0]

    def knn_raw(self, blob: bytes, k: int, ef: int | None):
        """Unfiltered graph search for a FLOAT32 query blob of the right size, without
        the sanitising copy of ``decode_blob`` (ValueError for NaN/inf: the caller then
        takes the general path). Same results as ``knn(decode_blob(blob), k, None, ef)``."""
        if k <= 0 or self.count == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        k = min(k, self.count)
        q = np.frombuffer(blob, dtype=np.float32)
        ids, dist = self._index.search(q, k, ef=self._ef(ef, k))
        if ids.shape[0] and ids[-1] < 0:
            keep = ids >= 0
            ids, dist = ids[keep], dist[keep]
        return ids, dist

    def knn_raw_many(self, blobs: list, k: int, ef: int | None):
        """``knn_raw`` for several FLOAT32 query blobs (each of the right size) in one
        graph call: (ids, dist, ok), ids/dist (len(blobs), min(k, count)) with rows
        padded by id -1; ``ok`` is None when every query was searched, else a bool
        per query, False where it holds NaN/inf (not searched: the caller answers
        those through the general path, which sanitises them)."""
        b = len(blobs)
        k = min(k, self.count)
        q = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(b, self.dim)
        if k <= 0:
            return np.zeros((b, 0), np.int64), np.zeros((b, 0), np.float32), None
        ok = None
        if not np.isfinite(q).all():
            ok = np.isfinite(q).all(axis=1)
            q = q[ok]
            if q.shape[0] == 0:
                return np.zeros((0, k), np.int64), np.zeros((0, k), np.float32), ok
        ids, dist = self._index.search(q, k, ef=self._ef(ef, k), threads=1)
        return ids, dist, ok

    def knn(self, q: np.ndarray, k: int, allowed: np.ndarray | None, ef: int | None):
        """Up to k (slot, distance) pairs nearest q among slots with a vector (and in
        ``allowed``, a bool mask over slots, if given); sorted by distance then slot."""
        if allowed is None and self._index is not None:
            # Plain graph search, the hot path: nearkit.HNSW normalises for cosine itself.
            if k <= 0 or self.count == 0:
                return np.zeros(0, np.int64), np.zeros(0, np.float32)
            k = min(k, self.count)
            ids, dist = self._index.search(q, k, ef=self._ef(ef, k))
            if ids.shape[0] and ids[-1] < 0:
                keep = ids >= 0
                ids, dist = ids[keep], dist[keep]
            return ids, dist
        slots, dist = nearest(self, self._prepare(q)[None, :], k, allowed, {"ef": ef})
        keep = slots[0] >= 0
        return slots[0][keep], dist[0][keep]

    # -- the field as a vector column of the index's table (see store.table.nearest) ------
    @property
    def walk_is_exact(self) -> bool:
        return self._index is None  # FLAT: its only search is the exact one

    def restrict(self, allowed: np.ndarray) -> np.ndarray:
        hi = self._hi
        return self._has[:hi] & _fit(allowed, hi)

    def walk(self, q: np.ndarray, k: int, allowed: np.ndarray | None, params: dict):
        """The graph's search (the filter as the allowed slots); FLAT: the exact scan."""
        if self._index is None:
            return self.scan(q, k, allowed)
        ef = self._ef(params.get("ef"), k)
        if allowed is None:
            ids, dist = self._index.search(q, k, ef=ef, threads=1)
        else:
            ids, dist = self._index.search(q, k, ef=ef, filter=np.flatnonzero(allowed), threads=1)
        # The graph re-ranks its results exactly: its distances are used as they are.
        return ids.astype(np.int64, copy=False), dist

    def scan(self, q: np.ndarray, k: int, allowed: np.ndarray | None):
        """Exact top-k over the allowed slots holding a vector, distances computed
        directly (so values and near-ties match a direct computation), ties by slot."""
        live = np.ascontiguousarray(self._has[: self._hi] if allowed is None else allowed)
        count = int(np.count_nonzero(live))
        out_s = np.full((q.shape[0], k), -1, np.int64)
        out_d = np.full((q.shape[0], k), np.inf, np.float32)
        for i in range(q.shape[0]):
            if count <= 4 * k + 64:
                slots = np.flatnonzero(live)
            else:  # candidates by the fast kernel, then exact distances
                slots = self._scan(q[i], min(count, k + 16), live)
            d = self._exact(q[i], slots)
            order = np.lexsort((slots, d))[:k]
            out_s[i, : order.shape[0]] = slots[order]
            out_d[i, : order.shape[0]] = d[order]
        return out_s, out_d

    def range(self, q: np.ndarray, radius: float, allowed: np.ndarray | None):
        """Every (slot, distance) with distance <= radius (exact), sorted by slot."""
        return within(self, self._prepare(q), radius, allowed)

    def rows_mask(self) -> np.ndarray:
        return self._has[: self._hi]

    def distances(self, q: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Exact distances from the prepared query q to ``slots``: a FLAT field's whole
        matrix at once when every row is asked for, else block by block (a graph
        field's rows are gathered, never all copied at once)."""
        hi = self._hi
        if slots.size == hi and hi and self._index is None:
            return self._distances_to(q, self._vecs[:hi])
        return np.concatenate([self._exact(q, slots[a:a + GATHER_ROWS])
                               for a in range(0, slots.shape[0], GATHER_ROWS)] or
                              [np.zeros(0, np.float32)])


def _fit(mask: np.ndarray, n: int) -> np.ndarray:
    if mask.shape[0] == n:
        return mask
    out = np.zeros(n, bool)
    m = min(n, mask.shape[0])
    out[:m] = mask[:m]
    return out
