"""Search indexes over the key space (what FT.CREATE makes).

An index follows every key under its prefixes: the key space calls
``SearchEngine.on_key_change`` on each mutation, and the index re-extracts that
one document at once (so the next command sees it, as in Redis). The index is
the store's ``Table`` (key <-> slot table with reused slots, live mask, the
``FieldIndex`` of TAG / NUMERIC / TEXT / GEO columns, the filtered-kNN decision)
plus keyspace extraction: this module decodes hashes and JSON documents into
field values and vectors; each VECTOR field is one ``VectorField`` column of the
table (ids = slots).

Concurrency: mutations run on the event-loop thread under the index's write
lock; searches take the read lock, so the vector work can run on worker
threads while other clients are served.
"""

from __future__ import annotations

import json
import logging
import time

import numpy as np

from ..store.fields import FieldIndex
from ..query.values import numeric_value
from ..store.table import Table, grow
from . import docfilter, geoshape, jsonpath
from . import snapshot as _snapshot
from .._sync import RWLock
from .fulltext.forward import make_text_index
from .keyspace import JsonDoc
from .presence import FieldPresence
from .vectors import BlobSizeError, VectorField

log = logging.getLogger("nearkit.server")


# Redis's default stop words: left out of queries (and of FT.INFO unless an index sets its own).
DEFAULT_STOPWORDS = frozenset(
    "a is the an and are as at be but by for if in into it no not of on or such that their "
    "then there these they this to was will with".split())


class FieldSpec:
    """One schema field as FT.CREATE declared it."""

    __slots__ = ("identifier", "alias", "type", "options", "flags", "path")

    def __init__(self, identifier: str, alias: str, type_: str, options: dict, flags: list):
        self.identifier = identifier
        self.alias = alias
        self.type = type_  # TAG NUMERIC TEXT GEO GEOSHAPE VECTOR (upper case)
        self.options = options
        self.flags = flags
        self.path = jsonpath.parse(identifier) if identifier.startswith("$") else None

    def to_json(self) -> dict:
        return {"identifier": self.identifier, "alias": self.alias, "type": self.type,
                "options": self.options, "flags": self.flags}

    @classmethod
    def from_json(cls, d: dict) -> "FieldSpec":
        return cls(d["identifier"], d["alias"], d["type"], d["options"], d["flags"])


class IndexingError(ValueError):
    pass


def _is_empty(value, ftype: str) -> bool:
    """An empty value as INDEXEMPTY indexes it: TEXT exactly "", TAG blank."""
    if not isinstance(value, str):
        return False
    return value == "" if ftype == "TEXT" else not value.strip()


