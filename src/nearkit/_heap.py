"""Give the C allocator's free pages back to the system after a bulk write.

A bulk upsert makes short-lived buffers (payload records, SQLite rows, vector
copies on their way into the index). glibc keeps the freed pages inside its
heap, so the process stays as large as the batch's peak: about 10% of a
collection's footprint for 100k x 128-d vectors (benchmarks/memory.py).
``malloc_trim(0)`` returns them; elsewhere (musl, macOS, Windows) this is a no-op.
"""

from __future__ import annotations

import ctypes
import sys

BULK_ROWS = 1024  # writes at least this large trim afterwards (a trim costs ~1 ms)


def _find_malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        trim = ctypes.CDLL(None).malloc_trim  # glibc only
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_malloc_trim = _find_malloc_trim()


def release_free_heap() -> bool:
    """Return free heap pages to the system; False where the C library cannot."""
    if _malloc_trim is None:
        return False
    _malloc_trim(0)
    return True
