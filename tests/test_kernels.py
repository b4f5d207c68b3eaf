"""The C++ kernels of every supported ISA against numpy.

The fused scan kernels are reached through _core.flat_search / flat_range
with shapes chosen to hit every remainder: base rows modulo the register
block (6) and the single-query group (8 or 16), dimensions modulo the vector
width, and query counts on both sides of the tile/single-query switch.
"""

from __future__ import annotations

import numpy as np
import pytest

from nearkit import _core
from nearkit.metrics import reference_distances

from flat_checks import assert_knn_matches, assert_radius_matches, isa

ISAS = _core.supported_isas()


def test_isas_listed():
    assert "scalar" in ISAS
    assert _core.isa() in ISAS
    with pytest.raises(ValueError, match="unknown instruction set"):
        _core.set_isa("sse9")


@pytest.mark.parametrize("isa_name", ISAS)
@pytest.mark.parametrize("kind,metric", [("l2sq", "l2"), ("dot", "ip")])
def test_pairwise(isa_name, kind, metric):
    rng = np.random.default_rng(1)
    for d in (1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 50, 64, 100):
        a = rng.standard_normal((5, d)).astype(np.float32)
        b = rng.standard_normal((7, d)).astype(np.float32)
        with isa(isa_name):
            got = _core.pairwise(a, b, kind)
        ref = reference_distances(a, b, metric)
        want = ref if kind == "l2sq" else 1.0 - ref
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("isa_name", ISAS)
@pytest.mark.parametrize("code,metric", [(0, "l2"), (1, "ip")])
def test_scan_kernels_every_remainder(isa_name, code, metric):
    rng = np.random.default_rng(2)
    for d in (1, 2, 7, 8, 15, 16, 17, 33, 50):
        for n in (1, 5, 6, 7, 13, 16, 17, 35):
            for nq in (1, 2, 17, 65):
                base = rng.standard_normal((n, d)).astype(np.float32)
                q = rng.standard_normal((nq, d)).astype(np.float32)
                sq = np.einsum("ij,ij->i", base, base)
                k = min(4, n + 1)
                with isa(isa_name):
                    ids, dist = _core.flat_search(base, sq, None, q, k, code, None, 1, False)
                assert_knn_matches(ids, dist, q, base, metric, k)


@pytest.mark.parametrize("isa_name", ISAS)
def test_scan_with_self_exclusion_and_mask(isa_name):
    rng = np.random.default_rng(3)
    x = rng.standard_normal((130, 11)).astype(np.float32)
    sq = np.einsum("ij,ij->i", x, x)
    mask = (rng.random(130) < 0.3).astype(np.uint8)
    with isa(isa_name):
        ids, dist = _core.flat_search(x, sq, None, x, 5, 0, None, 1, True)
        mids, mdist = _core.flat_search(x, sq, None, x[:20], 5, 0, mask, 1, False)
        lims, rids, rdist = _core.flat_range(x, sq, None, x[:20], 15.0, 0, mask, 1)
    ref = reference_distances(x, x, "l2")
    np.fill_diagonal(ref, np.inf)
    np.testing.assert_allclose(dist, np.sort(ref, axis=1)[:, :5], atol=1e-3)
    assert not (ids == np.arange(130)[:, None]).any()
    assert_knn_matches(mids, mdist, x[:20], x, "l2", 5, allowed=mask.astype(bool))
    assert_radius_matches(lims, rids, rdist, x[:20], x, "l2", 15.0, allowed=mask.astype(bool))


def test_core_guards_its_invariants():
    x = np.ones((4, 3), np.float32)
    sq = np.full(4, 3.0, np.float32)
    with pytest.raises(ValueError, match="dimension"):
        _core.flat_search(x, sq, None, np.ones((1, 2), np.float32), 1, 0, None, 1, False)
    with pytest.raises(ValueError, match="sqnorms"):
        _core.flat_search(x, sq[:3], None, x, 1, 0, None, 1, False)
    with pytest.raises(ValueError, match="metric"):
        _core.flat_search(x, sq, None, x, 1, 7, None, 1, False)
    with pytest.raises(ValueError, match="k must be positive"):
        _core.flat_search(x, sq, None, x, 0, 0, None, 1, False)
    with pytest.raises(ValueError, match="exclude_self"):
        _core.flat_search(x, sq, None, x[:2], 1, 0, None, 1, True)


@pytest.mark.parametrize("isa_name", ISAS)
def test_fma_probe_counts_flops(isa_name):
    with isa(isa_name):
        assert _core.fma_probe(1000) > 0
        assert _core.flat_tile() >= 1
