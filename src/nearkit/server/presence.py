"""Which fields each document has at all (for ``ismissing``), as one small code per
slot: documents of one shape share one frozenset, and the per-slot record is a
uint32 into the list of shapes seen (a dict entry per document cost ~50 bytes)."""

from __future__ import annotations

import numpy as np

from ..store.table import grow


class FieldPresence:
    def __init__(self):
        self.clear()

    def clear(self) -> None:
        self._shapes: list = [None]          # code -> frozenset of field names; 0 = none
        self._code: dict = {}                # frozenset -> code
        self._slot = np.zeros(0, np.uint32)  # code per slot

    def __setitem__(self, slot: int, fields: frozenset) -> None:
        code = self._code.get(fields)
        if code is None:
            code = self._code[fields] = len(self._shapes)
            self._shapes.append(fields)
        if slot >= self._slot.shape[0]:
            self._slot = grow(self._slot, slot + 1, 0)
        self._slot[slot] = code

    def pop(self, slot: int, default=None):
        if slot < self._slot.shape[0] and self._slot[slot]:
            fields = self._shapes[self._slot[slot]]
            self._slot[slot] = 0
            return fields
        return default

    def get(self, slot: int, default=None):
        if slot < self._slot.shape[0] and self._slot[slot]:
            return self._shapes[self._slot[slot]]
        return default

    def items(self):
        """(slot, fields) of every slot with a record, in slot order."""
        shapes = self._shapes
        for s in np.flatnonzero(self._slot).tolist():
            yield s, shapes[self._slot[s]]
