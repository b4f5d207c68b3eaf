"""VECTOR fields of a search index: blob decoding and the nearest-neighbour index.

Every vector field keeps its vectors (float32, unit-normalised for COSINE) in a
dense matrix by document slot, and a nearkit index over the same slots:
``nearkit.Flat`` for FLAT fields and ``nearkit.HNSW`` for HNSW fields when
those are available (exact search over the matrix otherwise). Distances follow
Redis (redis-vector-spec.md section 5.5): L2 squared, IP ``1 - a.b``, COSINE
``1 - cos``; smaller is closer -- the same conventions as nearkit's metrics.
"""

from __future__ import annotations

import numpy as np

from .. import _core

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


def _nearkit_index_class(algorithm: str):
    """nearkit's index class for FLAT/HNSW when this build has it (None otherwise)."""
    import nearkit

    name = "HNSW" if algorithm == "HNSW" else "Flat"
    return getattr(nearkit, name, None)


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
        self._vecs = np.zeros((0, dim), np.float32)
        self._has = np.zeros(0, bool)
        self.count = 0
        self._index = None
        cls = _nearkit_index_class(algorithm)
        if cls is not None:
            self._index = self._make_index(cls)

    def _make_index(self, cls):
        if self.algorithm == "HNSW":
            try:
                return cls(self.dim, metric=self.metric, M=int(self.params.get("M", 16)),
                           ef_construction=int(self.params.get("EF_CONSTRUCTION", 200)))
            except TypeError:
                return cls(self.dim, metric=self.metric)
        return cls(self.dim, metric=self.metric)

    # -- decoding -----------------------------------------------------------------------
    def decode_blob(self, blob: bytes) -> np.ndarray:
        """A vector blob (TYPE's little-endian bytes) as float32 (dim,); BlobSizeError if wrong size."""
        if len(blob) != self.blob_size:
            raise BlobSizeError(len(blob), self.blob_size)
        raw = np.frombuffer(blob, dtype=self.dtype)
        if self.data_type == "BFLOAT16":
            return (raw.astype(np.uint32) << 16).view(np.float32)
        return raw.astype(np.float32)

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
        if self.metric == "cosine":
            n = float(np.linalg.norm(v))
            return (v / n).astype(np.float32) if n > 0 else v.astype(np.float32)
        return v

    # -- maintenance (event-loop thread, under the index's write lock) -------------------
    def _reserve(self, slot: int) -> None:
        if slot >= self._has.shape[0]:
            cap = max(slot + 1, 2 * self._has.shape[0], 1024)
            vecs = np.zeros((cap, self.dim), np.float32)
            vecs[: self._vecs.shape[0]] = self._vecs
            has = np.zeros(cap, bool)
            has[: self._has.shape[0]] = self._has
            self._vecs, self._has = vecs, has

    def upsert(self, slot: int, vec: np.ndarray) -> None:
        self._reserve(slot)
        v = self._prepare(vec)
        if self._has[slot]:
            if self._index is not None:
                self._index.remove(np.array([slot], np.int64))
        else:
            self.count += 1
        self._vecs[slot] = v
        self._has[slot] = True
        if self._index is not None:
            self._index.add(v[None, :], np.array([slot], np.int64))

    def remove(self, slot: int) -> None:
        if slot < self._has.shape[0] and self._has[slot]:
            self._has[slot] = False
            self.count -= 1
            if self._index is not None:
                self._index.remove(np.array([slot], np.int64))

    def has(self, n: int) -> np.ndarray:
        """Bool mask (length n) of slots that hold a vector."""
        out = np.zeros(n, bool)
        m = min(n, self._has.shape[0])
        out[:m] = self._has[:m]
        return out

    @property
    def memory_bytes(self) -> int:
        return int(self._vecs.nbytes)

    # -- search (worker threads, under the index's read lock) -----------------------------
    def _exact(self, q: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Redis-convention distances from q to the vectors in ``slots`` (float32)."""
        if slots.size == 0:
            return np.zeros(0, np.float32)
        base = self._vecs[slots] if slots.size < self._vecs.shape[0] else self._vecs
        q2 = q[None, :]
        if self.metric == "l2":
            d = _core.pairwise(q2, base, "l2sq")[0]
        else:
            d = 1.0 - _core.pairwise(q2, base, "dot")[0]
        return d[: slots.size].astype(np.float32, copy=False)

    def knn(self, q: np.ndarray, k: int, allowed: np.ndarray | None, ef: int | None):
        """Up to k (slot, distance) pairs nearest q among slots with a vector (and in
        ``allowed``, a bool mask, if given); sorted by distance then slot."""
        q = self._prepare(q.astype(np.float32))
        n = self._has.shape[0]
        live = self._has if allowed is None else (self._has & _fit(allowed, n))
        count = int(live.sum()) if allowed is not None else self.count
        if k <= 0 or count == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        k = min(k, count)
        use_index = self._index is not None and not (allowed is not None and count <= 4 * k + 256)
        if use_index:
            params = {}
            if self.algorithm == "HNSW":
                params["ef"] = max(int(ef or self.ef_runtime), k)
            flt = None if allowed is None else live
            try:
                ids, dist = self._index.search(q, k, filter=flt, **params)
            except TypeError:
                ids, dist = self._index.search(q, k, filter=flt)
            keep = ids >= 0
            ids, dist = ids[keep].astype(np.int64), dist[keep].astype(np.float32)
        else:
            slots = np.flatnonzero(live)
            d = self._exact(q, slots)
            if k < slots.size:
                part = np.argpartition(d, k - 1)[:k]
                slots, d = slots[part], d[part]
            ids, dist = slots, d
        order = np.lexsort((ids, dist))
        return ids[order], dist[order]

    def range(self, q: np.ndarray, radius: float, allowed: np.ndarray | None):
        """Every (slot, distance) with distance <= radius (exact), sorted by slot."""
        q = self._prepare(q.astype(np.float32))
        n = self._has.shape[0]
        live = self._has if allowed is None else (self._has & _fit(allowed, n))
        slots = np.flatnonzero(live)
        d = self._exact(q, slots)
        keep = d <= np.float32(radius)
        return slots[keep], d[keep]


def _fit(mask: np.ndarray, n: int) -> np.ndarray:
    if mask.shape[0] == n:
        return mask
    out = np.zeros(n, bool)
    m = min(n, mask.shape[0])
    out[:m] = mask[:m]
    return out
