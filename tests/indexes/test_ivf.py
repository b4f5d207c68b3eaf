"""IVF: recall per codec on real GloVe data, exactness of the flat codec,
mutation, filters, files, ISAs and clear errors."""

import numpy as np
import pytest

import nearkit
from nearkit import _core
from nearkit.evaluate import ground_truth, recall_at_k
from nearkit.metrics import reference_distances

NLIST = 64


@pytest.fixture(scope="module")
def truth(glove_20k):
    return {m: ground_truth(glove_20k.base, glove_20k.queries, 10, m) for m in ("cosine", "l2")}


def build(data, metric="cosine", codec="flat", **kw):
    ix = nearkit.IVF(data.base.shape[1], metric, nlist=NLIST, codec=codec, **kw)
    ix.train(data.base)
    ix.add(data.base)
    return ix


# recall floors at nprobe=16 of 64 lists, a little under what was measured
CASES = [
    ("flat", {}, 0.95), ("fp16", {}, 0.95), ("sq8", {}, 0.9),
    ("pq10", {}, 0.45), ("pq25x4fs", {}, 0.5),
    ("pq25x4fs", {"refine": True, "k_factor": 8}, 0.9),
    ("flat", {"transform": "pca40"}, 0.7), ("pq10", {"transform": "opq10"}, 0.45),
]


@pytest.mark.parametrize("codec,kw,floor", CASES, ids=[f"{c}-{'-'.join(k)}" for c, k, _ in CASES])
def test_recall_per_codec(glove_20k, truth, codec, kw, floor):
    ix = build(glove_20k, codec=codec, **kw)
    ids, dist = ix.search(glove_20k.queries, 10, nprobe=16)
    r = recall_at_k(ids, truth["cosine"], 10)
    assert r >= floor, (codec, kw, r)
    assert np.all(np.diff(dist, axis=1) >= -1e-6)  # sorted ascending


@pytest.mark.parametrize("codec", ["flat", "sq8", "pq25x4fs"])
def test_recall_l2_and_more_probes_help(glove_20k, truth, codec):
    ix = build(glove_20k, "l2", codec)
    r = [recall_at_k(ix.search(glove_20k.queries, 10, nprobe=p)[0], truth["l2"], 10) for p in (1, 8, 64)]
    assert r[0] < r[1] <= r[2] + 1e-9
    assert r[1] > 0.5


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_flat_all_probes_is_exact(glove_20k, metric):
    ix = build(glove_20k, metric, "flat")
    ids, dist = ix.search(glove_20k.queries[:20], 10, nprobe=NLIST)
    ref = reference_distances(glove_20k.queries[:20], glove_20k.base, metric)
    expect = np.sort(ref, axis=1)[:, :10]
    np.testing.assert_allclose(dist, expect, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.take_along_axis(ref, ids, 1), dist, rtol=1e-4, atol=1e-4)


