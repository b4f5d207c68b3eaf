"""nearkit.compat.annoy.AnnoyIndex against the real annoy package, call for call."""

import copy
import os
import pickle

import numpy as np
import pytest

from nearkit.compat.annoy import AnnoyIndex as NkAnnoy

annoy = pytest.importorskip("annoy")
RealAnnoy = annoy.AnnoyIndex

METRICS = ["angular", "euclidean", "manhattan", "dot", "hamming"]


def outcome(fn):
    """What a call did: ("ok", value) or ("raise", exception type name, message)."""
    try:
        return ("ok", fn())
    except Exception as exc:  # noqa: BLE001 - comparing exactly what was raised
        return ("raise", type(exc).__name__, str(exc))


def same(script):
    """Run script(cls) on both classes and require identical outcomes."""
    a, b = outcome(lambda: script(RealAnnoy)), outcome(lambda: script(NkAnnoy))
    assert a == b
    return a


def data(metric, n=600, f=12, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, f)).astype(np.float32)
    return (x > 0).astype(np.float32) if metric == "hamming" else x


def filled(cls, metric, x, ids=None):
    t = cls(x.shape[1], metric)
    for i, v in zip(range(len(x)) if ids is None else ids, x):
        t.add_item(int(i), v)
    return t


def test_worked_distances_and_types():
    u, v = [1, 2, 3], [-1, 0.5, 2]
    expected = {"angular": 0.7747849, "euclidean": 2.6925824, "manhattan": 4.5, "dot": 6.0,
                "hamming": 2.0}
    for metric, value in expected.items():
        def script(cls):
            t = cls(3, metric)
            t.add_item(0, u)
            t.add_item(1, v)
            t.add_item(2, [0, 0, 0])
            r = (t.get_distance(0, 1), t.get_item_vector(1), t.get_n_items(), t.get_n_trees(),
                 t.get_nns_by_vector([1, 1, 1], 3))  # before build: []
            return r, t.build(4), t.get_nns_by_vector([1, 1, 1], 3, include_distances=True)
        res = same(lambda cls: _rounded(script(cls)))
        assert res[1][0][0] == pytest.approx(value, abs=1e-5)


def _rounded(x):
    if isinstance(x, float):
        return round(x, 5)
    if isinstance(x, (list, tuple)):
        return type(x)(_rounded(v) for v in x)
    return x


def test_interface_surface():
    real = {m for m in dir(RealAnnoy) if not m.startswith("_")}
    ours = {m for m in dir(NkAnnoy) if not m.startswith("_")}
    assert real <= ours
    t = NkAnnoy(3, "angular")
    assert t.f == 3
    with pytest.raises(TypeError, match="pickle"):
        pickle.dumps(t)
    with pytest.raises(TypeError, match="pickle"):
        copy.deepcopy(t)


@pytest.mark.parametrize("call", [
    lambda t: t.add_item(-1, [1, 2, 3]),
    lambda t: t.add_item(0, [1, 2]),
    lambda t: t.add_item(0, []),
    lambda t: t.add_item(0, np.zeros((1, 3))),
    lambda t: t.add_item(2**31, [1, 2, 3]),
    lambda t: t.add_item(-2**31 - 1, [1, 2, 3]),
    lambda t: t.add_item(1.0, [1, 2, 3]),
    lambda t: t.add_item(0, None),
    lambda t: t.add_item(0, [1, "a", 3]),
    lambda t: t.add_item(np.int64(4), np.arange(3)),
    lambda t: t.add_item(0, {0: 1.0, 1: 2.0, 2: 3.0}),
    lambda t: t.get_item_vector(0),
    lambda t: t.get_item_vector(-1),
    lambda t: t.get_distance(0, 1),
    lambda t: t.get_nns_by_item(0, 3),
    lambda t: t.get_nns_by_vector([1, 2], 3),
    lambda t: t.get_nns_by_vector([1, 2, 3], 2**31),
    lambda t: t.get_nns_by_vector([1, 2, 3], 3, include_distances="yes"),
    lambda t: t.set_seed(1.5),
    lambda t: t.set_seed(2**31),
    lambda t: t.set_seed(7),
    lambda t: t.verbose(False),
    lambda t: t.save("/tmp/never-written.ann"),
    lambda t: t.load("/nonexistent/dir/x.ann"),
    lambda t: t.build(1.0),
    lambda t: t.unbuild(),
    lambda t: t.unload(),
], ids=lambda c: "")
def test_same_errors_on_an_empty_index(call):
    same(lambda cls: call(cls(3, "angular")))


