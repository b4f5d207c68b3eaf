"""The in-memory half of a collection: keys, slots, payload fields, the ANN index.

    table = Table(dim, metric, fields_schema)
    table.index = make_index(...)
    slots = table.put(keys, ids, texts, recs)          # the index gets the vectors itself
    slots, dist = table.select(q, k, tree, {"ef": 64})  # filtered kNN, exact or walk

Each live key occupies a *slot* (a dense row reused after deletes) holding its key,
its payload (JSON text, opaque here) and its current *id*: ids are what the index
knows (the owner hands out fresh ones; see ``Collection``). The vectors live in one
place, the index: exact scans go to ``Index.scan`` over a slot mask and radius
queries read rows back with ``Index.slot_vectors``; only an index that keeps lossy
codes (IVF-PQ without refine) makes the table keep its own float copy.

``select`` is where a filtered search chooses between an exact scan of the allowed
rows and a filtered index walk (``prefer_exact``); ``within`` answers radius
queries exactly. Not thread-safe on its own: the owner's lock orders writers and
readers (searches may run concurrently with each other).
"""

from __future__ import annotations

import numpy as np

from .. import _core
from ..indexes.base import SlotFilter
from ..metrics import COSINE, METRIC_CODES, normalize_rows
from ..query.nodes import MatchAll, Node
from .fields import FieldIndex

# The exact-or-walk rule for a filtered kNN search over n_live rows of which
# n_allowed pass: scan the allowed rows exactly when there are at most
# EXACT_MIN_ROWS of them, or when n_allowed**2 <= EXACT_SCALE * n_live (a scan
# costs ~n_allowed distances, a filtered walk ~(an unfiltered walk) * n_live /
# n_allowed, so the two break even near n_allowed ~ sqrt(c * n_live)).
# Measured with benchmarks/hnsw_filters.py --table (docs/store.md).
EXACT_MIN_ROWS = 2_000
EXACT_SCALE = 1_500.0

# Rows gathered from the index per exact-scan block (~4 MB at 128-d): bounded
# temporary memory for a radius query over every row.
GATHER_ROWS = 8192


def prefer_exact(n_allowed: int, n_live: int) -> bool:
    """True when a filtered search should scan its allowed rows exactly."""
    return n_allowed <= EXACT_MIN_ROWS or float(n_allowed) ** 2 <= EXACT_SCALE * n_live


def nearest(column, q: np.ndarray, k: int, allowed: np.ndarray | None, params: dict):
    """The k nearest rows of ``column`` to each query ``q`` (nq, dim) among the rows
    of the bool slot mask ``allowed`` (None: every row): (slots, distances), each
    (nq, k), -1/inf padded. The one place that decides how a kNN search runs, for
    the store's tables and the server's vector fields alike: a filter with few
    allowed rows is scanned exactly (recall 1 however small the filter), anything
    else walks the index (the mask as its filter), and a query the walk cannot
    fill is answered by the scan instead.

    ``column`` is a vector column: ``count`` (rows holding a vector), ``walk_is_exact``
    (its walk is an exact search: never scan instead), ``restrict(mask)`` (the mask
    cut to rows holding a vector), ``walk(q, k, mask, params)`` and
    ``scan(q, k, mask)`` (exact), both answering in slots as here (with k no
    larger than the rows allowed)."""
    nq = q.shape[0]
    n_live = column.count
    if allowed is not None:
        allowed = column.restrict(allowed)
    n_allowed = n_live if allowed is None else int(np.count_nonzero(allowed))
    if n_allowed == 0 or k <= 0:
        return np.full((nq, max(k, 0)), -1, np.int64), np.full((nq, max(k, 0)), np.inf, np.float32)
    kk = min(k, n_allowed)
    if allowed is not None and not column.walk_is_exact and prefer_exact(n_allowed, n_live):
        slots, dist = column.scan(q, kk, allowed)
    else:
        slots, dist = column.walk(q, kk, allowed, params)
        short = (slots >= 0).sum(axis=1) < kk
        if short.any():  # the walk could not fill k from the allowed rows: scan those
            slots[short], dist[short] = column.scan(q[short], kk, allowed)
    if kk < k:
        pad = ((0, 0), (0, k - kk))
        slots = np.pad(slots, pad, constant_values=-1)
        dist = np.pad(dist, pad, constant_values=np.inf)
    return slots, dist


