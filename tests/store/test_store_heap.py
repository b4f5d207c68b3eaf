"""A bulk write gives the allocator's free pages back (benchmarks/memory.py: a
collection's growth fell from 1.34x to 1.24x the bare index's); small writes don't
pay for a trim."""

import platform

import numpy as np
import pytest

import nearkit
from nearkit import _heap


def test_release_free_heap_works_on_glibc():
    done = _heap.release_free_heap()
    assert isinstance(done, bool)
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert done


@pytest.fixture
def trims(monkeypatch):
    calls = []
    monkeypatch.setattr(_heap, "release_free_heap", lambda: calls.append(1) or True)
    return calls


def test_bulk_upsert_trims_and_small_one_does_not(tmp_path, trims):
    db = nearkit.open(str(tmp_path / "db"))
    col = db.create_collection("c", 8, "l2", index="flat")
    x = np.random.default_rng(0).standard_normal((_heap.BULK_ROWS, 8)).astype(np.float32)
    col.upsert([f"k{i}" for i in range(10)], x[:10])
    col._wait_for_snapshot()
    assert trims == []
    col.upsert([f"b{i}" for i in range(len(x))], x)
    col._wait_for_snapshot()
    assert len(trims) >= 1
    assert len(col) == 10 + len(x)
    db.close()
