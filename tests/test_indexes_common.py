"""What every index kind shares through the base class: slot filters and detached images."""

import numpy as np
import pytest

import nearkit
from nearkit.indexes import IndexImage, SlotFilter


def _built(kind, x, ids):
    if kind == "flat":
        ix = nearkit.Flat(x.shape[1], "l2")
    elif kind == "hnsw":
        ix = nearkit.HNSW(x.shape[1], "l2")
    elif kind == "ivf":
        ix = nearkit.IVF(x.shape[1], "l2", nlist=8, nprobe=8)
        ix.train(x)
    else:
        ix = nearkit.Trees(x.shape[1], "l2", n_trees=8)
    ix.add(x, ids)
    if kind == "trees":
        ix.build()
    return ix


KINDS = ["flat", "hnsw", "ivf", "trees"]


@pytest.mark.parametrize("kind", KINDS)
def test_slot_filter_allows_the_same_rows_as_an_id_filter(kind, rng):
    x = rng.standard_normal((500, 8)).astype(np.float32)
    ids = rng.permutation(10_000)[:500]
    ix = _built(kind, x, ids)
    allowed = ids[::3]
    labels = ix.slot_labels()
    assert sorted(labels[labels >= 0].tolist()) == sorted(ids.tolist())
    mask = np.isin(labels, allowed)
    q = x[:20] + 0.01
    by_ids = ix.search(q, 5, filter=allowed)
    by_slots = ix.search(q, 5, filter=SlotFilter(mask))
    np.testing.assert_array_equal(by_slots[0], by_ids[0])
    np.testing.assert_allclose(by_slots[1], by_ids[1], rtol=1e-6)
    assert np.isin(by_slots[0], allowed).all()


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_slot_filter_of_the_wrong_shape_is_refused(kind, rng):
    x = rng.standard_normal((50, 4)).astype(np.float32)
    ix = _built(kind, x, np.arange(50))
    n = len(ix.slot_labels())
    with pytest.raises(ValueError, match=f"covers {n - 1} slots but the index has {n}"):
        ix.search(x[0], 3, filter=SlotFilter(np.ones(n - 1, bool)))
    with pytest.raises(TypeError, match="1-D bool or uint8"):
        ix.search(x[0], 3, filter=SlotFilter(np.ones(n, np.float32)))


@pytest.mark.parametrize("kind", KINDS)
def test_image_is_the_index_when_taken(kind, rng, tmp_path):
    x = rng.standard_normal((400, 8)).astype(np.float32)
    ix = _built(kind, x, np.arange(400))
    img = ix.image()
    assert isinstance(img, IndexImage) and img.kind == ix.kind
    expected = ix.search(x[:10], 4)
    if kind in ("flat", "hnsw", "ivf"):  # the image must not follow later changes
        ix.remove(np.arange(0, 400, 2))
        ix.add(x[:50] + 5, np.arange(1000, 1050))
    img.save(tmp_path / "i.nki")
    again = nearkit.load(tmp_path / "i.nki")
    got = again.search(x[:10], 4)
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_allclose(got[1], expected[1], rtol=1e-6)
