"""faiss's k-means, step for step, for the IVF coarse quantizers of ``nearkit.compat.faiss``.

A migrating user's IVF should put each vector in the list faiss would: that needs
faiss's centroids, not merely good ones. So this follows ``faiss::Clustering::train``
(faiss 1.15) with its own random numbers:

- ``rand_perm(n, seed)`` is a Fisher-Yates shuffle drawing ``mt() % (n - i)`` from
  ``std::mt19937(seed)``; numpy's ``RandomState(seed)`` is the same Mersenne Twister
  with the same seeding, and ``randint(0, 2**32)`` hands out its raw 32-bit words.
- More than ``max_points_per_centroid * k`` points: the first ones of
  ``rand_perm(n, seed)``. The starting centroids: the first k of ``rand_perm(n, seed + 1)``.
- Each iteration: assign (nearest by l2, or largest inner product for an inner-product
  quantizer), the float32 mean of each cluster accumulated in input order, empty
  clusters split off a donor drawn with ``RandomGenerator(1234)`` and a 1/1024
  symmetric perturbation, rows renormalised when ``spherical``; stop early once the
  objective stops changing.

Distances are computed in float64 (faiss uses float32 sgemm), so a point lying within
float32 rounding of the boundary between two different centroids may be assigned
differently; exact ties (copies of a point, split twins) go to the lower index, as in
faiss. tests/compat/test_compat_faiss_kmeans.py checks the centroids against faiss-cpu
1.15 within 1e-5 (bit-identical for l2 in the runs looked at, within 2e-7 for inner
product).
"""

from __future__ import annotations

import numpy as np

__all__ = ["faiss_kmeans", "rand_perm"]

_EPS = np.float32(1.0 / 1024.0)
_MT_MAX = np.float32(2**32 - 1)


def _mt_words(seed: int, count: int) -> np.ndarray:
    """The first ``count`` outputs of ``std::mt19937((unsigned) seed)``, as uint64."""
    return np.random.RandomState(int(seed) & 0xFFFFFFFF).randint(0, 2**32, size=count, dtype=np.uint64)


def rand_perm(n: int, seed: int) -> np.ndarray:
    """faiss::rand_perm: a permutation of range(n), the same one faiss draws."""
    perm = np.arange(n, dtype=np.int64)
    if n < 2:
        return perm
    words = _mt_words(seed, n - 1)
    span = np.arange(n, 1, -1, dtype=np.uint64)  # n - i for i = 0 .. n - 2
    picks = (words % span).astype(np.int64) + np.arange(n - 1)
    for i, j in enumerate(picks.tolist()):  # sequential swaps: each depends on the last
        perm[i], perm[j] = perm[j], perm[i]
    return perm


class _Rng1234:
    """faiss's RandomGenerator(1234).rand_float(), as split_clusters draws it."""

    def __init__(self):
        self._state = np.random.RandomState(1234)

    def rand_float(self) -> np.float32:
        word = self._state.randint(0, 2**32, dtype=np.uint64)
        return np.float32(np.float32(word) / _MT_MAX)


def _renorm(c: np.ndarray) -> None:
    norms = np.sqrt(np.einsum("ij,ij->i", c, c, dtype=np.float32))
    nz = norms > 0
    c[nz] *= (np.float32(1) / norms[nz])[:, None]


def _split_clusters(cents: np.ndarray, hassign: np.ndarray, n: int) -> None:
    if hassign.all():
        return
    k, d = cents.shape
    rng = _Rng1234()  # faiss seeds a fresh RandomGenerator(1234) per call
    parity = np.where(np.arange(d) % 2 == 0, np.float32(1) + _EPS, np.float32(1) - _EPS).astype(np.float32)
    other = np.where(np.arange(d) % 2 == 0, np.float32(1) - _EPS, np.float32(1) + _EPS).astype(np.float32)
    for ci in range(k):
        if hassign[ci] != 0:
            continue
        cj, found = 0, False
        for _ in range(10 * k):
            p = np.float32((np.float64(hassign[cj]) - 1.0) / np.float32(n - k))
            if rng.rand_float() < p:
                found = True
                break
            cj = (cj + 1) % k
        if not found:
            cj = int(np.argmax(hassign))
        cents[ci] = cents[cj] * parity
        cents[cj] = cents[cj] * other
        hassign[ci] = hassign[cj] / np.float32(2)
        hassign[cj] -= hassign[ci]


def _assign(x: np.ndarray, cents: np.ndarray, inner_product: bool, block: int = 4096):
    """Each row's centroid (the first of equals) and its distance (l2: clamped at 0).

    In float64: BLAS gives two identical centroids slightly different float32 products
    depending on their position, which would break exact ties (copies of a point)
    arbitrarily; faiss's search gives a tie to the lower index."""
    c64 = cents.astype(np.float64)
    cn = np.einsum("ij,ij->i", c64, c64)
    n = x.shape[0]
    assign = np.empty(n, np.int64)
    dist = np.empty(n, np.float32)
    for i0 in range(0, n, block):
        xb = x[i0: i0 + block].astype(np.float64)
        ip = xb @ c64.T
        if inner_product:
            a = np.argmax(ip, axis=1)
            dist[i0: i0 + block] = ip[np.arange(len(a)), a]
        else:
            xn = np.einsum("ij,ij->i", xb, xb)
            scores = np.maximum(xn[:, None] + cn[None, :] - 2.0 * ip, 0.0)
            a = np.argmin(scores, axis=1)
            dist[i0: i0 + block] = scores[np.arange(len(a)), a]
        assign[i0: i0 + block] = a
    return assign, dist


def faiss_kmeans(x: np.ndarray, k: int, *, niter: int = 10, seed: int = 1234,
                 inner_product: bool = False, spherical: bool = False,
                 max_points_per_centroid: int = 256) -> np.ndarray:
    """The k centroids faiss's Clustering would train on ``x`` (float32, (k, d))."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    if n < k:
        raise ValueError(f"number of training points ({n}) should be at least as large as k ({k})")
    if n > k * max_points_per_centroid:
        x = x[rand_perm(n, seed)[: k * max_points_per_centroid]]
        n = x.shape[0]
    if n == k:
        return x.copy()
    cents = x[rand_perm(n, seed + 1)[:k]].copy()
    if spherical:
        _renorm(cents)
    prev_obj = None
    for _ in range(max(0, int(niter))):
        assign, dist = _assign(x, cents, inner_product)
        obj = np.float32(np.sum(dist, dtype=np.float32))
        sums = np.zeros((k, d), np.float32)
        np.add.at(sums, assign, x)  # in input order, in float32, as faiss adds
        hassign = np.bincount(assign, minlength=k).astype(np.float32)
        full = hassign > 0
        sums[full] *= (np.float32(1) / hassign[full])[:, None]
        cents = sums
        _split_clusters(cents, hassign, n)
        if spherical:
            _renorm(cents)
        if prev_obj is not None:
            change = abs(float(prev_obj) - float(obj)) / abs(float(prev_obj)) if prev_obj else float("inf")
            if change <= 0.0:
                break
        prev_obj = obj
    return cents
