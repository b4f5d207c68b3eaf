"""Quantisers: round-trip error bounds, packing, and fast-scan kernels per ISA."""

import numpy as np
import pytest

from nearkit import _core
from nearkit.indexes.quant import (OPQTransform, PCATransform, ProductQuantizer, ScalarQuantizer,
                                   pack_flat, pack_pq4, unpack_flat, unpack_pq4)


def test_sq8_round_trip_within_half_a_step(rng):
    x = (rng.standard_normal((2000, 16)) * rng.random(16) * 5).astype(np.float32)
    sq = ScalarQuantizer(16, "sq8")
    sq.train(x)
    err = np.abs(sq.decode(sq.encode(x)) - x)
    assert (err <= sq.step / 2 * 1.001 + 1e-7).all()
    # values outside the training range are clamped, not wrapped
    far = sq.decode(sq.encode(x[:1] + 1e3))
    assert (far <= x.max(0) + sq.step).all()


def test_fp16_round_trip_and_cpp_decoder(rng):
    x = (rng.standard_normal((500, 12)) * 100).astype(np.float32)
    sq = ScalarQuantizer(12, "fp16")
    back = sq.decode(sq.encode(x))
    assert (np.abs(back - x) <= np.abs(x) * 2.0 ** -11 + 1e-7).all()
    h = np.arange(65536, dtype=np.uint16)
    ref = h.view(np.float16).astype(np.float32)
    ours = _core.half_to_float(h)[0]
    finite = np.isfinite(ref)
    assert np.array_equal(ours[finite], ref[finite])
    assert np.isnan(ours[np.isnan(ref)]).all() and np.array_equal(ours[np.isinf(ref)], ref[np.isinf(ref)])


@pytest.mark.parametrize("nbits", [8, 4])
def test_pq_reconstruction_beats_a_coarser_code(rng, nbits):
    x = rng.standard_normal((3000, 16)).astype(np.float32)
    errs = []
    for m in (2, 8):
        pq = ProductQuantizer(16, m, nbits)
        pq.train(x, niter=10)
        codes = pq.encode(x)
        assert codes.shape == (3000, m) and codes.max() < 2 ** nbits
        errs.append(((pq.decode(codes) - x) ** 2).sum(1).mean())
    assert errs[1] < errs[0] < (x ** 2).sum(1).mean()


def test_pq_argument_checks():
    with pytest.raises(ValueError, match="multiple of the number of sub-quantizers"):
        ProductQuantizer(10, 3)
    with pytest.raises(ValueError, match="nbits"):
        ProductQuantizer(8, 2, 6)
    with pytest.raises(ValueError, match=r"training points \(10\)"):
        ProductQuantizer(8, 2, 8).train(np.zeros((10, 8), np.float32))


@pytest.mark.parametrize("m", [1, 2, 3, 5, 8, 25, 32])
def test_pack_pq4_round_trip_and_scan_on_every_isa(rng, m):
    mpad = m + m % 2
    codes = rng.integers(0, 16, (96, m)).astype(np.uint8)
    packed = pack_pq4(codes, mpad)
    assert packed.shape == (3, mpad * 16)
    assert np.array_equal(unpack_pq4(packed, m, mpad), codes)
    lut = np.zeros((mpad, 16), np.uint8)
    lut[:m] = rng.integers(0, 256, (m, 16))
    expect = lut[np.arange(m)[None, :], codes].astype(np.int64).sum(1)
    for isa in _core.supported_isas():
        got = _core.pq4_scan(packed.ravel(), mpad, lut.ravel(), isa).ravel()
        assert np.array_equal(got, expect), isa


def test_pq4_scan_saturating_sums(rng):
    # 32 sub-quantisers of 255 each: 8160, well inside uint16, must not wrap per lane
    m = 32
    codes = rng.integers(0, 16, (32, m)).astype(np.uint8)
    lut = np.full((m, 16), 255, np.uint8)
    for isa in _core.supported_isas():
        got = _core.pq4_scan(pack_pq4(codes, m).ravel(), m, lut.ravel(), isa)
        assert (got == 255 * m).all(), isa


def test_pack_flat_round_trip(rng):
    rows = rng.random((48, 7), dtype=np.float32)
    blocks = pack_flat(rows.view(np.uint8), 7)
    assert blocks.view(np.float32).reshape(3, 7, 16)[1, 2, 5] == rows[16 + 5, 2]
    assert np.array_equal(unpack_flat(blocks, 7).view(np.float32), rows)


def test_pca_and_opq(rng):
    basis = np.linalg.qr(rng.standard_normal((8, 8)))[0]
    x = (rng.standard_normal((2000, 8)) * [10, 5, 1, .1, .1, .1, .1, .1]) @ basis.T
    x = x.astype(np.float32)
    pca = PCATransform(8, 3)
    pca.train(x)
    y = pca.apply(x)
    kept = (y ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    assert y.shape == (2000, 3) and kept > 0.99
    with pytest.raises(ValueError, match="PCA output dimension"):
        PCATransform(8, 9)
    opq = OPQTransform(8, 2, niter=3)
    opq.train(x)
    r = opq.matrix
    np.testing.assert_allclose(r @ r.T, np.eye(8), atol=1e-4)  # a rotation


def test_fast_scan_distances_match_float_adc_within_lut_rounding(glove_20k):
    import nearkit

    base, q = glove_20k.base[:4000], glove_20k.queries[:10]
    ix = nearkit.IVF(50, "l2", nlist=1, codec="pq25x4fs")
    ix.train(base)
    ix.add(base)
    books = ix._pq.codebooks  # (25, 16, 2)
    before = _core.isa()
    try:
        for isa in _core.supported_isas():
            _core.set_isa(isa)
            ids, dist = ix.search(q, 20)
            for qi in range(len(q)):
                sub = q[qi].reshape(25, 1, 2)
                lut = ((sub - books) ** 2).sum(-1)  # float LUT (25, 16)
                span = (lut.max(1) - lut.min(1)).max()
                bound = 25 * 0.5 * span / 255 + 1e-4  # half a quantisation step per table
                adc = ((ix.reconstruct(ids[qi]) - q[qi]) ** 2).sum(1)
                assert np.abs(dist[qi] - adc).max() <= bound, isa
    finally:
        _core.set_isa(before)
