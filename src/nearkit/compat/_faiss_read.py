"""Reading index files written by faiss itself (``faiss.write_index``).

Faiss's format is a tree of blocks, each opened by a four-character code, with
little-endian scalars and length-prefixed vectors (a uint64 count, then the
items). Read here, into the compat classes:

=========  ====================================  ======================================
fourcc     faiss class                           becomes
=========  ====================================  ======================================
IxF2/IxFI  IndexFlatL2 / IndexFlatIP             the same class, same vectors
IxFl       IndexFlat (other metric codes fail)   IndexFlat
IwFl       IndexIVFFlat                          IndexIVFFlat: same centroids, same lists
IwPQ       IndexIVFPQ (8-bit, by residual)       IndexIVFPQ: same centroids, codebooks, codes
IwSq       IndexIVFScalarQuantizer               IndexIVFScalarQuantizer holding the decoded
                                                 vectors in the same lists (same distances)
IHNf       IndexHNSWFlat                         IndexHNSWFlat, same M / efSearch /
                                                 efConstruction; the graph is rebuilt
IxSQ       IndexScalarQuantizer (8/4-bit, fp16)  IndexScalarQuantizer, same codes
IxPq       IndexPQ (8-bit)                       IndexPQ, same codebooks and codes
IxMp/IxM2  IndexIDMap / IndexIDMap2              the same class around the inner index
=========  ====================================  ======================================

Anything else raises an error naming the fourcc. Damaged input raises
``FaissFormatError`` (a RuntimeError, as faiss, and nearkit's FormatError).
"""

from __future__ import annotations

import struct

import numpy as np

_KNOWN = {b"IxF2", b"IxFI", b"IxFl", b"IwFl", b"IwPQ", b"IwSq", b"IHNf", b"IxSQ", b"IxPq",
          b"IxMp", b"IxM2", b"IHNs", b"IHNp", b"IxRF", b"IxPT", b"IwQR", b"IxHe", b"IwSh"}


def is_faiss_file(magic: bytes) -> bool:
    return magic in _KNOWN


class _Reader:
    def __init__(self, data: bytes, name: str, error):
        self.buf, self.pos, self.name, self.error = memoryview(data), 0, name, error

    def take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise self.error(f"{self.name}: truncated faiss file (wanted {n} bytes at offset {self.pos})")
        out = self.buf[self.pos:self.pos + n]
        self.pos += n
        return out

    def scalar(self, fmt: str):
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt)))[0]

    def i32(self):
        return self.scalar("i")

    def i64(self):
        return self.scalar("q")

    def u64(self):
        return self.scalar("Q")

    def boolean(self):
        return bool(self.scalar("B"))

    def f32(self):
        return self.scalar("f")

    def array(self, dtype, count):
        dtype = np.dtype(dtype)
        return np.frombuffer(self.take(int(count) * dtype.itemsize), dtype=dtype).copy()

    def vector(self, dtype):
        return self.array(dtype, self.u64())

    def fourcc(self) -> bytes:
        return bytes(self.take(4))


def _header(r: _Reader) -> dict:
    d = r.i32()
    ntotal = r.i64()
    r.i64()
    r.i64()  # two dummy fields (1 << 20)
    is_trained = r.boolean()
    metric = r.i32()
    if metric > 1:
        r.f32()
    if metric not in (0, 1):
        raise r.error(f"{r.name}: metric type {metric} is not supported (only L2 and inner product)")
    if d <= 0 or ntotal < 0:
        raise r.error(f"{r.name}: bad index header (d={d}, ntotal={ntotal})")
    return {"d": d, "ntotal": ntotal, "is_trained": is_trained, "metric": metric}


def _direct_map(r: _Reader) -> int:
    kind = r.scalar("b")
    r.vector(np.int64)
    if kind == 2:  # hashtable: pairs of int64
        r.vector(np.dtype([("k", "<i8"), ("v", "<i8")]))
    return int(kind)


def _invlists(r: _Reader, nlist: int, code_size: int):
    """(list number per vector, codes (n, code_size) uint8, ids) in list order."""
    tag = r.fourcc()
    if tag == b"il00":
        return np.empty(0, np.int64), np.empty((0, code_size), np.uint8), np.empty(0, np.int64)
    if tag != b"ilar":
        raise r.error(f"{r.name}: inverted lists of type {tag!r} are not supported")
    if r.u64() != nlist or r.u64() != code_size:
        raise r.error(f"{r.name}: inverted lists do not match the index (nlist / code size)")
    list_type = r.fourcc()
    sizes = np.zeros(nlist, np.int64)
    raw = r.vector(np.uint64).astype(np.int64)
    if list_type == b"full":
        if raw.size != nlist:
            raise r.error(f"{r.name}: list size table has {raw.size} entries for {nlist} lists")
        sizes[:] = raw
    elif list_type == b"sprs":
        pairs = raw.reshape(-1, 2)
        if pairs.size and (pairs[:, 0].max() >= nlist or pairs[:, 0].min() < 0):
            raise r.error(f"{r.name}: sparse list table names a list out of range")
        sizes[pairs[:, 0]] = pairs[:, 1]
    else:
        raise r.error(f"{r.name}: list layout {list_type!r} is not supported")
    lists, codes, ids = [], [], []
    for l in np.flatnonzero(sizes):
        n = int(sizes[l])
        codes.append(r.array(np.uint8, n * code_size).reshape(n, code_size))
        ids.append(r.array(np.int64, n))
        lists.append(np.full(n, l, np.int64))
    if not lists:
        return np.empty(0, np.int64), np.empty((0, code_size), np.uint8), np.empty(0, np.int64)
    return np.concatenate(lists), np.concatenate(codes), np.concatenate(ids)


