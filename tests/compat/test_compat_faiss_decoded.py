"""Differential tests against faiss-cpu for the parts of nearkit.compat.faiss that run
faiss's own codecs by residual ("decoded mode" IVFs) and the behaviours that
faiss's upstream suite checks there: direct maps, nprobe checks, shards and
replicas, reverse transforms, k-means early stop, HNSW selectors."""

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")
from nearkit.compat import faiss as nf  # noqa: E402

D = 16
LIBS = (faiss, nf)


@pytest.fixture(scope="module")
def data():
    rs = np.random.RandomState(7)
    xt = rs.rand(1200, D).astype(np.float32)
    xb = rs.rand(400, D).astype(np.float32)
    xq = rs.rand(12, D).astype(np.float32)
    km = faiss.Kmeans(D, 8, niter=8, seed=3)
    km.train(xt)
    return xt, xb, xq, km.centroids


def _shared_ivf_sq(lib, cents, qtype, metric, by_residual):
    q = lib.IndexFlat(D, metric)
    q.add(cents)
    return lib.IndexIVFScalarQuantizer(q, D, len(cents), getattr(lib.ScalarQuantizer, qtype),
                                       metric, by_residual)


@pytest.mark.parametrize("qtype", ["QT_8bit", "QT_4bit", "QT_6bit", "QT_8bit_uniform",
                                   "QT_4bit_uniform", "QT_fp16", "QT_bf16"])
@pytest.mark.parametrize("metric,by_residual", [(1, True), (1, False), (0, True)])
def test_ivf_scalar_quantizer_equals_faiss_on_a_shared_quantizer(data, qtype, metric, by_residual):
    xt, xb, xq, cents = data
    out = []
    for lib in LIBS:
        ix = _shared_ivf_sq(lib, cents, qtype, metric, by_residual)
        ix.train(xt)
        ix.add(xb)
        ix.nprobe = 3
        assert ix.by_residual == by_residual
        out.append(ix.search(xq, 6))
    (Da, Ia), (Db, Ib) = out
    np.testing.assert_array_equal(Ia, Ib)
    np.testing.assert_allclose(Da, Db, rtol=1e-5, atol=1e-5)


def test_decoded_ivf_survives_serialize_and_keeps_coding(data):
    xt, xb, xq, cents = data
    ix = _shared_ivf_sq(nf, cents, "QT_4bit", 1, True)
    ix.train(xt)
    ix.add(xb[:200])
    back = nf.deserialize_index(nf.serialize_index(ix))
    for index in (ix, back):
        index.add(xb[200:])
        index.nprobe = 8
    assert type(back).__name__ == "IndexIVFScalarQuantizer" and back.by_residual
    np.testing.assert_array_equal(ix.search(xq, 5)[1], back.search(xq, 5)[1])
    ref = _shared_ivf_sq(faiss, cents, "QT_4bit", 1, True)
    ref.train(xt)
    ref.add(xb)
    ref.nprobe = 8
    np.testing.assert_array_equal(ref.search(xq, 5)[1], back.search(xq, 5)[1])


@pytest.mark.parametrize("desc", ["IVF8,PQ4x4np", "IVF8,PQ4x6np", "IVF8,PQ4x4fs", "IVF8,SQ4"])
def test_decoded_ivf_distances_are_to_the_reconstructed_vectors(data, desc):
    xt, xb, xq, _ = data
    ix = nf.index_factory(D, desc)
    ix.train(xt)
    ix.add(xb)
    ix.nprobe = 8
    assert ix.by_residual
    dist, ids = ix.search(xq, 5)
    rec = ix.reconstruct_n(0, ix.ntotal)
    np.testing.assert_allclose(dist, ((xq[:, None, :] - rec[ids]) ** 2).sum(-1), rtol=1e-4, atol=1e-5)
    ref = faiss.index_factory(D, desc)
    ref.train(xt)
    ref.add(xb)
    ref.nprobe = 8
    truth = faiss.knn(xq, xb, 5)[1]
    rec_nk = np.mean([len(set(a) & set(t)) / 5 for a, t in zip(ids, truth)])
    rec_fa = np.mean([len(set(a) & set(t)) / 5 for a, t in zip(ref.search(xq, 5)[1], truth)])
    assert rec_nk >= rec_fa - 0.2


