"""What every nearkit index shares: argument handling and the public conventions.

Subclasses implement the underscore hooks; the public methods here validate
input once (through ``nearkit._validate``), normalise for cosine, translate
filters into slot masks and shape the results, so each index only deals with
clean float32 / int64 arrays:

- ``_add(x, ids)``                      x float32 (n, dim) already prepared
- ``_search(q, k, mask, threads, **p)`` -> (ids int64 (nq, k), dist float32 (nq, k))
- ``_remove(ids) -> int``               number removed
- ``_slot_labels() -> int64 array``     user id per internal slot, -1 if empty
- ``__len__``
- ``_params() -> dict`` / ``_sections() -> dict[str, ndarray]`` and the
  classmethod ``_from_sections(dim, metric, params, sections)`` for files.
"""

from __future__ import annotations

import copy
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .. import _progress, _validate
from ..errors import ReadOnlyIndexError
from ..metrics import COSINE, normalize_metric, normalize_rows

@dataclass(frozen=True)
class SlotFilter:
    """A search filter given directly over an index's internal slots.

    ``mask[s]`` allows slot ``s`` (see :meth:`Index.slot_labels`); its length must be
    the index's current slot count. Callers that filter the same index many times
    (the store does) build it once per index version instead of translating ids on
    every query.
    """

    mask: np.ndarray


@dataclass(frozen=True)
class IndexImage:
    """An index's file contents, detached from the index (see :meth:`Index.image`)."""

    kind: str
    dim: int
    metric: str
    params: dict
    sections: dict

    def save(self, path) -> None:
        from ..io import write_index

        write_index(path, self.kind, self.dim, self.metric, self.params, self.sections)


@dataclass(frozen=True)
class TunePoint:
    """One setting tried by :meth:`Index.tune`: recall@k and queries/s (one thread)."""

    params: dict
    recall: float
    qps: float


@dataclass(frozen=True)
class TuneResult:
    """What :meth:`Index.tune` measured and chose.

    ``params`` are the search parameters now used by default (``{"ef": 48}``,
    ``{"nprobe": 8, "k_factor": 4}``, ``{"search_k": 800}``; empty for an exact index),
    ``reached`` says whether they meet ``target_recall``; ``curve`` holds every setting
    tried, in order.
    """

    params: dict
    recall: float
    qps: float
    target_recall: float
    reached: bool
    k: int
    n_queries: int
    curve: list = field(default_factory=list)


def _index_from_bytes(data: bytes):
    """Unpickle: the index file's bytes back into an index (see Index.__reduce__)."""
    import os
    import tempfile

    from . import load

    fd, path = tempfile.mkstemp(suffix=".nk")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        return load(path)
    finally:
        os.remove(path)


def _without_self(ids: np.ndarray, own: np.ndarray, k: int) -> np.ndarray:
    """Each row's first k ids other than its own (rows were searched with k + 1)."""
    keep = ids != own[:, None]
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(ids, order, 1)


def _recall(found: np.ndarray, truth: np.ndarray) -> float:
    hits = total = 0
    for f, t in zip(found, truth):
        t = t[t >= 0]
        hits += np.intersect1d(f[f >= 0], t).size
        total += t.size
    return hits / total if total else 1.0


