"""nearkit.compat.faiss against the real faiss-cpu: the same code, run on both."""

import numpy as np
import pytest

real = pytest.importorskip("faiss")
from nearkit.compat import faiss as nk  # noqa: E402

LIBS = [real, nk]
FMAX = np.float32(3.4028235e38)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    return rng.random((3000, 16), dtype=np.float32), rng.random((20, 16), dtype=np.float32)


def recall(found, truth):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth)])


@pytest.mark.parametrize("cls", ["IndexFlatL2", "IndexFlatIP"])
def test_flat_search_matches(data, cls):
    xb, xq = data
    out = []
    for lib in LIBS:
        ix = getattr(lib, cls)(16)
        ix.add(xb)
        D, I = ix.search(xq, 5)
        assert D.dtype == np.float32 and I.dtype == np.int64 and D.shape == (20, 5)
        assert (ix.ntotal, ix.d, ix.is_trained) == (3000, 16, True)
        out.append((D, I))
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=1e-5, atol=1e-5)
    assert (out[0][1] == out[1][1]).mean() >= 0.98  # float near-ties may swap
    if cls == "IndexFlatIP":
        assert np.all(np.diff(out[1][0], axis=1) <= 0)  # similarities, largest first


@pytest.mark.parametrize("metric,pad", [(0, -FMAX), (1, FMAX)])
def test_padding_and_empty(data, metric, pad):
    xb, xq = data
    for lib in LIBS:
        ix = lib.IndexFlat(16, metric)
        D, I = ix.search(xq[:2], 3)  # empty index
        assert (I == -1).all() and (D == pad).all()
        ix.add(xb[:2])
        D, I = ix.search(xq[:2], 4)
        assert (I[:, 2:] == -1).all() and (D[:, 2:] == pad).all() and not np.isinf(D).any()
        D, I = ix.search(xq[:0], 4)
        assert D.shape == (0, 4) and I.shape == (0, 4)


def test_input_errors_match(data):
    xb, xq = data
    for lib in LIBS:
        ix = lib.IndexFlatL2(16)
        ix.add(xb)
        with pytest.raises(AssertionError):
            ix.search(xq, 0)
        with pytest.raises(AssertionError):
            ix.search(xq[:, :8], 1)
        with pytest.raises(AttributeError):
            ix.search(xq.tolist(), 1)
        with pytest.raises(ValueError):
            ix.search(xq[0], 1)
        with pytest.raises(RuntimeError):
            ix.add_with_ids(xb[:2], np.arange(2))
        ix.add(xb[:, :16].astype(np.float64)[:3])  # any dtype is converted
        assert ix.ntotal == 3003
        with pytest.raises(TypeError):
            lib.index_factory(16, "Flat", metric=lib.METRIC_L2)


def test_flat_remove_renumbers(data):
    xb, xq = data
    res = []
    for lib in LIBS:
        ix = lib.IndexFlatL2(16)
        ix.add(xb[:4])
        assert ix.remove_ids(np.array([1], dtype=np.int64)) == 1
        res.append(ix.search(xb[3:4], 1)[1][0, 0])
        assert ix.ntotal == 3
    assert res == [2, 2]


def test_range_search_matches(data):
    xb, xq = data
    for metric, radius in [(1, 1.0), (0, 4.5)]:
        got = []
        for lib in LIBS:
            ix = lib.IndexFlat(16, metric)
            ix.add(xb)
            lims, D, I = ix.range_search(xq, radius)
            assert lims.dtype == np.uint64 and lims.shape == (21,)
            got.append([sorted(I[lims[i]:lims[i + 1]].tolist()) for i in range(20)])
            for i in range(20):
                d = D[lims[i]:lims[i + 1]]
                assert (d < radius).all() if metric == 1 else (d > radius).all()
        assert got[0] == got[1]


def test_ivf_flat_conventions(data, capsys):
    xb, xq = data
    results = []
    for lib in LIBS:
        q = lib.IndexFlatL2(16)
        ix = lib.IndexIVFFlat(q, 16, 32)
        assert not ix.is_trained and ix.nprobe == 1
        with pytest.raises(RuntimeError):
            ix.add(xb)
        with pytest.raises(RuntimeError, match="at least as large as number of clusters"):
            ix.train(xb[:10])
        ix.train(xb)
        assert q.ntotal == 32 and ix.is_trained
        ix.add_with_ids(xb, np.arange(3000) + 10)
        ix.nprobe = 32  # every list: exact
        results.append(ix.search(xq, 5))
        ix.nprobe = 4
        assert ix.nprobe == 4
        D, I = ix.search(xq, 5, params=lib.SearchParametersIVF(nprobe=32))
        assert np.array_equal(I, results[-1][1])
        assert ix.remove_ids(lib.IDSelectorRange(10, 20)) == 10
        assert ix.remove_ids(np.array([25, 25, 99999])) == 1
        assert ix.ntotal == 2989
    np.testing.assert_allclose(results[0][0], results[1][0], rtol=1e-5)
    assert (results[0][1] == results[1][1]).mean() > 0.99