def test_constructor_errors():
    same(lambda cls: cls(3, "foo"))
    same(lambda cls: cls(3, b"angular"))
    same(lambda cls: cls(3.0, "angular"))
    with pytest.warns(FutureWarning):
        NkAnnoy(3)


def test_lifecycle_errors(tmp_path):
    fn = str(tmp_path / "x.ann")

    def script(cls):
        t = filled(cls, "euclidean", data("euclidean", 50, 4))
        steps = [outcome(lambda: t.build(3)), outcome(lambda: t.build(3)),
                 outcome(lambda: t.unbuild()), outcome(lambda: t.get_n_trees()),
                 outcome(lambda: t.add_item(60, [1, 2, 3, 4])), outcome(lambda: t.get_n_items()),
                 outcome(lambda: t.build(2)), outcome(lambda: t.save(fn)),
                 outcome(lambda: t.add_item(0, [1, 2, 3, 4])), outcome(lambda: t.build(2)),
                 outcome(lambda: t.unbuild()), outcome(lambda: t.get_n_trees()),
                 outcome(lambda: t.unload()), outcome(lambda: t.get_n_items()),
                 outcome(lambda: t.add_item(0, [1, 2, 3, 4])), outcome(lambda: t.get_n_items())]
        return steps
    same(script)


def test_file_errors(tmp_path):
    empty = tmp_path / "empty.ann"
    empty.write_bytes(b"")
    odd = tmp_path / "odd.ann"
    odd.write_bytes(b"x" * 13)
    same(lambda cls: cls(3, "angular").load(str(tmp_path / "missing.ann")))
    # annoy appends a stale errno to this message; the text before it is what's stable
    a = outcome(lambda: RealAnnoy(3, "angular").load(str(empty)))
    b = outcome(lambda: NkAnnoy(3, "angular").load(str(empty)))
    assert a[:2] == b[:2] and a[2].split(":")[0] == b[2].split(":")[0] == "Size of file is zero"
    same(lambda cls: cls(3, "angular").load(str(odd)))


def test_holes_in_ids():
    x = data("angular", 5, 4)

    def script(cls):
        t = filled(cls, "angular", x, ids=[0, 3, 10, 11, 100])
        res = [t.get_n_items(), t.get_item_vector(50), round(t.get_distance(0, 50), 5)]
        t.build(5)
        res += [t.get_nns_by_item(0, 200), t.get_nns_by_item(50, 3),
                outcome(lambda: t.get_nns_by_item(101, 3))]
        return res
    res = same(script)[1]
    assert res[0] == 101 and res[1] == [0.0] * 4
    assert sorted(res[3]) == [0, 3, 10, 11, 100]  # holes never come back


def test_deliberate_divergences():
    t = filled(NkAnnoy, "angular", data("angular", 20, 4))
    t.build(2)
    with pytest.raises(AttributeError):
        t.f = 2
    with pytest.raises(ValueError, match="positive"):
        NkAnnoy(0, "angular")
    with pytest.raises(ValueError, match="n_jobs"):
        filled(NkAnnoy, "angular", data("angular", 20, 4)).build(2, n_jobs=0)