def _pq(r: _Reader):
    d, M, nbits = r.u64(), r.u64(), r.u64()
    cents = r.vector(np.float32)
    if M == 0 or d % M or cents.size != d * (1 << nbits):
        raise r.error(f"{r.name}: bad product quantizer (d={d}, M={M}, nbits={nbits})")
    return int(d), int(M), int(nbits), cents.reshape(M, 1 << nbits, d // M)


def _sq(r: _Reader):
    qtype, _rangestat, _arg = r.i32(), r.i32(), r.f32()
    d, code_size = r.u64(), r.u64()
    trained = r.vector(np.float32)
    return int(qtype), int(d), int(code_size), trained


def _sq_unpack(codes: np.ndarray, qtype: int, d: int) -> np.ndarray:
    """faiss's packed SQ codes -> one value per dimension (uint8, or float16 for fp16)."""
    from . import _faiss_codecs as C

    if qtype in (C.QT_8bit, C.QT_8bit_uniform, C.QT_8bit_direct, C.QT_8bit_direct_signed):
        return codes[:, :d]
    if qtype in (C.QT_4bit, C.QT_4bit_uniform):
        both = np.stack([codes & 15, codes >> 4], axis=2).reshape(codes.shape[0], -1)
        return np.ascontiguousarray(both[:, :d])
    if qtype == C.QT_fp16:
        return np.ascontiguousarray(codes).view(np.float16)[:, :d]
    if qtype == C.QT_bf16:
        return np.ascontiguousarray(codes).view(np.uint16)[:, :d]
    raise ValueError(f"scalar quantizer type {qtype} files are not supported")


def read(fname, fx):
    """Read faiss's file ``fname`` into the classes of module ``fx`` (nearkit.compat.faiss)."""
    with open(fname, "rb") as fh:
        data = fh.read()
    r = _Reader(data, str(fname), fx.FaissFormatError)
    index = _read_index(r, fx)
    return index


def _read_index(r: _Reader, fx):
    tag = r.fourcc()
    if tag in (b"IxF2", b"IxFI", b"IxFl"):
        h = _header(r)
        vecs = r.vector(np.float32)  # the count is in 4-byte units = floats
        if vecs.size != h["ntotal"] * h["d"]:
            raise r.error(f"{r.name}: flat index holds {vecs.size} floats for {h['ntotal']} x {h['d']}")
        cls = {b"IxF2": fx.IndexFlatL2, b"IxFI": fx.IndexFlatIP}.get(tag)
        index = cls(h["d"]) if cls else fx.IndexFlat(h["d"], h["metric"])
        if h["ntotal"]:
            index.add(vecs.reshape(h["ntotal"], h["d"]))
        return index
    if tag in (b"IxMp", b"IxM2"):
        h = _header(r)
        inner = _read_index(r, fx)
        id_map = r.vector(np.int64)
        if id_map.size != inner.ntotal:
            raise r.error(f"{r.name}: IDMap has {id_map.size} ids for {inner.ntotal} vectors")
        wrapper = (fx.IndexIDMap2 if tag == b"IxM2" else fx.IndexIDMap)(_empty_like(inner, fx))
        wrapper.index = inner
        wrapper._ext = id_map
        wrapper._next = int(id_map.size)
        return wrapper
    if tag == b"IHNf":
        h = _header(r)
        r.vector(np.float64)  # assign_probas
        cum = r.vector(np.int32)  # cum_nneighbor_per_level: 0, 2M, 3M, ...
        r.vector(np.int32)  # levels
        r.vector(np.uint64)  # offsets
        r.vector(np.int32)  # neighbors (the graph is rebuilt by nearkit)
        _entry, _max_level, ef_c, ef_s, _beam = r.i32(), r.i32(), r.i32(), r.i32(), r.i32()
        M = int(cum[2] - cum[1]) if cum.size > 2 else int(cum[1] // 2) if cum.size > 1 else 32
        storage = _read_index(r, fx)
        index = fx.IndexHNSWFlat(h["d"], max(M, 2), h["metric"])
        index.hnsw.efConstruction = ef_c
        index.hnsw.efSearch = ef_s
        if storage.ntotal:
            index.add(storage.reconstruct_n(0, storage.ntotal))
        return index
    if tag in (b"IwFl", b"IwPQ", b"IwSq"):
        return _read_ivf(r, tag, fx)
    if tag == b"IxSQ":
        h = _header(r)
        qtype, d, code_size, trained = _sq(r)
        codes = r.vector(np.uint8)
        index = fx.IndexScalarQuantizer(h["d"], qtype, h["metric"])
        if trained.size:
            index._codec.set_trained(trained)
        if codes.size:
            unpacked = _sq_unpack(codes.reshape(h["ntotal"], code_size), qtype, d)
            index._codes = unpacked
            index._nk.add(index._codec.decode(unpacked), np.arange(h["ntotal"]))
        return index
    if tag == b"IxPq":
        h = _header(r)
        d, M, nbits, cents = _pq(r)
        codes = r.vector(np.uint8)
        r.i32()
        r.boolean()
        r.i32()  # search_type, encode_signs, polysemous_ht
        if nbits != 8:
            raise r.error(f"{r.name}: IndexPQ with nbits={nbits} files are not supported (8 only)")
        index = fx.IndexPQ(d, M, nbits, h["metric"])
        index._codec.centroids = cents.copy()
        index._codec.is_trained = h["is_trained"]
        if codes.size:
            c = codes.reshape(h["ntotal"], M)
            index._codes = c
            index._nk.add(index._codec.decode(c), np.arange(h["ntotal"]))
        return index
    raise r.error(f"{r.name}: faiss index type {tag.decode('latin-1')!r} is not supported by "
                  "nearkit.compat.faiss.read_index")


def _empty_like(inner, fx):
    """IndexIDMap's constructor wants an empty index of the right d / metric."""
    return fx.IndexFlat(inner.d, inner.metric_type)


def _read_ivf(r: _Reader, tag: bytes, fx):
    h = _header(r)
    nlist, nprobe = r.u64(), r.u64()
    quantizer = _read_index(r, fx)
    direct_map = _direct_map(r)
    d, metric = h["d"], h["metric"]
    if quantizer.ntotal != nlist and h["is_trained"]:
        raise r.error(f"{r.name}: IVF quantizer holds {quantizer.ntotal} centroids for nlist={nlist}")
    if tag == b"IwFl":
        index = fx.IndexIVFFlat(quantizer, d, int(nlist), metric)
        lists, codes, ids = _invlists(r, int(nlist), 4 * d)
        cents = None
    elif tag == b"IwPQ":
        by_residual = r.boolean()
        code_size = r.u64()
        _, M, nbits, pq_cents = _pq(r)
        if nbits != 8 or not by_residual:
            raise r.error(f"{r.name}: IndexIVFPQ files are supported with nbits=8 and by_residual "
                          f"(got nbits={nbits}, by_residual={by_residual})")
        index = fx.IndexIVFPQ(quantizer, d, int(nlist), M, nbits, metric)
        index._nk._pq.codebooks = pq_cents.copy()
        index._nk._pq.is_trained = True
        lists, codes, ids = _invlists(r, int(nlist), int(code_size))
        cents = None
    else:  # IwSq: kept as the decoded vectors (distances are faiss's: to decoded vectors)
        qtype, sd, sq_code_size, trained = _sq(r)
        code_size = r.u64()
        by_residual = r.boolean()
        lists, raw, ids = _invlists(r, int(nlist), int(code_size))
        codec = fx._codecs.SQCodec(sd, qtype)
        if trained.size:
            codec.set_trained(trained)
        vecs = codec.decode(_sq_unpack(raw, qtype, sd)) if raw.size else np.empty((0, d), np.float32)
        cents = quantizer.reconstruct_n(0, quantizer.ntotal) if quantizer.ntotal else None
        if by_residual and vecs.shape[0]:
            vecs = vecs + cents[lists]
        index = fx.IndexIVFScalarQuantizer.__new__(fx.IndexIVFScalarQuantizer)
        fx.Index.__init__(index, d, metric)
        index.quantizer = quantizer
        index._init_decoded(int(nlist), codec, by_residual)  # later adds code as faiss
        codes = np.ascontiguousarray(vecs, np.float32).view(np.uint8).reshape(vecs.shape[0], -1)
    ivf = index._nk
    if h["is_trained"] and quantizer.ntotal == nlist:
        ivf._centroids = np.ascontiguousarray(quantizer.reconstruct_n(0, int(nlist)), np.float32)
    if ids.size and ivf._centroids is None:
        raise r.error(f"{r.name}: an untrained IVF index holds vectors")
    if ids.size:
        ivf._rebuild_from(lists, codes, ids, None)
    ivf._searcher = None
    if nprobe:
        ivf.nprobe = int(nprobe)
    if direct_map in (0, 1, 2):
        index.set_direct_map_type(direct_map)
    return index