class SearchIndex:
    def __init__(self, name: bytes, on: str, prefixes: list, fields: list, options: dict):
        self.name = name
        self.on = on  # "HASH" or "JSON"
        self.prefixes = prefixes  # list[bytes]
        self.options = options  # default_score, stopwords (a custom list) etc.
        sw = options.get("stopwords")
        self.stopwords = DEFAULT_STOPWORDS if sw is None else frozenset(sw)
        # FT.CREATE FILTER: documents for which it is false stay out of the index
        self.doc_filter = docfilter.DocFilter(options["filter"]) if options.get("filter") else None
        self.fields: list[FieldSpec] = []
        self.lock = RWLock()
        # Keys, slots (freed slots are reused), live mask and field indexes; the
        # vector fields are its columns (self.vectors).
        self.table = Table(0, "l2", {}, row_ids=False)
        self.slot_rec: dict[int, dict] = {}
        self.slot_present = FieldPresence()  # fields each document has, for ismissing()
        self.slot_sort: dict[int, dict] = {}  # TEXT/TAG sort strings by slot
        self.failures = 0
        self.last_error = ("N/A", "N/A")
        self.number_of_uses = 0
        self.created = time.time()
        self.last_used = time.monotonic()  # FT.CREATE TEMPORARY: idle since
        self.vectors: dict[str, VectorField] = {}
        self.vectors_pending = False  # HNSW insertions waiting for flush_vectors()
        self.restored_from = None  # change seq of the snapshot the graphs started from
        self.snapshot_seq = None  # change seq of its newest snapshot on disk
        self.text = None  # fulltext.forward.TextIndex: term statistics for scoring
        self.skipped: set = set()  # keys SKIPINITIALSCAN left out, untouched since
        self.sort_only: list = []  # NOINDEX fields' aliases
        self.sort_strings: list = []  # (alias, UNF) of TEXT and TAG fields
        self.shapes = geoshape.ShapeColumns()  # GEOSHAPE values by slot
        self.shape_fields: list = []  # their aliases
        self.shape_error = None  # set by _extract: a shape that could not be indexed
        self.empty_fields: list = []  # (alias, type) of INDEXEMPTY TEXT/TAG fields
        self.slot_empty: dict[int, frozenset] = {}  # slot -> those whose value is empty
        # Redis's document order: each (re)indexed document takes the next number, so
        # a new document lists after older ones even in a reused slot, and an updated
        # one moves to the end (Redis gives it a new id). While numbers rise with the
        # slot (no reuse, no update of an earlier document) slot order is that order.
        self._reset_doc_order()
        for f in fields:
            self._add_field(f)

    # -- the table (read by the commands) ---------------------------------------------
    @property
    def key_slot(self) -> dict:
        return self.table.key_to_slot

    @property
    def slot_key(self) -> list:
        """Key per slot, None for a free one; its length is the slot count."""
        return self.table.slot_keys

    @property
    def live(self) -> np.ndarray:
        return self.table.live

    @property
    def fi(self) -> FieldIndex:
        return self.table.fields

    # -- schema -----------------------------------------------------------------------
    def field(self, name: str):
        for f in self.fields:
            if f.alias == name:
                return f
        return None

    def _add_field(self, f: FieldSpec) -> None:
        self.fields.append(f)
        if "NOINDEX" in f.flags and f.type != "VECTOR":
            self.sort_only.append(f.alias)
        if f.type in ("TEXT", "TAG"):
            self.sort_strings.append((f.alias, "UNF" in f.flags))
        if f.type == "GEOSHAPE" and "NOINDEX" not in f.flags:
            self.shape_fields.append(f.alias)
        if f.type in ("TEXT", "TAG") and "INDEXEMPTY" in f.flags:
            self.empty_fields.append((f.alias, f.type))
        if f.type == "VECTOR":
            o = f.options
            self.vectors[f.alias] = VectorField(o["algorithm"], o["TYPE"], int(o["DIM"]),
                                                o["DISTANCE_METRIC"], o)
        self.table.fields = FieldIndex(self._store_schema())
        self.table.fields.reserve(self.table.live.shape[0])  # as many rows as the live mask
        self.text = make_text_index(self)

    @property
    def stem_fields(self) -> frozenset:
        """TEXT fields whose words match by English stem (not NOSTEM)."""
        return frozenset(f.alias for f in self.fields
                         if f.type == "TEXT" and "NOSTEM" not in f.flags and "NOINDEX" not in f.flags)

    def _store_schema(self) -> dict:
        schema = {}
        for f in self.fields:
            if "NOINDEX" in f.flags:
                continue  # kept for SORTBY and RETURN only (see sort_only)
            if f.type == "TAG":
                schema[f.alias] = {"type": "tag", "separator": f.options.get("SEPARATOR", ","),
                                   "case_sensitive": "CASESENSITIVE" in f.flags}
            elif f.type == "NUMERIC":
                schema[f.alias] = {"type": "numeric"}
            elif f.type == "TEXT":
                schema[f.alias] = {"type": "text"}
            elif f.type == "GEO":
                schema[f.alias] = {"type": "geo"}
            # GEOSHAPE values are kept in self.shapes (geoshape.py).
        return schema

    def add_fields(self, fields: list, keyspace) -> None:
        """FT.ALTER ... SCHEMA ADD: extend the schema and re-extract every document."""
        with self.lock:
            for f in fields:
                self._add_field(f)
            self.table.reset()
            self._reset_doc_order()
            self.slot_rec.clear()
            self.slot_present.clear()
            self.slot_sort.clear()
            self.slot_empty.clear()
            self.shapes.clear()
            for v in self.vectors.values():
                v.__init__(v.algorithm, v.data_type, v.dim, v.redis_metric, v.params)
            self.snapshot_seq = None  # the graphs are new: the next shutdown snapshots them
        self.backfill(keyspace)

    def definition(self) -> dict:
        return {"on": self.on, "prefixes": [p.decode("latin-1") for p in self.prefixes],
                "options": self.options, "fields": [f.to_json() for f in self.fields]}

    # -- documents --------------------------------------------------------------------------
    def covers(self, key: bytes) -> bool:
        for p in self.prefixes:
            if key.startswith(p):
                return True
        return False

    def _raw(self, value, f: FieldSpec):
        """The document's raw value for a field (bytes for hashes, Python for JSON), or None."""
        if self.on == "HASH":
            return value.get(f.identifier.encode())
        if f.path is None:
            return value.value.get(f.identifier) if isinstance(value.value, dict) else None
        found = jsonpath.find(value.value, f.path)
        if not found:
            return None
        if f.type in ("TAG", "TEXT") and (len(found) > 1 or not f.path.definite):
            return found
        return found[0]

    def _extract(self, value) -> tuple[dict, dict]:
        """(payload for the FieldIndex, {vector alias: float32 vector}); IndexingError if the
        document cannot be indexed (Redis then leaves it out of the index entirely)."""
        payload, vecs = {}, {}
        for f in self.fields:
            raw = self._raw(value, f)
            if raw is None:
                continue
            if f.type == "VECTOR":
                vf = self.vectors[f.alias]
                if self.on == "HASH":
                    try:
                        vecs[f.alias] = vf.decode_blob(raw)
                    except BlobSizeError as exc:
                        raise IndexingError(
                            f"Could not add vector with blob size {exc.got} "
                            f"(expected size {exc.expected})") from None
                else:
                    try:
                        vecs[f.alias] = vf.decode_list(raw)
                    except ValueError:
                        raise IndexingError("N/A") from None
            elif f.type == "GEOSHAPE":
                if "NOINDEX" in f.flags:
                    continue
                try:
                    payload[f.alias] = geoshape.parse(raw)
                except ValueError as exc:
                    # Redis keeps the document (without the shape) and counts a failure.
                    self.shape_error = f"Error indexing geoshape: {exc}"
            elif f.type == "NUMERIC":
                if isinstance(raw, bytes):
                    raw = raw.decode("utf-8", "replace")
                try:
                    payload[f.alias] = numeric_value(raw)
                except ValueError:
                    raise IndexingError(f"Invalid numeric value: '{raw}'") from None
            else:
                if isinstance(raw, bytes):
                    raw = raw.decode("utf-8", "replace")
                elif isinstance(raw, list):
                    raw = [x if isinstance(x, str) else json.dumps(x) for x in raw
                           if x is not None]
                elif not isinstance(raw, str):
                    raw = json.dumps(raw) if not isinstance(raw, (int, float)) else str(raw)
                payload[f.alias] = raw
        return payload, vecs

    def on_change(self, key: bytes, value) -> None:
        """Re-index one key after any change (value None: the key is gone)."""
        ok_type = dict if self.on == "HASH" else JsonDoc
        if value is None or type(value) is not ok_type:
            self._remove(key)
            return
        if self.doc_filter is not None and not self.doc_filter.accepts(key, value, self):
            self._remove(key)
            return
        try:
            self.shape_error = None
            payload, vecs = self._extract(value)
            rec = self.fi.extract(payload)
        except (IndexingError, ValueError) as exc:
            self.failures += 1
            self.last_error = (str(exc), key.decode("utf-8", "replace"))
            self._remove(key)
            return
        if self.shape_error is not None:
            self.failures += 1
            self.last_error = (self.shape_error, key.decode("utf-8", "replace"))
        with self.lock:
            slot = self.key_slot.get(key)
            if slot is None:
                slot = self.table.claim(key)
            else:
                self.fi.remove(slot, self.slot_rec.get(slot, {}))
            self.fi.insert(slot, rec)
            self._stamp(slot)
            for alias in self.sort_only:  # NOINDEX numeric fields: their values, for SORTBY only
                v = payload.get(alias)
                if isinstance(v, float):
                    rec = dict(rec) if alias not in rec else rec
                    rec[alias] = v
            # TEXT/TAG values as SORTBY orders them: lower-cased unless UNF.
            sv = {}
            for alias, unf in self.sort_strings:
                v = payload.get(alias)
                if v is not None:
                    v = v if isinstance(v, str) else " ".join(map(str, v)) if isinstance(v, list) else str(v)
                    sv[alias] = v if unf else v.lower()
            if sv:
                self.slot_sort[slot] = sv
            else:
                self.slot_sort.pop(slot, None)
            if rec:
                self.slot_rec[slot] = rec
            else:  # readers use slot_rec.get(slot, {}): no empty dict per document
                self.slot_rec.pop(slot, None)
            if self.text is not None:
                self.text.index(self, slot, payload)
            if self.shape_fields:
                self.shapes.update(slot, self.shape_fields, payload)
            if self.empty_fields:
                empty = frozenset(a for a, t in self.empty_fields if _is_empty(payload.get(a), t))
                if empty:
                    self.slot_empty[slot] = empty
                else:
                    self.slot_empty.pop(slot, None)
            # Fields the document has at all (an empty value is present, not missing).
            self.slot_present[slot] = frozenset(payload) | frozenset(vecs)
            self.live[slot] = True  # a snapshot's slot, adopted before its key loaded
            for alias, vf in self.vectors.items():
                v = vecs.get(alias)
                if v is None:
                    vf.remove(slot)
                else:
                    vf.upsert(slot, v)
                    if vf.uses_graph:
                        self.vectors_pending = True

    def _reset_doc_order(self) -> None:
        self.doc_seq = np.zeros(0, np.int64)
        self._next_seq = 0
        self._top_stamped = -1
        self.slot_order_is_doc_order = True

    def _stamp(self, slot: int) -> None:
        self.doc_seq = grow(self.doc_seq, slot + 1, 0)
        if slot <= self._top_stamped:
            self.slot_order_is_doc_order = False
        else:
            self._top_stamped = slot
        self.doc_seq[slot] = self._next_seq
        self._next_seq += 1

    def document_order(self, slots: np.ndarray) -> np.ndarray:
        """A key that sorts ``slots`` in Redis's document order (oldest indexed first)."""
        return slots if self.slot_order_is_doc_order else self.doc_seq[slots]

    def in_document_order(self, slots: np.ndarray) -> np.ndarray:
        """``slots`` (ascending) reordered into document order."""
        if self.slot_order_is_doc_order:
            return slots
        return slots[np.argsort(self.document_order(slots), kind="stable")]

    def _remove(self, key: bytes) -> None:
        slot = self.key_slot.get(key)
        if slot is None:
            return
        with self.lock:
            self.table.release(key, self.slot_rec.pop(slot, {}))
            if self.text is not None:
                self.text.remove(slot)
            self.slot_present.pop(slot, None)
            self.slot_sort.pop(slot, None)
            self.slot_empty.pop(slot, None)
            self.shapes.remove(slot)
            for vf in self.vectors.values():
                vf.remove(slot)

    def flush_vectors(self) -> None:
        """Put batched graph insertions into the HNSW graphs (before any search)."""
        if self.vectors_pending:
            with self.lock:
                for v in self.vectors.values():
                    v.flush()
                self.vectors_pending = False

    def backfill(self, keyspace) -> None:
        for key in list(keyspace.data):
            if self.covers(key):
                self.on_change(key, keyspace.get(key))

    def adopt_slots(self, slot_key: list) -> None:
        """Take over a snapshot's slot numbering (before any key is loaded), so the
        restored graphs' ids keep meaning the same keys."""
        self.table.adopt_keys(slot_key)

    def finish_restore(self) -> None:
        """After the keys are loaded: free snapshot slots whose key is gone."""
        t = self.table
        for s in np.flatnonzero(~t.live[: t.n_slots]).tolist():
            k = t.slot_keys[s]
            if k is not None:
                t.release(k, {})
        for vf in self.vectors.values():
            vf.finish_restore()

    @property
    def num_docs(self) -> int:
        return len(self.key_slot)

    def live_mask(self) -> np.ndarray:
        return self.live[: len(self.slot_key)]


