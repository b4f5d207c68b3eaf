"""HNSW: a hierarchical navigable small-world graph (approximate search).

The graph lives in the C++ core (cpp/index/hnsw.h). The walk runs on 8-bit codes
kept next to each node's links, each with its own offset and step (so one
vector's range never coarsens another's code), and every candidate whose
error-bounded code distance can still enter the top k is re-ranked with the
float vectors, so distances returned are exact. A guard measures on a sample of
each build how well codes keep the float order; where they cannot, the walk
uses the float vectors and says so (``walk``, ``repr``, a warning once).

    index = nearkit.HNSW(50, metric="cosine")
    index.add(vectors)                       # grows as needed; threads=n builds in parallel
    ids, dist = index.search(queries, 10, ef=64)
    index.remove([3, 7])                     # neighbours are re-linked, slots reused
"""

from __future__ import annotations

import warnings

import numpy as np

from .. import _core, _validate
from ..metrics import METRIC_CODES
from .base import Index

# Marks files whose codes are per-vector (format 2); files without it hold the
# earlier per-dimension codes, which are rebuilt from the float vectors on load.
_CODES = "lvq8-residual"

_SECTION_NAMES = ("blocks", "vectors", "labels", "levels", "upper_offsets", "upper_links", "quant")


def _check_graph(index: "HNSW", sections: dict, legacy: bool = False) -> None:
    """What the core's attach does not check and later calls rely on: slot labels
    agree with the graph (each id on one live slot; -1 only on free slots, which
    carry no links and no levels), the quantiser is finite, and the entry point is
    a live node whenever one exists. Raises FormatError."""
    from ..errors import FormatError

    labels, levels, blocks = sections["labels"], sections["levels"], sections["blocks"]
    n = labels.shape[0] if labels.ndim == 1 else -1
    if n < 0 or levels.shape != (n,) or blocks.ndim != 2 or blocks.shape[0] != n:
        raise FormatError("HNSW sections disagree on the number of slots")
    if n >= 2**32 - 1:
        raise FormatError(f"HNSW file claims {n} slots, more than a graph can address")
    core = index._core
    if legacy:  # written before per-vector codes: [codes, padded to 4][hdr][links], 64-aligned
        hdr_at = (index.dim + 3) // 4 * 4
        block_bytes = (hdr_at + 4 + 4 * 2 * index.M + 63) // 64 * 64  # 2*M level-0 links
        flag_bits = 0
    else:  # the core's own layout; header bits 24..31 name the code's centre (checked by attach)
        hdr_at, block_bytes, flag_bits = core.header_offset, core.block_bytes, 0xFF << 24
    if blocks.shape[1] != block_bytes:
        raise FormatError(f"HNSW link blocks are {blocks.shape[1]} bytes, the parameters give "
                          f"{block_bytes}")
    quant = sections["quant"]
    if quant.size and not np.isfinite(quant).all():
        raise FormatError("HNSW quantiser holds NaN or infinity")
    live = labels >= 0
    if (labels < -1).any():
        raise FormatError("HNSW file has a label below -1")
    ids = labels[live]
    if ids.size != np.unique(ids).size:
        raise FormatError("HNSW file gives one id to two live slots")
    hdr = np.ascontiguousarray(blocks[:, hdr_at:hdr_at + 4]).view("<u4").reshape(-1)
    free_flag, count_mask = 1 << 16, 0xFFFF
    free = ~live
    if ((hdr[free] & count_mask) != 0).any() or (levels[free] != 0).any():
        raise FormatError("HNSW file has a free slot (label -1) that still has links")
    if ((hdr[free] & free_flag) == 0).any() or ((hdr[live] & free_flag) != 0).any():
        raise FormatError("HNSW slot labels disagree with the free-slot flags")
    if (hdr & ~np.uint32(free_flag | count_mask | flag_bits)).any():
        raise FormatError("HNSW link header has unknown flag bits")
    if (levels > 60).any():
        raise FormatError("HNSW node level above 60")
    # Upper-level link lists: node s owns levels[s] * (M + 1) entries from its offset.
    offsets, upper = sections["upper_offsets"], sections["upper_links"]
    if offsets.shape != (n + 1,) or upper.ndim != 1:
        raise FormatError("HNSW upper-level offsets do not match the slots")
    want = np.zeros(n + 1, np.int64)
    np.cumsum(levels.astype(np.int64) * (index.M + 1), out=want[1:])
    if not np.array_equal(offsets, want) or want[-1] != upper.shape[0]:
        raise FormatError("HNSW upper-level offsets disagree with the node levels")
    entry, max_level = (int(v) for v in sections["state"])
    if ids.size:
        if not (0 <= entry < n) or not live[entry]:
            raise FormatError("HNSW entry point is not a live node")
        if max_level != int(levels[entry]):
            raise FormatError("HNSW top level disagrees with the entry node's level")
    elif entry != -1 or max_level != -1:
        raise FormatError("HNSW file without live nodes has an entry point")
    if not _validate.all_finite(sections["vectors"]):
        raise FormatError("HNSW vectors hold NaN or infinity")

