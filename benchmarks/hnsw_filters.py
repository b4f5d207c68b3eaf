"""Filtered HNSW search: graph walk vs exact scan of the allowed ids, by selectivity.

    python benchmarks/hnsw_filters.py [--n-base 100000] [--queries 200] [--index saved.nk]
    (--n-base 0: the whole 399,000-row base)

For each fraction of ids passing the filter it times the filtered graph walk
(forced), the exact scan of the allowed slots (forced) and the automatic
choice, with recall@10 against exact search over the allowed ids. This is the
measurement behind the switch-over point in cpp/index/hnsw.h (exact_threshold /
exact_scale). One JSON line per (fraction, path); one thread.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, glove, machine_load, single_thread_env  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-base", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--ef", type=int, default=64)
    ap.add_argument("--index", help="a saved nearkit HNSW of the same base (skips the build)")
    ap.add_argument("--fractions", type=float, nargs="*",
                    default=[0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5])
    args = ap.parse_args(argv)
    single_thread_env()
    import nearkit
    from nearkit.metrics import normalize_rows

    data = glove(n_base=args.n_base or None, n_queries=1000)  # the ann.py split
    data.queries = data.queries[: args.queries]
    if args.index:
        index = nearkit.load(args.index)
        assert len(index) == data.base.shape[0], "the saved index holds a different base"
    else:
        index = nearkit.HNSW(data.base.shape[1], "cosine")
        index.add(data.base, threads=2)
    core = index._core
    auto = (core.exact_threshold, core.exact_scale)
    b, q = normalize_rows(data.base), normalize_rows(data.queries)
    dist = 1.0 - q @ b.T
    rng = np.random.default_rng(0)
    k = 10
    for frac in args.fractions:
        allowed = rng.random(b.shape[0]) < frac
        d = np.where(allowed[None, :], dist, np.inf)
        truth = np.argsort(d, axis=1)[:, :k]
        for path, setting in (("graph", (0, 0.0)), ("exact", (1 << 62, 1.0)), ("auto", auto)):
            core.exact_threshold, core.exact_scale = setting
            t0 = time.perf_counter()
            ids, _ = index.search(data.queries, k, ef=args.ef, filter=allowed)
            elapsed = time.perf_counter() - t0
            rec = np.mean([len(set(a) & set(t)) / k for a, t in zip(ids, truth)])
            emit(bench="hnsw-filter", n=int(b.shape[0]), fraction=frac, allowed=int(allowed.sum()),
                 path=path, ef=args.ef, recall=round(float(rec), 4),
                 qps=round(len(q) / elapsed, 1), load=round(machine_load(), 2))
        core.exact_threshold, core.exact_scale = auto


if __name__ == "__main__":
    main()