def test_add_item_after_build_is_accepted_as_in_annoy():
    x = data("euclidean", 300, 6, seed=3)
    real, ours = filled(RealAnnoy, "euclidean", x), filled(NkAnnoy, "euclidean", x)
    real.build(4, n_jobs=1)
    ours.build(4, n_jobs=1)
    moved = [9.0] * 6
    # an existing id: annoy keeps its tree place and scores it with the new vector
    assert real.add_item(5, moved) is None and ours.add_item(5, moved) is None
    for t in (real, ours):
        assert t.get_item_vector(5) == moved
        assert t.get_distance(5, 5) == 0.0
        assert t.get_n_items() == 300
    ids, dist = ours.get_nns_by_vector(x[5], 300, search_k=-2, include_distances=True)
    assert ids[-1] == 5 and dist[-1] == pytest.approx(np.linalg.norm(x[5] - 9.0), rel=1e-5)
    # a new id: annoy would overwrite a tree node; here it joins the trees
    ours.add_item(300, [20.0] * 6)
    assert ours.get_n_items() == 301
    assert ours.get_nns_by_vector([20.0] * 6, 1, search_k=-2) == [300]
    assert ours.get_nns_by_vector([20.0] * 6, 1) == [300]


@pytest.mark.parametrize("metric", METRICS)
def test_exhaustive_search_matches_annoy(metric):
    x = data(metric, 800, 10, seed=1)
    q = data(metric, 20, 10, seed=2)
    real, ours = filled(RealAnnoy, metric, x), filled(NkAnnoy, metric, x)
    real.build(5, n_jobs=1)
    ours.build(5, n_jobs=1)
    for v in q:
        a = real.get_nns_by_vector(v.tolist(), 10, search_k=-2, include_distances=True)
        b = ours.get_nns_by_vector(v.tolist(), 10, search_k=-2, include_distances=True)
        assert isinstance(b, tuple) and isinstance(b[0], list) and isinstance(b[1][0], float)
        np.testing.assert_allclose(b[1], a[1], rtol=1e-5, atol=1e-5)
        if metric != "hamming":  # hamming has ties; both break them by id
            assert a[0] == b[0]
        else:
            assert a == b
    for i in (0, 5):
        assert real.get_nns_by_item(i, 5, search_k=10**6) == ours.get_nns_by_item(i, 5, search_k=10**6)
        assert real.get_item_vector(i) == ours.get_item_vector(i)
        assert real.get_distance(i, i + 1) == pytest.approx(ours.get_distance(i, i + 1), rel=1e-5)
    assert ours.get_nns_by_vector(q[0], 0) == [] and ours.get_nns_by_vector(q[0], 3, search_k=0) == []


@pytest.mark.parametrize("metric", METRICS)
def test_files_written_by_annoy_read_back(tmp_path, metric):
    x = data(metric, 1500, 16, seed=3)
    q = data(metric, 30, 16, seed=4)
    fn = str(tmp_path / f"{metric}.ann")
    real = filled(RealAnnoy, metric, x, ids=list(range(0, 3000, 2)))  # holes at odd ids
    real.build(8, n_jobs=1)
    real.save(fn)
    ours = NkAnnoy(16, metric)
    assert ours.load(fn) is True
    assert (ours.get_n_items(), ours.get_n_trees()) == (real.get_n_items(), real.get_n_trees())
    for search_k in (-1, 50, 400):
        for v in q:
            a = real.get_nns_by_vector(v, 10, search_k=search_k, include_distances=True)
            b = ours.get_nns_by_vector(v, 10, search_k=search_k, include_distances=True)
            assert a[0] == b[0]
            np.testing.assert_allclose(b[1], a[1], rtol=1e-5, atol=1e-5)
    assert real.get_nns_by_item(10, 10) == ours.get_nns_by_item(10, 10)
    assert real.get_item_vector(10) == ours.get_item_vector(10)
    same(lambda cls: cls(16, metric).load(fn) and cls(16, metric).add_item(0, x[0]))
    with pytest.raises(Exception, match="loaded index"):
        ours.add_item(0, x[0])