@pytest.mark.parametrize("build", [
    lambda lib: lib.IndexIVFPQ(lib.IndexFlatL2(16), 16, 16, 4, 8),
    lambda lib: lib.IndexPQ(16, 8, 4),
    lambda lib: lib.IndexScalarQuantizer(16, lib.ScalarQuantizer.QT_8bit),
    lambda lib: lib.IndexScalarQuantizer(16, lib.ScalarQuantizer.QT_fp16),
    lambda lib: lib.index_factory(16, "IVF16,PQ8x4fs,RFlat"),
    lambda lib: lib.index_factory(16, "PCA8,IVF16,Flat"),
    lambda lib: lib.index_factory(16, "IVF16,SQ8", lib.METRIC_INNER_PRODUCT),
], ids=["IVFPQ", "PQ", "SQ8", "SQfp16", "IVFPQfs-RFlat", "PCA-IVF", "IVFSQ-IP"])
def test_quantised_indexes_recall_like_faiss(data, build):
    xb, xq = data
    flat = real.IndexFlatL2(16)
    flat.add(xb)
    truth = flat.search(xq, 10)[1]
    r = {}
    for lib in LIBS:
        ix = build(lib)
        ix.train(xb)
        ix.add(xb)
        if hasattr(ix, "nprobe"):
            ix.nprobe = 8
        D, I = ix.search(xq, 10)
        assert D.dtype == np.float32 and I.shape == (20, 10)
        if ix.metric_type == 1:
            assert np.all(np.diff(D, axis=1) >= -1e-5)
        else:
            assert np.all(np.diff(D, axis=1) <= 1e-5)
        r[lib] = recall(I, truth) if ix.metric_type == 1 else 1.0
    assert r[nk] >= r[real] - 0.1


def test_idmap_semantics(data):
    xb, xq = data
    for lib in LIBS:
        inner = lib.IndexFlatL2(16)
        ix = lib.IndexIDMap2(inner)
        with pytest.raises(RuntimeError):
            ix.add(xb[:3])
        ix.add_with_ids(xb[:3], np.array([100, 100, 7]))
        D, I = ix.search(xb[2:3], 2)
        assert I[0, 0] == 7 and I[0, 1] == 100
        np.testing.assert_allclose(ix.reconstruct(7), xb[2])
        with pytest.raises(RuntimeError):
            ix.reconstruct(31)
        assert ix.remove_ids(np.array([100, 999])) == 2
        assert ix.ntotal == 1
        with pytest.raises(RuntimeError):
            lib.IndexIDMap(ix.index if lib is nk else inner)  # not empty
        sel = lib.SearchParameters(sel=lib.IDSelectorBatch(np.array([7])))
        assert ix.search(xq[:1], 1, params=sel)[1][0, 0] == 7


def test_hnsw_defaults_and_k_above_ef(data):
    xb, xq = data
    for lib in LIBS:
        ix = lib.IndexHNSWFlat(16, 16)
        assert (ix.hnsw.efSearch, ix.hnsw.efConstruction) == (16, 40)
        ix.hnsw.efConstruction = 80
        ix.add(xb)
        ix.hnsw.efSearch = 2
        D, I = ix.search(xq, 10)
        assert (I >= 0).all()
        ix.hnsw.efSearch = 64
        flat = real.IndexFlatL2(16)
        flat.add(xb)
        assert recall(ix.search(xq, 10)[1], flat.search(xq, 10)[1]) > 0.9


def test_write_read_round_trip(tmp_path, data):
    xb, xq = data
    for desc in ["IVF16,Flat", "Flat", "IDMap2,Flat", "HNSW16", "PQ4x4fs,RFlat"]:
        ix = nk.index_factory(16, desc)
        ix.train(xb)
        if isinstance(ix, nk.IndexIDMap):
            ix.add_with_ids(xb, np.arange(3000) * 2)
        else:
            ix.add(xb)
        if hasattr(ix, "nprobe"):
            ix.nprobe = 5
        path = str(tmp_path / "x.index")
        nk.write_index(ix, path)
        back = nk.read_index(path)
        assert type(back) is type(ix) and back.ntotal == 3000
        if hasattr(ix, "nprobe"):
            assert back.nprobe == 5
        a, b = ix.search(xq, 5), back.search(xq, 5)
        assert np.array_equal(a[1], b[1]) and np.allclose(a[0], b[0])
        back2 = nk.deserialize_index(nk.serialize_index(ix))
        assert back2.ntotal == 3000
    with pytest.raises(RuntimeError, match="could not open"):
        nk.read_index(str(tmp_path / "nope.index"))


def test_normalize_and_kmeans(data):
    xb, _ = data
    for lib in LIBS:
        x = xb[:5].copy()
        assert lib.normalize_L2(x) is None
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1, rtol=1e-5)
        with pytest.raises(TypeError):
            lib.normalize_L2(xb[:5].astype(np.float64))
        with pytest.raises(ValueError):
            lib.normalize_L2(np.asfortranarray(xb[:5]))
        km = lib.Kmeans(16, 20)
        assert (km.niter, km.seed, km.max_points_per_centroid) == (25, 1234, 256) if lib is nk else True
        with pytest.raises(AttributeError):
            lib.Kmeans(16, 20, foo=1)
        with pytest.raises(RuntimeError, match="at least as large"):
            lib.Kmeans(16, 100).train(xb[:50])
    objs = {}
    for lib in LIBS:
        km = lib.Kmeans(16, 20, niter=10, seed=3)
        objs[lib] = km.train(xb)
        assert km.centroids.shape == (20, 16) and km.centroids.dtype == np.float32
        assert len(km.obj) == 10 and km.obj[-1] == pytest.approx(objs[lib])
        D, I = km.assign(xb[:7])
        assert D.shape == (7,) and I.shape == (7,)
    assert objs[nk] <= 1.03 * objs[real]
