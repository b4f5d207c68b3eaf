"""The shard: a Ray actor holding one nearkit index.

The actor does only what one index does (add, remove, search, save, export an
image); routing, merging and recovery live with the caller
(:mod:`nearkit.distributed.sharded`). Arrays arrive as Ray object refs, which
Ray resolves to read-only numpy views of the object store (no copy on the same
node); the index copies what it keeps.
"""

from __future__ import annotations

import time

import numpy as np
import ray

from ..indexes.base import IndexImage


def make_index(kind: str, dim: int, metric, options: dict):
    """A new, empty index: ``kind`` is flat/hnsw/trees/ivf or a factory string."""
    from ..indexes.factory import index_factory
    from ..indexes.flat import Flat
    from ..indexes.hnsw import HNSW
    from ..indexes.ivf import IVF
    from ..indexes.trees import Trees

    classes = {"flat": Flat, "hnsw": HNSW, "trees": Trees, "ivf": IVF}
    if not isinstance(kind, str):
        raise TypeError(f"kind must be a string, got {type(kind).__name__}")
    cls = classes.get(kind.lower())
    if cls is not None:
        return cls(dim, **options) if metric is None else cls(dim, metric, **options)
    if metric is None:
        return index_factory(dim, kind, **options)
    return index_factory(dim, kind, metric, **options)


def index_from_image(image: IndexImage):
    """A modifiable index from an image (the object store's arrays are read-only)."""
    from ..indexes import from_image

    return from_image(image, copy=True)


class Shard:
    """One shard's index. ``source`` says where it starts from:

    ``("new", kind, dim, metric, options)``, ``("file", path, mmap)`` or
    ``("image", image)`` (an :class:`IndexImage`, e.g. a snapshot or a trained,
    empty IVF shared by every shard).
    """

    def __init__(self, number: int, source: tuple):
        self.number = number
        self.index = self._open(source)

    @staticmethod
    def _open(source):
        what = source[0]
        if what == "new":
            return make_index(*source[1:])
        if what == "file":
            from ..indexes import load

            return load(source[1], mmap=source[2])
        if what == "image":
            image = source[1]
            if isinstance(image, ray.ObjectRef):
                image = ray.get(image)
            return index_from_image(image)
        raise ValueError(f"unknown shard source {what!r}")

    # -- mutation -----------------------------------------------------------------
    def replay(self, ops) -> int:
        """Apply a list of logged operations (their arrays given as object refs)."""
        for op in ops:
            name, args = op[0], [ray.get(a) if isinstance(a, ray.ObjectRef) else a for a in op[1:]]
            getattr(self, name)(*args)
        return len(self.index)

    def add(self, vectors, ids, params=None) -> int:
        self.index.add(vectors, ids, **(params or {}))
        return len(self.index)

    def remove(self, ids) -> int:
        return self.index.remove(ids)

    def build(self) -> int:
        self.index.build()
        return len(self.index)

    def reset_to(self, image) -> int:
        """Replace the index by one made from ``image`` (e.g. a trained quantiser)."""
        self.index = index_from_image(image)
        return len(self.index)

    # -- queries --------------------------------------------------------------------
    def present(self, ids) -> int:
        """The first of ``ids`` already held, or -1."""
        labels = self.index.slot_labels()
        hit = np.isin(ids, labels[labels >= 0])
        return int(ids[np.argmax(hit)]) if hit.any() else -1

    def search(self, queries, k, params, filter=None):
        if filter is not None:  # a top-level argument, so Ray resolves its ref
            params = {**params, "filter": filter}
        return self.index.search(queries, k, **params)

    def search_timed(self, queries, k, params):
        """search() and the CPU seconds this shard's thread spent on it (for
        benchmarks on a shared machine, where wall-clock time is noisy)."""
        t = time.thread_time()
        ids, dist = self.index.search(queries, k, **params)
        return ids, dist, time.thread_time() - t

    def info(self) -> dict:
        labels = self.index.slot_labels()
        live = labels[labels >= 0]
        return {"n": len(self.index), "max_id": int(live.max()) if live.size else -1,
                "kind": self.index.kind, "dim": self.index.dim, "metric": self.index.metric,
                "built": getattr(self.index, "is_built", True)}

    # -- persistence ----------------------------------------------------------------
    def save(self, path) -> int:
        self.index.save(path)
        return len(self.index)

    def image(self) -> IndexImage:
        return self.index.image()

    def snapshot(self) -> tuple[IndexImage, int]:
        """(image, its size in bytes): called with num_returns=2, so the caller can
        keep the image in the object store and fetch only the size."""
        image = self.index.image()
        return image, int(sum(a.nbytes for a in image.sections.values()))


ShardActor = ray.remote(Shard)