@pytest.mark.parametrize("metric", METRICS)
def test_files_written_by_nearkit_open_in_annoy(tmp_path, metric):
    x = data(metric, 1200, 16, seed=5)
    fn = str(tmp_path / f"nk-{metric}.ann")
    ours = filled(NkAnnoy, metric, x)
    ours.build(6, n_jobs=2)
    assert ours.save(fn) is True
    real = RealAnnoy(16, metric)
    real.load(fn)
    assert (real.get_n_items(), real.get_n_trees()) == (ours.get_n_items(), ours.get_n_trees())
    for i in range(0, 1200, 97):
        assert real.get_nns_by_item(i, 10) == ours.get_nns_by_item(i, 10)


def test_small_index_file_layout_matches_annoy(tmp_path):
    """Fewer items than a bucket holds: every tree is one root bucket; annoy's loader then
    counts originals and copies as roots (19 for 10 trees) -- and so do we."""
    def script(cls):
        t = cls(3, "angular")
        for i in range(3):
            t.add_item(i, [i, 1, 2])
        t.build(10)
        t.save(str(tmp_path / f"{cls.__name__}.ann"))
        return t.get_n_trees(), t.get_n_items(), t.get_nns_by_item(0, 3)
    same(script)


def test_determinism_across_n_jobs():
    x = data("angular", 2000, 16, seed=6)
    results = []
    for jobs in (1, 2, -1):
        t = filled(NkAnnoy, "angular", x)
        t.set_seed(42)
        t.build(10, n_jobs=jobs)
        results.append([t.get_nns_by_item(i, 10) for i in range(0, 2000, 50)])
    assert results[0] == results[1] == results[2]
    planes = []
    for seed in (42, 43):
        t = filled(NkAnnoy, "angular", x)
        t.set_seed(seed)
        t.build(3, n_jobs=1)
        planes.append(t._forest.packed()["planes"])
    assert not np.array_equal(planes[0], planes[1])
    t.unload()  # resets the seed to the default, as annoy does
    assert t._seed == NkAnnoy(16, "angular")._seed


def test_on_disk_build(tmp_path):
    fn = str(tmp_path / "disk.ann")
    x = data("euclidean", 500, 8, seed=7)

    def script(cls):
        t = cls(8, "euclidean")
        ok = t.on_disk_build(fn)
        for i, v in enumerate(x):
            t.add_item(i, v)
        t.build(4)
        saved = t.save(str(tmp_path / "elsewhere.ann"))
        t.unload()
        u = cls(8, "euclidean")
        u.load(fn)
        return ok, saved, os.path.exists(str(tmp_path / "elsewhere.ann")), u.get_n_items(), u.get_n_trees()
    same(script)
    ours = NkAnnoy(8, "euclidean")
    ours.load(fn)
    assert ours.get_nns_by_vector(x[3], 1, search_k=-2) == [3]


