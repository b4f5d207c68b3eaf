"""index_factory: every supported string builds a working index; bad strings say what is wrong."""

import numpy as np
import pytest

import nearkit
from nearkit.evaluate import ground_truth, recall_at_k

# (description, search params, recall@10 floor on 10k GloVe vectors, cosine; a few
# points under what was measured)
GOOD = [
    ("Flat", {}, 0.999),
    ("HNSW8", {}, 0.9),
    ("HNSW8,Flat", {}, 0.9),
    ("IVF64,Flat", {"nprobe": 16}, 0.9),
    ("IVF64,SQ8", {"nprobe": 16}, 0.88),
    ("IVF64,SQfp16", {"nprobe": 16}, 0.9),
    ("IVF64,PQ10", {"nprobe": 16}, 0.5),
    ("IVF64,PQ10x8", {"nprobe": 16}, 0.5),
    ("IVF64,PQ25x4fs", {"nprobe": 16}, 0.5),
    ("IVF64,PQ25x4fs,RFlat", {"nprobe": 16, "k_factor": 8}, 0.88),
    ("PCA40,IVF64,Flat", {"nprobe": 16}, 0.7),
    ("OPQ10,IVF64,PQ10", {"nprobe": 16}, 0.5),
    ("PQ10", {}, 0.5),
    ("PQ25x4fs,RFlat", {"k_factor": 8}, 0.95),
    ("SQ8", {}, 0.95),
    ("IDMap,Flat", {}, 0.999),
    ("IVF64,Flat,IDMap2", {"nprobe": 16}, 0.9),
]


@pytest.fixture(scope="module")
def small(glove_20k):
    """10k of the GloVe base (keeps graph builds and PQ training quick) and its truth."""
    base, queries = glove_20k.base[:10000], glove_20k.queries[:100]
    return base, queries, ground_truth(base, queries, 10, "cosine")


@pytest.mark.parametrize("desc,params,floor", GOOD, ids=[g[0] for g in GOOD])
def test_factory_strings_reach_recall(small, desc, params, floor):
    base, queries, truth = small
    ix = nearkit.index_factory(50, desc, metric="cosine")
    if hasattr(ix, "train"):
        ix.train(base)
    ix.add(base)
    ids, _ = ix.search(queries, 10, **params)
    assert recall_at_k(ids, truth, 10) >= floor


def test_factory_types():
    assert isinstance(nearkit.index_factory(8, "Flat"), nearkit.Flat)
    assert isinstance(nearkit.index_factory(8, "HNSW"), nearkit.HNSW)
    ix = nearkit.index_factory(64, "OPQ16,IVF3k,PQ16x4fs,RFlat", metric="ip")
    assert isinstance(ix, nearkit.IVF)
    assert (ix.nlist, ix.codec, ix.pq_m, ix.refine, ix.transform_name, ix.metric) == (
        3072, "pq4fs", 16, True, "opq16", "ip")
    assert nearkit.index_factory(8, "IVF1M,Flat").nlist == 1024 * 1024
    assert nearkit.index_factory(8, "PQ4").nlist == 1


BAD = [
    ("", "empty"),
    ("flat", "'flat'"),
    ("Flat ", "'Flat '"),
    ("IVF1024, Flat", "' Flat'"),
    ("IVF1024", "'IVF1024'"),
    ("IVF1024,RFlat", "'IVF1024'"),
    ("IVF1024,PQ", "'PQ'"),
    ("IVF1024,Foo", "'Foo'"),
    ("IVF1024,PQ3", "'PQ3'"),  # 8 is not a multiple of 3
    ("IVF1024,Flat,Extra", "'Extra'"),
    ("PCA16,IVF8,Flat", "'PCA16'"),  # larger than the input dimension
    ("HNSW32,PQ4", "'PQ4'"),
    ("LSH", "'LSH'"),
    ("OPQ3,IVF8,Flat", "'OPQ3'"),
    ("Flat,RFlat", "'RFlat'"),
]


@pytest.mark.parametrize("desc,named", BAD, ids=[b[0] or "empty" for b in BAD])
def test_bad_strings_name_the_bad_part(desc, named):
    with pytest.raises(ValueError) as err:
        nearkit.index_factory(8, desc)
    assert named in str(err.value)


def test_factory_type_errors():
    with pytest.raises(TypeError):
        nearkit.index_factory(8, None)
    with pytest.raises(ValueError, match="metric"):
        nearkit.index_factory(8, "Flat", metric="hamming")
