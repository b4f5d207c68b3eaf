"""Awkward but common data for the HNSW robustness tests and benchmark.

Each generator returns (base, later, queries): ``later`` is None except for the
drift case, whose second batch is added after the first is indexed. Shapes are
small on purpose (the test suite builds every case three times per metric).
"""

from __future__ import annotations

import numpy as np


def _normal(rng, n, d):
    return rng.standard_normal((n, d)).astype(np.float32)


def outliers(rng, n, d, nq):
    x = _normal(rng, n + nq, d)
    x[rng.choice(n, max(1, n // 500), replace=False)] *= 1000  # 0.2% of the base rows
    return x[:n], None, x[n:]


def heavy_tails(rng, n, d, nq):
    x = rng.standard_cauchy((n + nq, d)).astype(np.float32)
    return x[:n], None, x[n:]


def on_a_line(rng, n, d, nq):
    v = rng.standard_normal(d)
    t = rng.uniform(-100, 100, n + nq)
    x = (t[:, None] * v[None, :] + 1e-3 * rng.standard_normal((n + nq, d))).astype(np.float32)
    return x[:n], None, x[n:]


def one_wide_dim(rng, n, d, nq):
    x = _normal(rng, n + nq, d)
    x[:, 0] *= np.sqrt(1000.0)  # 1000x the variance
    return x[:n], None, x[n:]


def near_duplicates(rng, n, d, nq):
    distinct = _normal(rng, max(1, n // 40), d)
    x = distinct[rng.integers(0, len(distinct), n + nq)]
    x = (x + 1e-4 * rng.standard_normal(x.shape)).astype(np.float32)
    return x[:n], None, x[n:]


def spread_norms(rng, n, d, nq):
    x = _normal(rng, n + nq, d)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x *= (10.0 ** rng.uniform(-3, 3, n + nq))[:, None]
    return x[:n].astype(np.float32), None, x[n:].astype(np.float32)


def sparse(rng, n, d, nq):
    x = _normal(rng, n + nq, d) * (rng.random((n + nq, d)) < 0.1)
    x[np.arange(n + nq), rng.integers(0, d, n + nq)] = 1.0  # no all-zero rows
    return x[:n].astype(np.float32), None, x[n:].astype(np.float32)


def binary(rng, n, d, nq):
    x = (rng.random((n + nq, d)) < 0.3).astype(np.float32)
    x[np.arange(n + nq), rng.integers(0, d, n + nq)] = 1.0
    return x[:n], None, x[n:]


def integers(rng, n, d, nq):
    x = rng.integers(-20, 21, (n + nq, d)).astype(np.float32)
    return x[:n], None, x[n:]


def common_offset(rng, n, d, nq):
    x = 1e4 + _normal(rng, n + nq, d)
    return x[:n], None, x[n:]


def correlated(rng, n, d, nq):
    latent = _normal(rng, n + nq, 4)
    mix = rng.standard_normal((4, d)).astype(np.float32)
    x = latent @ mix + 0.05 * _normal(rng, n + nq, d)
    return x[:n], None, x[n:]


def drift(rng, n, d, nq):
    """Half the base first; the other half, added later, far from it in some dimensions."""
    half = n // 2
    shift = np.zeros(d, dtype=np.float32)
    shift[: d // 2] = 40.0
    first = _normal(rng, half + nq // 2, d)
    later = _normal(rng, n - half + nq - nq // 2, d) + shift
    queries = np.vstack([first[half:], later[n - half:]])
    return first[:half], later[: n - half], queries


def clusters(rng, n, d, nq):
    centres = 10 * _normal(rng, 20, d)
    x = centres[rng.integers(0, 20, n + nq)] + _normal(rng, n + nq, d)
    return x[:n].astype(np.float32), None, x[n:].astype(np.float32)


DISTRIBUTIONS = {
    "outliers": outliers,
    "heavy_tails": heavy_tails,
    "on_a_line": on_a_line,
    "one_wide_dim": one_wide_dim,
    "near_duplicates": near_duplicates,
    "spread_norms": spread_norms,
    "sparse": sparse,
    "binary": binary,
    "integers": integers,
    "common_offset": common_offset,
    "correlated": correlated,
    "drift": drift,
    "clusters": clusters,
}


def make(name: str, n: int, d: int, nq: int, seed: int = 0):
    return DISTRIBUTIONS[name](np.random.default_rng(seed), n, d, nq)


def exact_distances(base: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    """(nq, n) float64 distances as nearkit defines them."""
    b = base.astype(np.float64)
    q = queries.astype(np.float64)
    if metric == "cosine":
        b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-300)
        q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-300)
    if metric == "l2":
        return ((q * q).sum(1)[:, None] - 2 * q @ b.T + (b * b).sum(1)[None, :]).clip(0)
    return 1.0 - q @ b.T


def recall_by_distance(found: np.ndarray, dist: np.ndarray, k: int, metric: str) -> float:
    """Share of the k found ids within the true k-th distance (ties count as hits).

    Ties are what float32 cannot tell apart: for l2 a relative 1e-6 of the k-th
    distance, for ip and cosine 1e-6 of the row's largest |dot product| (a dot
    product is computed with that absolute error, whatever its difference).
    """
    kth = np.sort(dist, axis=1)[:, k - 1]
    if metric == "l2":
        tol = 1e-6 * np.abs(kth) + 1e-30
    else:
        tol = 1e-6 * np.abs(1.0 - dist).max(axis=1) + 1e-30
    rows = np.arange(len(found))[:, None]
    valid = found >= 0
    d_found = np.where(valid, dist[rows, np.where(valid, found, 0)], np.inf)
    return float((d_found[:, :k] <= (kth + tol)[:, None]).sum() / (k * len(found)))
