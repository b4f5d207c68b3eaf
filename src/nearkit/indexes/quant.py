"""Vector quantisers and pre-transforms used by IVF (and on their own).

- ``ScalarQuantizer("sq8" | "fp16")``: one byte per dimension on a per-dimension
  [min, max] grid, or IEEE half precision.
- ``ProductQuantizer(dim, m, nbits)``: the vector is cut into ``m`` sub-vectors,
  each replaced by the index of its nearest of ``2**nbits`` sub-centroids;
  distances come from per-query look-up tables. ``nbits=4`` codes are packed
  for the SIMD "fast scan" (``pack_pq4`` / ``unpack_pq4``, layout in cpp/pq4.h).
- ``PCATransform`` and ``OPQTransform``: linear maps applied before coarse
  assignment and coding (``y = (x - mean) @ matrix.T``).

Encoders work in numpy (BLAS); the scans over codes live in the C++ core.
"""

from __future__ import annotations

import numpy as np

from ..kmeans import assign as _assign
from ..kmeans import kmeans as _kmeans

PQ4_BLOCK = 32  # vectors per fast-scan block (cpp/pq4.h kPq4Block)
FLAT_BLOCK = 16  # vectors per float block, stored dimension-major (cpp/kernels/ivfscan.h)


def _nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    labels, _ = _assign(x, centroids)
    return labels


# -- scalar quantisation -------------------------------------------------------

class ScalarQuantizer:
    """Per-dimension 8-bit grid ("sq8") or float16 ("fp16")."""

    def __init__(self, dim: int, kind: str = "sq8"):
        if kind not in ("sq8", "fp16"):
            raise ValueError(f"scalar quantiser kind must be 'sq8' or 'fp16', got {kind!r}")
        self.dim, self.kind = dim, kind
        self.vmin = np.zeros(dim, np.float32)
        self.step = np.ones(dim, np.float32)
        self.is_trained = kind == "fp16"

    @property
    def code_size(self) -> int:
        return self.dim if self.kind == "sq8" else 2 * self.dim

    def train(self, x: np.ndarray) -> None:
        if self.kind == "fp16":
            return
        if x.shape[0] < 1:
            raise ValueError("the scalar quantiser needs at least one training vector")
        lo, hi = x.min(axis=0), x.max(axis=0)
        span = hi - lo
        span[span == 0] = 1.0  # constant dimension: any step reproduces it exactly
        self.vmin = lo.astype(np.float32)
        self.step = (span / 255.0).astype(np.float32)
        self.is_trained = True

    def encode(self, x: np.ndarray) -> np.ndarray:
        if self.kind == "fp16":
            return np.ascontiguousarray(x.astype(np.float16)).view(np.uint8).reshape(x.shape[0], -1)
        q = np.rint((x - self.vmin) / self.step)
        return np.clip(q, 0, 255).astype(np.uint8)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        if self.kind == "fp16":
            return np.ascontiguousarray(codes).view(np.float16).astype(np.float32)
        return (self.vmin + codes.astype(np.float32) * self.step).astype(np.float32)


# -- product quantisation -------------------------------------------------------

class ProductQuantizer:
    """``m`` sub-quantisers of ``2**nbits`` centroids each (nbits 8 or 4)."""

    def __init__(self, dim: int, m: int, nbits: int = 8):
        if m <= 0 or dim % m:
            raise ValueError(
                f"the dimension ({dim}) must be a multiple of the number of sub-quantizers ({m})")
        if nbits not in (4, 8):
            raise ValueError(f"nbits must be 4 or 8, got {nbits}")
        self.dim, self.m, self.nbits = dim, m, nbits
        self.ksub = 1 << nbits
        self.dsub = dim // m
        self.codebooks = np.zeros((m, self.ksub, self.dsub), np.float32)
        self.is_trained = False

    def train(self, x: np.ndarray, niter: int = 25, seed: int = 0) -> None:
        if x.shape[0] < self.ksub:
            raise ValueError(
                f"number of training points ({x.shape[0]}) should be at least as large as "
                f"the number of PQ centroids ({self.ksub})")
        for j in range(self.m):
            sub = np.ascontiguousarray(x[:, j * self.dsub:(j + 1) * self.dsub])
            res = _kmeans(sub, self.ksub, niter=niter, seed=seed + j, min_points_per_centroid=0)
            self.codebooks[j] = res.centroids
        self.is_trained = True

    def encode(self, x: np.ndarray) -> np.ndarray:
        codes = np.empty((x.shape[0], self.m), np.uint8)
        for j in range(self.m):
            codes[:, j] = _nearest(x[:, j * self.dsub:(j + 1) * self.dsub], self.codebooks[j])
        return codes

    def decode(self, codes: np.ndarray) -> np.ndarray:
        parts = [self.codebooks[j][codes[:, j]] for j in range(self.m)]
        return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)

    @property
    def mpad(self) -> int:
        """Sub-quantisers padded to an even count (fast-scan layout)."""
        return self.m + (self.m % 2)