class HNSW(Index):
    """Hierarchical navigable small-world graph.

    M: links per node (up to 2*M on the bottom layer, which ``add`` fills after
    each batch for l2 and cosine; see docs/hnsw.md); ef_construction: candidate list
    size while building; ef_search: default candidate list size for search
    (raise it for recall, lower it for speed); seed: level assignment;
    walk: ``"auto"`` (8-bit codes unless the guard finds they cannot serve the
    data) or ``"float"`` (always float vectors: exact walk, slower).
    """
    kind = "hnsw"

    def __init__(self, dim: int, metric: str = "l2", M: int = 16, ef_construction: int = 200,
                 ef_search: int = 64, seed: int = 0, walk: str = "auto"):
        super().__init__(dim, metric)
        self._M = _validate.check_positive_int(M, "M", minimum=2)
        if self._M > 2048:
            raise ValueError(f"M must be <= 2048, got {M}")
        self._ef_construction = _validate.check_positive_int(ef_construction, "ef_construction")
        self._ef_search = _validate.check_positive_int(ef_search, "ef_search")
        self._seed = _validate.check_positive_int(seed, "seed", minimum=0)
        self._core = _core.Hnsw(self._dim, METRIC_CODES[self._metric], self._M,
                                self._ef_construction, self._seed)
        if walk not in ("auto", "float"):
            raise ValueError(f"walk must be 'auto' or 'float', got {walk!r}")
        self._walk = walk
        if walk == "float":
            self._core.use_float_walk()
        self._mapped = None  # file sections kept alive while the core borrows them
        self._warned_float_walk = False

    # -- parameters -----------------------------------------------------------
    @property
    def M(self) -> int:
        return self._M

    @property
    def ef_construction(self) -> int:
        return self._ef_construction

    @property
    def ef_search(self) -> int:
        return self._ef_search

    @ef_search.setter
    def ef_search(self, value: int) -> None:
        self._ef_search = _validate.check_positive_int(value, "ef_search")

    @property
    def walk(self) -> str:
        """``"codes"`` (8-bit codes, exact re-rank) or ``"float"``: the guard found
        that codes cannot keep the float-distance order on this data."""
        return "float" if self._core.float_walk else "codes"

    @property
    def code_check(self) -> dict:
        """What the guard measured on its last sample: sizes, the worst code
        error in units of its modelled scale, the median number of vectors codes
        cannot tell from a query's nearest, and whether codes serve."""
        return dict(self._core.guard_report())

    def _warn_float_walk(self) -> None:
        if self._core.float_walk and self._walk == "auto" and not self._warned_float_walk:
            self._warned_float_walk = True
            report = self._core.guard_report()
            warnings.warn(
                "HNSW: 8-bit codes cannot keep the distance order on this data "
                f"(worst error {report['max_error']:.3g} scales, "
                f"{report['confusable']:.3g} vectors confusable with the nearest); "
                "the graph walk uses float vectors instead (exact, slower)",
                RuntimeWarning, stacklevel=3)

    @property
    def readonly(self) -> bool:
        return self._core.readonly

    @property
    def nbytes(self) -> int:
        """Approximate bytes of storage held (or mapped) by the index."""
        return int(self._core.memory_bytes)

    def __len__(self) -> int:
        return len(self._core)

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        # The core normalises cosine vectors and queries itself (no n x dim copy here).
        return x

    # -- search -----------------------------------------------------------------
    def search(self, queries, k: int, *, ef: int | None = None, filter=None, threads=None):
        """(ids, distances) of the k nearest; ``ef`` defaults to ``ef_search``.

        ``filter``: boolean mask over ids or array of allowed ids. When few ids
        pass, the search scans them exactly instead of walking the graph.
        """
        # The lean path without Index.search's extra hop (a Python loop of single
        # queries is how most users call it; the hop was ~1.3 us of ~35).
        if filter is None and threads is None and self._lean(queries, k):
            hit = self._search_one(queries, k, ef)
            if hit is not None:
                return hit
        return super().search(queries, k, filter=filter, threads=threads, ef=ef)

    def _search_one(self, query, k, ef=None):
        # The core checks finiteness and normalises for cosine.
        if ef is None:
            ef = self._ef_search
        elif type(ef) is not int or ef <= 0:
            return None
        return self._core.search_one(query, k, min(ef, len(self._core)))

    def _search(self, q, k, mask, threads, ef=None):
        ef = self._ef_search if ef is None else _validate.check_positive_int(ef, "ef")
        # A candidate list longer than the graph only costs memory (ef=10**8 kept GBs).
        ef = _validate.clip_to_stored(ef, max(len(self._core), k))
        return self._core.search(q, k, ef, mask, threads)

    def _scan(self, q, k, mask):
        # The core scans the allowed slots in place (prefetching), no copy.
        return self._core.scan(q, k, mask.view(np.uint8))

    # -- mutation ---------------------------------------------------------------
    parallel_add = True

    _add_replaces = True

    def add(self, vectors, ids=None, threads=None, progress=None) -> None:
        """Add vectors (re-adding an id replaces its vector); ``threads`` builds in parallel.
        ``progress``: see Index.add."""
        if self._core.readonly:
            raise self._read_only_error("add vectors")
        super().add(vectors, ids, progress=progress, threads=_validate.check_threads(threads))

    def _add(self, x, ids, threads=1):
        self._core.add(x, ids, threads)
        self._warn_float_walk()

    def _remove(self, ids) -> int:
        if self._core.readonly:
            raise self._read_only_error("remove vectors")
        return int(self._core.remove(np.unique(ids)))

    def _vectors_at(self, slots: np.ndarray) -> np.ndarray:
        if self._mapped is not None:
            return np.array(self._mapped["vectors"][slots], np.float32)
        return self._core.vectors_at(np.ascontiguousarray(slots, dtype=np.int64))

    # -- tuning -----------------------------------------------------------------
    def _tune_lines(self, k: int) -> list:
        steps = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 2048)
        return [[{"ef": ef} for ef in sorted({max(k, e) for e in steps})]]

    def _set_search_defaults(self, params: dict) -> None:
        self.ef_search = params["ef"]

    def _slot_labels(self) -> np.ndarray:
        if self._mapped is not None:
            return self._mapped["labels"]
        return self._core.slot_labels()

    def _slot_count(self) -> int:
        if self._mapped is not None:
            return len(self._mapped["labels"])
        return self._core.n_slots

    def _default_ids(self, n: int) -> np.ndarray:
        # Same rule as Index (after the largest id) without copying the label array.
        start = self._core.max_label + 1
        return _validate.default_ids(start, n)

    # -- persistence ----------------------------------------------------------
    def _params(self) -> dict:
        return {"M": self._M, "ef_construction": self._ef_construction,
                "ef_search": self._ef_search, "seed": self._seed, "walk": self._walk,
                "codes": _CODES, "walk_used": self.walk}

    _sections_are_copies = True  # export_arrays copies under the index's shared lock

    def _sections(self) -> dict:
        arrays = self._core.export_arrays()
        sections = {name: arrays[name] for name in _SECTION_NAMES}
        sections["state"] = np.array([arrays["entry"], arrays["max_level"]], dtype=np.int64)
        return sections

    @classmethod
    def _from_sections(cls, dim, metric, params, sections):
        from ..errors import FormatError

        try:
            index = cls(dim, metric, M=params["M"], ef_construction=params["ef_construction"],
                        ef_search=params["ef_search"], seed=params["seed"],
                        walk=params.get("walk", "auto"))
        except (KeyError, TypeError, ValueError) as exc:
            raise FormatError(f"HNSW file has bad parameters: {exc}") from None
        missing = [n for n in _SECTION_NAMES + ("state",) if n not in sections]
        if missing:
            raise FormatError(f"HNSW file lacks sections {missing}")
        expected = {"blocks": np.uint8, "vectors": np.float32, "labels": np.int64,
                    "levels": np.uint8, "upper_offsets": np.int64, "upper_links": np.uint32,
                    "quant": np.float32, "state": np.int64}
        for name, dtype in expected.items():
            if sections[name].dtype != dtype:
                raise FormatError(f"HNSW section {name!r} has dtype {sections[name].dtype}, "
                                  f"expected {np.dtype(dtype)}")
        state = sections["state"]
        if state.shape != (2,):
            raise FormatError("HNSW section 'state' must hold [entry, max_level]")
        codes = params.get("codes")
        if codes not in (None, _CODES):
            raise FormatError(f"HNSW file has codes {codes!r} that this nearkit does not know; "
                              "rebuild the index with this version")
        _check_graph(index, sections, legacy=codes is None)
        mapped = any(not s.flags.writeable for s in sections.values())
        try:
            index._core.attach(sections["blocks"], sections["vectors"], sections["labels"],
                               sections["levels"], sections["upper_offsets"],
                               sections["upper_links"], sections["quant"], int(state[0]),
                               int(state[1]), mapped, legacy=codes is None)
        except (ValueError, TypeError) as exc:
            raise FormatError(str(exc)) from None
        if mapped and codes is not None:  # a legacy file was converted into owned memory
            index._mapped = dict(sections)
        index._warn_float_walk()
        return index

    def __repr__(self) -> str:
        return (f"HNSW(dim={self.dim}, metric={self.metric!r}, M={self._M}, "
                f"ef_construction={self._ef_construction}, ef_search={self._ef_search}, n={len(self)}, "
                f"walk={self.walk!r})")
