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
from dataclasses import dataclass

import numpy as np

from .. import _validate
from ..metrics import COSINE, normalize_metric, normalize_rows

# kind name (as stored in index files) -> class; filled by @register.
INDEX_KINDS: dict[str, type] = {}


def register(kind: str):
    """Class decorator: make an index class loadable by ``nearkit.load``."""

    def deco(cls):
        cls.kind = kind
        INDEX_KINDS[kind] = cls
        return cls

    return deco


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


class Index:
    kind = "abstract"
    # True when add() takes ``threads`` (building the structure on several cores).
    parallel_add = False

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
    def add(self, vectors, ids=None, **params) -> None:
        """Add vectors; ``ids`` are int64 (consecutive after the largest id when omitted)."""
        x, _ = self._vectors(vectors)
        ids = self._default_ids(x.shape[0]) if ids is None else _validate.as_ids(ids, x.shape[0])
        if x.shape[0]:
            self._add(x, ids, **params)

    def search(self, queries, k: int, filter=None, threads=None, **params):
        """Return (ids, distances) of the k nearest, shapes (nq, k) (1-D for one query).

        Fewer than k hits are padded with id -1 and distance +inf. ``filter`` is a
        boolean mask over ids, an array of allowed ids, or a :class:`SlotFilter`.
        """
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
            ids, dist = _validate.pad_results(ids, dist, k)
        return (ids[0], dist[0]) if was_1d else (ids, dist)

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
