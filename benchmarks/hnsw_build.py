"""HNSW build time (1 vs 2 threads) and memory, nearkit against hnswlib.

    python benchmarks/hnsw_build.py [--n-base 100000] [--threads 1 2]

Each (library, threads) build runs in its own subprocess on the same GloVe
base (angular, M=16, ef_construction=200); memory is the growth of the
process's resident set across the build (data already loaded). Prints one
JSON line per build and a summary line with the 2-vs-1-thread speed-up and the
ratios to hnswlib. cpu_s (process CPU time) next to build_s shows whether a
poor speed-up is the build's or a busy machine's: on a shared machine the
second thread may simply not get a core.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import current_rss_mb, emit, glove, log, machine_load, run_child  # noqa: E402


def build_once(lib: str, threads: int, n_base: int | None) -> dict:
    import numpy as np

    data = glove(n_base=n_base, n_queries=1000)
    base = np.ascontiguousarray(data.base)
    rss0 = current_rss_mb()
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    if lib == "nearkit":
        import nearkit

        index = nearkit.HNSW(base.shape[1], "cosine", M=16, ef_construction=200)
        index.add(base, threads=threads)
    else:
        import hnswlib

        index = hnswlib.Index(space="cosine", dim=base.shape[1])
        index.init_index(max_elements=base.shape[0], M=16, ef_construction=200)
        index.add_items(base, np.arange(base.shape[0]), num_threads=threads)
    build_s = time.perf_counter() - t0
    cpu_s = time.process_time() - cpu0
    return dict(bench="hnsw-build", lib=lib, threads=threads, n=int(base.shape[0]),
                build_s=round(build_s, 2), cpu_s=round(cpu_s, 2), index_rss_mb=round(current_rss_mb() - rss0, 1),
                load=round(machine_load(), 2))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-base", type=int, default=None, help="base size (default 399,000)")
    ap.add_argument("--threads", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--libs", default="nearkit,hnswlib")
    ap.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(build_once(args.one[0], int(args.one[1]), args.n_base)), flush=True)
        return

    rows = {}
    for lib in args.libs.split(","):
        for t in args.threads:
            cmd = [sys.executable, __file__, "--one", lib, str(t)]
            if args.n_base:
                cmd += ["--n-base", str(args.n_base)]
            log(f"building {lib} with {t} thread(s) ...")
            printed = run_child(cmd, lib)
            if not printed:
                continue
            row = printed[-1]
            print(json.dumps(row), flush=True)
            rows[(lib, t)] = row
    nk1, nk2, hl1 = rows.get(("nearkit", 1)), rows.get(("nearkit", 2)), rows.get(("hnswlib", 1))
    summary = {"bench": "hnsw-build-summary"}
    if nk1 and nk2:
        summary["nearkit_speedup_2v1"] = round(nk1["build_s"] / nk2["build_s"], 3)
    if nk1 and hl1:
        summary["build_time_ratio_vs_hnswlib"] = round(nk1["build_s"] / hl1["build_s"], 3)
        summary["memory_ratio_vs_hnswlib"] = round(nk1["index_rss_mb"] / max(hl1["index_rss_mb"], 1e-9), 3)
    if len(summary) > 1:
        emit(**summary, load=round(machine_load(), 2))


if __name__ == "__main__":
    main()
