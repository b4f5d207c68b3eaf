"""k-means clustering built on BLAS matrix products (Lloyd's algorithm).

Used to train IVF coarse quantisers and PQ codebooks, and exposed as
``nearkit.kmeans``. The choices follow what makes Faiss's k-means fast and
good enough:

- assignment is one matrix product per chunk: argmax of ``x.c - |c|^2 / 2``
  (the |x|^2 term does not change the argmin), so BLAS does all the work;
- inputs larger than ``max_points_per_centroid * k`` are subsampled;
- initialisation picks k distinct random points ("random", as Faiss) or
  uses k-means++ ("kmeans++", slower, sometimes a little better);
- an empty cluster takes over half of a large cluster (chosen with
  probability proportional to size) with a small symmetric perturbation.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from . import _progress, _validate

# Rows per assignment chunk: bounds the (chunk, k) float32 product matrix.
_CHUNK_BYTES = 16 << 20
_EPS = 1.0 / 1024.0
# Up to this dimension a direct SIMD scan beats BLAS (PQ sub-spaces are tiny).
_DIRECT_MAX_DIM = 16


@dataclass
class KMeansResult:
    centroids: np.ndarray  # (k, d) float32
    assignment: np.ndarray  # (n_train,) int64 for the points used in training
    inertia: float  # sum of squared distances of the training points to their centroid
    objective: np.ndarray  # inertia after each iteration
    n_train: int  # points actually used (after subsampling)


def _chunk_rows(k: int) -> int:
    return max(256, _CHUNK_BYTES // (4 * max(k, 1)))


def assign(x: np.ndarray, centroids: np.ndarray, spherical: bool = False,
           x_norms: np.ndarray | None = None, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of each row: (labels int64, squared distances float32).

    With ``spherical`` the nearest centroid is the one of largest inner product
    and the returned "distances" are ``1 - x.c``.
    """
    threads = _validate.check_threads(threads)
    x = np.ascontiguousarray(x, dtype=np.float32)
    c = np.ascontiguousarray(centroids, dtype=np.float32)
    n, k = x.shape[0], c.shape[0]
    labels = np.empty(n, np.int64)
    dist = np.empty(n, np.float32)
    from . import _core

    if not spherical and x.shape[1] <= _DIRECT_MAX_DIM:
        return _core.assign_blocked(x, c)
    # bias = |c|^2 / 2 turns "largest x.c - bias" into "nearest in L2".
    bias = np.zeros(k, np.float32) if spherical else (0.5 * np.einsum("ij,ij->i", c, c)).astype(np.float32)
    ct = np.ascontiguousarray(c.T)
    step = _chunk_rows(k)
    prod = np.empty((min(step, n), k), np.float32)
    for s in range(0, n, step):
        xs = x[s:s + step]
        out = prod[: xs.shape[0]]
        np.matmul(xs, ct, out=out)  # BLAS sgemm into a cache-sized buffer
        lab, best = _core.argmax_bias(out, bias, threads)
        labels[s:s + step] = lab
        if spherical:
            dist[s:s + step] = 1.0 - best
        else:
            xn = x_norms[s:s + step] if x_norms is not None else np.einsum("ij,ij->i", xs, xs)
            dist[s:s + step] = np.maximum(xn - 2.0 * best, 0.0)
    return labels, dist


def _init_random(x, k, rng):
    return x[rng.choice(x.shape[0], k, replace=False)].copy()


def _init_kmeanspp(x, k, rng, x_norms):
    n = x.shape[0]
    centroids = np.empty((k, x.shape[1]), np.float32)
    centroids[0] = x[rng.integers(n)]
    closest = np.maximum(x_norms - 2 * (x @ centroids[0]) + centroids[0] @ centroids[0], 0)
    for j in range(1, k):
        total = float(closest.sum())
        if total <= 0:
            idx = rng.integers(n)
        else:
            idx = int(np.searchsorted(np.cumsum(closest, dtype=np.float64), rng.random() * total))
            idx = min(idx, n - 1)
        centroids[j] = x[idx]
        d = np.maximum(x_norms - 2 * (x @ centroids[j]) + centroids[j] @ centroids[j], 0)
        np.minimum(closest, d, out=closest)
    return centroids


def _update(x, labels, k):
    """Per-cluster sums (float64 for accuracy) and counts."""
    from . import _core

    return _core.kmeans_sums(x, labels, k)


