"""Key tables: durable bytes -> bytes maps in the store (db.key_table), their atomic
batches, and each durability mode's crash promise (SIGKILL of a writer process)."""

import os

import numpy as np
import pytest

import nearkit
from nearkit.store import KeyTable, KeyTableNotFound, StoreLockedError

from crash_helpers import run_and_kill


def test_upsert_delete_clear_and_reopen(tmp_path):
    path = tmp_path / "s"
    with nearkit.open(path) as db:
        kt = db.key_table("t")
        assert isinstance(kt, KeyTable) and db.key_table("t") is kt
        assert kt.write(upserts=[(b"b", b"2"), (b"a", b"1"), (b"c", b"\x00" * 1000)]) == 3
        assert kt.write(upserts=[(b"a", b"one")], deletes=[b"c", b"missing"]) == 6
        assert kt.upsert(bytearray(b"d"), memoryview(b"4")) == 7
        assert list(kt.items()) == [(b"a", b"one"), (b"b", b"2"), (b"d", b"4")]
        assert list(kt.keys()) == [b"a", b"b", b"d"]
        assert kt.get(b"a") == b"one" and kt.get(b"c") is None and kt.get(b"c", b"-") == b"-"
        assert b"b" in kt and b"c" not in kt and len(kt) == 3
        other = db.key_table("u")
        other.upsert(b"a", b"elsewhere")
        assert kt.get(b"a") == b"one"
        assert db.list_key_tables() == ["t", "u"]
    with nearkit.open(path) as db:
        kt = db.key_table("t", create=False)
        assert kt.changes == 7
        assert dict(kt.items()) == {b"a": b"one", b"b": b"2", b"d": b"4"}
        assert kt.write(deletes=[b"b"], upserts=[(b"b", b"again")]) == 9  # deletes go first
        assert kt.get(b"b") == b"again"
        assert kt.clear() == 10 and len(kt) == 0
        kt.write(upserts=[(b"z", b"26")], clear=True)  # clear goes first
        assert list(kt.items()) == [(b"z", b"26")]
        db.drop_key_table("u")
        assert db.list_key_tables() == ["t"]
        with pytest.raises(RuntimeError, match="dropped"):
            t = db.key_table("t")
            db.drop_key_table("t")
            t.get(b"z")
    with nearkit.open(path) as db:
        assert db.list_key_tables() == []
        with pytest.raises(KeyTableNotFound, match="no key table 'u'") as info:
            db.key_table("u", create=False)
        assert str(info.value) == "no key table 'u' (key tables: none)"


def test_bad_input_is_refused_clearly(tmp_path):
    with nearkit.open(tmp_path / "s") as db:
        kt = db.key_table("t")
        with pytest.raises(TypeError, match="keys must be bytes, got str"):
            kt.write(upserts=[("a", b"1")])
        with pytest.raises(TypeError, match="values must be bytes, got int"):
            kt.write(upserts=[(b"a", 1)])
        with pytest.raises(TypeError, match="keys must be bytes"):
            kt.write(deletes=[None])
        assert len(kt) == 0 and kt.changes == 0
        for bad in ("", None, 3):
            with pytest.raises(ValueError, match="key table name"):
                db.key_table(bad)
        with pytest.raises(ValueError, match="one batch per key table"):
            db.write_batches(kt.batch([(b"a", b"1")]), kt.batch([(b"b", b"2")]))
    with pytest.raises(RuntimeError, match="closed"):
        kt.get(b"a")


def test_write_batches_is_all_or_nothing(tmp_path, monkeypatch):
    from nearkit.store import keytable

    with nearkit.open(tmp_path / "s") as db:
        a, b = db.key_table("a"), db.key_table("b")
        db.write_batches(a.batch([(b"k", b"1")]), b.batch([(b"k", b"1")], clear=True))
        assert (a.changes, b.changes) == (1, 2)
        real = keytable.KeyBatch._apply

        def failing(self, conn, changes):
            real(self, conn, changes)
            if self.table is b:
                raise OSError("disk on fire")

        monkeypatch.setattr(keytable.KeyBatch, "_apply", failing)
        with pytest.raises(OSError, match="disk on fire"):
            db.write_batches(a.batch([(b"k", b"2"), (b"x", b"3")]), b.batch(deletes=[b"k"]))
        monkeypatch.undo()
        # Neither table changed, nor its counter.
        assert dict(a.items()) == {b"k": b"1"} and dict(b.items()) == {b"k": b"1"}
        assert (a.changes, b.changes) == (1, 2)
    with nearkit.open(tmp_path / "s") as db:
        assert db.key_table("a").changes == 1 and db.key_table("b").changes == 2


