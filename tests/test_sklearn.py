"""nearkit.sklearn against scikit-learn: the estimator contract (check_estimator),
results next to sklearn's NearestNeighbors, and pipelines with precomputed graphs."""

import pickle

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
sp = pytest.importorskip("scipy.sparse")

from sklearn.neighbors import KNeighborsTransformer as SkTransformer  # noqa: E402
from sklearn.neighbors import NearestNeighbors as SkNN  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

import nearkit  # noqa: E402
from nearkit.sklearn import KNeighborsTransformer, NearestNeighbors  # noqa: E402


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(11)
    centers = rng.normal(size=(8, 12)) * 4
    X = (centers[rng.integers(0, 8, 600)] + rng.normal(size=(600, 12))).astype(np.float32)
    Q = (centers[rng.integers(0, 8, 40)] + rng.normal(size=(40, 12))).astype(np.float32)
    return X, Q


@pytest.mark.parametrize("est", [
    NearestNeighbors(), NearestNeighbors(algorithm="hnsw"),
    KNeighborsTransformer(), KNeighborsTransformer(algorithm="hnsw", mode="connectivity"),
], ids=["nn-flat", "nn-hnsw", "transformer-flat", "transformer-hnsw"])
def test_check_estimator(est):
    failures = [r for r in check_estimator(est, on_fail=None) if r["status"] == "failed"]
    assert not failures, [(r["check_name"], repr(r["exception"])) for r in failures]


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_flat_kneighbors_equal_sklearn(data, metric):
    X, Q = data
    ours = NearestNeighbors(n_neighbors=7, algorithm="flat", metric=metric).fit(X)
    ref = SkNN(n_neighbors=7, algorithm="brute", metric=metric).fit(X)
    d1, i1 = ours.kneighbors(Q)
    d2, i2 = ref.kneighbors(Q)
    assert np.array_equal(i1, i2)
    np.testing.assert_allclose(d1, d2, rtol=1e-4, atol=1e-4)
    # without X: the training points themselves, each left out of its own list
    d1, i1 = ours.kneighbors()
    d2, i2 = ref.kneighbors()
    assert (i1 == i2).mean() > 0.999
    np.testing.assert_allclose(d1, d2, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("algorithm", ["hnsw", "trees", "ivf", "auto"])
def test_approximate_algorithms_recall(data, algorithm):
    X, Q = data
    ours = NearestNeighbors(n_neighbors=10, algorithm=algorithm).fit(X)
    _, truth = SkNN(n_neighbors=10).fit(X).kneighbors(Q)
    dist, ind = ours.kneighbors(Q)
    recall = np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(ind, truth)])
    assert recall >= 0.9, recall
    assert np.all(np.diff(dist, axis=1) >= -1e-6)  # ascending
    # the distances reported are the true Euclidean distances of the ids reported
    true = np.linalg.norm(X[ind] - Q[:, None, :], axis=2)
    np.testing.assert_allclose(dist, true, rtol=1e-4, atol=1e-4)
    assert ind.min() >= 0 and ind.shape == (len(Q), 10)


def test_graphs_equal_sklearn(data):
    X, Q = data
    ours = NearestNeighbors(n_neighbors=5, radius=2.5, algorithm="flat").fit(X)
    ref = SkNN(n_neighbors=5, radius=2.5).fit(X)
    for mode in ("connectivity", "distance"):
        a, b = ours.kneighbors_graph(Q, mode=mode), ref.kneighbors_graph(Q, mode=mode)
        assert sp.isspmatrix_csr(a) and a.shape == b.shape
        np.testing.assert_allclose(a.toarray(), b.toarray(), rtol=1e-4, atol=1e-4)
    d1, i1 = ours.radius_neighbors(Q, sort_results=True)
    d2, i2 = ref.radius_neighbors(Q, sort_results=True)
    for a, b, da, db in zip(i1, i2, d1, d2):
        assert np.array_equal(a, b)
        np.testing.assert_allclose(da, db, rtol=1e-4, atol=1e-4)
    a = ours.radius_neighbors_graph(Q, mode="distance")
    b = ref.radius_neighbors_graph(Q, mode="distance")
    np.testing.assert_allclose(a.toarray(), b.toarray(), rtol=1e-4, atol=1e-4)


