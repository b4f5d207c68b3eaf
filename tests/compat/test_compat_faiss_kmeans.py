"""nearkit.compat.faiss trains IVF quantizers with faiss's own k-means: against faiss-cpu."""

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")
from nearkit.compat import faiss as nf  # noqa: E402
from nearkit.compat._faiss_kmeans import faiss_kmeans, rand_perm  # noqa: E402


@pytest.mark.parametrize("n,seed", [(1, 0), (2, 5), (1000, 77), (2500, 1235), (5000, -3)])
def test_rand_perm_is_faiss_s(n, seed):
    ref = np.empty(n, "int32")
    faiss.rand_perm(faiss.swig_ptr(ref), n, seed)
    np.testing.assert_array_equal(rand_perm(n, seed), ref)


def _faiss_centroids(x, k, ip, niter=10, seed=1234):
    cp = faiss.ClusteringParameters()
    cp.niter, cp.seed, cp.spherical = niter, seed, ip
    clus = faiss.Clustering(x.shape[1], k, cp)
    clus.train(x, faiss.IndexFlatIP(x.shape[1]) if ip else faiss.IndexFlatL2(x.shape[1]))
    return faiss.vector_to_array(clus.centroids).reshape(k, -1)


@pytest.mark.parametrize("ip", [False, True])
@pytest.mark.parametrize("n,d,k", [(2500, 32, 64), (20000, 8, 16)])  # the second subsamples
def test_centroids_are_faiss_s(n, d, k, ip):
    x = np.random.default_rng(n + d).standard_normal((n, d)).astype(np.float32)
    ref = _faiss_centroids(x, k, ip)
    ours = faiss_kmeans(x, k, niter=10, seed=1234, inner_product=ip, spherical=ip)
    np.testing.assert_allclose(ours, ref, atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_duplicates_and_empty_clusters_follow_faiss(seed):
    # 40 distinct points for 64 clusters: starting centroids repeat, exact ties go to
    # the lower index, and each iteration splits empty clusters off donors drawn
    # with faiss's RandomGenerator(1234).
    x = np.repeat(np.random.default_rng(seed).standard_normal((40, 8)).astype(np.float32), 30, axis=0)
    for niter in (1, 2, 10):
        np.testing.assert_allclose(faiss_kmeans(x, 64, niter=niter),
                                   _faiss_centroids(x, 64, False, niter=niter), atol=1e-6)


@pytest.mark.parametrize("metric", [faiss.METRIC_L2, faiss.METRIC_INNER_PRODUCT])
def test_ivf_lists_are_faiss_s(metric):
    rng = np.random.default_rng(3)
    xt, xb, xq = (rng.standard_normal((m, 24)).astype(np.float32) for m in (3000, 4000, 50))
    ours, ref = (mod.IndexIVFFlat(mod.IndexFlat(24, metric), 24, 32, metric) for mod in (nf, faiss))
    for index in (ours, ref):
        index.train(xt)
        index.add(xb)
        index.nprobe = 4
    np.testing.assert_allclose(ours.quantizer.reconstruct_n(0, 32), ref.quantizer.reconstruct_n(0, 32),
                               atol=1e-5)
    d_ours, i_ours = ours.search(xq, 5)
    d_ref, i_ref = ref.search(xq, 5)
    np.testing.assert_array_equal(i_ours, i_ref)
    np.testing.assert_allclose(d_ours, d_ref, rtol=1e-5, atol=1e-5)
