"""The one place where user input becomes clean arrays, or a clear exception.

Every public entry point funnels its arguments through these helpers so that
error messages are uniform and the C++ core only ever sees C-contiguous
float32 / int64 / uint8 arrays of the right shapes.
"""

from __future__ import annotations

import numbers
import os

import numpy as np


def as_vectors(x, dim: int | None = None, name: str = "vectors") -> tuple[np.ndarray, bool]:
    """Return (float32 C-contiguous (n, dim) array, was_1d).

    Accepts any real numeric array-like (float64, ints, non-contiguous). Raises
    TypeError for non-numeric input and ValueError for wrong shape, wrong
    dimension or non-finite values.
    """
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be a numeric array: {exc}") from None
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating)
        or np.issubdtype(arr.dtype, np.integer)
        or arr.dtype == np.bool_
    ):
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    was_1d = arr.ndim == 1
    if was_1d:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 1-D or 2-D, got shape {arr.shape}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} have dimension {arr.shape[1]}, index expects {dim}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} have dimension 0")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if out.size and not np.isfinite(out).all():
        bad = int(np.flatnonzero(~np.isfinite(out).all(axis=1))[0])
        raise ValueError(f"{name} contain NaN or infinity (first at row {bad})")
    return out, was_1d


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def as_ids(ids, n: int | None = None, name: str = "ids", unique: bool = True) -> np.ndarray:
    """Return int64 C-contiguous 1-D ids; checks count, integrality and uniqueness."""
    arr = np.asarray(ids)
    if arr.ndim == 0:
        arr = arr[None]
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.dtype == object and all(isinstance(v, numbers.Integral) and not isinstance(v, bool)
                                   for v in arr.tolist()):
        big = [int(v) for v in arr.tolist() if not _INT64_MIN <= int(v) <= _INT64_MAX]
        if big:
            raise ValueError(f"{name} must fit in int64 (0 .. 2**63 - 1), got {big[0]}")
        arr = arr.astype(np.int64)
    if arr.size and arr.dtype.kind == "u" and int(arr.max()) > _INT64_MAX:
        raise ValueError(f"{name} must fit in int64 (0 .. 2**63 - 1), got {int(arr.max())}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if (np.issubdtype(arr.dtype, np.floating) and np.isfinite(arr).all()
                and np.all(np.mod(arr, 1) == 0)):
            if np.abs(arr).max() >= 2.0**63:
                raise ValueError(f"{name} must fit in int64 (0 .. 2**63 - 1), got {float(np.abs(arr).max()):.0f}")
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{name} must be integers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"got {arr.shape[0]} {name} for {n} vectors")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be non-negative, got {int(arr.min())}")
    if unique and arr.size > 1:
        s = np.sort(arr)
        dup = s[1:][s[1:] == s[:-1]]
        if dup.size:
            raise ValueError(f"duplicate id {int(dup[0])} in {name}")
    return arr


# Sizes a user passes are bounded by what is stored: k, ef, nprobe, search_k and
# k_factor are clipped to the stored count before any native allocation. A
# result is still (nq, k) wide, padded with id -1 / distance +inf past the hits;
# that padding is the one allocation not bounded by the index, so it is capped:
# a k beyond the stored count whose padded result would exceed this many
# entries (12 bytes each) is refused with ValueError.
MAX_PADDED_ENTRIES = 1 << 24
# Largest vector dimension an index accepts (float32: 256 KiB per vector).
MAX_DIM = 1 << 16


def check_k(k, stored: int | None = None, nq: int = 1) -> int:
    """A positive int k; with ``stored``, also refuses padding a result past MAX_PADDED_ENTRIES."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k must be an integer, got {type(k).__name__}")
    k = int(k)
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    if stored is not None and k > stored and max(nq, 1) * k > MAX_PADDED_ENTRIES:
        raise ValueError(
            f"k={k} asks for more neighbours than the {stored} vectors stored, and padding "
            f"{max(nq, 1)} result rows to k would take {max(nq, 1) * k} entries (limit "
            f"{MAX_PADDED_ENTRIES}); ask for k <= {max(stored, 1)}")
    return k


def clip_to_stored(value: int, stored: int) -> int:
    """A size parameter (k, ef, nprobe...) bounded by what is stored, at least 1."""
    return max(1, min(int(value), int(stored)))


def pad_results(ids: np.ndarray, dist: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Widen (nq, w) results to (nq, k) with id -1 and distance +inf (w <= k)."""
    nq, w = ids.shape
    if w == k:
        return ids, dist
    out_ids = np.full((nq, k), -1, np.int64)
    out_dist = np.full((nq, k), np.inf, np.float32)
    out_ids[:, :w] = ids
    out_dist[:, :w] = dist
    return out_ids, out_dist


