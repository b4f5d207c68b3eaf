"""Snapshots of the server's HNSW graphs, so a restart need not rebuild them.

The store's SQLite (``persist.py``) stays the one durable record; a snapshot only
saves time. For each search index with HNSW fields,
``<data>/snapshots/server-indexes/<index hex>/`` (beside the store's collection
snapshots in ``<data>/snapshots/<collection id>/``)
holds ``<seq>.state`` (the index definition, which key owns which slot, and which
slots each field's graph holds) and, per HNSW field, ``<field hex>/<seq>.nki`` (the
graph, saved with ``Index.save``). ``seq`` is the durable change counter at the
time of the snapshot; the newest complete set that loads and checks out is used.

On start the slots are taken over from the snapshot, the keys are loaded from
SQLite as before, and a key's vector goes into the graph only if it differs from
the graph's vector in that slot (changed after the snapshot, or a write the
snapshot saw but SQLite never committed); snapshot slots no key claims are removed
from the graph. A missing, damaged or mismatched snapshot means a full rebuild.
The vectors are saved once, in the graph files; state files written before that
also hold ``vecs<i>`` sections, which are ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ..store import snapshots as _snaps

log = logging.getLogger("nearkit.server")

DIRNAME = os.path.join("snapshots", "server-indexes")


def _definition_hash(idx) -> str:
    return hashlib.sha256(json.dumps(idx.definition(), sort_keys=True).encode()).hexdigest()


def index_dir(root: str, name: bytes) -> str:
    return os.path.join(root, DIRNAME, name.hex() or "_")


def _field_dir(d: str, alias: str) -> str:
    return os.path.join(d, alias.encode("utf-8", "surrogatepass").hex() or "_")


def _pack_keys(slot_key: list) -> tuple[np.ndarray, np.ndarray]:
    """Slot keys (bytes or None) -> (uint8 blob, int64 lengths; -1 = free slot)."""
    lens = np.fromiter((-1 if k is None else len(k) for k in slot_key), np.int64, len(slot_key))
    blob = b"".join(k for k in slot_key if k is not None)
    return np.frombuffer(blob, np.uint8).copy() if blob else np.zeros(0, np.uint8), lens


def _unpack_keys(blob: np.ndarray, lens: np.ndarray) -> list:
    raw = blob.tobytes()
    if lens.ndim != 1 or int(np.maximum(lens, 0).sum()) != len(raw):
        raise ValueError("slot keys do not match their lengths")
    out, pos = [], 0
    for n in lens.tolist():
        if n < 0:
            out.append(None)
        else:
            out.append(raw[pos:pos + n])
            pos += n
    return out


def graph_fields(idx) -> dict:
    return {alias: vf for alias, vf in idx.vectors.items() if vf.uses_graph}


@dataclass
class Job:
    """One index's snapshot, copied out of the live index (see ``take``)."""

    index_name: bytes
    directory: str
    seq: int
    params: dict
    sections: dict
    graphs: dict  # field alias -> IndexImage


def take(root: str, idx, seq: int) -> Job | None:
    """Copy what a snapshot of ``idx``'s graphs for change ``seq`` holds (call on the
    loop thread). A memory copy: the files can then be written on another thread
    while the index keeps changing. None if the index has no graph."""
    fields = graph_fields(idx)
    if not fields:
        return None
    idx.flush_vectors()  # takes the lock itself (it is not re-entrant)
    with idx.lock:
        n = len(idx.slot_key)
        blob, lens = _pack_keys(idx.slot_key)
        sections = {"key_blob": blob, "key_lens": lens}
        for i, (alias, vf) in enumerate(sorted(fields.items())):
            hi = min(n, vf._has.shape[0])
            sections[f"has{i}"] = np.array(vf._has[:hi], copy=True)
        params = {"definition_sha256": _definition_hash(idx), "fields": sorted(fields),
                  "slots": n, "seq": seq}
        graphs = {alias: vf._index.image() for alias, vf in fields.items()}
    return Job(idx.name, index_dir(root, idx.name), seq, params, sections, graphs)


def write(job: Job) -> None:
    """Write a taken snapshot's files and drop the older ones."""
    d = job.directory
    # Graphs first, the state file last: a state file names a complete set.
    for alias, image in job.graphs.items():
        _snaps.write_snapshot(_field_dir(d, alias), job.seq, image)
    _snaps.write_state(d, job.seq, 1, "l2", job.params, job.sections)
    for alias in job.graphs:
        _snaps.prune(_field_dir(d, alias))
    _snaps.prune(d)


class Writer:
    """Writes snapshot jobs one at a time on a background thread, so the event loop
    pays only for the memory copy (checksums, writes and fsync happen here)."""

    def __init__(self):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nearkit-snapshot")
        self._pending: list[Future] = []

    def submit(self, job: Job, done) -> None:
        """Write ``job``; ``done(job)`` runs on the writer thread once it is on disk."""
        def run():
            try:
                write(job)
            except Exception:  # a snapshot only saves time: never fail the server for one
                log.exception("index snapshot of %r failed", job.index_name)
                return
            done(job)

        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._pool.submit(run))

    def wait(self) -> None:
        """Until every submitted job is written (or has failed)."""
        for f in self._pending:
            f.result()
        self._pending.clear()

    def close(self) -> None:
        self.wait()
        self._pool.shutdown()


def _try_load(d: str, seq: int, state_path: str, idx):
    from .. import load as load_index
    from ..io import read_index

    st = read_index(state_path)
    p = st.params
    fields = graph_fields(idx)
    if (st.kind != _snaps.STATE_KIND or p.get("definition_sha256") != _definition_hash(idx)
            or p.get("fields") != sorted(fields) or p.get("seq") != seq):
        raise ValueError("snapshot is for another index definition")
    slot_key = _unpack_keys(st.sections["key_blob"], st.sections["key_lens"])
    if len(slot_key) != p["slots"]:
        raise ValueError("slot count mismatch")
    graphs = {}
    for i, alias in enumerate(sorted(fields)):
        vf = fields[alias]
        path = os.path.join(_field_dir(d, alias), f"{seq:020d}{_snaps.INDEX}")
        g = load_index(path)
        has = np.array(st.sections[f"has{i}"], bool)
        if (type(g) is not type(vf._index) or g.dim != vf.dim or g.metric != vf.metric
                or has.ndim != 1 or has.shape[0] > len(slot_key) or len(g) != int(has.sum())):
            raise ValueError(f"graph of field {alias!r} does not match its state")
        held = g.slot_labels()
        held = held[held >= 0]
        if held.size and (held.max() >= has.shape[0] or not has[held].all()):
            raise ValueError(f"graph of field {alias!r} holds slots its state does not list")
        graphs[alias] = (g, has)
    return slot_key, graphs


def restore(root: str, idx) -> int | None:
    """Adopt the newest usable snapshot of ``idx`` (before its keys are loaded);
    returns its seq, or None (then the keys rebuild everything)."""
    if not graph_fields(idx):
        return None
    d = index_dir(root, idx.name)
    for seq, state_path in _snaps.list_snapshots(d, _snaps.STATE):
        try:
            slot_key, graphs = _try_load(d, seq, state_path, idx)
        except Exception as exc:  # damaged, truncated or stale: try an older one
            log.warning("index snapshot %s unusable (%s); trying older or rebuilding",
                        state_path, exc)
            continue
        idx.adopt_slots(slot_key)
        for alias, (g, has) in graphs.items():
            idx.vectors[alias].adopt_graph(g, has)
        return seq
    return None


def remove(root: str, name: bytes) -> None:
    _snaps.remove_all(index_dir(root, name))
