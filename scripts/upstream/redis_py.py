"""redis-py's own search and JSON tests against the reference Redis Stack and nearkit.

    python scripts/upstream/redis_py.py [-v] [--reference-url URL] [--work DIR]

The tests come from the sdist of the installed redis-py (`pip download`), unpacked under
--work (never committed). Prints one JSON line per suite with each server's counts and how
many of the tests passing on the reference also pass on nearkit. (Named redis_py.py, not
redis.py, so that running it does not shadow the redis package.)"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common  # noqa: E402

# (label, test path, extra pytest arguments)
SUITES = [
    ("redis-py test_search.py RESP2", "tests/test_search.py", ["--protocol", "2"]),
    ("redis-py test_search.py RESP3", "tests/test_search.py", ["--protocol", "3"]),
    ("redis-py asyncio test_search.py", "tests/test_asyncio/test_search.py", ["--protocol", "2"]),
    ("redis-py test_json.py", "tests/test_json.py", ["--protocol", "2"]),
    ("redis-py asyncio test_json.py", "tests/test_asyncio/test_json.py", ["--protocol", "2"]),
]


def run(ref_url, nk_url, work, select=None):
    tree = _common.sdist_tree("redis", work)
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # the installed redis-py, not the sdist's copy
    rows = []
    for label, path, extra in SUITES:
        def one(url, tag, path=path, extra=extra, label=label):
            log = os.path.join(work, f"{label.replace(' ', '_').replace('/', '_')}.{tag}.log")
            args = [path, "--redis-url", url, "--redis-mod-url", url, *extra,
                    "--rootdir", tree]
            if select:
                args += ["-k", select]
            return _common.run_pytest(args, tree, env, log, timeout=1800)
        rows.append(_common.run_both(label, ref_url, nk_url, one))
    return rows


if __name__ == "__main__":
    sys.exit(_common.main(__doc__.splitlines()[0], run))
