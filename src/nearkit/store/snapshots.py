"""Snapshots: files named by the change sequence they cover.

``<store>/snapshots/<cid>/<seq:020d>.nki`` holds the collection's index and
``<seq:020d>.state`` its memory (slots, keys, payloads, field indexes), each
exactly as it was when every change up to ``seq`` (and none after) had been
applied and committed to SQLite. The two are recovered independently (each
replays SQLite from its own seq), so losing either only costs time. ``Index.save`` (nearkit.io) writes to a temporary
name, fsyncs and renames, so a crash leaves either the old set or the new one,
never a torn file under a real name (a damaged file is still handled: it fails its
checksums on load and an older snapshot or a rebuild is used instead).
"""

from __future__ import annotations

import os
import re
import shutil

INDEX = ".nki"
STATE = ".state"
STATE_KIND = "nearkit-store-state"
KEEP = 2


def directory(root: str, cid: int) -> str:
    return os.path.join(root, "snapshots", str(cid))


def list_snapshots(d: str, ext: str = INDEX) -> list[tuple[int, str]]:
    """(seq, path) of every index (or, with ext=STATE, state) snapshot in ``d``, newest first."""
    if not os.path.isdir(d):
        return []
    pattern = re.compile(r"^(\d{20})" + re.escape(ext) + "$")
    out = []
    for name in os.listdir(d):
        m = pattern.match(name)
        if m:
            out.append((int(m.group(1)), os.path.join(d, name)))
    return sorted(out, reverse=True)


def _fsync_dir(d: str) -> None:
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_snapshot(d: str, seq: int, index) -> str:
    """Save ``index`` (an Index or an IndexImage) as the snapshot for ``seq``
    (``save`` writes atomically and fsyncs)."""
    os.makedirs(d, exist_ok=True)
    final = os.path.join(d, f"{seq:020d}.nki")
    index.save(final)
    _fsync_dir(d)
    return final


def write_state(d: str, seq: int, dim: int, metric: str, params: dict, sections: dict) -> str:
    """Save the collection's memory (slots, keys, payloads, field indexes) for ``seq``."""
    from ..io import write_index

    os.makedirs(d, exist_ok=True)
    final = os.path.join(d, f"{seq:020d}{STATE}")
    write_index(final, STATE_KIND, dim, metric, params, sections)
    return final


def prune(d: str, keep: int = KEEP) -> int | None:
    """Delete all but the ``keep`` newest snapshots of each kind and stray temp files.

    Returns the oldest retained snapshot's seq (tombstones at or below it are
    no longer needed), or None when no snapshot remains.
    """
    oldest = None
    for ext in (INDEX, STATE):
        snaps = list_snapshots(d, ext)
        for _, path in snaps[keep:]:
            os.remove(path)
        if snaps:
            low = snaps[:keep][-1][0]
            oldest = low if oldest is None else min(oldest, low)
    if os.path.isdir(d):
        for name in os.listdir(d):
            if name.endswith(".tmp"):
                os.remove(os.path.join(d, name))
    return oldest


def remove_all(d: str) -> None:
    shutil.rmtree(d, ignore_errors=True)
