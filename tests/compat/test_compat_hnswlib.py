"""nearkit.compat.hnswlib against the real hnswlib package: results, errors and files."""

import pickle

import numpy as np
import pytest

import nearkit.compat.hnswlib as nk

hnswlib = pytest.importorskip("hnswlib")

SPACES = ["l2", "ip", "cosine"]


def data(n=1500, dim=12, seed=0):
    return np.random.default_rng(seed).random((n, dim), dtype=np.float32)


def exact(space, x, q, k):
    if space == "l2":
        d = ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    elif space == "ip":
        d = 1 - q @ x.T
    else:
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        qn = q / np.linalg.norm(q, axis=1, keepdims=True)
        d = 1 - qn @ xn.T
    return np.argsort(d, axis=1, kind="stable")[:, :k], np.sort(d, axis=1)[:, :k]


def built(cls, space, x, **init):
    p = cls.Index(space, x.shape[1])
    p.init_index(max_elements=init.pop("max_elements", len(x)), M=init.pop("M", 16),
                 ef_construction=init.pop("ef_construction", 100), **init)
    p.add_items(x)
    p.set_ef(64)
    return p


def outcome(fn):
    try:
        return ("ok", fn())
    except Exception as exc:  # noqa: BLE001 - comparing what was raised
        return ("raise", type(exc).__name__, str(exc))


def recall(found, truth):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found.tolist(), truth.tolist())])