def test_by_residual_can_be_switched_before_training(data):
    xt, xb, xq, _ = data
    for flag in (True, False):
        ix = nf.index_factory(D, "IVF8,SQ8")
        ix.by_residual = flag
        ix.train(xt)
        ix.add(xb)
        ix.nprobe = 8
        dist, ids = ix.search(xq, 4)
        rec = ix.reconstruct_n(0, ix.ntotal)
        np.testing.assert_allclose(dist, ((xq[:, None, :] - rec[ids]) ** 2).sum(-1), rtol=1e-4, atol=1e-5)
    with pytest.raises(RuntimeError):
        ix.by_residual = True  # not while it holds vectors


def test_fast_scan_factory_attributes():
    for lib in LIBS:
        assert lib.index_factory(56, "PQ28x4fs").bbs == 32
        assert lib.index_factory(56, "PQ28x4fs_64").bbs == 64
        ivf = lib.index_factory(56, "IVF50,PQ28x4fs_64", lib.METRIC_INNER_PRODUCT)
        assert ivf.bbs == 64 and ivf.nlist == 50 and ivf.cp.spherical
        assert lib.index_factory(56, "IVF50,PQ28x4fsr").by_residual


def test_nprobe_zero_is_refused_at_search(data):
    xt, xb, xq, _ = data
    for lib in LIBS:
        ix = lib.index_factory(D, "IVF8,Flat")
        ix.train(xt)
        ix.add(xb)
        ix.nprobe = 0
        with pytest.raises(RuntimeError):
            ix.search(xq, 3)
        ix.nprobe = 2
        assert ix.search(xq, 3)[1].shape == (len(xq), 3)


def test_ivf_reconstruct_needs_a_direct_map_as_in_faiss(data):
    xt, xb, _, _ = data
    for lib in LIBS:
        ix = lib.index_factory(D, "IVF8,Flat")
        ix.train(xt)
        ix.add(xb)
        with pytest.raises(RuntimeError):
            ix.reconstruct(3)
        with pytest.raises(RuntimeError):
            ix.reconstruct_batch(np.zeros(5, np.int64))
        np.testing.assert_allclose(ix.reconstruct_n(0, 4), xb[:4])  # scans the lists: no map needed
        ix.make_direct_map()
        np.testing.assert_allclose(ix.reconstruct(3), xb[3])
        back = lib.deserialize_index(lib.serialize_index(ix))
        np.testing.assert_allclose(back.reconstruct(5), xb[5])


def test_shards_and_replicas_follow_faiss(data):
    _, xb, xq, _ = data
    out = []
    for lib in LIBS:
        shards = lib.IndexShards(D, False, True)
        a, b = lib.IndexFlatL2(D), lib.IndexFlatL2(D)
        shards.add_shard(a)
        shards.add_shard(b)
        shards.train(xb)
        shards.add(xb)
        assert (a.ntotal, b.ntotal, shards.ntotal) == (200, 200, 400)
        res = shards.search(xq, 5)
        reps = lib.IndexReplicas(D, False)
        r1, r2 = lib.IndexFlatL2(D), lib.IndexFlatL2(D)
        reps.add_replica(r1)
        reps.add_replica(r2)
        reps.add(xb)
        assert reps.ntotal == 400 and r2.ntotal == 400
        out.append((res, reps.search(xq, 5)))
        shards.remove_shard(b)
        reps.remove_replica(r2)
        assert shards.ntotal == 200 and reps.ntotal == 400
    for (sa, ra), (sb, rb) in [out]:
        np.testing.assert_array_equal(sa[1], sb[1])
        np.testing.assert_array_equal(ra[1], rb[1])
        np.testing.assert_allclose(ra[0], rb[0], rtol=1e-5)