def test_transformer_equals_sklearn_and_feeds_precomputed_consumers(data):
    from sklearn.cluster import DBSCAN, HDBSCAN
    from sklearn.manifold import TSNE, Isomap
    from sklearn.pipeline import make_pipeline

    X, _ = data
    ours = KNeighborsTransformer(n_neighbors=10, mode="distance").fit_transform(X)
    ref = SkTransformer(n_neighbors=10, mode="distance").fit_transform(X)
    assert sp.isspmatrix_csr(ours) and ours.nnz == ref.nnz == len(X) * 11
    np.testing.assert_allclose(ours.toarray(), ref.toarray(), rtol=1e-4, atol=1e-4)

    from sklearn.datasets import make_swiss_roll

    roll, _ = make_swiss_roll(500, random_state=0)
    emb = make_pipeline(KNeighborsTransformer(n_neighbors=10, algorithm="hnsw"),
                        Isomap(n_neighbors=10, metric="precomputed")).fit_transform(roll)
    ref = make_pipeline(SkTransformer(n_neighbors=10),
                        Isomap(n_neighbors=10, metric="precomputed")).fit_transform(roll)
    assert emb.shape == (500, 2) and np.isfinite(emb).all()
    # the same graph gives the same embedding up to the sign of each axis
    np.testing.assert_allclose(np.abs(emb), np.abs(ref), rtol=1e-3, atol=1e-3)
    # HDBSCAN wants a symmetric sparse matrix: symmetrise the k-NN graph first
    # (and a connected one: blobs that touch)
    from sklearn.datasets import make_blobs

    blobs, _ = make_blobs(500, n_features=5, centers=3, cluster_std=2.0, random_state=0)
    G = KNeighborsTransformer(n_neighbors=30).fit_transform(blobs)
    labels = HDBSCAN(metric="precomputed", min_samples=10, copy=True).fit_predict(G.maximum(G.T))
    Gs = SkTransformer(n_neighbors=30).fit_transform(blobs)
    ref_labels = HDBSCAN(metric="precomputed", min_samples=10, copy=True).fit_predict(Gs.maximum(Gs.T))
    assert labels.max() >= 1 and np.array_equal(labels, ref_labels)
    db = make_pipeline(KNeighborsTransformer(n_neighbors=15),
                       DBSCAN(metric="precomputed", eps=3.0)).fit_predict(X)
    assert db.max() >= 1
    tsne = make_pipeline(KNeighborsTransformer(n_neighbors=30),
                         TSNE(metric="precomputed", init="random", perplexity=8, max_iter=250,
                              random_state=0)).fit_transform(X[:200])
    assert tsne.shape == (200, 2) and np.isfinite(tsne).all()


def test_pickle_and_errors(data):
    X, Q = data
    nn = NearestNeighbors(n_neighbors=4, algorithm="hnsw").fit(X)
    back = pickle.loads(pickle.dumps(nn))
    assert np.array_equal(back.kneighbors(Q)[1], nn.kneighbors(Q)[1])
    with pytest.raises(ValueError, match="n_neighbors"):
        nn.kneighbors(Q, n_neighbors=len(X) + 1)
    with pytest.raises(ValueError, match="features"):
        nn.kneighbors(Q[:, :5])
    with pytest.raises(ValueError, match="algorithm"):
        NearestNeighbors(algorithm="ball_tree").fit(X)
    with pytest.raises(ValueError, match="metric"):
        NearestNeighbors(metric="manhattan").fit(X)


def test_knn_graph_csr(data):
    X, _ = data
    ids, dist = nearkit.knn_graph(X, 6)
    G = nearkit.knn_graph(X, 6, output="csr")
    assert sp.isspmatrix_csr(G) and G.shape == (len(X), len(X)) and G.nnz == len(X) * 6
    assert np.array_equal(G.indices.reshape(len(X), 6), ids)
    np.testing.assert_allclose(G.data.reshape(len(X), 6), dist)
    with pytest.raises(ValueError, match="output"):
        nearkit.knn_graph(X, 6, output="dense")
