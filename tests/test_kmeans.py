"""k-means: quality against faiss, determinism, edge cases, the fused kernels."""

import numpy as np
import pytest

import nearkit
from nearkit import _core
from nearkit.kmeans import assign


@pytest.mark.parametrize("isa", _core.supported_isas())
def test_argmax_bias_matches_numpy_on_every_isa(rng, isa):
    before = _core.isa()
    _core.set_isa(isa)
    try:
        for shape in [(100, 37), (64, 1024), (3, 1), (5, 16), (7, 71), (9, 100)]:
            p = rng.random(shape, dtype=np.float32)
            b = rng.random(shape[1], dtype=np.float32)
            p[0, -1] = 10.0  # a maximum in the tail
            if shape[1] > 3:
                b[3] = b[2]
                p[1, 2] = p[1, 3] = 10.0  # an exact tie: the first index wins, as numpy
            for threads in (1, 2):
                lab, best = _core.argmax_bias(p, b, threads)
                assert (lab == (p - b).argmax(1)).all()
                np.testing.assert_allclose(best, (p - b).max(1))
    finally:
        _core.set_isa(before)


def test_assign_blocked_matches_numpy(rng):
    x = rng.random((500, 3), dtype=np.float32)
    c = rng.random((37, 3), dtype=np.float32)
    lab, dist = _core.assign_blocked(x, c)
    ref = ((x[:, None, :] - c[None]) ** 2).sum(-1)
    assert (lab == ref.argmin(1)).all()
    np.testing.assert_allclose(dist, ref.min(1), rtol=1e-5, atol=1e-6)


def test_kmeans_sums(rng):
    x = rng.random((300, 5), dtype=np.float32)
    lab = rng.integers(0, 7, 300)
    sums, counts = _core.kmeans_sums(x, lab, 7)
    for c in range(7):
        np.testing.assert_allclose(sums[c], x[lab == c].sum(0), rtol=1e-5)
        assert counts[c] == (lab == c).sum()
    with pytest.raises(ValueError, match="out of range"):
        _core.kmeans_sums(x, np.full(300, 9), 7)


def test_inertia_close_to_faiss(glove_20k):
    faiss = pytest.importorskip("faiss")
    x = glove_20k.base
    ours = nearkit.kmeans(x, 100, niter=10, seed=1)
    km = faiss.Kmeans(x.shape[1], 100, niter=10, seed=1)
    km.train(x)
    _, d_ours = assign(x, ours.centroids)
    _, d_faiss = assign(x, km.centroids)
    assert d_ours.sum() <= 1.02 * d_faiss.sum()


def test_objective_decreases_and_is_deterministic(clustered):
    x, _ = clustered
    a = nearkit.kmeans(x, 20, niter=8, seed=3)
    b = nearkit.kmeans(x, 20, niter=8, seed=3)
    assert np.array_equal(a.centroids, b.centroids)
    assert np.all(np.diff(a.objective) <= 1e-3 * a.objective[0])
    assert a.centroids.shape == (20, 32) and a.centroids.dtype == np.float32
    pp = nearkit.kmeans(x, 20, niter=8, seed=3, init="kmeans++")
    assert pp.inertia <= 1.1 * a.inertia


def test_empty_clusters_are_split():
    # 5 distinct points repeated; k=5 with duplicate initial picks would leave empties
    base = np.repeat(np.eye(5, dtype=np.float32) * 10, 50, axis=0)
    init = np.repeat(base[:1], 5, axis=0)  # all centroids equal: four start empty
    res = nearkit.kmeans(base, 5, niter=10, init_centroids=init)
    counts = np.bincount(res.assignment, minlength=5)
    assert (counts > 0).sum() >= 3  # splitting revived empty clusters
    assert res.objective[-1] <= res.objective[0] / 3
    assert np.isfinite(res.centroids).all()


def test_subsampling_and_spherical(rng):
    x = rng.standard_normal((5000, 8)).astype(np.float32)
    res = nearkit.kmeans(x, 10, niter=3, max_points_per_centroid=50)
    assert res.n_train == 500
    sph = nearkit.kmeans(x, 10, niter=3, spherical=True)
    np.testing.assert_allclose(np.linalg.norm(sph.centroids, axis=1), 1.0, rtol=1e-5)


def test_bad_input():
    x = np.zeros((10, 4), np.float32)
    with pytest.raises(ValueError, match=r"training points \(10\).*clusters \(20\)"):
        nearkit.kmeans(x, 20)
    with pytest.warns(RuntimeWarning, match="please provide at least"):
        nearkit.kmeans(np.random.default_rng(0).random((50, 4)), 5, niter=1)
    with pytest.raises(ValueError, match="init"):
        nearkit.kmeans(x, 2, init="magic")
    with pytest.raises(ValueError, match="NaN"):
        nearkit.kmeans(np.full((10, 4), np.nan), 2)


def test_int_centroids_are_integers_and_cost_a_little(rng):
    x = (rng.random((1000, 16)) * 10).astype(np.float32)
    plain = nearkit.kmeans(x, 16, niter=8, seed=1)
    ints = nearkit.kmeans(x, 16, niter=8, seed=1, int_centroids=True)
    assert np.array_equal(ints.centroids, np.floor(ints.centroids))
    assert plain.inertia < ints.inertia < 1.5 * plain.inertia
