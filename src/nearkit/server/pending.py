"""Vectors waiting for a batched graph insert (``VectorField.flush``), by slot.

One float32 buffer and one row number per slot, all numpy: no Python object per
waiting vector. (A dict of per-vector arrays left ~100 bytes of object per
document scattered through the allocator's arenas after every bulk load: about
10 MiB per 100,000 documents the process kept.) The buffer is released at
``take``; each vector is copied once into it.
"""

from __future__ import annotations

import numpy as np

from ..store.table import grow


class PendingRows:
    def __init__(self, dim: int):
        self.dim = dim
        self._clear()

    def _clear(self) -> None:
        self.x = np.zeros((0, self.dim), np.float32)
        self.slots = np.zeros(0, np.int64)  # slot per row, -1 once dropped
        self.row = np.zeros(0, np.int64)    # row per slot, -1 for none
        self.n = 0      # rows used
        self.count = 0  # rows still waiting

    def __len__(self) -> int:
        return self.count

    def put(self, slot: int, v: np.ndarray) -> None:
        """Wait with ``v`` for ``slot`` (replacing what it waited with)."""
        if slot < self.row.shape[0]:
            r = int(self.row[slot])
            if r >= 0:
                self.x[r] = v
                return
        else:
            self.row = grow(self.row, slot + 1, -1)
        r = self.n
        if r >= self.x.shape[0]:
            self.x = grow(self.x, r + 1, 0)
            self.slots = grow(self.slots, r + 1, -1)
        self.x[r] = v
        self.slots[r] = slot
        self.row[slot] = r
        self.n += 1
        self.count += 1

    def drop(self, slot: int) -> None:
        if slot < self.row.shape[0]:
            r = int(self.row[slot])
            if r >= 0:
                self.slots[r] = -1
                self.row[slot] = -1
                self.count -= 1

    def held(self) -> tuple[np.ndarray, np.ndarray]:
        """(slots, vectors) still waiting, in arrival order."""
        keep = self.slots[: self.n] >= 0
        return self.slots[: self.n][keep], self.x[: self.n][keep]

    def take(self) -> tuple[np.ndarray, np.ndarray]:
        """``held()``, and forget them (the buffer is freed)."""
        out = self.held()
        self._clear()
        return out
