"""Which shard owns an id: a fixed 64-bit mix of the id, modulo the shard count.

The mix (the SplitMix64 finaliser) is computed with numpy's wrapping uint64
arithmetic, so every process and machine routes an id to the same shard, and
consecutive ids spread evenly. Saved indexes record the function's name so a
later change cannot silently misroute old files.
"""

from __future__ import annotations

import numpy as np

HASH_NAME = "splitmix64"

_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def mix64(ids: np.ndarray) -> np.ndarray:
    """SplitMix64 of each id (int64 array in, uint64 array out)."""
    z = ids.astype(np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _C1
    z = (z ^ (z >> np.uint64(27))) * _C2
    return z ^ (z >> np.uint64(31))


def shard_of(ids: np.ndarray, shards: int) -> np.ndarray:
    """The owning shard (int64, 0..shards-1) of every id."""
    return (mix64(ids) % np.uint64(shards)).astype(np.int64)


def split_by_shard(ids: np.ndarray, shards: int) -> list[np.ndarray]:
    """Row positions of ``ids`` owned by each shard, in their original order."""
    owner = shard_of(ids, shards)
    order = np.argsort(owner, kind="stable")
    bounds = np.searchsorted(owner[order], np.arange(shards + 1))
    return [order[bounds[s]:bounds[s + 1]] for s in range(shards)]
