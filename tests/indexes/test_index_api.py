"""What users of hnswlib, faiss and sklearn take for granted, on every index kind:
progress=, tune(), crossing a process boundary, one default metric, and no silent
'euclidean'. (get / in / len / ids(), pickle and deepcopy and the one read-only
error run on every kind in tests/indexes/test_index_contract.py.)"""

import inspect
import multiprocessing
import pickle

import numpy as np
import pytest

import nearkit
from nearkit import datasets, evaluate

DIM = 16


def make(kind, metric="l2"):
    if kind == "flat":
        return nearkit.Flat(DIM, metric)
    if kind == "hnsw":
        return nearkit.HNSW(DIM, metric, M=8, ef_construction=64)
    if kind == "trees":
        return nearkit.Trees(DIM, metric, n_trees=8)
    if kind == "ivf":
        return nearkit.IVF(DIM, metric, nlist=16)
    if kind == "ivf-pq-refine":
        return nearkit.index_factory(DIM, "IVF16,PQ4,RFlat", metric=metric)
    raise AssertionError(kind)


KINDS = ["flat", "hnsw", "trees", "ivf", "ivf-pq-refine"]


@pytest.fixture(scope="module")
def data():
    x = datasets.synthetic_clustered(2100, DIM, seed=7)
    return x[:2000], x[2000:]


def built(kind, data, metric="l2", ids=None):
    base, _ = data
    ix = make(kind, metric)
    if kind.startswith("ivf"):
        ix.train(base)
    ix.add(base, ids=ids)
    return ix


def test_get_on_an_index_keeping_only_codes_says_so(data):
    ix = nearkit.index_factory(DIM, "IVF16,PQ4")
    ix.train(data[0])
    ix.add(data[0])
    with pytest.raises(TypeError, match="keeps only codes.*refine=True"):
        ix.get([0])
    assert 0 in ix and ix.ids().size == len(data[0])


def _search_in_child(ix, q):
    return ix.search(q, 3)[0]


def test_an_index_crosses_a_process_boundary(data):
    ix = built("hnsw", data)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(1) as pool:
        got = pool.apply(_search_in_child, (ix, data[1][:4]))
    np.testing.assert_array_equal(got, ix.search(data[1][:4], 3)[0])


@pytest.mark.parametrize("kind", KINDS)
def test_progress_reports_every_vector_and_changes_nothing(kind, data):
    base, q = data
    seen = []
    ix = make(kind)
    if kind.startswith("ivf"):
        ix.train(base, progress=lambda done, total: seen.append(("train", done, total)))
        assert seen[-1] == ("train", ix.niter, ix.niter)
    ix.add(base, progress=lambda done, total: seen.append(("add", done, total)))
    adds = [s for s in seen if s[0] == "add"]
    assert adds[0] == ("add", 0, len(base)) and adds[-1] == ("add", len(base), len(base))
    assert len(adds) > 2 and [a[1] for a in adds] == sorted(a[1] for a in adds)
    plain = built(kind, data)
    np.testing.assert_array_equal(ix.search(q, 5)[0], plain.search(q, 5)[0])


def test_progress_true_uses_tqdm_and_bad_progress_is_refused(data, capsys):
    ix = nearkit.Flat(DIM)
    ix.add(data[0], progress=True)
    assert len(ix) == len(data[0])
    with pytest.raises(TypeError, match="progress"):
        ix.add(data[0], progress="yes")


def test_knn_graph_and_kmeans_progress(data):
    base = data[0][:700]
    seen = []
    ids, dist = nearkit.knn_graph(base, 5, progress=lambda d, t: seen.append((d, t)))
    want_ids, want_dist = nearkit.knn_graph(base, 5)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(dist, want_dist)
    assert seen[0] == (0, 700) and seen[-1] == (700, 700) and len(seen) > 2
    seen.clear()
    nearkit.knn_graph(base, 5, exact=False, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (700, 700)
    seen.clear()
    res = nearkit.kmeans(base, 8, niter=4, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)] and res.centroids.shape == (8, DIM)


@pytest.mark.parametrize("kind, params", [("hnsw", {"ef"}), ("trees", {"search_k"}),
                                          ("ivf", {"nprobe"}),
                                          ("ivf-pq-refine", {"nprobe", "k_factor"})])
def test_tune_reaches_the_target_and_keeps_the_setting(kind, params, data, tmp_path):
    ix = built(kind, data)
    res = ix.tune(target_recall=0.9, k=10)
    assert set(res.params) == params and res.reached and res.recall >= 0.9
    assert res.params in [p.params for p in res.curve]
    first_reaching = next(i for i, p in enumerate(res.curve) if p.recall >= 0.9)
    assert all(p.recall < 0.9 for p in res.curve[:first_reaching])
    # the chosen setting is now the default: searching without it gives the same answer
    q = data[1]
    np.testing.assert_array_equal(ix.search(q, 10)[0], ix.search(q, 10, **res.params)[0])
    ix.save(tmp_path / "tuned.nk")
    again = nearkit.load(tmp_path / "tuned.nk")
    np.testing.assert_array_equal(again.search(q, 10)[0], ix.search(q, 10)[0])
    # its claim holds on fresh queries against exact search
    truth = evaluate.ground_truth(data[0], q, 10)
    assert evaluate.recall_at_k(ix.search(q, 10)[0], truth) >= 0.8