def test_read_only_and_the_writer_lock(tmp_path):
    path = tmp_path / "s"
    with nearkit.open(path, durability="everysec") as db:
        db.key_table("t").write(upserts=[(b"a", b"1")])
        db.flush()
        with pytest.raises(StoreLockedError, match=f"process {os.getpid()}"):
            nearkit.open(path)
        ro = nearkit.open(path, read_only=True)
        try:
            t = ro.key_table("t")
            assert dict(t.items()) == {b"a": b"1"}
            with pytest.raises(PermissionError):
                t.write(upserts=[(b"b", b"2")])
            with pytest.raises(KeyError):
                ro.key_table("missing")
            with pytest.raises(PermissionError):
                ro.drop_key_table("t")
        finally:
            ro.close()


def test_collections_and_key_tables_share_a_store(tmp_path):
    with nearkit.open(tmp_path / "s") as db:
        col = db.create_collection("c", 4, "l2", index="flat")
        col.upsert(["x"], np.ones((1, 4)))
        db.key_table("t").upsert(b"x", b"1")
    with nearkit.open(tmp_path / "s") as db:
        assert db.list_collections() == ["c"] and db.list_key_tables() == ["t"]
        assert len(db.get_collection("c")) == 1 and db.key_table("t").get(b"x") == b"1"


# -- crash promise: SIGKILL a writer process ---------------------------------------------------

CHILD = r'''
import json, os, sys, time
import numpy as np
import nearkit

path, mode, seed, fd = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

def say(obj):
    os.write(fd, (json.dumps(obj) + "\n").encode())

db = nearkit.open(path, durability=mode)
kt, other = db.key_table("t"), db.key_table("other")
rng = np.random.default_rng(seed)
say({"ready": 1})
op = 0
while True:
    op += 1
    ver = seed * 1_000_000 + op
    ups = [f"k{i}" for i in rng.choice(200, int(rng.integers(1, 40)), replace=False)]
    dels = [f"k{i}" for i in rng.choice(200, int(rng.integers(0, 4)), replace=False) if f"k{i}" not in ups]
    say({"begin": op, "ups": ups, "dels": dels, "ver": ver})
    # Two tables in one atomic write; every value names its key and op.
    db.write_batches(kt.batch([(k.encode(), f"{k}@{ver}".encode() * 8) for k in ups],
                              [k.encode() for k in dels]),
                     other.batch([(b"last", str(ver).encode())]))
    say({"ack": op, "t": time.time()})
'''


def _matching_prefixes(start, start_changes, start_last, begun, got, got_changes, got_last):
    """Every m such that ops begun[:m] applied to ``start`` give exactly the recovered
    table, its change counter, and the other table's row written in the same batch."""
    state, changes, last, out = dict(start), start_changes, start_last, []
    for m in range(len(begun) + 1):
        if m:
            rec = begun[m - 1]
            for k in rec["dels"]:
                state.pop(k, None)
            for k in rec["ups"]:
                state[k] = rec["ver"]
            changes += len(rec["ups"]) + len(rec["dels"])
            last = rec["ver"]
        if state == got and changes == got_changes and last == got_last:
            out.append(m)
    return out


def _recovered(path):
    with nearkit.open(path) as db:
        kt, other = db.key_table("t"), db.key_table("other")
        state = {}
        for k, v in kt.items():
            key = k.decode()
            one = v[: len(v) // 8].decode()
            assert v == one.encode() * 8 and one.startswith(key + "@"), (k, v)  # never a torn value
            state[key] = int(one.split("@")[1])
        last = other.get(b"last")
        return state, kt.changes, None if last is None else int(last)


@pytest.mark.parametrize("mode, rounds", [("always", 3), ("everysec", 2), ("off", 1)])
def test_sigkill_keeps_the_modes_promise(tmp_path, mode, rounds):
    path = tmp_path / f"kt-{mode}"
    rng = np.random.default_rng(7)
    state, changes, last = {}, 0, None
    for rnd in range(rounds):
        kill_after = float(rng.uniform(0.3, 1.0)) if mode == "always" else float(rng.uniform(2.0, 2.6))
        begun, acks, t_kill = run_and_kill(tmp_path, CHILD, [path, mode, rnd + 1], kill_after)
        assert len(acks) >= 3, "the writer made too little progress to test anything"
        got, got_changes, got_last = _recovered(path)
        ok = _matching_prefixes(state, changes, last, begun, got, got_changes, got_last)
        assert ok, f"round {rnd}: recovered table is not the result of any prefix of the batches"
        if mode == "always":
            # every acknowledged batch is there; the one in flight whole or not at all
            assert max(ok) >= len(acks), f"round {rnd}: lost acknowledged writes ({max(ok)} < {len(acks)})"
        else:
            old = [op for op, t in acks.items() if t < t_kill - 1.5]
            assert max(ok) >= (max(old) if old else 0), f"round {rnd}: lost writes older than 1.5 s"
        state, changes, last = got, got_changes, got_last
