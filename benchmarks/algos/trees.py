"""Random-projection forests: nearkit.Trees against annoy (50 trees each, angular).

Both indexes are saved to a file and searched from the mapping (annoy always
works that way), and index_bytes is the file's size.
"""

from __future__ import annotations

import os
import tempfile

from ann import Algo

N_TREES = 50
SEARCH_K = [1000, 2000, 3000, 4000, 6000, 8000, 12000, 16000, 24000, 32000, 64000]
_TMP = tempfile.mkdtemp(prefix="nearkit-bench-trees-")


def _build_nearkit(base, metric):
    import nearkit

    t = nearkit.Trees(base.shape[1], metric, n_trees=N_TREES, seed=1)
    t.add(base)
    t.build(threads=1)
    path = os.path.join(_TMP, "nearkit.trees")
    t.save(path)
    loaded = nearkit.load(path, mmap=True)
    loaded.path = path
    return loaded


def _query_nearkit(index, q, k, params):
    return index.search(q, k, search_k=params["search_k"])[0]


def _build_annoy(base, metric):
    from annoy import AnnoyIndex

    class Annoy(AnnoyIndex):  # a subclass so the benchmark can note the file's path
        pass

    a = Annoy(base.shape[1], "angular")
    for i, v in enumerate(base):
        a.add_item(i, v)
    a.build(N_TREES, n_jobs=1)
    path = os.path.join(_TMP, "annoy.ann")
    a.save(path)
    a.path = path
    return a


def _query_annoy(index, q, k, params):
    return index.get_nns_by_vector(q, k, search_k=params["search_k"])


def _build_compat(base, metric):
    from nearkit.compat.annoy import AnnoyIndex

    a = AnnoyIndex(base.shape[1], "angular")
    for i, v in enumerate(base):
        a.add_item(i, v)
    a.build(N_TREES, n_jobs=1)
    path = os.path.join(_TMP, "compat.ann")
    a.save(path)  # an annoy-format file, served by nearkit's forest
    a.path = path
    return a


def _file_size(index):
    return os.path.getsize(index.path)


ALGOS = [
    Algo("nearkit-trees", _build_nearkit, _query_nearkit,
         [{"search_k": s} for s in SEARCH_K], index_bytes=_file_size),
    # The drop-in: annoy's file format and search semantics on nearkit's forest.
    Algo("nearkit-annoy-compat", _build_compat, _query_annoy,
         [{"search_k": s} for s in SEARCH_K], index_bytes=_file_size),
    Algo("annoy", _build_annoy, _query_annoy,
         [{"search_k": s} for s in SEARCH_K], requires=["annoy"], index_bytes=_file_size),
]
