"""Shared fixtures: small slices of real GloVe data and synthetic clusters."""

import numpy as np
import pytest

from nearkit import datasets


@pytest.fixture(scope="session")
def glove_20k():
    """20,000 GloVe base vectors and 200 held-out queries (skips if the data extra is missing)."""
    try:
        return datasets.glove_split(n_base=20_000, n_queries=200, seed=1)
    except datasets.DatasetUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def clustered():
    x = datasets.synthetic_clustered(5_000 + 100, 32, seed=3)
    return x[:5_000], x[5_000:]


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