class Index:
    kind = "abstract"  # the name in index files; nearkit.indexes.KINDS maps it back
    # True when add() takes ``threads`` (building the structure on several cores).
    parallel_add = False
    # True when adding an id already present replaces its vector (else: ValueError).
    _add_replaces = False

    def __init__(self, dim: int, metric: str = "l2"):
        self._dim = _validate.check_dim(dim)
        self._metric = normalize_metric(metric)

    # -- properties ---------------------------------------------------------
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def metric(self) -> str:
        return self._metric

    def __repr__(self) -> str:
        return f"{type(self).__name__}(dim={self.dim}, metric={self.metric!r}, n={len(self)})"

    # -- shared input handling ---------------------------------------------
    def _prepare(self, x: np.ndarray) -> np.ndarray:
        """Per-metric preprocessing applied to both stored vectors and queries."""
        return normalize_rows(x) if self._metric == COSINE else x

    def _vectors(self, vectors, name: str = "vectors") -> tuple[np.ndarray, bool]:
        x, was_1d = _validate.as_vectors(vectors, self._dim, name)
        return self._prepare(x), was_1d

    def _default_ids(self, n: int) -> np.ndarray:
        labels = self._slot_labels()
        start = int(labels.max()) + 1 if labels.size and labels.max() >= 0 else 0
        return _validate.default_ids(start, n)

    # -- public API -----------------------------------------------------------
    def add(self, vectors, ids=None, progress=None, **params) -> None:
        """Add vectors; ``ids`` are int64 (consecutive after the largest id when omitted).

        ``progress``: a callable ``progress(done, total)`` or True for a tqdm bar; the
        vectors then go in chunks (all or nothing still: ids are checked first).
        """
        x, _ = self._vectors(vectors)
        ids = self._default_ids(x.shape[0]) if ids is None else _validate.as_ids(ids, x.shape[0])
        if not x.shape[0]:
            return
        bar = _progress.start(progress, x.shape[0], f"adding to {self.kind}")
        if bar is None:
            self._add(x, ids, **params)
            return
        if not self._add_replaces and len(self):
            present = ids[np.isin(ids, self._slot_labels())]
            if present.size:
                raise ValueError(f"id {int(present[0])} is already in the index")
        with bar:
            self._add_with_progress(x, ids, bar, **params)

    def _add_with_progress(self, x, ids, bar, **params) -> None:
        for start, stop in _progress.chunks(x.shape[0]):
            self._add(x[start:stop], ids[start:stop], **params)
            bar.update(stop - start)

    # -- what is stored ---------------------------------------------------------
    def ids(self) -> np.ndarray:
        """Every stored id, ascending (int64)."""
        labels = self._slot_labels()
        return np.sort(labels[labels >= 0])

    def __contains__(self, id_) -> bool:
        if isinstance(id_, bool) or not isinstance(id_, (int, np.integer)) or id_ < 0:
            return False  # -1 marks empty slots: never an id
        return bool(np.any(self._slot_labels() == int(id_)))

    def get(self, ids) -> np.ndarray:
        """The stored vectors of ``ids`` (float32 (n, dim); 1-D for one id), as stored:
        normalised for cosine. An id not in the index raises KeyError."""
        want = _validate.as_ids(ids, unique=False, name="ids")
        labels = self._slot_labels()
        order = np.argsort(labels, kind="stable")
        pos = np.searchsorted(labels[order], want)
        pos = np.minimum(pos, max(labels.size - 1, 0))
        found = labels.size > 0
        slots = order[pos] if found else pos
        hit = (labels[slots] == want) if found else np.zeros(want.shape, bool)
        if not hit.all():
            raise KeyError(f"id {int(want[np.argmin(hit)])} is not in the index")
        out = self._vectors_at(slots)
        return out[0] if np.ndim(ids) == 0 else out

    def _vectors_at(self, slots: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    #: True when the index keeps every vector as stored (normalised for cosine), so
    #: ``slot_vectors`` can give them back; an index keeping only lossy codes says False.
    keeps_vectors = True

    #: True when ``search`` is exact (a filter then never needs another path).
    exact = False

    def scan(self, queries, k: int, filter: SlotFilter):
        """Exact (ids, distances) of the k nearest among the slots ``filter`` allows,
        shapes (nq, k), -1/inf padded: no walk, no approximation. For callers that have
        already chosen an exact scan (the store's table); ``search`` chooses by itself."""
        if not isinstance(filter, SlotFilter):
            raise TypeError(f"scan takes a SlotFilter, got {type(filter).__name__}")
        q, _ = self._vectors(queries, "queries")
        k = _validate.check_k(k, len(self), q.shape[0])
        mask = _validate.check_slot_mask(filter.mask, self._slot_count())
        width = _validate.clip_to_stored(k, len(self))
        ids, dist = self._scan(q, width, mask)
        return _validate.pad_results(ids, dist, k)

    def _scan(self, q, k, mask):
        """Gather the allowed rows and scan them with the Flat kernel (indexes that can
        scan their own storage in place override this)."""
        from .. import _core
        from ..metrics import METRIC_CODES

        slots = np.flatnonzero(mask[: self._slot_count()])
        labels = self._slot_labels()
        slots = slots[labels[slots] >= 0]
        if slots.size == 0:
            return np.full((q.shape[0], k), -1, np.int64), np.full((q.shape[0], k), np.inf, np.float32)
        x = self.slot_vectors(slots)
        pos, dist = _core.flat_search(x, np.einsum("ij,ij->i", x, x), None, q, k,
                                      METRIC_CODES[self._metric], None, 1, False)
        return np.where(pos >= 0, labels[slots][np.clip(pos, 0, None)], -1), dist

    def slot_vectors(self, slots) -> np.ndarray:
        """The stored vectors (float32 (n, dim), normalised for cosine) at internal
        ``slots`` (positions in :meth:`slot_labels`): callers that keep per-slot data
        read the index's vectors instead of keeping a second copy. A slot outside the
        index raises IndexError; a free slot gives whatever it last held."""
        s = np.ascontiguousarray(slots, dtype=np.int64).reshape(-1)
        n = self._slot_count()
        if s.size and (int(s.min()) < 0 or int(s.max()) >= n):
            raise IndexError(f"slot out of range (the index has {n} slots)")
        if not self.keeps_vectors:
            raise TypeError(f"{type(self).__name__} keeps only codes, not the vectors")
        return self._vectors_at(s)

    # -- pickle / copy: through the file format ----------------------------------
    def __reduce__(self):
        import os
        import tempfile

        fd, path = tempfile.mkstemp(suffix=".nk")
        os.close(fd)
        try:
            self.save(path)
            with open(path, "rb") as f:
                data = f.read()
        finally:
            os.remove(path)
        return _index_from_bytes, (data,)

    def _read_only_error(self, action: str) -> ReadOnlyIndexError:
        return ReadOnlyIndexError(
            f"cannot {action}: this {type(self).__name__} index is memory-mapped and read-only; "
            "load it with mmap=False to change it")

    # -- auto-tuning ----------------------------------------------------------------
    def _tune_lines(self, k: int) -> list:
        """Lists of search-parameter dicts for tune(), each ordered from cheap to costly."""
        return [[{}]]

    def _set_search_defaults(self, params: dict) -> None:
        pass

    def tune(self, queries=None, target_recall: float = 0.95, k: int = 10,
             n_queries: int = 200, seed: int = 0, progress=None) -> TuneResult:
        """Pick the fastest search setting reaching ``target_recall`` at ``k``, and keep it.

        Recall is measured against exact search (a Flat index over the stored vectors)
        on ``queries``, or, when None, on up to ``n_queries`` stored vectors held out:
        each one's own id is left out of both answers. Settings are tried from cheap to
        expensive (HNSW ``ef``, IVF ``nprobe``, Trees ``search_k``) until one reaches the
        target or stop gaining (IVF with refine also tries larger ``k_factor``); the fastest
        that reaches it becomes the index's default (saved with it). If none does, the one
        with the best recall is kept and a RuntimeWarning says so.
        """
        from .flat import Flat

        k = _validate.check_k(k)
        target = float(target_recall)
        if not 0.0 < target <= 1.0:
            raise ValueError(f"target_recall must be in (0, 1], got {target_recall}")
        if len(self) == 0:
            raise ValueError("tune needs an index that holds vectors")
        all_ids = self.ids()
        base = self.get(all_ids)  # raises for an index keeping only codes
        try:
            exact = Flat(self.dim, self.metric)
        except ValueError:
            raise ValueError(f"tune measures recall with exact search, which does not support "
                             f"metric {self.metric!r}") from None
        exact.add(base, ids=all_ids)
        if queries is None:
            rng = np.random.default_rng(seed)
            rows = np.sort(rng.choice(all_ids.size, min(n_queries, all_ids.size), replace=False))
            q, own, k_search = base[rows], all_ids[rows], k + 1
        else:
            q, _ = _validate.as_vectors(queries, self.dim, "queries")
            own, k_search = None, k
        truth, _ = exact.search(q, k_search)
        if own is not None:
            truth = _without_self(truth, own, k)
        curve: list[TunePoint] = []
        lines = self._tune_lines(k)
        bar = _progress.start(progress, len(lines), f"tuning {self.kind}")
        reached_in_line = None
        for number, line in enumerate(lines):
            line_curve: list[TunePoint] = []
            for params in line:
                t0 = time.perf_counter()
                found, _ = self.search(q, k_search, **params)
                elapsed = max(time.perf_counter() - t0, 1e-9)
                if own is not None:
                    found = _without_self(found, own, k)
                line_curve.append(TunePoint(dict(params), _recall(found, truth),
                                            q.shape[0] / elapsed))
                if line_curve[-1].recall >= target:
                    break
                # stop paying for a setting that no longer buys recall
                if len(line_curve) >= 4 and line_curve[-1].recall <= line_curve[-4].recall + 0.002:
                    break
            curve += line_curve
            if bar is not None:
                bar.update(1)
            if reached_in_line is None and line_curve[-1].recall >= target:
                reached_in_line = number
            elif reached_in_line is not None:
                break  # one line past the first that reached the target: enough
        if bar is not None:
            bar.__exit__(None, None, None)
        reached = [p for p in curve if p.recall >= target]
        best = max(reached, key=lambda p: p.qps) if reached else max(curve, key=lambda p: p.recall)
        if not reached:
            warnings.warn(f"tune: no setting reached recall {target} at k={k}; keeping "
                          f"{best.params} (recall {best.recall:.3f})", RuntimeWarning, stacklevel=2)
        self._set_search_defaults(best.params)
        return TuneResult(dict(best.params), best.recall, best.qps, target, bool(reached), k,
                          int(q.shape[0]), curve)

    def search(self, queries, k: int, *, filter=None, threads=None, **params):
        """Return (ids, distances) of the k nearest, shapes (nq, k) (1-D for one query).

        Fewer than k hits are padded with id -1 and distance +inf. ``filter`` is a
        boolean mask over ids, an array of allowed ids, or a :class:`SlotFilter`.
        Everything after ``k`` is keyword-only; ``params`` are the kind's own search
        parameters (``ef``, ``nprobe``, ``search_k`` ...).
        """
        if filter is None and threads is None and self._lean(queries, k):
            hit = self._search_one(queries, k, **params)
            if hit is not None:
                return hit
        q, was_1d = self._vectors(queries, "queries")
        stored = len(self)
        k = _validate.check_k(k, stored, q.shape[0])
        threads = _validate.check_threads(threads)
        if isinstance(filter, SlotFilter):
            mask = _validate.check_slot_mask(filter.mask, self._slot_count())
        else:
            # _slot_labels() may copy a large array: only ask for it when filtering.
            mask = None if filter is None else _validate.filter_to_slot_mask(filter, self._slot_labels())
        if q.shape[0] == 0:
            ids = np.empty((0, k), np.int64)
            dist = np.empty((0, k), np.float32)
        else:
            # The core computes at most as many neighbours as are stored (at
            # least 1); the rest of the width is padding.
            width = _validate.clip_to_stored(k, stored)
            ids, dist = self._search(q, width, mask, threads, **params)
            if filter is not None and not isinstance(filter, SlotFilter):
                _validate.drop_disallowed(ids, dist, filter)
            ids, dist = _validate.pad_results(ids, dist, k)
        return (ids[0], dist[0]) if was_1d else (ids, dist)

    def _lean(self, queries, k) -> bool:
        """The lean path's rule, for the common one-query loop: a clean float32
        vector and k within what is stored (callers also need no filter and
        default threads). The kind's _search_one may still decline."""
        return (type(queries) is np.ndarray and queries.dtype == np.float32
                and queries.ndim == 1 and queries.shape[0] == self._dim
                and queries.flags.c_contiguous and type(k) is int and 0 < k <= len(self))

    def _search_one(self, query, k, **params):
        """(ids, distances) for one clean query (float32, C-contiguous, right
        length; 0 < k <= len(self); no filter, default threads), or None to take
        the general path. Must give exactly what the general path would: the
        core still checks finiteness. Kinds with a cheaper one-query call
        override it; params the lean path cannot vouch for mean None."""
        return None

    def slot_labels(self) -> np.ndarray:
        """The id held by each internal slot (-1 for an empty one), in slot order.

        For callers that keep their own per-slot data and build :class:`SlotFilter`
        masks from it; valid until the index next changes.
        """
        return np.array(self._slot_labels(), copy=True)

    def remove(self, ids) -> int:
        """Remove the given ids; returns how many were present."""
        return self._remove(_validate.as_ids(ids, unique=False, name="ids"))

    def save(self, path) -> None:
        from ..io import write_index

        write_index(path, self.kind, self._dim, self._metric, self._params(), self._sections())

    # True when _sections() returns fresh arrays that nothing else holds.
    _sections_are_copies = False

    def image(self) -> "IndexImage":
        """A detached copy of what :meth:`save` writes.

        Taking it is a memory copy; writing it (``image.save(path)``) can then run on
        another thread while this index keeps changing.
        """
        sections = self._sections()
        if not self._sections_are_copies:
            sections = {name: np.array(a, copy=True) for name, a in sections.items()}
        return IndexImage(self.kind, self._dim, self._metric, copy.deepcopy(self._params()), sections)

    # -- hooks ------------------------------------------------------------------
    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _add(self, x, ids, **params):  # pragma: no cover - abstract
        raise NotImplementedError

    def _search(self, q, k, mask, threads, **params):  # pragma: no cover - abstract
        raise NotImplementedError

    def _remove(self, ids) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def _slot_labels(self) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _slot_count(self) -> int:
        return len(self._slot_labels())

    def _params(self) -> dict:
        return {}

    def _sections(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def _from_sections(cls, dim, metric, params, sections):  # pragma: no cover - abstract
        raise NotImplementedError


class WriteLockedIndex(Index):
    """An index whose Python-side state is guarded by ``self._lock`` (an
    :class:`nearkit._sync.RWLock` the subclass creates): ``add`` and ``remove``
    hold it for writing; the subclass takes it for reading in its searches and for
    writing in its own lazy steps (build, train)."""

    def add(self, vectors, ids=None, **params) -> None:
        with self._lock.write():
            super().add(vectors, ids, **params)

    def remove(self, ids) -> int:
        with self._lock.write():
            return super().remove(ids)
