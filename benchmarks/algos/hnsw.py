"""HNSW graphs: nearkit.HNSW and its peers, all with M=16 and ef_construction=200.

Each entry builds single-threaded and sweeps the search-time candidate list
size (ef / efSearch / expansion_search). Angular data: nearkit and hnswlib use
their cosine metric, faiss normalises and uses inner product, usearch "cos".
"""

from __future__ import annotations

import numpy as np
from ann import Algo

M = 16
EF_CONSTRUCTION = 200
EF_SWEEP = [10, 16, 20, 24, 32, 40, 48, 64, 96, 128, 192, 256]
SWEEP = [{"ef": ef} for ef in EF_SWEEP]


# -- nearkit -------------------------------------------------------------------
def build_nearkit(base, metric):
    import nearkit

    index = nearkit.HNSW(base.shape[1], metric, M=M, ef_construction=EF_CONSTRUCTION)
    index.add(base, threads=1)
    return index


def _nearkit_query(index, q, k, params):
    return index.search(q, k, ef=params["ef"])[0]


# -- hnswlib -------------------------------------------------------------------
def build_hnswlib(base, metric):
    import hnswlib

    index = hnswlib.Index(space=metric, dim=base.shape[1])
    index.init_index(max_elements=base.shape[0], M=M, ef_construction=EF_CONSTRUCTION, random_seed=100)
    index.set_num_threads(1)
    index.add_items(base, np.arange(base.shape[0]), num_threads=1)
    return index


def _hnswlib_query(index, q, k, params):
    if index.ef != params["ef"]:
        index.set_ef(params["ef"])
    return index.knn_query(q, k=k, num_threads=1)[0][0]


# -- faiss ---------------------------------------------------------------------
def _normalise(x):
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-30)


class _FaissHNSW:
    """faiss index plus whether queries need normalising (faiss refuses new attributes)."""

    def __init__(self, index, angular):
        self.index, self.angular = index, angular


def _faiss_build(base, metric):
    import faiss

    faiss.omp_set_num_threads(1)
    angular = metric == "cosine"
    if angular:
        index = faiss.IndexHNSWFlat(base.shape[1], M, faiss.METRIC_INNER_PRODUCT)
        base = _normalise(base)
    else:
        index = faiss.IndexHNSWFlat(base.shape[1], M)
    index.hnsw.efConstruction = EF_CONSTRUCTION
    index.add(base)
    return _FaissHNSW(index, angular)


def _faiss_query(wrapped, q, k, params):
    index = wrapped.index
    if index.hnsw.efSearch != params["ef"]:
        index.hnsw.efSearch = params["ef"]
    q = q[None, :]
    if wrapped.angular:
        q = _normalise(q)
    return index.search(q, k)[1][0]


# -- usearch -------------------------------------------------------------------
def _usearch_build(base, metric):
    from usearch.index import Index

    index = Index(ndim=base.shape[1], metric="cos" if metric == "cosine" else "l2sq",
                  connectivity=M, expansion_add=EF_CONSTRUCTION)
    index.add(np.arange(base.shape[0]), base, threads=1)
    return index


def _usearch_query(index, q, k, params):
    if index.expansion_search != params["ef"]:
        index.expansion_search = params["ef"]
    return index.search(q, k, threads=1).keys


ALGOS = [
    Algo("nearkit-hnsw", build_nearkit, _nearkit_query, SWEEP,
         index_bytes=lambda index: index.nbytes),
    Algo("hnswlib", build_hnswlib, _hnswlib_query, SWEEP, requires=["hnswlib"],
         index_bytes=lambda index: index.index_file_size()),
    Algo("faiss-hnsw", _faiss_build, _faiss_query, SWEEP, requires=["faiss"]),
    Algo("usearch", _usearch_build, _usearch_query, SWEEP, requires=["usearch"],
         index_bytes=lambda index: index.memory_usage),
]