class SearchEngine:
    """All the search indexes of a server, kept in step with its key space."""

    def __init__(self, server):
        self.server = server
        self.indexes: dict[bytes, SearchIndex] = {}
        self.aliases: dict[bytes, bytes] = {}  # FT.ALIASADD: alias -> index name
        # FT.DICTADD word lists (durable with --data: persist.Durable.save_dict)
        self.dicts: dict[bytes, set] = {}
        self.loading = False  # keys are being restored at start-up
        self._flush_scheduled = False
        # FT.CONFIG values (strings, as FT.CONFIG GET shows them).
        self.config = {"MAXSEARCHRESULTS": "10000", "MAXAGGREGATERESULTS": "10000",
                       "TIMEOUT": "500", "DEFAULT_DIALECT": "1", "MINPREFIX": "2",
                       "MAXEXPANSIONS": "200", "MAXPREFIXEXPANSIONS": "200",
                       "CURSOR_MAX_IDLE": "300000", "ON_TIMEOUT": "return"}
        self.snapshot_writer = _snapshot.Writer()
        server.keyspace.listeners.append(self.on_key_change)

    def lookup(self, name: bytes, touch: bool = True):
        """The index with this name, else the one this alias points at, else None.
        A TEMPORARY index idle past its time is dropped first; ``touch`` restarts its
        idle time (every command on it does, but FT.DEBUG TTL)."""
        idx = self.indexes.get(name)
        if idx is None:
            target = self.aliases.get(name)
            idx = self.indexes.get(target) if target is not None else None
        if idx is not None and idx.options.get("temporary"):
            if self.ttl(idx) <= 0:
                self.drop(idx.name)
                return None
            if touch:
                idx.last_used = time.monotonic()
        return idx

    @staticmethod
    def ttl(idx) -> float:
        """Seconds a TEMPORARY index has left before it expires unused."""
        return idx.options["temporary"] - (time.monotonic() - idx.last_used)

    def expire_temporary(self) -> None:
        for idx in [i for i in self.indexes.values() if i.options.get("temporary")]:
            if self.ttl(idx) <= 0:
                self.drop(idx.name)

    def set_alias(self, alias: bytes, idx) -> None:
        """Point ``alias`` at ``idx`` (None: remove it); kept in the indexes' definitions."""
        old = self.aliases.pop(alias, None)
        if old is not None and old in self.indexes:
            prev = self.indexes[old]
            prev.options["aliases"] = [a for a in prev.options.get("aliases", [])
                                       if a != alias.decode("latin-1")]
            self.save(prev)
        if idx is not None:
            self.aliases[alias] = idx.name
            idx.options.setdefault("aliases", []).append(alias.decode("latin-1"))
            self.save(idx)

    @property
    def default_dialect(self) -> int:
        return int(self.config["DEFAULT_DIALECT"])

    def on_key_change(self, key: bytes, value) -> None:
        for idx in self.indexes.values():
            if idx.covers(key) or key in idx.key_slot:
                if idx.options.get("temporary"):
                    idx.last_used = time.monotonic()  # adding documents keeps it alive
                if key in idx.skipped:  # left out by SKIPINITIALSCAN
                    if self.loading:
                        continue  # still left out after a restart
                    self._unskip(idx, key)  # written since: indexed from now on
                idx.on_change(key, value)
                if idx.vectors_pending and not self._flush_scheduled:
                    loop = self.server.loop
                    if loop is not None:
                        self._flush_scheduled = True
                        loop.call_soon(self.flush_vectors)

    def flush_vectors(self) -> None:
        self._flush_scheduled = False
        for idx in self.indexes.values():
            idx.flush_vectors()

    def create(self, idx: SearchIndex, persist: bool = True) -> None:
        self.indexes[idx.name] = idx
        for alias in idx.options.get("aliases", []):
            self.aliases[alias.encode("latin-1")] = idx.name
        if persist and self.server.durable is not None:
            self.server.durable.save_index(idx.name, idx.definition())
        # SKIPINITIALSCAN: keys already there stay out, until they are written again;
        # remembered (durably) so that a restart leaves them out too.
        if persist and idx.options.get("skip_initial_scan"):
            idx.skipped = {k for k in self.server.keyspace.data if idx.covers(k)}
            if self.server.durable is not None and idx.skipped:
                self.server.durable.set_skipped(idx.name, idx.skipped, True)
        else:
            idx.backfill(self.server.keyspace)
        idx.flush_vectors()

    def restore_index(self, name: bytes, d: dict) -> None:
        idx = SearchIndex(name, d["on"], [p.encode("latin-1") for p in d["prefixes"]],
                          [FieldSpec.from_json(f) for f in d["fields"]], d.get("options", {}))
        self.create(idx, persist=False)

    def _unskip(self, idx: SearchIndex, key: bytes) -> None:
        idx.skipped.discard(key)
        if self.server.durable is not None:
            self.server.durable.set_skipped(idx.name, [key], False)

    def save_dict(self, name: bytes) -> None:
        """Make FT.DICTADD/DICTDEL's change to one word list durable."""
        if self.server.durable is not None:
            self.server.durable.save_dict(name, self.dicts.get(name))

    def restore_meta(self, dicts, skipped: dict) -> None:
        """At start-up, before the keys: the word lists and the skipped keys."""
        for name, words in dicts:
            self.dicts[name] = {w.encode("latin-1") for w in words}
        for name, keys in skipped.items():
            idx = self.indexes.get(name)
            if idx is not None:
                idx.skipped = keys

    def save(self, idx: SearchIndex) -> None:
        if self.server.durable is not None:
            self.server.durable.save_index(idx.name, idx.definition())

    def drop(self, name: bytes) -> SearchIndex:
        idx = self.indexes.pop(name)
        if self.server.durable is not None and idx.skipped:
            self.server.durable.set_skipped(name, idx.skipped, False)
        for alias in [a for a, n in self.aliases.items() if n == name]:
            del self.aliases[alias]
        if self.server.durable is not None:
            self.server.durable.drop_index(name)
            self.snapshot_writer.wait()  # no snapshot file may land after the removal
            _snapshot.remove(self.server.durable.directory, name)
        return idx

    def drop_all(self) -> None:
        """FLUSHALL: every index and every FT.DICTADD word list goes (as in Redis)."""
        for name in list(self.dicts):
            del self.dicts[name]
            self.save_dict(name)
        names = list(self.indexes)
        self.indexes.clear()
        self.aliases.clear()
        if self.server.durable is not None:
            self.server.durable.drop_all_indexes()
            self.snapshot_writer.wait()
            for name in names:
                _snapshot.remove(self.server.durable.directory, name)

    # -- snapshots of the HNSW graphs (see snapshot.py) -------------------------------
    def restore_snapshots(self) -> None:
        root = self.server.durable.directory
        for idx in self.indexes.values():
            idx.restored_from = idx.snapshot_seq = _snapshot.restore(root, idx)

    def finish_restore(self) -> None:
        for idx in self.indexes.values():
            idx.finish_restore()

    def save_snapshots(self, only_stale: bool = False, background: bool = False) -> int:
        """Snapshot every index with a graph at the current change count (only_stale: those
        whose newest snapshot is not at it); returns how many were taken. With
        background, the loop only copies the graphs and a writer thread writes the
        files; otherwise they are on disk when this returns."""
        durable = self.server.durable
        if durable is None:
            return 0
        writer = self.snapshot_writer
        writer.wait()  # one snapshot of an index at a time, in order
        n = 0
        for idx in list(self.indexes.values()):
            if only_stale and idx.snapshot_seq == durable.changes:
                continue
            try:
                job = _snapshot.take(durable.directory, idx, durable.changes)
                if job is None:
                    continue
                if background:
                    writer.submit(job, lambda job, idx=idx: setattr(idx, "snapshot_seq", job.seq))
                else:
                    _snapshot.write(job)
                    idx.snapshot_seq = job.seq
                n += 1
            except Exception:  # a snapshot only saves time: never fail the server for one
                log.exception("index snapshot of %r failed", idx.name)
        return n