def _split_empty(centroids, counts, rng):
    """Faiss's fix for empty clusters: split a big cluster in two."""
    k = centroids.shape[0]
    n = counts.sum()
    for ci in np.flatnonzero(counts == 0):
        # pick a cluster with probability proportional to its size beyond 1
        p = np.maximum(counts - 1, 0).astype(np.float64)
        if p.sum() <= 0:
            break
        cj = int(rng.choice(k, p=p / p.sum()))
        centroids[ci] = centroids[cj]
        sign = np.where(np.arange(centroids.shape[1]) % 2 == 0, 1.0, -1.0).astype(np.float32)
        centroids[ci] *= 1 + _EPS * sign
        centroids[cj] *= 1 - _EPS * sign
        counts[ci] = counts[cj] // 2
        counts[cj] -= counts[ci]
    del n
    return centroids


def kmeans(
    x,
    k: int,
    niter: int = 10,
    seed: int = 0,
    *,
    init: str = "random",
    max_points_per_centroid: int = 256,
    min_points_per_centroid: int = 39,
    spherical: bool = False,
    int_centroids: bool = False,
    init_centroids=None,
    verbose: bool = False,
    progress=None,
) -> KMeansResult:
    """Cluster the rows of ``x`` into ``k`` groups with ``niter`` Lloyd iterations.

    Returns a ``KMeansResult`` (centroids, assignment of the training points,
    final inertia, the inertia after each iteration). Raises ValueError when
    there are fewer points than clusters; warns when there are fewer than
    ``min_points_per_centroid * k``. ``spherical`` keeps unit-norm centroids and
    assigns by inner product; ``int_centroids`` rounds coordinates after each update.
    ``progress``: a callable ``progress(done, total)`` or True for a tqdm bar, over the
    iterations.
    """
    x, _ = _validate.as_vectors(x, None, "training vectors")
    k = _validate.check_positive_int(k, "k")
    niter = _validate.check_positive_int(niter, "niter", minimum=0)
    if init not in ("random", "kmeans++"):
        raise ValueError(f"init must be 'random' or 'kmeans++', got {init!r}")
    n, d = x.shape
    if n < k:
        raise ValueError(
            f"number of training points ({n}) should be at least as large as the number of clusters ({k})"
        )
    if n < min_points_per_centroid * k:
        warnings.warn(
            f"clustering {n} points to {k} centroids: please provide at least "
            f"{min_points_per_centroid * k} training points",
            RuntimeWarning, stacklevel=2,
        )
    rng = np.random.default_rng(seed)
    if max_points_per_centroid and n > max_points_per_centroid * k:
        sample = np.sort(rng.choice(n, max_points_per_centroid * k, replace=False))
        x = x[sample]
        n = x.shape[0]
        if verbose:
            print(f"sampling a subset of {n} points for training")
    if spherical:
        from .metrics import normalize_rows

        x = normalize_rows(x)
    x_norms = np.einsum("ij,ij->i", x, x)

    if init_centroids is not None:
        centroids, _ = _validate.as_vectors(init_centroids, d, "init_centroids")
        if centroids.shape[0] != k:
            raise ValueError(f"init_centroids has {centroids.shape[0]} rows, expected k={k}")
        centroids = centroids.copy()
    elif init == "kmeans++":
        centroids = _init_kmeanspp(x, k, rng, x_norms)
    else:
        centroids = _init_random(x, k, rng)
    if spherical:
        centroids = _normalize(centroids)

    # Lloyd iterations as Faiss counts them: assign, record the objective, update.
    objective = []
    labels = dist = None
    bar = _progress.start(progress, niter, "k-means")
    for it in range(niter):
        labels, dist = assign(x, centroids, spherical, x_norms)
        objective.append(float(dist.sum(dtype=np.float64)))
        if verbose:
            print(f"iteration {it}: objective {objective[-1]:.6g}")
        sums, counts = _update(x, labels, k)
        nonempty = counts > 0
        centroids[nonempty] = (sums[nonempty] / counts[nonempty, None]).astype(np.float32)
        if not nonempty.all():
            centroids = _split_empty(centroids, counts.copy(), rng)
        if spherical:
            centroids = _normalize(centroids)
        if int_centroids:  # integer coordinates after every update (faiss's option)
            centroids = np.rint(centroids).astype(np.float32)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.__exit__(None, None, None)
    if labels is None:
        labels, dist = assign(x, centroids, spherical, x_norms)
    inertia = objective[-1] if objective else float(dist.sum(dtype=np.float64))
    return KMeansResult(np.ascontiguousarray(centroids, np.float32), labels, inertia,
                        np.asarray(objective), n)


def _normalize(c):
    norms = np.linalg.norm(c, axis=1, keepdims=True)
    norms[norms == 0] = 1
    return np.ascontiguousarray(c / norms, dtype=np.float32)
