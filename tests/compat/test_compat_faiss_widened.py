"""nearkit.compat.faiss beyond the first subset, side by side with faiss-cpu:
range_search order, id selectors, SQ4/SQ6, factory strings, shared quantizers,
IVF internals, clone / ParameterSpace, and reading files faiss itself wrote."""

import pickle

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")
from nearkit.compat import faiss as nf  # noqa: E402

# PQ strings carry "np": faiss's polysemous training alone takes about a minute per index

D = 16


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    xb = rng.random((1000, D), dtype=np.float32)
    xq = rng.random((40, D), dtype=np.float32)
    return xb, xq


def _exact_ids(xb, xq, k):
    d2 = ((xq[:, None, :].astype(np.float64) - xb[None]) ** 2).sum(-1)
    return np.argsort(d2, axis=1, kind="stable")[:, :k]


def _recall(found, truth):
    return np.mean([len(np.intersect1d(f, t)) / t.size for f, t in zip(found, truth)])


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_flat_range_search_matches_faiss_order(data, metric):
    xb, xq = data
    cls = "IndexFlatL2" if metric == "l2" else "IndexFlatIP"
    a, b = getattr(faiss, cls)(D), getattr(nf, cls)(D)
    a.add(xb)
    b.add(xb)
    radius = 1.0 if metric == "l2" else 4.5
    la, da, ia = a.range_search(xq, radius)
    lb, db, ib = b.range_search(xq, radius)
    assert lb.dtype == np.uint64 and np.array_equal(la, lb)
    assert np.array_equal(ia, ib)  # same order within each query, not only the same sets
    np.testing.assert_allclose(da, db, rtol=1e-5, atol=1e-5)


def _selectors(lib, nb):
    rng = np.random.default_rng(3)
    subset = np.sort(rng.choice(nb, 200, replace=False)).astype(np.int64)
    bitmap = np.zeros(nb, bool)
    bitmap[subset] = True
    packed = np.packbits(bitmap, bitorder="little")
    rest = np.setdiff1d(np.arange(nb), subset).astype(np.int64)
    return {
        "range": lib.IDSelectorRange(300, 700),
        "batch": lib.IDSelectorBatch(subset),
        "array": lib.IDSelectorArray(subset),
        "bitmap": lib.IDSelectorBitmap(packed),
        "not": lib.IDSelectorNot(lib.IDSelectorBatch(rest)),
    }


@pytest.mark.parametrize("kind", ["range", "batch", "array", "bitmap", "not"])
def test_selectors_through_search_parameters(data, kind):
    xb, xq = data
    a, b = faiss.IndexFlatL2(D), nf.IndexFlatL2(D)
    a.add(xb)
    b.add(xb)
    pa = faiss.SearchParameters(sel=_selectors(faiss, len(xb))[kind])
    pb = nf.SearchParameters(sel=_selectors(nf, len(xb))[kind])
    Da, Ia = a.search(xq, 7, params=pa)
    Db, Ib = b.search(xq, 7, params=pb)
    assert np.array_equal(Ia, Ib)
    np.testing.assert_allclose(Da, Db, rtol=1e-5, atol=1e-5)
    la, _, ia = a.range_search(xq, 0.8, params=pa)
    lb, _, ib = b.range_search(xq, 0.8, params=pb)
    assert np.array_equal(la, lb) and np.array_equal(ia, ib)