def test_worked_distances_and_dtypes():
    x = np.array([[1, 2, 3], [-1, 0.5, 2], [0, 0, 0], [3, 0, 0]], np.float32)
    for space in SPACES:
        out = []
        for lib in (hnswlib, nk):
            p = lib.Index(space, 3)
            p.init_index(10)
            p.add_items(x)
            labels, dist = p.knn_query([1, 1, 1], k=4)
            assert labels.dtype == np.uint64 and dist.dtype == np.float32 and labels.shape == (1, 4)
            out.append((labels, dist))
        assert out[0][0].tolist() == out[1][0].tolist()
        np.testing.assert_allclose(out[1][1], out[0][1], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("space", SPACES)
def test_search_close_to_exact_and_to_hnswlib(space):
    x, q = data(), data(100, seed=1)
    truth, tdist = exact(space, x, q, 10)
    ours = built(nk, space, x)
    labels, dist = ours.knn_query(q, k=10)
    assert recall(labels, truth) > 0.97
    ok = labels == truth
    np.testing.assert_allclose(dist[ok], tdist[ok], rtol=1e-4, atol=1e-5)


def test_errors_match_hnswlib():
    x = data(20, 4)

    def script(lib, step):
        p = lib.Index("l2", 4)
        p.init_index(max_elements=10)
        if step == "bad space":
            return lib.Index("hamming", 4)
        if step == "init twice":
            return p.init_index(5)
        if step == "wide":
            return p.add_items(np.zeros((2, 5), np.float32))
        if step == "3-d":
            return p.add_items(np.zeros((1, 2, 4), np.float32))
        if step == "label shape":
            return p.add_items(x[:2], ids=[1, 2, 3])
        if step == "negative id":
            return p.add_items(x[:1], ids=[-1])
        if step == "capacity":  # rows before the failing one stay
            r = outcome(lambda: p.add_items(x[:12]))
            return r, p.get_current_count(), sorted(p.get_ids_list())
        p.add_items(x[:8])
        if step == "scalar get_items":
            return p.get_items(3)
        if step == "return_type":
            return p.get_items([1], return_type="tuple")
        if step == "unknown label":
            return p.get_items([99])
        if step == "delete twice":
            p.mark_deleted(2)
            return p.mark_deleted(2)
        if step == "deleted get_items":
            p.mark_deleted(2)
            return p.get_items([2])
        if step == "undelete live":
            return p.unmark_deleted(2)
        if step == "delete unknown":
            return p.mark_deleted(99)
        if step == "resize below":
            return p.resize_index(3)
        if step == "k too large":
            return p.knn_query(x[0], k=9)
        if step == "replace disabled":
            return p.add_items(x[:1], ids=[50], replace_deleted=True)
        raise AssertionError(step)

    for step in ["bad space", "init twice", "wide", "3-d", "label shape", "negative id", "capacity",
                 "scalar get_items", "return_type", "unknown label", "delete twice", "deleted get_items",
                 "undelete live", "delete unknown", "resize below", "k too large", "replace disabled"]:
        assert outcome(lambda: script(hnswlib, step)) == outcome(lambda: script(nk, step)), step


def test_lifecycle_state_matches_hnswlib():
    x = data(60, 6)

    def script(lib):
        p = lib.Index("cosine", 6)
        before = (p.M, p.ef_construction, p.max_elements, p.element_count, p.ef, p.space, p.dim)
        p.set_ef(7)
        p.init_index(50, 8, 4, 1, True)  # positional: M before ef_construction; efc raised to M
        p.add_items(x[:40])
        p.add_items(x[40:45])  # default ids continue from the rows added
        p.mark_deleted(3)
        p.mark_deleted(41)
        p.add_items(x[45:47], ids=[500, 501], replace_deleted=True)  # take deleted places
        state = (before, p.ef, p.M, p.ef_construction, p.max_elements, p.element_count,
                 p.get_current_count(), sorted(p.get_ids_list()),
                 outcome(lambda: p.add_items(x[:1], ids=[500])))
        p.resize_index(80)
        items = p.get_items([500, 0])
        return state, p.get_max_elements(), np.round(items, 5).tolist()

    assert script(hnswlib) == script(nk)


def test_filter_and_deleted_never_returned():
    x, q = data(800, 8), data(40, 8, seed=3)
    for lib in (hnswlib, nk):
        p = built(lib, "l2", x)
        for label in range(0, 800, 3):
            p.mark_deleted(label)
        labels, _ = p.knn_query(q, k=5, filter=lambda i: i % 2 == 0, num_threads=1)
        assert (labels % 2 == 0).all() and (labels % 3 != 0).all()
    with pytest.raises(ZeroDivisionError):
        built(nk, "l2", x).knn_query(q, k=1, filter=lambda i: 1 // 0)


@pytest.mark.parametrize("space", SPACES)
def test_hnswlib_files_both_ways(tmp_path, space):
    x, q = data(1200, 10), data(60, 10, seed=2)
    truth, _ = exact(space, x, q, 10)
    real = built(hnswlib, space, x)
    real.mark_deleted(7)
    real.save_index(str(tmp_path / "real.bin"))
    ours = nk.Index(space, 10)
    ours.load_index(str(tmp_path / "real.bin"), max_elements=2000)
    assert (ours.ef, ours.get_max_elements(), ours.element_count) == (10, 2000, 1200)
    assert sorted(ours.get_ids_list()) == list(range(1200))
    np.testing.assert_array_equal(ours.get_items([0, 5, 1199]), real.get_items([0, 5, 1199]))
    with pytest.raises(RuntimeError, match="Label not found"):
        ours.get_items([7])
    ours.set_ef(64)
    assert recall(ours.knn_query(q, k=10)[0], truth) > 0.97

    ours.save_index(str(tmp_path / "ours.bin"))
    assert ours.index_file_size() == (tmp_path / "ours.bin").stat().st_size
    back = hnswlib.Index(space, 10)
    back.load_index(str(tmp_path / "ours.bin"))
    assert back.get_max_elements() == 2000 and back.get_current_count() == 1200
    np.testing.assert_array_equal(back.get_items([0, 5, 1199]), real.get_items([0, 5, 1199]))
    with pytest.raises(RuntimeError):
        back.get_items([7])  # the deletion travelled in the file
    back.set_ef(64)
    found = back.knn_query(q, k=10)[0]
    assert 7 not in found
    assert recall(found, truth) > 0.9  # hnswlib searches the graph nearkit wrote
    back.add_items(data(5, 10, seed=9), ids=np.arange(5000, 5005))  # and can keep building on it


def test_file_errors(tmp_path):
    p = nk.Index("l2", 8)
    with pytest.raises(RuntimeError, match="Cannot open file"):
        p.load_index(str(tmp_path / "missing.bin"))
    real = built(hnswlib, "l2", data(50, 4))
    real.save_index(str(tmp_path / "d4.bin"))
    with pytest.raises(RuntimeError, match="4-d"):
        p.load_index(str(tmp_path / "d4.bin"))  # hnswlib itself would load it and answer garbage
    raw = (tmp_path / "d4.bin").read_bytes()
    (tmp_path / "cut.bin").write_bytes(raw[:-3])
    with pytest.raises(RuntimeError, match="corrupted"):
        nk.Index("l2", 4).load_index(str(tmp_path / "cut.bin"))


def test_pickle_and_copy_keep_results_and_ef():
    x, q = data(600, 9), data(30, 9, seed=4)
    p = built(nk, "ip", x)
    p.ef = 33
    p.mark_deleted(4)
    for copy in (pickle.loads(pickle.dumps(p)), nk.Index(p)):
        assert (copy.ef, copy.M, copy.ef_construction, copy.element_count) == (33, 16, 100, 600)
        a, b = p.knn_query(q, k=5), copy.knn_query(q, k=5)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        copy.resize_index(601)
        copy.add_items(x[:1])  # the default label counter travelled too
        assert 600 in copy.get_ids_list()
    empty = pickle.loads(pickle.dumps(nk.Index("l2", 3)))
    assert (empty.space, empty.dim, empty.max_elements) == ("l2", 3, 0)


def test_before_init_raises_instead_of_crashing():
    p = nk.Index("l2", 4)
    for call in (lambda: p.knn_query(np.zeros(4)), lambda: p.add_items(np.zeros(4)),
                 lambda: p.get_current_count(), lambda: p.save_index("/tmp/x.bin"),
                 lambda: p.mark_deleted(0), lambda: nk.BFIndex("l2", 4).knn_query(np.zeros(4))):
        with pytest.raises(RuntimeError, match="init_index"):
            call()


def test_bf_index_matches_numpy_and_files(tmp_path):
    x, q = data(700, 6), data(20, 6, seed=5)
    real, ours = hnswlib.BFIndex("l2", 6), nk.BFIndex("l2", 6)
    for p in (real, ours):
        p.init_index(1000)
        p.add_items(x)
        p.delete_vector(3)
        p.delete_vector(12345)  # unknown: ignored
    truth = exact("l2", np.delete(x, 3, axis=0), q, 8)
    labels, dist = ours.knn_query(q, k=8)
    np.testing.assert_allclose(dist, truth[1], rtol=1e-5, atol=1e-5)
    assert labels.tolist() == real.knn_query(q, k=8)[0].tolist()
    assert ours.get_current_count() == real.get_current_count() == 699
    real.save_index(str(tmp_path / "bf.bin"))
    loaded = nk.BFIndex("l2", 6)
    loaded.load_index(str(tmp_path / "bf.bin"))
    assert loaded.knn_query(q, k=8)[0].tolist() == labels.tolist()
    ours.save_index(str(tmp_path / "ours_bf.bin"))
    mine, theirs = (tmp_path / "ours_bf.bin").read_bytes(), (tmp_path / "bf.bin").read_bytes()
    used = 24 + 699 * (6 * 4 + 8)  # hnswlib writes its unused slots' uninitialised memory
    assert len(mine) == len(theirs) and mine[:used] == theirs[:used]
    even = ours.knn_query(q, k=3, filter=lambda i: i % 2 == 0)[0]
    assert (even % 2 == 0).all()
    with pytest.raises(RuntimeError, match="contiguous"):
        ours.knn_query(q, k=800)
