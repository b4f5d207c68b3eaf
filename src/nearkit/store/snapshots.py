"""Index snapshots: files named by the change sequence they cover.

``<store>/snapshots/<cid>/<seq:020d>.nki`` holds the collection's index exactly as
it was when every change up to ``seq`` (and none after) had been applied and
committed to SQLite. ``Index.save`` (nearkit.io) writes to a temporary
name, fsyncs and renames, so a crash leaves either the old set or the new one,
never a torn file under a real name (a damaged file is still handled: it fails its
checksums on load and an older snapshot or a rebuild is used instead).
"""

from __future__ import annotations

import os
import re
import shutil

_NAME = re.compile(r"^(\d{20})\.nki$")
KEEP = 2


def directory(root: str, cid: int) -> str:
    return os.path.join(root, "snapshots", str(cid))


def list_snapshots(d: str) -> list[tuple[int, str]]:
    """(seq, path) of every snapshot in ``d``, newest first."""
    if not os.path.isdir(d):
        return []
    out = []
    for name in os.listdir(d):
        m = _NAME.match(name)
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
    """Save ``index`` as the snapshot for ``seq`` (index.save writes atomically and fsyncs)."""
    os.makedirs(d, exist_ok=True)
    final = os.path.join(d, f"{seq:020d}.nki")
    index.save(final)
    _fsync_dir(d)
    return final


def prune(d: str, keep: int = KEEP) -> int | None:
    """Delete all but the ``keep`` newest snapshots and stray temp files.

    Returns the oldest retained snapshot's seq (tombstones at or below it are
    no longer needed), or None when no snapshot remains.
    """
    snaps = list_snapshots(d)
    for _, path in snaps[keep:]:
        os.remove(path)
    if os.path.isdir(d):
        for name in os.listdir(d):
            if name.endswith(".tmp"):
                os.remove(os.path.join(d, name))
    kept = snaps[:keep]
    return kept[-1][0] if kept else None


def remove_all(d: str) -> None:
    shutil.rmtree(d, ignore_errors=True)