@pytest.mark.parametrize("desc", ["SQ4", "SQ6", "SQ8", "SQfp16"])
def test_scalar_quantizers_match_faiss(data, desc):
    xb, xq = data
    a, b = faiss.index_factory(D, desc), nf.index_factory(D, desc)
    assert type(b).__name__ == "IndexScalarQuantizer"
    assert b.sa_code_size() == a.sa_code_size()
    for ix in (a, b):
        ix.train(xb)
        ix.add(xb)
    Da, Ia = a.search(xq, 10)
    Db, Ib = b.search(xq, 10)
    assert (Ia == Ib).mean() > 0.99  # same codes; float rounding may swap near-ties
    np.testing.assert_allclose(np.sort(Da, 1), np.sort(Db, 1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(a.reconstruct_n(0, 5), b.reconstruct_n(0, 5), atol=1e-6)


@pytest.mark.parametrize("desc,cls", [
    ("HNSW32,SQ8", "IndexHNSWSQ"), ("HNSW16_PQ4np", "IndexHNSWPQ"), ("PQ4x6np", "IndexPQ"),
    ("IVF16_HNSW8,Flat", "IndexIVFFlat"), ("IVF16,Flat,Refine(SQfp16)", "IndexRefine"),
    ("IVF16,PQ4x8np,RFlat", "IndexRefineFlat"), ("IDMap,SQ4", "IndexIDMap"),
])
def test_widened_factory_strings(data, desc, cls):
    xb, xq = data
    a, b = faiss.index_factory(D, desc), nf.index_factory(D, desc)
    assert type(b).__name__ == cls == type(a).__name__
    for ix in (a, b):
        ix.train(xb)
        if "IDMap" in desc:
            ix.add_with_ids(xb, np.arange(len(xb), dtype=np.int64) + 100)
        else:
            ix.add(xb)
    if hasattr(b, "hnsw"):
        b.hnsw.efSearch = a.hnsw.efSearch = 64
        assert b.storage.sa_code_size() == a.storage.sa_code_size()
    if "IVF" in desc:
        nf.ParameterSpace().set_index_parameter(b, "nprobe", 8)
        faiss.ParameterSpace().set_index_parameter(a, "nprobe", 8)
    truth = _exact_ids(xb, xq, 10) + (100 if "IDMap" in desc else 0)
    ra, rb = _recall(a.search(xq, 10)[1], truth), _recall(b.search(xq, 10)[1], truth)
    assert rb >= ra - 0.1, (ra, rb)


def test_ivf_hnsw_quantizer(data):
    xb, _ = data
    a, b = faiss.index_factory(D, "IVF32_HNSW12,Flat"), nf.index_factory(D, "IVF32_HNSW12,Flat")
    assert type(b.quantizer).__name__ == "IndexHNSWFlat"
    assert b.quantizer.hnsw.nb_neighbors(1) == faiss.downcast_index(a.quantizer).hnsw.nb_neighbors(1) == 12
    b.train(xb)
    assert b.quantizer.ntotal == 32


def test_shared_pretrained_quantizer_counts_as_trained(data):
    xb, xq = data
    for lib in (faiss, nf):
        q = lib.IndexFlatL2(D)
        first = lib.IndexIVFFlat(q, D, 20)
        first.train(xb)
        second = lib.IndexIVFFlat(q, D, 20)
        assert second.is_trained
        second.add(xb[:500])
        second.nprobe = 20
        assert second.search(xq, 5)[1].min() >= 0
    # nearkit's second index assigns to the shared centroids: lists match faiss's
    q = faiss.IndexFlatL2(D)
    q.add(np.ascontiguousarray(xb[:20]))
    qn = nf.IndexFlatL2(D)
    qn.add(np.ascontiguousarray(xb[:20]))
    a, b = faiss.IndexIVFFlat(q, D, 20), nf.IndexIVFFlat(qn, D, 20)
    assert a.is_trained and b.is_trained
    a.add(xb)
    b.add(xb)
    sizes_a = [a.invlists.list_size(i) for i in range(20)]
    sizes_b = [b.invlists.list_size(i) for i in range(20)]
    assert sizes_a == sizes_b
    ids_a = faiss.rev_swig_ptr(a.invlists.get_ids(3), sizes_a[3])
    assert np.array_equal(ids_a, nf.rev_swig_ptr(b.invlists.get_ids(3), sizes_b[3]))


def test_search_preassigned_merge_from_clone(data):
    xb, xq = data
    q = nf.IndexFlatL2(D)
    ix = nf.IndexIVFFlat(q, D, 16)
    ix.train(xb)
    ix.add(xb[:1000])
    ix.nprobe = 4
    Dq, Iq = q.search(xq, 4)
    Dp, Ip = ix.search_preassigned(xq, 5, Iq, Dq)
    Ds, Is = ix.search(xq, 5)
    assert np.array_equal(Ip, Is)
    other = nf.IndexIVFFlat(q, D, 16)
    other.add(xb[1000:])
    ix.merge_from(other, 1000)
    assert ix.ntotal == len(xb) and other.ntotal == 0
    ix.nprobe = 16
    assert np.array_equal(ix.search(xq, 5)[1], _exact_ids(xb, xq, 5))
    copy = nf.clone_index(ix)
    copy.reset()
    assert ix.ntotal == len(xb) and copy.ntotal == 0
    back = pickle.loads(pickle.dumps(ix))
    assert np.array_equal(back.search(xq, 5)[1], ix.search(xq, 5)[1])


def test_errors_are_runtime_errors(tmp_path):
    bad = tmp_path / "garbage.index"
    bad.write_bytes(b"garbage" * 10)
    for lib in (faiss, nf):
        with pytest.raises(RuntimeError):
            lib.read_index(str(bad))
        with pytest.raises(RuntimeError):
            lib.index_factory(D, "IVF16,Nonsense")


@pytest.mark.parametrize("desc", ["Flat", "IVF16,Flat", "IVF16,PQ4np", "IVF16,SQ8", "IVF16,SQ4",
                                  "IDMap,Flat", "IDMap2,IVF8,Flat", "SQ8", "PQ4np"])
@pytest.mark.parametrize("metric", [0, 1])
def test_read_index_reads_faiss_files(tmp_path, data, desc, metric):
    xb, xq = data
    ix = faiss.index_factory(D, desc, metric)
    ix.train(xb)
    if "IDMap" in desc:
        ix.add_with_ids(xb, np.arange(len(xb), dtype=np.int64) * 3 + 1)
    else:
        ix.add(xb)
    if "IVF" in desc:
        faiss.extract_index_ivf(ix).nprobe = 3
    path = str(tmp_path / "f.faiss")
    faiss.write_index(ix, path)
    back = nf.read_index(path)
    assert type(back).__name__ == type(faiss.read_index(path)).__name__ and back.ntotal == ix.ntotal
    Da, Ia = ix.search(xq, 8)
    Db, Ib = back.search(xq, 8)
    assert (Ia == Ib).mean() > 0.99
    np.testing.assert_allclose(np.sort(Da, 1), np.sort(Db, 1), rtol=1e-4, atol=1e-4)


def test_read_index_reads_faiss_hnsw(tmp_path, data):
    xb, xq = data
    ix = faiss.IndexHNSWFlat(D, 16)
    ix.hnsw.efConstruction = 60
    ix.add(xb)
    ix.hnsw.efSearch = 48
    path = str(tmp_path / "h.faiss")
    faiss.write_index(ix, path)
    back = nf.read_index(path)
    assert type(back).__name__ == "IndexHNSWFlat"
    assert back.hnsw.efSearch == 48 and back.hnsw.M == 16 and back.ntotal == len(xb)
    np.testing.assert_array_equal(back.reconstruct_n(0, len(xb)), xb)
    truth = _exact_ids(xb, xq, 10)
    assert _recall(back.search(xq, 10)[1], truth) >= 0.95


def test_composite_indexes_round_trip_through_nearkit_files(tmp_path, data):
    xb, xq = data
    for desc in ["SQ4", "HNSW16,SQ8", "IVF8,Flat,Refine(SQfp16)", "IDMap2,SQ6", "Flat,RFlat"]:
        ix = nf.index_factory(D, desc)
        ix.train(xb)
        if "IDMap" in desc:
            ix.add_with_ids(xb, np.arange(len(xb), dtype=np.int64) + 5)
        else:
            ix.add(xb)
        path = str(tmp_path / "c.index")
        nf.write_index(ix, path)
        back = nf.read_index(path)
        assert type(back) is type(ix) and back.ntotal == ix.ntotal
        assert np.array_equal(back.search(xq, 5)[1], ix.search(xq, 5)[1]), desc