def within(column, q: np.ndarray, radius: float, allowed: np.ndarray | None):
    """Every (slot, distance) of ``column``'s rows in the bool slot mask ``allowed``
    (None: every row holding a vector) with distance <= ``radius`` from the one
    prepared query ``q`` (dim,), in slot order. The one radius query, for the store's
    tables and the server's vector fields alike: always exact (a radius has no k for
    a walk to aim at). ``column`` adds to what ``nearest`` needs ``rows_mask()`` (the
    rows holding a vector) and ``distances(q, slots)`` (exact, its own kernel, block by
    block so a graph's rows are gathered, never all copied at once)."""
    mask = column.rows_mask() if allowed is None else column.restrict(allowed)
    slots = np.flatnonzero(mask)
    d = column.distances(q, slots)
    keep = d <= np.float32(radius)
    return slots[keep], d[keep]


def grow(arr: np.ndarray, n: int, fill) -> np.ndarray:
    """``arr`` with room for n rows: doubling, from 1024 rows or ~4 MB for wide rows
    (memory follows the rows stored, not the declared dimension)."""
    if arr.shape[0] >= n:
        return arr
    row_bytes = arr.itemsize * int(np.prod(arr.shape[1:], dtype=np.int64))
    first = max(1, min(1024, (4 << 20) // max(1, row_bytes)))
    shape = (max(n, 2 * arr.shape[0], first),) + arr.shape[1:]
    new = np.zeros(shape, dtype=arr.dtype) if not fill else np.full(shape, fill, dtype=arr.dtype)
    new[: arr.shape[0]] = arr
    return new


class Table:
    """Key <-> slot table, live mask, field indexes and the ANN index of one collection."""

    def __init__(self, dim: int, metric: str, schema: dict, index=None, row_ids: bool = True):
        self.dim = dim
        # Rows carry an id and a payload text (a collection's do). Without them (the
        # server: its graphs know slots directly, its documents live in the key
        # space) slot_ids and slot_payload stay empty and only claim/release/adopt_keys
        # write rows.
        self.row_ids = row_ids
        self.metric = metric
        self.fields = FieldIndex(schema)
        self.index = index
        self.version = 0          # bumped by every write to the index (invalidates the slot maps)
        self._maps = None
        self.own_vectors = False  # set by attach_index
        self.reset()

    # -- storage ------------------------------------------------------------------------
    def reset(self) -> None:
        self.n_slots = 0
        self.free: list[int] = []
        self.key_to_slot: dict = {}
        self.slot_keys: list = []
        self.slot_payload: list = []
        self.slot_ids = np.full(0, -1, np.int64)
        self.live = np.zeros(0, bool)
        self.slot_of_id = np.full(0, -1, np.int64)
        self.vectors = np.zeros((0, self.dim), np.float32)   # only with own_vectors
        self.sqnorm = np.zeros(0, np.float32)
        self.fields = FieldIndex(self.fields.schema)
        self._maps = None

    def reserve(self, n: int) -> None:
        if self.row_ids:
            self.slot_ids = grow(self.slot_ids, n, -1)
        self.live = grow(self.live, n, False)
        if self.own_vectors:
            self.vectors = grow(self.vectors, n, 0.0)
            self.sqnorm = grow(self.sqnorm, n, 0.0)
        self.fields.reserve(n)

    def ids_reserve(self, next_id: int) -> None:
        self.slot_of_id = grow(self.slot_of_id, next_id, -1)

    def take_slots(self, count: int) -> np.ndarray:
        reuse = [self.free.pop() for _ in range(min(count, len(self.free)))]
        fresh = np.arange(self.n_slots, self.n_slots + count - len(reuse), dtype=np.int64)
        self.n_slots += fresh.shape[0]
        self.reserve(self.n_slots)
        while len(self.slot_keys) < self.n_slots:
            self.slot_keys.append(None)
            self.slot_payload.append(None)
        return np.concatenate([np.array(reuse, np.int64), fresh])

    def prepare(self, x: np.ndarray) -> np.ndarray:
        """What the exact kernels compare: unit rows for cosine, as given otherwise."""
        return normalize_rows(x) if self.metric == COSINE else x

    def store_vectors(self, slots, x: np.ndarray) -> None:
        """Keep the rows' vectors here (only when the index cannot give them back)."""
        if self.own_vectors:
            px = self.prepare(x)
            self.vectors[slots] = px
            self.sqnorm[slots] = np.einsum("ij,ij->i", px, px)

    # -- rows ---------------------------------------------------------------------------
    def delete(self, slots, extract) -> None:
        """Free ``slots``; ``extract(payload_text)`` gives a row's field record."""
        for s in slots:
            p = self.slot_payload[s]
            self.fields.remove(s, extract(p))
            del self.key_to_slot[self.slot_keys[s]]
            self.slot_of_id[self.slot_ids[s]] = -1
            self.slot_keys[s] = None
            self.slot_payload[s] = None
            self.slot_ids[s] = -1
            self.live[s] = False
            self.free.append(s)

    def put(self, keys, x, new_ids, texts, recs, extract) -> np.ndarray:
        """Put rows in memory: a key already present keeps its slot (its old id is dropped)."""
        old_slots = [self.key_to_slot.get(k) for k in keys]
        for s in old_slots:
            if s is not None:
                self.fields.remove(s, extract(self.slot_payload[s]))
                self.slot_of_id[self.slot_ids[s]] = -1
        fresh = iter(self.take_slots(sum(s is None for s in old_slots)).tolist())
        slots = np.array([s if s is not None else next(fresh) for s in old_slots], np.int64)
        self.ids_reserve(int(new_ids.max()) + 1 if new_ids.size else 0)
        self.slot_of_id[new_ids] = slots
        self.slot_ids[slots] = new_ids
        self.live[slots] = True
        self.store_vectors(slots, x)
        for k, s, t in zip(keys, slots.tolist(), texts):
            self.key_to_slot[k] = s
            self.slot_keys[s] = k
            self.slot_payload[s] = t
        self.fields.insert_many(slots, recs)
        return slots

    # -- one row at a time (the server re-indexes each key as it changes) ----------------
    def claim(self, key) -> int:
        """The slot of ``key``, a free or new one if it has none (marked live). Owners
        whose index knows slots directly (the server: graph ids = slots) leave ids unset."""
        s = self.key_to_slot.get(key)
        if s is not None:
            return s
        if self.free:
            s = self.free.pop()
            self.slot_keys[s] = key
        else:
            s = self.n_slots
            self.n_slots += 1
            if s >= self.live.shape[0]:
                self.reserve(s + 1)
            self.slot_keys.append(key)
            if self.row_ids:
                self.slot_payload.append(None)
        self.key_to_slot[key] = s
        self.live[s] = True
        return s

    def release(self, key, rec: dict):
        """Free the slot of ``key`` (None if it has none); ``rec`` is its field record,
        taken out of the field indexes. The slot goes onto the free list for reuse."""
        s = self.key_to_slot.pop(key, None)
        if s is None:
            return None
        self.fields.remove(s, rec)
        if self.row_ids:
            if self.slot_ids[s] >= 0:
                self.slot_of_id[self.slot_ids[s]] = -1
                self.slot_ids[s] = -1
            self.slot_payload[s] = None
        self.slot_keys[s] = None
        self.live[s] = False
        self.free.append(s)
        return s

    def adopt_keys(self, slot_keys: list) -> None:
        """Start from a given slot numbering (key or None per slot), no row live yet:
        a snapshot's, so that the ids its graphs hold keep naming the same keys."""
        self.reset()
        n = len(slot_keys)
        self.n_slots = n
        self.slot_keys = list(slot_keys)
        self.slot_payload = [None] * n if self.row_ids else []
        self.key_to_slot = {k: s for s, k in enumerate(self.slot_keys) if k is not None}
        self.free = [s for s in range(n - 1, -1, -1) if self.slot_keys[s] is None]
        self.reserve(n)

    def __len__(self) -> int:
        return len(self.key_to_slot)

    # -- filters ------------------------------------------------------------------------
    def mask(self, tree: Node) -> np.ndarray | None:
        """Boolean mask over slots of live rows passing the filter (None = no filter)."""
        if isinstance(tree, MatchAll):
            return None
        return self.fields.mask(tree, self.live[: self.n_slots])

    # -- the index's slots --------------------------------------------------------------
    def _slot_maps(self) -> tuple[np.ndarray, np.ndarray]:
        """(our slot per index slot, index slot per our slot), -1 for none; cached until
        a write. A filter mask over our slots becomes the index's own slot mask with one
        gather, and an exact scan reads the allowed rows' vectors straight from the index."""
        cached = self._maps
        if cached is not None and cached[0] == self.version:
            return cached[1], cached[2]
        labels = self.index.slot_labels()
        ours = np.where(labels >= 0, self.slot_of_id[np.clip(labels, 0, None)], -1)
        theirs = np.full(self.n_slots, -1, np.int64)
        held = np.flatnonzero(ours >= 0)
        theirs[ours[held]] = held
        self._maps = (self.version, ours, theirs)
        return ours, theirs

    def _index_slot_count(self) -> int:
        return self._slot_maps()[0].shape[0]

    def rows(self, slots: np.ndarray) -> np.ndarray:
        """Stored vectors (prepared: unit rows for cosine) of our ``slots``."""
        if self.own_vectors:
            return self.vectors[slots]
        return self.index.slot_vectors(self._slot_maps()[1][slots])

    # -- search -------------------------------------------------------------------------
    def exact(self, q: np.ndarray, k: int, slots: np.ndarray):
        """Exact top-k (our slots, distances) of queries ``q`` (as given) among ``slots``."""
        if slots.shape[0] == 0:
            return np.full((q.shape[0], k), -1, np.int64), np.full((q.shape[0], k), np.inf, np.float32)
        if self.own_vectors:
            mask = np.zeros(self.n_slots, np.uint8)
            mask[slots] = 1
            n = self.n_slots
            return _core.flat_search(self.vectors[:n], self.sqnorm[:n], None, self.prepare(q), k,
                                     METRIC_CODES[self.metric], mask, 1, False)
        # The index scans the allowed rows of its own storage (HNSW: in place, no copy).
        theirs = self._slot_maps()[1]
        allowed = np.zeros(self._index_slot_count(), dtype=bool)
        allowed[theirs[slots]] = True
        ids, dist = self.index.scan(q, k, SlotFilter(allowed))
        valid = ids >= 0
        return np.where(valid, self.slot_of_id[np.where(valid, ids, 0)], -1), dist

    def select(self, q: np.ndarray, k: int, tree: Node, search_params: dict):
        """The k nearest live rows passing ``tree``: (slots, distances), -1/inf padded
        (exact scan or index walk: ``nearest`` decides)."""
        return nearest(self, q, k, self.mask(tree), search_params)

    # -- the table's index as a vector column (see ``nearest``) --------------------------
    @property
    def count(self) -> int:
        return len(self.key_to_slot)

    @property
    def walk_is_exact(self) -> bool:
        return getattr(self.index, "exact", False)

    def restrict(self, mask: np.ndarray) -> np.ndarray:
        return mask  # every live row has a vector, and ``mask`` holds live rows only

    def rows_mask(self) -> np.ndarray:
        return self.live[: self.n_slots]

    def distances(self, pq: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """Exact distances from the prepared query ``pq`` (dim,) to our ``slots``
        (the exact-search kernel, GATHER_ROWS rows at a time)."""
        code = METRIC_CODES[self.metric]
        out = [np.empty(0, np.float32)]
        for a in range(0, slots.shape[0], GATHER_ROWS):
            x = self.rows(slots[a:a + GATHER_ROWS])
            sqn = np.einsum("ij,ij->i", x, x)
            # an infinite bound keeps every row (listed in the kernel's order)
            _, pos, dist = _core.flat_range(x, sqn, None, pq[None, :], np.inf, code, None, 1)
            block = np.full(x.shape[0], np.inf, np.float32)
            block[pos] = dist
            out.append(block)
        return np.concatenate(out)

    def scan(self, q: np.ndarray, k: int, mask: np.ndarray | None):
        return self.exact(q, k, np.flatnonzero(self.rows_mask() if mask is None else mask))

    def walk(self, q: np.ndarray, k: int, mask: np.ndarray | None, params: dict):
        """The index's own search (a mask becomes a filter over its slots)."""
        if mask is None:
            ids, dist = self.index.search(q, k, **params)
        else:
            ours = self._slot_maps()[0]
            ext = np.zeros(self.n_slots + 1, dtype=bool)   # the extra False answers slot -1
            ext[: self.n_slots] = mask
            ids, dist = self.index.search(q, k, filter=SlotFilter(ext[ours]), threads=1, **params)
        valid = ids >= 0
        return np.where(valid, self.slot_of_id[np.where(valid, ids, 0)], -1), dist

    def within(self, pq: np.ndarray, radius: float, tree: Node):
        """(our slots, distances) of every live row passing ``tree`` within ``radius``
        (inclusive) of the one prepared query ``pq`` (1, dim), nearest first."""
        s, d = within(self, pq[0], radius, self.mask(tree))
        order = np.lexsort((s, d))  # nearest first; ties in slot order
        return s[order], d[order]

    # -- snapshots ----------------------------------------------------------------------
    def export(self) -> tuple[dict, dict]:
        """(params, sections) of a state snapshot: slots, keys, payloads, field indexes;
        the vectors only when the table keeps its own (otherwise the index snapshot has them)."""
        from .fields import pack_strings

        n = self.n_slots
        keys_blob, keys_off = pack_strings([k if k is not None else "" for k in self.slot_keys[:n]])
        pay_blob, pay_off = pack_strings([p if p is not None else "" for p in self.slot_payload[:n]])
        sections = {"slot_ids": self.slot_ids[:n], "keys": keys_blob, "keys_off": keys_off,
                    "payloads": pay_blob, "payloads_off": pay_off}
        if self.own_vectors:
            sections["vectors"] = self.vectors[:n]
            sections["sqnorm"] = self.sqnorm[:n]
        sections.update(self.fields.export(n))
        return {"n_slots": n, "fields": self.fields.schema, "state_format": 2}, sections


def import_state(table: Table, f, next_id: int) -> None:
    """Fill ``table`` from a state snapshot file ``f`` (read_index result, mapped
    copy-on-write); raises ValueError when it does not fit. Format 1 files also
    carry the vectors: they are used only when the table keeps its own."""
    from .fields import unpack_strings

    n = int(f.params["n_slots"])
    sec = f.sections
    ids = sec["slot_ids"]
    if ids.shape != (n,):
        raise ValueError("state sections have inconsistent shapes")
    if table.own_vectors:
        if "vectors" not in sec:
            raise ValueError("the state snapshot holds no vectors (this index keeps only codes)")
        if sec["vectors"].shape != (n, table.dim) or sec["sqnorm"].shape != (n,):
            raise ValueError("state sections have inconsistent shapes")
    keys = unpack_strings(sec["keys"], sec["keys_off"])
    texts = unpack_strings(sec["payloads"], sec["payloads_off"])
    if len(keys) != n or len(texts) != n:
        raise ValueError("state key or payload count does not match its slots")
    if ids.size and ids.max() >= next_id:
        raise ValueError("state holds ids the store never issued")
    fields = FieldIndex(table.fields.schema)
    fields.import_(sec, n)
    live = ids >= 0
    # adopt the freshly read arrays (capacity n; the next insert grows them)
    table.n_slots = n
    table.slot_ids = ids
    table.live = live
    if table.own_vectors:
        table.vectors = sec["vectors"]
        table.sqnorm = sec["sqnorm"]
    table.reserve(n)
    if live.all():  # the common case: no free slot to blank out
        table.slot_keys = keys
        table.slot_payload = [t or None for t in texts]
    else:
        live_list = live.tolist()
        table.slot_keys = [k if ok else None for k, ok in zip(keys, live_list)]
        table.slot_payload = [t if (ok and t) else None for t, ok in zip(texts, live_list)]
    table.free = np.flatnonzero(~live).tolist()[::-1]
    table.key_to_slot = dict(zip(table.slot_keys, range(n)))  # built in C: ~3x a comprehension
    table.key_to_slot.pop(None, None)  # free slots
    if len(table.key_to_slot) != int(live.sum()):
        raise ValueError("state holds duplicate keys")
    table.ids_reserve(next_id)
    table.slot_of_id[ids[live]] = np.flatnonzero(live)
    fields.reserve(table.live.shape[0])
    table.fields = fields
