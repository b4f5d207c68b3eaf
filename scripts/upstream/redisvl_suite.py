"""redisvl's own integration tests against the reference Redis Stack and nearkit.

    python scripts/upstream/redisvl_suite.py [-v] [--reference-url URL] [--work DIR]

The tests come from the sdist of the installed redisvl (`pip download`), unpacked under
--work (never committed). Its conftest starts Redis with Docker; here a small plugin file
written next to it points the `redis_url` fixture at the server under test instead. Tests
that need model downloads, API keys, a cluster or Docker are left out."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

# Test files that need a model download, a remote API, a Redis cluster or Docker.
EXCLUDE = ["test_vectorizers.py", "test_rerankers.py", "test_cross_encoder_reranker.py",
           "test_ollama_vectorizer_integration.py", "test_langcache_semantic_cache_integration.py",
           "test_async_cluster_connection.py", "test_cluster_pipelining.py",
           "test_redis_cluster_support.py", "test_svs_integration.py", "test_mcp"]

# Appended to the unpacked conftest.py (later definitions win): no Docker, the URL under test.
_OVERRIDE = '''

# --- added by nearkit's scripts/upstream/redisvl_suite.py ---
@pytest.fixture(scope="session", autouse=True)
def redis_container(worker_id):
    yield None


@pytest.fixture(scope="session")
def redis_url(redis_container):
    return os.environ["NEARKIT_UPSTREAM_URL"]
'''


def _prepare(tree: str, work: str) -> str:
    conftest = os.path.join(tree, "tests", "conftest.py")
    with open(conftest) as fh:
        text = fh.read()
    if "added by nearkit" not in text:
        with open(conftest, "a") as fh:
            fh.write(_OVERRIDE)
    # conftest imports testcontainers at module level; a stub stands in for it.
    stub = os.path.join(work, "stubs", "testcontainers")
    os.makedirs(stub, exist_ok=True)
    open(os.path.join(stub, "__init__.py"), "w").close()
    with open(os.path.join(stub, "compose.py"), "w") as fh:
        fh.write("class DockerCompose:\n    def __init__(self, *a, **k):\n"
                 "        raise RuntimeError('no Docker here')\n")
    return os.path.join(work, "stubs")


def run(ref_url, nk_url, work, select=None):
    tree = _common.sdist_tree("redisvl", work)
    stubs = _prepare(tree, work)
    rows = []

    def one(url, tag):
        env = dict(os.environ, NEARKIT_UPSTREAM_URL=url, PYTHONPATH=stubs, HF_HUB_OFFLINE="1",
                   TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        log = os.path.join(work, f"redisvl-integration.{tag}.log")
        args = ["tests/integration", "-p", "no:randomly", "--rootdir", tree,
                *[f"--ignore=tests/integration/{name}" for name in EXCLUDE]]
        if select:
            args += ["-k", select]
        return _common.run_pytest(args, tree, env, log, timeout=3600)
    rows.append(_common.run_both("redisvl tests/integration", ref_url, nk_url, one))
    return rows


if __name__ == "__main__":
    sys.exit(_common.main(__doc__.splitlines()[0], run))
