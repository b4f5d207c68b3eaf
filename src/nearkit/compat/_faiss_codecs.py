"""Faiss's scalar and product quantisers, in numpy, with faiss's coding rules.

Used by the compat indexes whose codec nearkit's IVF does not have (SQ4, SQ6,
uniform and direct scalar types, PQ with any nbits) and to load faiss files.
Codes are kept one value per dimension / sub-quantiser (uint8 or uint16), not
bit-packed; ``code_size`` reports faiss's packed size. Decoding follows faiss
exactly, so distances to decoded vectors match faiss's:

- scalar, non-uniform: per dimension ``vmin``, ``vdiff`` (trained min / max - min);
  ``code = int((x - vmin) / vdiff * (2^b - 1))`` after clipping to [0, 1],
  ``x' = vmin + (code + 0.5) / (2^b - 1) * vdiff``. Uniform types share one range.
- product: ``M`` sub-spaces of ``d / M`` dimensions, ``2^nbits`` centroids each
  (k-means), code = nearest centroid.
"""

from __future__ import annotations

import numpy as np

from ..kmeans import assign as _assign
from ..kmeans import kmeans as _kmeans

# faiss ScalarQuantizer.QT_* values
QT_8bit, QT_4bit, QT_8bit_uniform, QT_4bit_uniform, QT_fp16 = 0, 1, 2, 3, 4
QT_8bit_direct, QT_6bit, QT_bf16, QT_8bit_direct_signed = 5, 6, 7, 8
_BITS = {QT_8bit: 8, QT_4bit: 4, QT_8bit_uniform: 8, QT_4bit_uniform: 4, QT_6bit: 6}
_UNIFORM = {QT_8bit_uniform, QT_4bit_uniform}
_NO_TRAINING = {QT_fp16, QT_bf16, QT_8bit_direct, QT_8bit_direct_signed}
SQ_NAMES = {"SQ8": QT_8bit, "SQ4": QT_4bit, "SQ6": QT_6bit, "SQfp16": QT_fp16, "SQbf16": QT_bf16,
            "SQ8_direct": QT_8bit_direct, "SQ8_direct_signed": QT_8bit_direct_signed}


class SQCodec:
    def __init__(self, d: int, qtype: int):
        if qtype not in _BITS and qtype not in _NO_TRAINING:
            raise RuntimeError(f"Error: scalar quantizer type {qtype} is not supported")
        self.d, self.qtype = int(d), int(qtype)
        self.is_trained = qtype in _NO_TRAINING
        self.vmin = np.zeros(self.d, np.float32)
        self.vdiff = np.ones(self.d, np.float32)

    @property
    def bits(self) -> int:
        return _BITS.get(self.qtype, 16 if self.qtype in (QT_fp16, QT_bf16) else 8)

    @property
    def code_size(self) -> int:
        return (self.d * self.bits + 7) // 8

    @property
    def trained(self) -> np.ndarray:
        """faiss's ``sq.trained`` vector: vmin then vdiff (one value each when uniform)."""
        if self.qtype in _UNIFORM:
            return np.array([self.vmin[0], self.vdiff[0]], np.float32)
        return np.concatenate([self.vmin, self.vdiff]).astype(np.float32)

    def set_trained(self, trained) -> None:
        t = np.asarray(trained, np.float32)
        if self.qtype in _UNIFORM:
            self.vmin[:], self.vdiff[:] = t[0], t[1]
        elif self.qtype in _BITS:
            self.vmin, self.vdiff = t[: self.d].copy(), t[self.d: 2 * self.d].copy()
        self.is_trained = True

    def train(self, x: np.ndarray) -> None:
        if self.qtype in _NO_TRAINING:
            return
        if x.shape[0] == 0:
            raise RuntimeError("Error: scalar quantizer training needs vectors")
        if self.qtype in _UNIFORM:
            lo, hi = float(x.min()), float(x.max())
            self.vmin[:], self.vdiff[:] = lo, hi - lo
        else:
            self.vmin = x.min(axis=0).astype(np.float32)
            self.vdiff = (x.max(axis=0) - self.vmin).astype(np.float32)
        self.is_trained = True

    def encode(self, x: np.ndarray) -> np.ndarray:
        if self.qtype == QT_fp16:
            return x.astype(np.float16)
        if self.qtype == QT_bf16:
            # faiss rounds to nearest: (bits + 0x8000) >> 16
            u = np.ascontiguousarray(x, np.float32).view(np.uint32).astype(np.uint64)
            return ((u + 0x8000) >> 16).astype(np.uint16)
        if self.qtype == QT_8bit_direct:
            return np.clip(np.floor(x), 0, 255).astype(np.uint8)
        if self.qtype == QT_8bit_direct_signed:
            return np.clip(np.floor(x) + 128, 0, 255).astype(np.uint8)
        levels = (1 << self.bits) - 1
        with np.errstate(divide="ignore", invalid="ignore"):
            t = np.where(self.vdiff > 0, (x - self.vmin) / self.vdiff, 0.0)
        t = np.clip(np.nan_to_num(t, nan=0.0), 0.0, 1.0)
        return (t * levels).astype(np.int32).astype(np.uint8)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        if self.qtype == QT_fp16:
            return np.asarray(codes, np.float16).astype(np.float32)
        if self.qtype == QT_bf16:
            return (np.asarray(codes, np.uint32) << 16).view(np.float32)
        if self.qtype == QT_8bit_direct:
            return codes.astype(np.float32)
        if self.qtype == QT_8bit_direct_signed:
            return codes.astype(np.float32) - 128
        levels = (1 << self.bits) - 1
        return (self.vmin + (codes.astype(np.float32) + 0.5) / levels * self.vdiff).astype(np.float32)


