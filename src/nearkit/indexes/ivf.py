"""Inverted-file index (IVF) with flat, scalar-quantised or product-quantised codes.

    index = nearkit.IVF(50, "cosine", nlist=1024, codec="pq25x4fs", refine=True)
    index.train(sample); index.add(vectors)
    ids, dist = index.search(queries, 10, nprobe=16, k_factor=4)

Training clusters the (optionally pre-transformed) vectors into ``nlist``
lists with k-means (spherical for "ip"/"cosine"); a query scans the codes of
its ``nprobe`` nearest lists in the C++ core (cpp/index/ivf.cpp). Codecs:

=============  ===============================================  ================
codec          stored per vector                                 distances
=============  ===============================================  ================
``flat``       float32 vector (blocked by 16 for SIMD)           exact
``sq8``        1 byte per dimension (per-dimension min/max grid)  approximate
``fp16``       IEEE half per dimension                            near exact
``pq{m}``      m bytes: 8-bit PQ of the residual to the centroid  LUT (ADC)
``pq{m}x4fs``  m/2 bytes: 4-bit PQ, packed for SIMD fast scan     quantised LUT
=============  ===============================================  ================

``transform="pca{d}"`` or ``"opq{m}"`` applies a learnt linear map first;
``refine=True`` keeps the float vectors and re-ranks ``k * k_factor``
candidates exactly (Faiss's ``RFlat``). ``nlist=1`` gives a plain
(non-inverted) quantised index: that is how the factory builds ``PQm``/``SQ8``.

Lists are stored CSR-style (offsets, ids, codes); adding or removing
rebuilds them in one vectorised pass, which suits batch updates.
"""

from __future__ import annotations

import re
import threading
import warnings

import numpy as np

from .. import _core, _validate
from .._sync import RWLock
from ..kmeans import assign as _assign
from ..kmeans import kmeans as _kmeans
from ..errors import FormatError, NotTrainedError
from ..metrics import COSINE, L2, METRIC_CODES
from .._progress import chunks as _progress_chunks
from .base import Index, WriteLockedIndex
from .quant import (FLAT_BLOCK, PQ4_BLOCK, OPQTransform, PCATransform, ProductQuantizer,
                    ScalarQuantizer, pack_flat, pack_pq4, unpack_flat, unpack_pq4)

_CODEC_RE = re.compile(r"^(flat|sq8|fp16|pq(\d+)(x8|x4fs)?)$")
_TRANSFORM_RE = re.compile(r"^(pca|opq)(\d+)$")


def parse_codec(codec: str) -> tuple[str, int]:
    """'pq16x4fs' -> ('pq4fs', 16); 'pq16' -> ('pq8', 16); 'sq8' -> ('sq8', 0)."""
    if not isinstance(codec, str):
        raise TypeError(f"codec must be a string, got {type(codec).__name__}")
    mt = _CODEC_RE.match(codec.lower())
    if not mt:
        raise ValueError(
            f"unknown codec {codec!r}; expected 'flat', 'sq8', 'fp16', 'pq<m>' or 'pq<m>x4fs'")
    if mt.group(2) is None:
        return mt.group(1), 0
    m = int(mt.group(2))
    if m <= 0:
        raise ValueError(f"codec {codec!r}: the number of sub-quantizers must be positive")
    return ("pq4fs" if mt.group(3) == "x4fs" else "pq8"), m


def default_nprobe(nlist: int) -> int:
    """About the square root of nlist: a few percent of the lists for large ones."""
    return max(1, min(nlist, int(round(nlist ** 0.5))))