def test_refine_distances_are_exact(glove_20k):
    ix = build(glove_20k, "l2", "pq25x4fs", refine=True)
    q = glove_20k.queries[:10]
    ids, dist = ix.search(q, 5, nprobe=8, k_factor=4)
    ref = reference_distances(q, glove_20k.base, "l2")
    np.testing.assert_allclose(dist, np.take_along_axis(ref, ids, 1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("codec", ["flat", "pq25x4fs", "sq8"])
def test_every_isa_gives_the_same_answer(glove_20k, codec):
    ix = build(glove_20k, "cosine", codec)
    q = glove_20k.queries[:50]
    before = _core.isa()
    results = {}
    try:
        for isa in _core.supported_isas():
            _core.set_isa(isa)
            results[isa] = ix.search(q, 10, nprobe=8)
    finally:
        _core.set_isa(before)
    ids0, d0 = results["scalar"]
    for isa, (ids, d) in results.items():
        np.testing.assert_allclose(d, d0, rtol=1e-4, atol=1e-5)
        assert (ids == ids0).mean() > 0.98, isa  # float ties may swap


def test_incremental_add_remove_and_ids(glove_20k):
    base = glove_20k.base[:3000]
    ix = nearkit.IVF(50, "l2", nlist=16, codec="pq10x4fs")
    ix.train(base)
    ix.add(base[:1000])
    ix.add(base[1000:], ids=np.arange(5000, 7000))
    assert len(ix) == 3000
    ids, _ = ix.search(base[1500], 1, nprobe=16, k_factor=1)
    whole = nearkit.IVF(50, "l2", nlist=16, codec="pq10x4fs")
    whole.train(base)
    whole.add(base, ids=np.concatenate([np.arange(1000), np.arange(5000, 7000)]))
    a = ix.search(base[:50], 5, nprobe=4)
    b = whole.search(base[:50], 5, nprobe=4)
    assert (a[0] == b[0]).all() and np.allclose(a[1], b[1])
    assert ix.remove([5000, 5001, 123456]) == 2
    assert len(ix) == 2998
    found, _ = ix.search(base[1000:1002], 10, nprobe=16)
    assert not np.isin(found, [5000, 5001]).any()
    with pytest.raises(ValueError, match="duplicate id 7"):
        ix.add(base[:1], ids=[7])
    ix.reset()
    assert len(ix) == 0
    ids, dist = ix.search(base[0], 3, nprobe=4)
    assert (ids == -1).all() and np.isinf(dist).all()


def test_not_trained_and_too_few_points():
    ix = nearkit.IVF(8, "l2", nlist=32)
    x = np.random.default_rng(0).random((20, 8), dtype=np.float32)
    with pytest.raises(nearkit.NotTrainedError, match="not trained"):
        ix.add(x)
    with pytest.raises(nearkit.NotTrainedError):
        ix.search(x[0], 1)
    with pytest.raises(ValueError, match=r"training points \(20\).*nlist=32"):
        ix.train(x)
    pq = nearkit.IVF(8, "l2", nlist=1, codec="pq2")
    with pytest.raises(ValueError, match="PQ centroids"):
        pq.train(x)
    with pytest.warns(RuntimeWarning, match="please provide at least"):
        nearkit.IVF(8, "l2", nlist=4).train(x)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown codec"):
        nearkit.IVF(8, codec="pq")
    with pytest.raises(ValueError, match="multiple of the number of sub-quantizers"):
        nearkit.IVF(10, codec="pq3")
    with pytest.raises(ValueError, match="unknown transform"):
        nearkit.IVF(8, transform="rot8")
    with pytest.raises(ValueError, match="nlist"):
        nearkit.IVF(8, nlist=0)
    ix = nearkit.IVF(4, "l2", nlist=2)
    with pytest.warns(RuntimeWarning, match="please provide"):
        ix.train(np.eye(4, dtype=np.float32))
    with pytest.raises(ValueError, match="nprobe"):
        ix.search(np.ones(4), 1, nprobe=0)
    with pytest.raises(ValueError, match="dimension"):
        ix.search(np.ones(5), 1)


def test_inconsistent_file_is_refused(tmp_path, glove_20k):
    from nearkit import io

    ix = nearkit.IVF(50, "l2", nlist=4, codec="sq8")
    ix.train(glove_20k.base[:500])
    ix.add(glove_20k.base[:500])
    sections = ix._sections()
    bad = dict(sections, offsets=sections["offsets"][::-1].copy())  # decreasing offsets
    io.write_index(tmp_path / "bad.nk", "ivf", 50, "l2", ix._params(), bad)
    with pytest.raises(nearkit.FormatError, match="inconsistent"):
        nearkit.load(tmp_path / "bad.nk")
    missing = {k: v for k, v in sections.items() if k != "sq_step"}
    io.write_index(tmp_path / "missing.nk", "ivf", 50, "l2", ix._params(), missing)
    with pytest.raises(nearkit.FormatError, match="sq_step"):
        nearkit.load(tmp_path / "missing.nk")