class PQCodec:
    """``M`` sub-quantisers of ``2**nbits`` centroids; ``centroids`` is (M, ksub, dsub)."""

    def __init__(self, d: int, M: int, nbits: int = 8):
        d, M, nbits = int(d), int(M), int(nbits)
        if M <= 0 or d % M:
            raise RuntimeError("Error: 'd % M == 0' failed: The dimension of the vector (d) should "
                               "be a multiple of the number of subquantizers (M)")
        if not 1 <= nbits <= 16:
            raise RuntimeError(f"Error: nbits={nbits} is not supported (1 to 16)")
        self.d, self.M, self.nbits = d, M, nbits
        self.ksub, self.dsub = 1 << nbits, d // M
        self.centroids = np.zeros((M, self.ksub, self.dsub), np.float32)
        self.is_trained = False
        self.cp = None

    @property
    def code_size(self) -> int:
        return (self.M * self.nbits + 7) // 8

    def train(self, x: np.ndarray, seed: int = 1234, niter: int = 25) -> None:
        if x.shape[0] < self.ksub:
            raise RuntimeError(
                f"Error: Number of training points ({x.shape[0]}) should be at least as large as "
                f"number of clusters ({self.ksub})")
        for j in range(self.M):
            sub = np.ascontiguousarray(x[:, j * self.dsub:(j + 1) * self.dsub], np.float32)
            self.centroids[j] = _kmeans(sub, self.ksub, niter=niter, seed=seed + j,
                                        min_points_per_centroid=0).centroids
        self.is_trained = True

    def encode(self, x: np.ndarray) -> np.ndarray:
        dtype = np.uint8 if self.nbits <= 8 else np.uint16
        codes = np.empty((x.shape[0], self.M), dtype)
        for j in range(self.M):
            sub = np.ascontiguousarray(x[:, j * self.dsub:(j + 1) * self.dsub], np.float32)
            codes[:, j] = _assign(sub, self.centroids[j])[0]
        return codes

    def decode(self, codes: np.ndarray) -> np.ndarray:
        parts = [self.centroids[j][codes[:, j].astype(np.int64)] for j in range(self.M)]
        return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)

    # faiss's ProductQuantizer method names
    def compute_codes(self, x):
        return self.encode(np.ascontiguousarray(x, np.float32))