def test_damaged_annoy_files_refused(tmp_path):
    x = data("euclidean", 300, 4, seed=8)
    fn = str(tmp_path / "e.ann")
    t = filled(RealAnnoy, "euclidean", x)
    t.build(3)
    t.save(fn)
    raw = bytearray(open(fn, "rb").read())
    node = 16 + 4 * 4
    # point a split node's child far outside the file
    nd = np.frombuffer(bytes(raw), "<i4").reshape(-1, node // 4)
    split = int(np.flatnonzero(nd[300:, 0] > 6)[0]) + 300
    raw[split * node + 8: split * node + 12] = np.int32(10**7).tobytes()
    bad = tmp_path / "bad.ann"
    bad.write_bytes(bytes(raw))
    # load maps the file without reading it (O(1), as annoy); the query that
    # reaches the damaged node refuses it instead of reading past the file
    damaged = NkAnnoy(4, "euclidean")
    damaged.load(str(bad))
    with pytest.raises(ValueError, match="outside the file"):
        for v in x:
            damaged.get_nns_by_vector(v, 5, search_k=-2)
    # a file of the right size for another f/metric: same node size, wrong structure
    noise = tmp_path / "noise.ann"
    noise.write_bytes(np.random.default_rng(0).integers(0, 2**31, 64 * 8, dtype=np.int32).tobytes())
    with pytest.raises(OSError, match="not an annoy index"):
        NkAnnoy(4, "euclidean").load(str(noise))


@pytest.mark.parametrize("metric", METRICS)
def test_nearkit_files_with_holes_open_in_annoy(tmp_path, metric):
    """Holes, including a forest whose roots are single buckets although annoy
    would split them (2 items, ids 0 and 100: written as a split with a zero plane)."""
    fn = str(tmp_path / "holes.ann")
    for ids in ([0, 100], list(range(0, 3000, 3))):
        x = data(metric, len(ids), 3, seed=len(ids))
        ours = filled(NkAnnoy, metric, x, ids=ids)
        ours.build(5)
        ours.save(fn)
        real = RealAnnoy(3, metric)
        real.load(fn)
        assert (real.get_n_items(), real.get_n_trees()) == (ours.get_n_items(), ours.get_n_trees())
        for v in x[:40]:
            assert real.get_nns_by_vector(v, 5) == ours.get_nns_by_vector(v, 5)


def test_saving_a_loaded_index_copies_it(tmp_path):
    x = data("angular", 400, 8, seed=9)
    real = filled(RealAnnoy, "angular", x, ids=list(range(0, 800, 2)))
    real.build(4)
    real.save(str(tmp_path / "a.ann"))
    ours = NkAnnoy(8, "angular")
    ours.load(str(tmp_path / "a.ann"))
    assert ours.save(str(tmp_path / "b.ann")) is True
    again = RealAnnoy(8, "angular")
    again.load(str(tmp_path / "b.ann"))
    assert again.get_n_items() == real.get_n_items() and again.get_n_trees() == real.get_n_trees()
    for i in range(0, 760, 38):  # live items (a hole's zero query ties everywhere)
        assert again.get_nns_by_item(i, 10) == real.get_nns_by_item(i, 10)
        assert again.get_item_vector(i) == real.get_item_vector(i)
        assert again.get_item_vector(i + 1) == [0.0] * 8


GET_DISTANCE_ARGS = [(0, 1), (5, 5), (-1, 0), (0, -1), (0, 40), (40, 0), (1.0, 0), (0, 2.5),
                     (2**31, 0), (0, -2**31 - 1), (2**64, 0), (np.int64(3), True), ("a", 0)]


@pytest.mark.parametrize("state", ["unbuilt", "built", "loaded"])
@pytest.mark.parametrize("metric", METRICS)
def test_get_distance_reads_its_arguments_as_annoy_does(metric, state, tmp_path):
    # get_distance is one C++ call that converts i and j itself: the same values and
    # the same exceptions (type and message) as annoy, in every state of the index.
    x = data(metric, n=40, f=6, seed=3)

    def script(cls):
        t = filled(cls, metric, x)
        if state != "unbuilt":
            t.build(3)
        if state == "loaded":
            path = str(tmp_path / f"{cls.__module__.replace('.', '_')}.ann")
            t.save(path)
            t = cls(x.shape[1], metric)
            t.load(path)
        return [outcome(lambda a=a: round(t.get_distance(*a), 4)) for a in GET_DISTANCE_ARGS]

    same(script)


def test_get_distance_follows_items_added_after_a_call():
    # Its view of the rows is remade once items change (or move when storage grows).
    x = data("euclidean", n=50, f=5, seed=4)

    def script(cls):
        t = filled(cls, "euclidean", x[:10])
        first = round(t.get_distance(0, 9), 4)
        for i in range(10, 50):
            t.add_item(i, x[i])
        return first, round(t.get_distance(0, 49), 4), round(t.get_distance(9, 30), 4)

    same(script)