def pack_pq4(codes: np.ndarray, mpad: int) -> np.ndarray:
    """Pack (n, m) 4-bit codes, n a multiple of 32, into fast-scan blocks (n/32, mpad*16)."""
    n, m = codes.shape
    if n % PQ4_BLOCK:
        raise ValueError("fast-scan packing needs whole blocks of 32 vectors")
    c = np.zeros((n // PQ4_BLOCK, PQ4_BLOCK, mpad), np.uint8)
    c[:, :, :m] = codes.reshape(-1, PQ4_BLOCK, m)
    packed = c[:, :16, :] | (c[:, 16:, :] << 4)  # (blocks, 16, mpad)
    return np.ascontiguousarray(packed.transpose(0, 2, 1)).reshape(-1, mpad * 16)


def unpack_pq4(packed: np.ndarray, m: int, mpad: int) -> np.ndarray:
    """Inverse of ``pack_pq4``: (nblocks, mpad*16) -> (nblocks*32, m)."""
    p = np.asarray(packed).reshape(-1, mpad, 16).transpose(0, 2, 1)  # (blocks, 16, mpad)
    out = np.concatenate([p & 15, p >> 4], axis=1)  # (blocks, 32, mpad)
    return np.ascontiguousarray(out[:, :, :m]).reshape(-1, m)


def pack_flat(codes: np.ndarray, dim: int) -> np.ndarray:
    """(n, 4*dim) bytes of float32 rows, n a multiple of 16 -> blocks (n/16, 16*4*dim)."""
    rows = np.ascontiguousarray(codes).view(np.float32).reshape(-1, FLAT_BLOCK, dim)
    if rows.shape[0] == 0:  # emptied index (reshape cannot infer a width from 0 rows)
        return np.empty((0, FLAT_BLOCK * 4 * dim), np.uint8)
    return np.ascontiguousarray(rows.transpose(0, 2, 1)).view(np.uint8).reshape(rows.shape[0], -1)


def unpack_flat(blocks: np.ndarray, dim: int) -> np.ndarray:
    """Inverse of ``pack_flat``: rows as (n, 4*dim) bytes."""
    b = np.ascontiguousarray(blocks).view(np.float32).reshape(-1, dim, FLAT_BLOCK)
    return np.ascontiguousarray(b.transpose(0, 2, 1)).reshape(-1, dim).view(np.uint8)


# -- pre-transforms ---------------------------------------------------------------

class LinearTransform:
    """y = (x - mean) @ matrix.T, matrix (d_out, d_in)."""

    def __init__(self, d_in: int, d_out: int):
        self.d_in, self.d_out = d_in, d_out
        self.mean = np.zeros(d_in, np.float32)
        self.matrix = np.eye(d_out, d_in, dtype=np.float32)
        self.is_trained = False

    def apply(self, x: np.ndarray) -> np.ndarray:
        y = (x - self.mean) @ self.matrix.T if self.mean.any() else x @ self.matrix.T
        return np.ascontiguousarray(y, dtype=np.float32)


class PCATransform(LinearTransform):
    """Projection on the top ``d_out`` principal axes.

    For inner-product metrics the data are not centred (the second-moment
    matrix is used), because subtracting a mean would change the ranking of
    inner products.
    """

    def __init__(self, d_in: int, d_out: int, center: bool = True):
        if not 0 < d_out <= d_in:
            raise ValueError(f"PCA output dimension must be in 1..{d_in}, got {d_out}")
        super().__init__(d_in, d_out)
        self.center = center

    def train(self, x: np.ndarray) -> None:
        if x.shape[0] < 2:
            raise ValueError("PCA needs at least 2 training vectors")
        x64 = x.astype(np.float64)
        mean = x64.mean(axis=0) if self.center else np.zeros(self.d_in)
        xc = x64 - mean
        cov = xc.T @ xc / x.shape[0]
        vals, vecs = np.linalg.eigh(cov)
        order = np.argsort(vals)[::-1][: self.d_out]
        self.matrix = np.ascontiguousarray(vecs[:, order].T, dtype=np.float32)
        self.mean = mean.astype(np.float32)
        self.is_trained = True


class OPQTransform(LinearTransform):
    """Orthogonal rotation that balances variance across ``m`` PQ sub-spaces.

    Alternates PQ training on the rotated data with the Procrustes solution
    for the rotation that best maps the data onto its reconstruction.
    """

    def __init__(self, dim: int, m: int, niter: int = 5, max_train: int = 8192, seed: int = 0):
        if m <= 0 or dim % m:
            raise ValueError(f"OPQ: the dimension ({dim}) must be a multiple of M ({m})")
        super().__init__(dim, dim)
        self.m, self.niter, self.max_train, self.seed = m, niter, max_train, seed

    def train(self, x: np.ndarray) -> None:
        rng = np.random.default_rng(self.seed)
        if x.shape[0] > self.max_train:
            x = x[np.sort(rng.choice(x.shape[0], self.max_train, replace=False))]
        ksub = 256 if x.shape[0] >= 256 * 4 else 16
        d = self.d_in
        rot = np.linalg.qr(rng.standard_normal((d, d)))[0].astype(np.float32)
        for it in range(self.niter):
            y = np.ascontiguousarray(x @ rot.T, dtype=np.float32)
            pq = ProductQuantizer(d, self.m, 8 if ksub == 256 else 4)
            pq.train(y, niter=4, seed=self.seed + it)
            rec = pq.decode(pq.encode(y))
            # rotation R minimising |x R^T - rec|: R^T = U V^T with x^T rec = U S V^T
            u, _, vt = np.linalg.svd(x.T.astype(np.float64) @ rec.astype(np.float64))
            rot = (u @ vt).T.astype(np.float32)
        self.matrix = np.ascontiguousarray(rot)
        self.is_trained = True