def test_tune_with_given_queries_and_on_flat(data):
    ix = built("hnsw", data)
    res = ix.tune(queries=data[1], target_recall=0.99, k=5)
    assert res.n_queries == len(data[1]) and res.recall >= 0.99
    assert ix.ef_search == res.params["ef"]
    flat = built("flat", data).tune()
    assert flat.params == {} and flat.recall == 1.0 and flat.reached
    with pytest.raises(ValueError, match="target_recall"):
        ix.tune(target_recall=1.5)
    with pytest.raises(ValueError, match="holds vectors"):
        nearkit.HNSW(DIM).tune()


def test_tune_that_cannot_reach_the_target_warns_and_keeps_the_best(rng):
    # 100 copies of each of 20 vectors: exact search breaks the ties by insertion order,
    # the trees by their own leaf order, so no setting can match the truth exactly.
    base = np.repeat(rng.standard_normal((20, DIM)).astype(np.float32), 100, axis=0)
    ix = nearkit.Trees(DIM, n_trees=4, seed=3)
    ix.add(base)
    with pytest.warns(RuntimeWarning, match="no setting reached recall 1.0"):
        res = ix.tune(queries=base[::100] + 0.01, target_recall=1.0, k=10)
    assert not res.reached and res.recall < 1.0
    assert res.recall == max(p.recall for p in res.curve)
    assert ix.search_k == res.params["search_k"]


def test_ivf_default_nprobe_gives_good_recall_on_a_small_index(data):
    base, q = data
    ix = nearkit.IVF(DIM, "l2", nlist=36)
    ix.train(base)
    ix.add(base)
    truth = evaluate.ground_truth(base, q, 10)
    assert ix.nprobe == 6
    assert evaluate.recall_at_k(ix.search(q, 10)[0], truth) >= 0.9
    from nearkit.compat import faiss

    assert faiss.IndexIVFFlat(faiss.IndexFlatL2(DIM), DIM, 64).nprobe == 1  # faiss's own default


def test_one_default_metric_and_no_silent_euclidean():
    defaults = {cls.__name__: inspect.signature(cls).parameters["metric"].default
                for cls in (nearkit.Flat, nearkit.HNSW, nearkit.Trees, nearkit.IVF)}
    assert set(defaults.values()) == {"l2"}, defaults
    assert inspect.signature(nearkit.index_factory).parameters["metric"].default == "l2"
    for make_index in (lambda m: nearkit.Flat(4, m), lambda m: nearkit.HNSW(4, m),
                       lambda m: nearkit.Trees(4, m), lambda m: nearkit.IVF(4, m, nlist=2)):
        with pytest.raises(ValueError, match="'l2'.*squared Euclidean"):
            make_index("euclidean")
    assert nearkit.Flat(4, "sqeuclidean").metric == "l2"


def test_ivf_with_train_size_keeps_vectors_exactly_then_trains_itself(data):
    base, q = data
    ix = nearkit.IVF(DIM, nlist=16, train_size=700)
    exact = nearkit.Flat(DIM)
    for start in range(0, 600, 100):  # kept as they are: searched exactly
        ix.add(base[start:start + 100])
        exact.add(base[start:start + 100])
    assert not ix.is_trained and len(ix) == 600 and 599 in ix
    np.testing.assert_array_equal(ix.search(q, 5)[0], exact.search(q, 5)[0])
    np.testing.assert_array_equal(ix.search(q, 5, filter=np.arange(0, 600, 3))[0],
                                  exact.search(q, 5, filter=np.arange(0, 600, 3))[0])
    assert ix.remove([0, 1]) == 2 and len(ix) == 598
    twin = pickle.loads(pickle.dumps(ix))  # the kept vectors travel with it
    assert len(twin) == 598 and not twin.is_trained
    ix.add(base[600:1000], ids=np.arange(600, 1000))
    assert ix.is_trained and len(ix) == 998 and 0 not in ix and 999 in ix
    truth = evaluate.ground_truth(base[2:1000], q, 10) + 2
    assert evaluate.recall_at_k(ix.search(q, 10)[0], truth) >= 0.9
    np.testing.assert_allclose(ix.get([5]), base[5:6], atol=1e-6)  # flat codec: exact
    twin.add(base[600:1000], ids=np.arange(600, 1000))
    np.testing.assert_array_equal(twin.search(q, 10)[0], ix.search(q, 10)[0])
    with pytest.raises(nearkit.NotTrainedError):
        nearkit.IVF(DIM, nlist=16).add(base[:10])  # without train_size: faiss's rule
