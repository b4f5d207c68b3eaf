"""Distance metrics and their conventions.

Every nearkit index reports distances where smaller is closer:

- ``"l2"``: squared Euclidean distance.
- ``"ip"``: 1 - inner product.
- ``"cosine"``: 1 - cosine similarity (vectors are normalised on the way in).

The integer codes match ``nk::Metric`` in ``cpp/common/metric.h`` and are what the
file format stores.
"""

from __future__ import annotations

import numpy as np

L2 = "l2"
IP = "ip"
COSINE = "cosine"

METRIC_CODES = {L2: 0, IP: 1, COSINE: 2}
METRIC_NAMES = {code: name for name, code in METRIC_CODES.items()}

_ALIASES = {
    "l2": L2, "sqeuclidean": L2,
    "ip": IP, "dot": IP, "inner_product": IP,
    "cosine": COSINE, "angular": COSINE, "cos": COSINE,
}


def normalize_metric(metric: str) -> str:
    """Return the canonical metric name, or raise ValueError naming the choices."""
    if not isinstance(metric, str):
        raise TypeError(f"metric must be a string, not {type(metric).__name__}")
    if metric.lower() in ("euclidean", "euclid"):
        # Not an alias of "l2": that would hand squared distances to someone asking for
        # true Euclidean ones.
        raise ValueError(
            f"metric {metric!r} is not supported: use 'l2', the squared Euclidean distance "
            "(the same neighbours in the same order; np.sqrt of the distances gives Euclidean ones)"
        )
    try:
        return _ALIASES[metric.lower()]
    except KeyError:
        raise ValueError(
            f"unknown metric {metric!r}; expected one of 'l2', 'ip', 'cosine'"
        ) from None


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """Unit-normalise rows (float32); all-zero rows are left as zeros."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return np.ascontiguousarray(x / norms, dtype=np.float32)


def reference_distances(queries: np.ndarray, base: np.ndarray, metric: str) -> np.ndarray:
    """Plain numpy distances (nq, n) in float64: the ground truth for tests."""
    q = np.asarray(queries, dtype=np.float64)
    b = np.asarray(base, dtype=np.float64)
    metric = normalize_metric(metric)
    if metric == L2:
        return (q * q).sum(1)[:, None] - 2 * q @ b.T + (b * b).sum(1)[None, :]
    if metric == COSINE:
        qn = np.linalg.norm(q, axis=1, keepdims=True)
        bn = np.linalg.norm(b, axis=1, keepdims=True)
        qn[qn == 0] = 1
        bn[bn == 0] = 1
        q, b = q / qn, b / bn
    return 1.0 - q @ b.T
