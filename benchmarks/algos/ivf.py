"""IVF entries for benchmarks/ann.py: nearkit's IVF next to faiss's same factory strings.

Angular data: both sides see unit vectors and rank by inner product. Both are
trained on the whole base (each subsamples 256 points per list for k-means).
The sweep (nprobe, and k_factor for the refined variants) is the same for both.
index_bytes = bytes per stored vector (code + 8-byte id + float vector when
refining) times n, for both libraries.
"""

from __future__ import annotations

import numpy as np

from ann import Algo

NLIST = 1024
DIM_PQ = 25  # PQ25x4fs on GloVe 50-d: 2 dimensions per 4-bit sub-quantiser

FLAT_SWEEP = [{"nprobe": p} for p in (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)]
REFINE_SWEEP = [{"nprobe": p, "k_factor": f} for p in (8, 16, 24, 32, 48, 64, 96) for f in (4, 8, 16, 32)]


class _Stateful:
    """Holds an index and the search parameters last applied to it."""

    def __init__(self, index, nbytes):
        self.index, self.nbytes, self.params = index, nbytes, None


# -- nearkit ------------------------------------------------------------------------

def _nk_build(codec, refine):
    def build(base, metric):
        import nearkit

        ix = nearkit.IVF(base.shape[1], metric, nlist=NLIST, codec=codec, refine=refine)
        ix.train(base)
        ix.add(base)
        return _Stateful(ix, ix.bytes_per_vector * len(ix))

    return build


def _nk_query(st, q, k, params):
    return st.index.search(q, k, **params)[0]


# -- faiss --------------------------------------------------------------------------

def _faiss_build(desc):
    def build(base, metric):
        import faiss

        x = np.ascontiguousarray(base, dtype=np.float32).copy()
        faiss.normalize_L2(x)
        ix = faiss.index_factory(x.shape[1], desc, faiss.METRIC_INNER_PRODUCT)
        ix.train(x)
        ix.add(x)
        ivf = faiss.extract_index_ivf(ix)
        per = ivf.code_size + 8 + (4 * x.shape[1] if "RFlat" in desc else 0)
        st = _Stateful(ix, per * ix.ntotal)
        st.ivf = ivf
        return st

    return build


def _faiss_query(st, q, k, params):
    import faiss

    if st.params != params:
        st.ivf.nprobe = params["nprobe"]
        if "k_factor" in params:
            faiss.downcast_index(st.index).k_factor = float(params["k_factor"])
        st.params = params
    q = np.asarray(q, dtype=np.float32)[None, :].copy()
    faiss.normalize_L2(q)
    return st.index.search(q, k)[1][0]


def _bytes(st):
    return int(st.nbytes)


ALGOS = [
    Algo("nearkit-ivf-flat", _nk_build("flat", False), _nk_query, FLAT_SWEEP, index_bytes=_bytes),
    Algo("faiss-ivf-flat", _faiss_build(f"IVF{NLIST},Flat"), _faiss_query, FLAT_SWEEP,
         requires=["faiss"], index_bytes=_bytes),
    Algo("nearkit-ivf-pq4fs-rflat", _nk_build(f"pq{DIM_PQ}x4fs", True), _nk_query, REFINE_SWEEP,
         index_bytes=_bytes),
    Algo("faiss-ivf-pq4fs-rflat", _faiss_build(f"IVF{NLIST},PQ{DIM_PQ}x4fs,RFlat"), _faiss_query,
         REFINE_SWEEP, requires=["faiss"], index_bytes=_bytes),
]
