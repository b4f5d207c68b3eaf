"""The server index's per-slot side records: vectors waiting for the graph
(pending.py) and which fields each document has (presence.py)."""

import numpy as np

from nearkit.server.pending import PendingRows
from nearkit.server.presence import FieldPresence


def test_pending_rows_replace_drop_and_take():
    p = PendingRows(3)
    rng = np.random.default_rng(0)
    want = {}
    for slot in rng.integers(0, 5000, size=3000).tolist():
        v = rng.normal(size=3).astype(np.float32)
        p.put(slot, v)
        want[slot] = v
    for slot in list(want)[::7]:
        p.drop(slot)
        del want[slot]
    p.drop(999_999)  # never waited: nothing happens
    assert len(p) == len(want)
    slots, x = p.take()
    assert sorted(slots.tolist()) == sorted(want)
    for s, v in zip(slots.tolist(), x):
        np.testing.assert_array_equal(v, want[s])
    assert len(p) == 0 and p.take()[0].size == 0 and p.x.shape[0] == 0  # buffer released


def test_field_presence_shares_shapes_and_lists_slots_in_order():
    fp = FieldPresence()
    a, b = frozenset({"x", "v"}), frozenset({"x"})
    fp[5000] = a
    fp[3] = frozenset({"v", "x"})
    fp[7] = b
    assert fp.get(3) is fp.get(5000)  # one frozenset per shape
    assert list(fp.items()) == [(3, a), (7, b), (5000, a)]
    assert fp.pop(7) == b and fp.pop(7, "none") == "none" and fp.get(7) is None
    fp.clear()
    assert list(fp.items()) == []