@pytest.mark.parametrize("desc", ["PCA8,Flat", "L2norm,Flat", "HR,Flat"])
def test_pretransform_reconstruct_like_faiss(data, desc):
    xt, xb, xq, _ = data
    out = []
    for lib in LIBS:
        ix = lib.index_factory(D, desc)
        ix.train(xt)
        ix.add(xb)
        dist, ids, rec = ix.search_and_reconstruct(xq, 4)
        out.append((ix.reconstruct_n(0, 50), rec))
    np.testing.assert_allclose(out[0][0], out[1][0], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(out[0][1], out[1][1], rtol=1e-3, atol=1e-4)


def test_pretransform_distance_computer_works_in_the_transformed_space(data):
    xt, xb, xq, _ = data
    ix = nf.index_factory(D, "PCA8,SQ8")
    ix.train(xt)
    ix.add(xb)
    dist, ids = ix.search(xq, 5)
    dc = ix.get_distance_computer()
    for q in range(len(xq)):
        dc.set_query(xq[q])
        got = [dc(int(i)) for i in ids[q]]
        np.testing.assert_allclose(got, dist[q], rtol=1e-4, atol=1e-5)


def test_kmeans_stops_when_the_objective_stops_changing():
    x = np.random.RandomState(42).uniform(size=(1000, 32)).astype(np.float32)
    for lib in LIBS:
        clus = lib.Clustering(32, 10)
        clus.niter = 500
        clus.train(x, lib.IndexFlatL2(32))
        n = clus.iteration_stats.size()
        assert n < 500
        assert clus.iteration_stats.at(n - 1).obj == pytest.approx(clus.iteration_stats.at(n - 2).obj, rel=1e-7)


def test_bf16_codes_round_to_nearest_as_faiss():
    x = np.random.RandomState(1).randn(64, 8).astype(np.float32)
    rec = []
    for lib in LIBS:
        ix = lib.IndexScalarQuantizer(8, lib.ScalarQuantizer.QT_bf16)
        ix.train(x)
        ix.add(x)
        rec.append(ix.reconstruct_n(0, 64))
    np.testing.assert_array_equal(rec[0], rec[1])


def test_standalone_scalar_quantizer_clones():
    x = np.random.RandomState(2).rand(200, 32).astype(np.float32)
    q = nf.ScalarQuantizer(32, nf.ScalarQuantizer.QT_4bit)
    q.train(x)
    q2 = nf.clone_Quantizer(q)
    np.testing.assert_array_equal(q.compute_codes(x), q2.compute_codes(x))
    assert q2.this.own()


def test_hnsw_selector_keeps_the_unfiltered_walk_order():
    """faiss's filtered HNSW walks the same graph: the allowed results of the
    unfiltered search come first, in the same order (upstream's weak selector test)."""
    rs = np.random.RandomState(3)
    xb, xq = rs.rand(300, 32).astype(np.float32), rs.rand(20, 32).astype(np.float32)
    ix = nf.index_factory(32, "HNSW")
    ix.add(xb)
    Dref, Iref = ix.search(xq, 10)
    subset = rs.choice(300, 150, replace=False).astype(np.int64)
    params = nf.SearchParametersHNSW()
    params.sel = nf.IDSelectorBatch(subset)
    Dnew, Inew = ix.search(xq, 10, params=params)
    assert np.isin(Inew[Inew >= 0], subset).all()
    mask = np.zeros(300, bool)
    mask[subset] = True
    for q in range(len(xq)):
        keep = np.flatnonzero(mask[Iref[q]])
        np.testing.assert_array_equal(Iref[q, keep], Inew[q, :keep.size])
        assert np.all(np.diff(Dnew[q][Inew[q] >= 0]) >= -1e-6)