def check_dim(dim, name: str = "dim") -> int:
    """A vector dimension: a positive int no larger than MAX_DIM."""
    d = check_positive_int(dim, name)
    if d > MAX_DIM:
        raise ValueError(f"{name}={d} exceeds the largest supported dimension ({MAX_DIM})")
    return d


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_threads(threads) -> int:
    """None means one thread; 0 or -1 mean all cores."""
    if threads is None:
        return 1
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral):
        raise TypeError(f"threads must be an integer, got {type(threads).__name__}")
    if threads in (0, -1):
        return os.cpu_count() or 1
    if threads < 0:
        raise ValueError(f"threads must be positive, 0 or -1 (all cores), got {threads}")
    return int(threads)


def check_radius(radius) -> float:
    try:
        r = float(radius)
    except (TypeError, ValueError):
        raise TypeError(f"radius must be a number, got {type(radius).__name__}") from None
    if not np.isfinite(r):
        raise ValueError(f"radius must be finite, got {radius}")
    return r


def check_slot_mask(mask, n_slots: int) -> np.ndarray:
    """A SlotFilter's mask as uint8 over exactly ``n_slots`` slots."""
    m = np.asarray(mask)
    if m.dtype not in (np.bool_, np.uint8) or m.ndim != 1:
        raise TypeError(f"a slot filter's mask must be a 1-D bool or uint8 array, got {m.dtype} {m.shape}")
    if m.shape[0] != n_slots:
        raise ValueError(f"a slot filter's mask covers {m.shape[0]} slots but the index has {n_slots} "
                         "(it changed since the mask was built?)")
    return np.ascontiguousarray(m).view(np.uint8)


def filter_to_slot_mask(filter, slot_labels: np.ndarray) -> np.ndarray | None:
    """Turn a user filter into a uint8 mask over an index's internal slots.

    ``filter`` is None, a boolean mask indexed by id (ids beyond its length are
    excluded), or an array of allowed ids. ``slot_labels`` holds each slot's
    user id, -1 for empty slots (which are never allowed).
    """
    if filter is None:
        return None
    f = np.asarray(filter)
    live = slot_labels >= 0
    if f.dtype == np.bool_:
        if f.ndim != 1:
            raise ValueError(f"a boolean filter must be 1-D over ids, got shape {f.shape}")
        inside = live & (slot_labels < f.shape[0])
        mask = np.zeros(slot_labels.shape[0], dtype=np.uint8)
        mask[inside] = f[slot_labels[inside]]
        return mask
    allowed = as_ids(f, name="filter ids", unique=False)
    return (np.isin(slot_labels, allowed) & live).astype(np.uint8)


def drop_disallowed(ids: np.ndarray, dist: np.ndarray, filter) -> None:
    """Blank out (in place) hits whose id the user's id filter does not allow.

    The filter becomes a slot mask before the search; a remove and an add running
    meanwhile can give an allowed slot to a new id. Checking the answers' ids
    against the filter itself keeps such a race from returning a filtered-out id.
    Blanked hits (-1, +inf) move behind the kept ones; the order is otherwise kept.
    """
    f = np.asarray(filter)
    found = ids >= 0
    if f.dtype == np.bool_:
        ok = found & (ids < f.shape[0])
        ok[ok] = f[ids[ok]]
    else:
        ok = found & np.isin(ids, f)
    bad = found & ~ok
    if not bad.any():
        return
    order = np.argsort(bad, axis=1, kind="stable")
    ids[...] = np.where(bad, -1, ids)
    dist[...] = np.where(bad, np.inf, dist)
    ids[...] = np.take_along_axis(ids, order, axis=1)
    dist[...] = np.take_along_axis(dist, order, axis=1)


def all_finite(arr: np.ndarray, rows_per_chunk: int = 1 << 14) -> bool:
    """True when a float array holds no NaN or infinity; checks by chunks of rows so
    that a large (possibly memory-mapped) array needs no full-size temporary."""
    if arr.ndim == 0 or arr.shape[0] == 0:
        return bool(np.isfinite(arr).all())
    for start in range(0, arr.shape[0], rows_per_chunk):
        if not np.isfinite(arr[start:start + rows_per_chunk]).all():
            return False
    return True


def default_ids(start: int, n: int) -> np.ndarray:
    """Ids start .. start + n - 1 for vectors added without ids; ValueError when they
    would pass the largest int64 (the index already holds an id near 2**63)."""
    if start + n - 1 > _INT64_MAX:
        raise ValueError(f"cannot number {n} new vectors after id {start - 1}: ids must fit "
                         "in int64; pass ids explicitly")
    return np.arange(start, start + n, dtype=np.int64)
