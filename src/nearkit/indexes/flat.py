"""Flat: exact nearest-neighbour search by scanning every stored vector.

The scan runs in the C++ core (cpp/index/flat.cpp): batches of queries go through a
register-blocked matrix-product kernel fused with top-k selection, a handful of
queries through the per-query SIMD kernels. The kernels' float32 scores only
pre-select: every row within a rounding-error bound of the current k-th is
offered, and its distance computed in double precision decides (ties by slot),
so the answer is the exact k nearest and the k answer is a prefix of the k + 1
one. Memory stays bounded: there is never a queries x base distance matrix.

Storage is three parallel arrays — vectors (n, dim) float32, ids (n,) int64
and squared norms (n,) float32 — which are also the file sections, so a
memory-mapped index searches straight from the file.
"""

from __future__ import annotations

import threading

import numpy as np

from .. import _core, _validate
from ..errors import FormatError
from ..metrics import METRIC_CODES
from .base import Index


class Flat(Index):
    """Exact search for ``metric`` in {"l2", "ip", "cosine"} (see nearkit.metrics).

    ``search`` returns the exact k nearest by the distance computed in double
    precision and reported rounded to float32; equal reported distances are
    ordered by insertion order.
    ``search_radius`` returns every stored vector whose distance (that same
    float32 value) is strictly below the radius.
    """
    kind = "flat"

    exact = True

    def __init__(self, dim: int, metric: str = "l2"):
        super().__init__(dim, metric)
        # (vectors, ids, sqnorms, n): replaced as a whole so that a search
        # running in another thread always sees one consistent snapshot.
        self._state = (
            np.empty((0, self._dim), np.float32),
            np.empty(0, np.int64),
            np.empty(0, np.float32),
            0,
        )
        self._readonly = False
        self._write_lock = threading.Lock()
        self._sorted_ids: np.ndarray | None = None  # cache for duplicate checks
        self._pinned = threading.local()  # the snapshot a search in this thread uses

    # -- size and views ---------------------------------------------------------
    def __len__(self) -> int:
        return self._state[3]

    def _live(self):
        x, ids, sqn, n = getattr(self._pinned, "state", None) or self._state
        return x[:n], ids[:n], sqn[:n]

    def _slot_labels(self) -> np.ndarray:
        return self._live()[1]

    @property
    def vectors(self) -> np.ndarray:
        """The stored vectors (normalised for cosine), read-only view; row i holds the id
        ``slot_labels()[i]``."""
        v = self._live()[0].view()
        v.flags.writeable = False
        return v

    def _vectors_at(self, slots: np.ndarray) -> np.ndarray:
        return self._live()[0][slots]

    # -- mutation -------------------------------------------------------------------
    def _check_writable(self, action: str) -> None:
        if self._readonly:
            raise self._read_only_error(action)

    def add(self, vectors, ids=None, progress=None) -> None:
        """Add vectors (n, dim) with int64 ids (consecutive after the largest when omitted).

        An id already in the index, or repeated in ``ids``, raises ValueError.
        ``progress``: see Index.add.
        """
        self._check_writable("add vectors")
        with self._write_lock:
            super().add(vectors, ids, progress=progress)

    def remove(self, ids) -> int:
        self._check_writable("remove vectors")
        with self._write_lock:
            return super().remove(ids)

    def _sorted_labels(self) -> np.ndarray:
        if self._sorted_ids is None:
            self._sorted_ids = np.sort(self._live()[1])
        return self._sorted_ids

    def _add(self, x: np.ndarray, new_ids: np.ndarray) -> None:
        buf_x, buf_ids, buf_sqn, n = self._state
        if n:
            present = self._sorted_labels()
            if new_ids.min() <= present[-1]:
                pos = np.searchsorted(present, new_ids)
                hit = (pos < n) & (present[np.minimum(pos, n - 1)] == new_ids)
                if hit.any():
                    raise ValueError(f"id {int(new_ids[np.argmax(hit)])} is already in the index")
        m = x.shape[0]
        if n + m > buf_x.shape[0]:  # grow geometrically; old arrays stay valid for readers
            # At least 1024 rows, but never more than ~1 MiB up front (large dims).
            first = max(1, min(1024, (1 << 20) // (4 * self._dim + 12)))
            cap = max(n + m, 2 * buf_x.shape[0], first)
            grown = (np.empty((cap, self._dim), np.float32), np.empty(cap, np.int64),
                     np.empty(cap, np.float32))
            for new, old in zip(grown, (buf_x, buf_ids, buf_sqn)):
                new[:n] = old[:n]
            buf_x, buf_ids, buf_sqn = grown
        buf_x[n:n + m] = x
        buf_ids[n:n + m] = new_ids
        buf_sqn[n:n + m] = np.einsum("ij,ij->i", x, x)
        if self._sorted_ids is not None:
            s = np.sort(new_ids)
            self._sorted_ids = np.insert(self._sorted_ids, np.searchsorted(self._sorted_ids, s), s)
        self._state = (buf_x, buf_ids, buf_sqn, n + m)

    def _remove(self, ids: np.ndarray) -> int:
        x, labels, sqn = self._live()
        gone = np.isin(labels, ids)
        count = int(gone.sum())
        if count:
            keep = ~gone
            # Fresh arrays rather than compaction in place: searches running in
            # other threads keep reading their old snapshot safely.
            self._state = (x[keep], labels[keep], sqn[keep], int(keep.sum()))
            self._sorted_ids = None
        return count

    # -- search ---------------------------------------------------------------------
    def search(self, queries, k: int, *, filter=None, threads=None, **params):
        # One snapshot for the whole call, so a filter translated to slots still
        # matches the slots searched even if another thread adds or removes.
        self._pinned.state = self._state
        try:
            return super().search(queries, k, filter=filter, threads=threads, **params)
        finally:
            self._pinned.state = None

    def _search(self, q, k, mask, threads, **params):
        if params:
            raise TypeError(f"Flat.search takes no parameters {sorted(params)}; it is exact")
        x, labels, sqn = self._live()
        return _core.flat_search(x, sqn, labels, q, k, METRIC_CODES[self._metric], mask,
                                 threads, False)

    def search_radius(self, queries, radius, *, filter=None, threads=None):
        """All stored vectors with distance < radius, in CSR form.

        Returns (lims int64 (nq + 1), ids int64, distances float32): the hits of
        query i are ``ids[lims[i]:lims[i+1]]``, sorted by ascending distance
        (ties by insertion order). Distances follow the index metric.
        """
        q, _ = self._vectors(queries, "queries")
        radius = _validate.check_radius(radius)
        threads = _validate.check_threads(threads)
        x, labels, sqn = self._live()  # one snapshot: filter slots match searched slots
        mask = _validate.filter_to_slot_mask(filter, labels)
        return _core.flat_range(x, sqn, labels, q, np.float32(radius),
                                METRIC_CODES[self._metric], mask, threads)

    # -- persistence ----------------------------------------------------------------
    def _sections(self) -> dict:
        x, labels, sqn = self._live()
        return {"vectors": x, "ids": labels, "sqnorms": sqn}

    @classmethod
    def _from_sections(cls, dim, metric, params, sections):
        index = cls(dim, metric)
        try:
            x, labels, sqn = sections["vectors"], sections["ids"], sections["sqnorms"]
        except KeyError as exc:
            raise FormatError(f"flat index file lacks the section {exc.args[0]!r}") from None
        n = x.shape[0] if x.ndim == 2 else -1
        if (x.dtype != np.float32 or x.shape != (n, dim) or labels.dtype != np.int64
                or labels.shape != (n,) or sqn.dtype != np.float32 or sqn.shape != (n,)):
            raise FormatError(
                f"flat index sections do not fit dim={dim}: vectors {x.dtype}{x.shape}, "
                f"ids {labels.dtype}{labels.shape}, sqnorms {sqn.dtype}{sqn.shape}"
            )
        if n and (labels.min() < 0 or np.unique(labels).size != n):
            raise FormatError("flat index file has negative or duplicate ids")
        index._state = (x, labels, sqn, n)
        index._readonly = not (x.flags.writeable and labels.flags.writeable
                               and sqn.flags.writeable)
        return index