class IVF(WriteLockedIndex):
    kind = "ivf"
    # Cannot code vectors before train(); train_size= makes it train itself (the store does).
    needs_training = True

    def __init__(self, dim: int, metric: str = "l2", nlist: int = 1024, codec: str = "flat", *,
                 transform: str | None = None, refine: bool = False, nprobe: int | None = None,
                 k_factor: int = 1, seed: int = 0, niter: int = 10, train_size: int | None = None):
        super().__init__(dim, metric)
        # train_size: vectors added before training are kept as they are (and searched
        # exactly) until there are this many; then the index trains on them and codes
        # them. None: add() before train() raises NotTrainedError (faiss's way).
        # "auto": 39 vectors per list, the fewest k-means is happy with.
        if train_size == "auto":
            train_size = 39 * _validate.check_positive_int(nlist, "nlist")
        self.train_size = (None if train_size is None
                           else _validate.check_positive_int(train_size, "train_size"))
        self._set_pending(np.empty((0, dim), np.float32), np.empty(0, np.int64))
        self.nlist = _validate.check_positive_int(nlist, "nlist")
        self.codec, self.pq_m = parse_codec(codec)
        self._codec_name = codec.lower()
        # Default: about sqrt(nlist) lists, which keeps recall high on small indexes
        # (nprobe=1 gave 0.49 on one); tune() measures and sets the fastest that suffices.
        self.nprobe = (default_nprobe(self.nlist) if nprobe is None
                       else _validate.check_positive_int(nprobe, "nprobe"))
        self.k_factor = _validate.check_positive_int(k_factor, "k_factor")
        self.refine = bool(refine)
        self.seed, self.niter = int(seed), _validate.check_positive_int(niter, "niter")
        self._ip = self.metric != L2

        self.transform_name = transform.lower() if transform else None
        self._transform = None
        inner_dim = dim
        if self.transform_name:
            mt = _TRANSFORM_RE.match(self.transform_name)
            if not mt:
                raise ValueError(f"unknown transform {transform!r}; expected 'pca<d>' or 'opq<m>'")
            n = int(mt.group(2))
            if mt.group(1) == "pca":
                self._transform = PCATransform(dim, n, center=not self._ip)
                inner_dim = n
            else:
                self._transform = OPQTransform(dim, n, seed=seed)
        self.inner_dim = inner_dim

        # The codec's quantiser (checks the dimension against m right away).
        self._sq = self._pq = None
        if self.codec in ("sq8", "fp16"):
            self._sq = ScalarQuantizer(inner_dim, self.codec)
        elif self.codec in ("pq8", "pq4fs"):
            self._pq = ProductQuantizer(inner_dim, self.pq_m, 8 if self.codec == "pq8" else 4)
        self.by_residual = self.codec == "pq8"

        self._centroids: np.ndarray | None = None
        self._offsets = np.zeros(self.nlist + 1, np.int64)
        self._ids = np.empty(0, np.int64)
        self._codes = np.empty((0, self._block_bytes or self.code_size), np.uint8)
        self._refine_vecs = np.empty((0, dim), np.float32) if self.refine else None
        self._count = 0
        self._searcher = None
        self._read_only = False
        # Searches hold the read side; train, add, remove and reset the write
        # side. The searcher (the core's view of the arrays) is made lazily,
        # once, under its own lock.
        self._lock = RWLock()
        self._searcher_lock = threading.Lock()

    def _prepare(self, x: np.ndarray) -> np.ndarray:
        # Same contract as Index._prepare, in C++: numpy's norm costs ~10 us
        # per call, which matters for one-query-at-a-time search.
        return _core.normalized_rows(x) if self.metric == COSINE else x

    # -- description --------------------------------------------------------------
    @property
    def code_size(self) -> int:
        """Bytes of code per vector (excluding the 8-byte id and any refine vector)."""
        if self.codec == "flat":
            return 4 * self.inner_dim
        if self._sq is not None:
            return self._sq.code_size
        return self.pq_m if self.codec == "pq8" else (self.pq_m + 1) // 2

    @property
    def _list_pad(self) -> int:
        """Lists are padded to whole SIMD blocks for the flat and fast-scan codecs."""
        return {"pq4fs": PQ4_BLOCK, "flat": FLAT_BLOCK}.get(self.codec, 1)

    @property
    def _block_bytes(self) -> int:
        if self.codec == "flat":
            return FLAT_BLOCK * 4 * self.inner_dim
        return self._pq.mpad * 16 if self.codec == "pq4fs" else 0

    @property
    def bytes_per_vector(self) -> int:
        """Memory per stored vector: code + id (+ float vector when refining)."""
        return self.code_size + 8 + (4 * self.dim if self.refine else 0)

    @property
    def is_trained(self) -> bool:
        return self._centroids is not None

    def __len__(self) -> int:
        return self._count + self._pending_ids.shape[0]

    def __repr__(self) -> str:
        extra = f", transform={self.transform_name!r}" if self.transform_name else ""
        return (f"IVF(dim={self.dim}, metric={self.metric!r}, nlist={self.nlist}, "
                f"codec={self._codec_name!r}{extra}, refine={self.refine}, n={len(self)})")

    # -- training -----------------------------------------------------------------
    def train(self, vectors, progress=None) -> None:
        """Learn the pre-transform, the coarse centroids and the codec from a sample.

        ``progress`` (a callable ``progress(done, total)`` or True for tqdm) follows the
        k-means iterations."""
        with self._lock.write():
            self._train(vectors, progress)

    def _train(self, vectors, progress=None) -> None:
        self._check_writable()
        if self._count:
            raise ValueError("the index already holds vectors; call reset() before training again")
        x, _ = self._vectors(vectors, "training vectors")
        n = x.shape[0]
        if n < self.nlist:
            raise ValueError(
                f"number of training points ({n}) should be at least as large as the number "
                f"of lists (nlist={self.nlist})")
        if self._pq is not None and n < self._pq.ksub:
            raise ValueError(
                f"number of training points ({n}) should be at least as large as the number "
                f"of PQ centroids ({self._pq.ksub})")
        if self._transform is not None:
            self._transform.train(x)
        xt = self._apply_transform(x)
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            res = _kmeans(xt, self.nlist, niter=self.niter, seed=self.seed, spherical=self._ip,
                          progress=progress)
        centroids = res.centroids
        if self._sq is not None:
            self._sq.train(xt)
        elif self._pq is not None:
            sample = xt
            if self.by_residual:
                lists, _ = _assign(xt, centroids, spherical=self._ip)
                sample = xt - centroids[lists]
            self._pq.train(sample, seed=self.seed)
        self._centroids = centroids
        self._searcher = None
        if self._pending_ids.size:  # vectors kept before training (train_size) are coded now
            px, pids = self._pending_x, self._pending_ids
            self._set_pending(np.empty((0, self.dim), np.float32), np.empty(0, np.int64))
            self._add(px, pids)

    def _apply_transform(self, x: np.ndarray) -> np.ndarray:
        return x if self._transform is None else self._transform.apply(x)

    def _require_trained(self) -> None:
        if self._centroids is None:
            raise NotTrainedError("the IVF index is not trained; call train() with sample vectors first")

    def _check_writable(self, action: str = "change it") -> None:
        if self._read_only:
            raise self._read_only_error(action)

    # -- coding -------------------------------------------------------------------
    def _assign(self, xt: np.ndarray) -> np.ndarray:
        if self.nlist == 1:
            return np.zeros(xt.shape[0], np.int64)
        lists, _ = _assign(xt, self._centroids, spherical=self._ip)
        return lists

    def _encode(self, xt: np.ndarray, lists: np.ndarray) -> np.ndarray:
        """Per-vector codes, unpacked: (n, code bytes) or (n, m) for 4-bit PQ."""
        if self.codec == "flat":
            return np.ascontiguousarray(xt, np.float32).view(np.uint8).reshape(xt.shape[0], -1)
        if self._sq is not None:
            return self._sq.encode(xt)
        if self.by_residual:
            xt = xt - self._centroids[lists]
        return self._pq.encode(xt)

    def _unpacked(self):
        """(lists, codes, ids, refine vectors) of every live slot."""
        live = self._ids >= 0
        lists = np.repeat(np.arange(self.nlist, dtype=np.int64), np.diff(self._offsets))[live]
        if self.codec == "pq4fs":
            codes = unpack_pq4(self._codes, self.pq_m, self._pq.mpad)[live]
        elif self.codec == "flat":
            codes = unpack_flat(self._codes, self.inner_dim)[live]
        else:
            codes = self._codes[live]
        refine = self._refine_vecs[live] if self.refine else None
        return lists, codes, self._ids[live], refine

    def _rebuild_from(self, lists, codes, ids, refine):
        order = np.argsort(lists, kind="stable")
        lists, codes, ids = lists[order], codes[order], ids[order]
        counts = np.bincount(lists, minlength=self.nlist).astype(np.int64)
        pad = self._list_pad
        slots = (counts + pad - 1) // pad * pad
        offsets = np.zeros(self.nlist + 1, np.int64)
        np.cumsum(slots, out=offsets[1:])
        first = np.zeros(self.nlist, np.int64)
        np.cumsum(counts[:-1], out=first[1:])
        rank = np.arange(lists.shape[0], dtype=np.int64) - first[lists]
        dest = offsets[:-1][lists] + rank
        nslots = int(offsets[-1])
        new_ids = np.full(nslots, -1, np.int64)
        new_ids[dest] = ids
        full_codes = np.zeros((nslots, codes.shape[1] if codes.ndim == 2 else self.pq_m), np.uint8)
        full_codes[dest] = codes
        if self.codec == "pq4fs":
            full_codes = pack_pq4(full_codes, self._pq.mpad)
        elif self.codec == "flat":
            full_codes = pack_flat(full_codes, self.inner_dim)
        if self.refine:
            vecs = np.zeros((nslots, self.dim), np.float32)
            vecs[dest] = refine[order]
            self._refine_vecs = vecs
        self._offsets, self._ids, self._codes = offsets, new_ids, full_codes
        self._count = int(ids.shape[0])
        self._searcher = None

    def _decode(self, codes, lists):
        if self.codec == "flat":
            return np.ascontiguousarray(codes).view(np.float32).reshape(codes.shape[0], -1)
        if self._sq is not None:
            return self._sq.decode(codes)
        return self._pq.decode(codes)

    def reconstruct(self, ids) -> np.ndarray:
        """Approximate (decoded) vectors of the given ids, in the coded space."""
        with self._lock.read():
            return self._reconstruct(ids)

    def _reconstruct(self, ids) -> np.ndarray:
        self._require_trained()
        want = _validate.as_ids(ids, unique=False)
        lists, codes, have, refine = self._unpacked()
        pos = {int(i): j for j, i in enumerate(have)}
        missing = [int(i) for i in want if int(i) not in pos]
        if missing:
            raise KeyError(f"id {missing[0]} is not in the index")
        sel = np.array([pos[int(i)] for i in want], np.int64)
        if self.refine:
            return refine[sel]
        x = self._decode(codes[sel], lists[sel])
        if self.by_residual:
            x = x + self._centroids[lists[sel]]
        return x

    @property
    def keeps_vectors(self) -> bool:
        """Whether the float vectors are kept for the index's whole life (refine, or
        the flat codec without a transform); before training every index keeps them."""
        return bool(self.refine or (self.codec == "flat" and self._transform is None))

    def _vectors_at(self, slots: np.ndarray) -> np.ndarray:
        if self._centroids is None:
            return self._pending_x[slots].copy()
        if self.refine:
            return np.array(self._refine_vecs[slots], np.float32)
        if self.codec == "flat" and self._transform is None:
            return unpack_flat(self._codes, self.inner_dim)[slots].view(np.float32).reshape(
                len(slots), self.dim)
        raise TypeError(
            f"this IVF index (codec {self._codec_name!r}"
            + (f", transform {self.transform_name!r}" if self._transform is not None else "")
            + ") keeps only codes, not the vectors; reconstruct(ids) gives approximations, "
            "or build it with refine=True (or codec='flat' without a transform) to keep them")

    # -- tuning -----------------------------------------------------------------
    def _tune_lines(self, k: int) -> list:
        probes, p = [], 1
        while p < self.nlist:
            probes.append(p)
            p = p * 2 if p < 8 else p + p // 2
        probes.append(self.nlist)
        if not self.refine:
            return [[{"nprobe": p} for p in probes]]
        # With refine, recall is capped by how many candidates are re-ranked.
        return [[{"nprobe": p, "k_factor": f} for p in probes] for f in (1, 2, 4, 8, 16, 32)]

    def _set_search_defaults(self, params: dict) -> None:
        self.nprobe = int(params["nprobe"])
        self.k_factor = int(params.get("k_factor", self.k_factor))

    # -- Index hooks --------------------------------------------------------------
    def _add_with_progress(self, x, ids, bar):
        if self._centroids is None and self.train_size is not None:
            self._add_pending(x, ids)
            bar.update(x.shape[0])
            return
        # Encode chunk by chunk (the bar moves), then one rebuild of the lists.
        self._require_trained()
        self._check_writable("add vectors")
        parts = []
        for start, stop in _progress_chunks(x.shape[0]):
            xt = self._apply_transform(x[start:stop])
            lists = self._assign(xt)
            parts.append((lists, self._encode(xt, lists)))
            bar.update(stop - start)
        self._add(x, ids, encoded=(np.concatenate([p[0] for p in parts]),
                                   np.concatenate([p[1] for p in parts])))

    def _add(self, x, ids, encoded=None):
        if self._centroids is None and self.train_size is not None:
            self._add_pending(x, ids)
            return
        self._require_trained()
        self._check_writable("add vectors")
        if self._count and np.isin(ids, self._ids).any():
            dup = ids[np.isin(ids, self._ids)][0]
            raise ValueError(f"duplicate id {int(dup)}: already in the index")
        if encoded is None:
            xt = self._apply_transform(x)
            lists = self._assign(xt)
            codes = self._encode(xt, lists)
        else:
            lists, codes = encoded
        if self._count:
            ol, oc, oi, orf = self._unpacked()
            lists = np.concatenate([ol, lists])
            codes = np.concatenate([oc, codes])
            ids = np.concatenate([oi, ids])
            refine = np.concatenate([orf, x]) if self.refine else None
        else:
            refine = x if self.refine else None
        self._rebuild_from(lists, codes, ids, refine)

    @property
    def _pending_x(self) -> np.ndarray:
        return self._pbuf_x[: self._pending_n]

    @property
    def _pending_ids(self) -> np.ndarray:
        return self._pbuf_ids[: self._pending_n]

    def _set_pending(self, x: np.ndarray, ids: np.ndarray) -> None:
        self._pbuf_x, self._pbuf_ids, self._pending_n = x, ids, ids.shape[0]

    def _add_pending(self, x, ids) -> None:
        """Keep vectors until there are train_size of them, then train on them and code them."""
        self._check_writable("add vectors")
        if self._pending_ids.size and np.isin(ids, self._pending_ids).any():
            dup = ids[np.isin(ids, self._pending_ids)][0]
            raise ValueError(f"duplicate id {int(dup)}: already in the index")
        n, m = self._pending_n, x.shape[0]
        if n + m > self._pbuf_ids.shape[0]:  # grow geometrically: one-row adds stay cheap
            cap = max(n + m, 2 * self._pbuf_ids.shape[0], 256)
            bx, bi = np.empty((cap, self.dim), np.float32), np.empty(cap, np.int64)
            bx[:n], bi[:n] = self._pbuf_x[:n], self._pbuf_ids[:n]
            self._pbuf_x, self._pbuf_ids = bx, bi
        self._pbuf_x[n:n + m], self._pbuf_ids[n:n + m] = x, ids
        self._pending_n = n + m
        if self._pending_ids.shape[0] >= max(self.train_size, self.nlist):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # the caller chose train_size
                self._train(self._pending_x)  # under add's write lock; codes the kept vectors

    def _remove(self, ids) -> int:
        self._check_writable("remove vectors")
        if self._pending_ids.size:
            gone = np.isin(self._pending_ids, ids)
            if gone.any():
                self._set_pending(self._pending_x[~gone], self._pending_ids[~gone])
            return int(gone.sum())
        if not self._count:
            return 0
        gone = np.isin(self._ids, ids) & (self._ids >= 0)
        n = int(gone.sum())
        if n:
            self._ids = self._ids.copy()
            self._ids[gone] = -1
            self._rebuild_from(*self._unpacked())
        return n

    def reset(self) -> None:
        """Remove every vector; keep the training."""
        with self._lock.write():
            self._check_writable()
            self._set_pending(np.empty((0, self.dim), np.float32), np.empty(0, np.int64))
            if self._count:
                self._remove(self._ids[self._ids >= 0])

    def _slot_labels(self) -> np.ndarray:
        return self._pending_ids if self._centroids is None else self._ids

    def _get_searcher(self):
        with self._searcher_lock:
            return self._make_searcher()

    def _make_searcher(self):
        if self._searcher is None:
            sq, pq = self._sq, self._pq
            self._searcher = _core.IvfSearcher(
                "flat" if self.codec == "flat" else self.codec, 1 if self._ip else 0,
                self._centroids, self._offsets, self._ids, self._codes,
                self._block_bytes if self.codec == "pq4fs" else self.code_size,  # flat: per vector
                sq.vmin if sq is not None else None, sq.step if sq is not None else None,
                pq.codebooks if pq is not None else None, pq.mpad if pq is not None else 0,
                self.by_residual, self._refine_vecs if self.refine else None)
        return self._searcher

    def search(self, queries, k, *, filter=None, threads=None, nprobe=None, k_factor=None):
        """(ids, distances) of the k nearest, scanning ``nprobe`` lists (default
        ``self.nprobe``); with refine, ``k * k_factor`` candidates are re-ranked."""
        with self._lock.read():
            return super().search(queries, k, filter=filter, threads=threads, nprobe=nprobe,
                                  k_factor=k_factor)

    def save(self, path) -> None:
        with self._lock.read():
            super().save(path)

    def image(self):
        with self._lock.read():
            return super().image()

    def _search_one(self, query, k, nprobe=None, k_factor=None):
        # Trained, no pre-transform, every stored vector coded (none pending).
        if (k > self._count or self._transform is not None or self._centroids is None
                or not (nprobe is None or (type(nprobe) is int and nprobe > 0))
                or not (k_factor is None or (type(k_factor) is int and k_factor > 0))):
            return None
        q = query[None]
        if self.metric == COSINE:
            q = _core.normalized_rows(q)
        ids, dist = self._get_searcher().search(
            q, q if self.refine else None, k, min(nprobe or self.nprobe, self.nlist),
            self._clip_k_factor(k, k_factor or self.k_factor), None, 1)
        return ids[0], dist[0]

    def _search(self, q, k, mask, threads, nprobe=None, k_factor=None):
        if self._centroids is None and self.train_size is not None:
            # Not trained yet: the kept vectors, searched exactly.
            px = self._pending_x
            sqn = np.einsum("ij,ij->i", px, px).astype(np.float32)
            return _core.flat_search(px, sqn, self._pending_ids, q, k, METRIC_CODES[self.metric],
                                     mask, threads, False)
        self._require_trained()
        nprobe = self.nprobe if nprobe is None else _validate.check_positive_int(nprobe, "nprobe")
        k_factor = self.k_factor if k_factor is None else _validate.check_positive_int(k_factor, "k_factor")
        nprobe = min(nprobe, self.nlist)
        k_factor = self._clip_k_factor(k, k_factor)
        qt = self._apply_transform(q) if self._transform is not None else q
        return self._get_searcher().search(qt, q if self.refine else None, k, nprobe, k_factor,
                                           mask, threads)

    def _clip_k_factor(self, k: int, k_factor: int) -> int:
        """k * k_factor re-rank candidates, never (much) more than are stored."""
        return _validate.clip_to_stored(k_factor, -(-max(self._count, 1) // k))

    # -- files ------------------------------------------------------------------
    def _params(self) -> dict:
        return {"nlist": self.nlist, "codec": self._codec_name, "transform": self.transform_name,
                "refine": self.refine, "nprobe": self.nprobe, "k_factor": self.k_factor,
                "seed": self.seed, "niter": self.niter, "trained": self.is_trained,
                "count": self._count, "train_size": self.train_size}

    def _sections(self) -> dict:
        s = {"offsets": self._offsets, "ids": self._ids, "codes": self._codes}
        if self._centroids is not None:
            s["centroids"] = self._centroids
        if self._sq is not None:
            s["sq_vmin"], s["sq_step"] = self._sq.vmin, self._sq.step
        if self._pq is not None:
            s["pq_codebooks"] = self._pq.codebooks
        if self._transform is not None:
            s["transform_matrix"], s["transform_mean"] = self._transform.matrix, self._transform.mean
        if self.refine:
            s["refine"] = self._refine_vecs
        if self._pending_ids.size:
            s["pending_vectors"], s["pending_ids"] = self._pending_x, self._pending_ids
        return s

    @classmethod
    def _from_sections(cls, dim, metric, params, sections):
        try:
            ix = cls._build_from_sections(dim, metric, params, sections)
            if ix.is_trained:
                ix._get_searcher()  # the core checks that the arrays fit together
        except KeyError as exc:
            raise FormatError(f"IVF index file lacks {exc.args[0]!r}") from None
        except (ValueError, TypeError) as exc:
            raise FormatError(f"IVF index file is inconsistent: {exc}") from None
        return ix

    @classmethod
    def _build_from_sections(cls, dim, metric, params, sections):
        ix = cls(dim, metric, nlist=params["nlist"], codec=params["codec"],
                 transform=params.get("transform"), refine=params.get("refine", False),
                 nprobe=params.get("nprobe", default_nprobe(params["nlist"])), k_factor=params.get("k_factor", 1),
                 seed=params.get("seed", 0), niter=params.get("niter", 10),
                 train_size=params.get("train_size"))
        if "pending_ids" in sections:
            px, pids = sections["pending_vectors"], sections["pending_ids"]
            if (px.dtype != np.float32 or px.shape != (pids.shape[0], dim) or pids.dtype != np.int64
                    or params.get("trained")):
                raise ValueError("pending sections do not fit the index")
            ix._set_pending(px, pids)
        ix._offsets, ix._ids, ix._codes = sections["offsets"], sections["ids"], sections["codes"]
        if params.get("trained"):
            ix._centroids = sections["centroids"]
        if ix._sq is not None:
            ix._sq.vmin, ix._sq.step = sections["sq_vmin"], sections["sq_step"]
            ix._sq.is_trained = True
        if ix._pq is not None:
            ix._pq.codebooks = sections["pq_codebooks"]
            ix._pq.is_trained = True
        if ix._transform is not None:
            ix._transform.matrix = sections["transform_matrix"]
            ix._transform.mean = sections["transform_mean"]
            ix._transform.is_trained = True
        if ix.refine:
            ix._refine_vecs = sections["refine"]
        ix._count = int(params.get("count", int((ix._ids >= 0).sum())))
        ix._check_loaded()
        ix._read_only = not getattr(ix._ids, "flags", None) or not ix._ids.flags.writeable
        return ix

    def _check_loaded(self) -> None:
        """Every array from a file against the parameters, before any C++ reads
        it: dtypes, shapes, list offsets, ids, and codebooks of exactly the size
        the codes can index (a PQ8 code is any byte: 256 entries per sub-quantiser)."""

        def need(name, arr, dtype, shape):
            if not isinstance(arr, np.ndarray) or arr.dtype != dtype or arr.shape != shape:
                got = f"{arr.dtype}{arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
                raise FormatError(f"IVF section {name!r} is {got}, expected {np.dtype(dtype)}{shape}")

        def finite(name, arr):
            if not _validate.all_finite(arr):
                raise FormatError(f"IVF section {name!r} holds NaN or infinity")

        off, ids = self._offsets, self._ids
        need("offsets", off, np.int64, (self.nlist + 1,))
        if ids.ndim != 1:
            raise FormatError("IVF section 'ids' must be 1-D")
        nslots = ids.shape[0]
        need("ids", ids, np.int64, (nslots,))
        if off[0] != 0 or off[-1] != nslots or (np.diff(off) < 0).any():
            raise FormatError("IVF list offsets do not cover the id array in order")
        if (off % self._list_pad).any():
            raise FormatError(f"IVF lists must start at multiples of {self._list_pad}")
        live = ids[ids >= 0]
        if (ids < -1).any() or np.unique(live).size != live.size:
            raise FormatError("IVF ids are negative (other than -1) or repeated")
        if self._count != live.size:
            raise FormatError(f"IVF header counts {self._count} vectors, the lists hold {live.size}")
        if self.codec == "flat":
            need("codes", self._codes, np.uint8, (nslots // FLAT_BLOCK, self._block_bytes))
        elif self.codec == "pq4fs":
            need("codes", self._codes, np.uint8, (nslots // PQ4_BLOCK, self._block_bytes))
        else:
            need("codes", self._codes, np.uint8, (nslots, self.code_size))
        if self._centroids is None:
            if nslots:
                raise FormatError("an untrained IVF file holds vectors")
            return
        need("centroids", self._centroids, np.float32, (self.nlist, self.inner_dim))
        finite("centroids", self._centroids)
        if self._sq is not None:
            need("sq_vmin", self._sq.vmin, np.float32, (self.inner_dim,))
            need("sq_step", self._sq.step, np.float32, (self.inner_dim,))
            finite("sq_vmin", self._sq.vmin)
            finite("sq_step", self._sq.step)
        if self._pq is not None:
            pq = self._pq
            need("pq_codebooks", pq.codebooks, np.float32, (pq.m, pq.ksub, pq.dsub))
            finite("pq_codebooks", pq.codebooks)
        if self._transform is not None:
            t = self._transform
            need("transform_matrix", t.matrix, np.float32, (t.d_out, t.d_in))
            need("transform_mean", t.mean, np.float32, (t.d_in,))
            finite("transform_matrix", t.matrix)
            finite("transform_mean", t.mean)
        if self.refine:
            need("refine", self._refine_vecs, np.float32, (nslots, self.dim))
