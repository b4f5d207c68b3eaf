"""nearkit's HNSW against hnswlib in one process, in alternating short rounds.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/hnsw_paired.py [--ef 96] [--rounds 30]
        [--ef-hnswlib 104]   (pair at equal recall when the two need different ef)
        [--baseline-index old.nki --baseline-ef 100]   (a third index in the same rounds)

ann.py runs each library in its own process, one after the other; on a shared
host whose speed drifts from minute to minute that moves ratios by +-15%. Here
both indexes (GloVe 399k, built as ann.py builds them; kept in --cache) answer the same 200 random queries in turn, round
after round, and the ratio is the median of the per-round ratios of CPU time.
Prints one JSON line per ef with both recalls@10 (over all 1,000 queries).
--baseline-index adds a nearkit index file saved by an earlier build (searched
with this build's code) to every round: what a graph change alone is worth.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from algos.hnsw import build_hnswlib, build_nearkit
from common import emit, glove, ground_truth


def _indexes(data, cache: Path):
    """Both indexes, built as ann.py builds them (algos/hnsw.py) and kept in ``cache``."""
    import hnswlib

    import nearkit

    cache.mkdir(parents=True, exist_ok=True)
    nk_path, hl_path = cache / "glove_nearkit.nki", cache / "glove_hnswlib.bin"
    if nk_path.exists():
        nk = nearkit.load(nk_path)
    else:
        nk = build_nearkit(data.base, "cosine")
        nk.save(nk_path)
    if hl_path.exists():
        hl = hnswlib.Index(space="cosine", dim=data.base.shape[1])
        hl.load_index(str(hl_path))
    else:
        hl = build_hnswlib(data.base, "cosine")
        hl.save_index(str(hl_path))
    hl.set_num_threads(1)
    return nk, hl


def _cpu(fn, queries) -> float:
    c0 = time.thread_time()
    for q in queries:
        fn(q)
    return time.thread_time() - c0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ef", type=int, nargs="+", default=[64, 96])
    ap.add_argument("--ef-hnswlib", type=int, nargs="+", default=None,
                    help="hnswlib's ef for each --ef (default: the same), to pair at equal recall")
    ap.add_argument("--baseline-index", type=Path, default=None,
                    help="a nearkit index file (e.g. built by an earlier commit) timed in the same rounds")
    ap.add_argument("--baseline-ef", type=int, nargs="+", default=None,
                    help="its ef for each --ef (default: the same)")
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "nearkit-paired")
    args = ap.parse_args(argv)
    from nearkit.evaluate import recall_at_k

    data = glove(n_queries=1000)
    truth = ground_truth(data.base, data.queries, 10, "cosine")
    nk, hl = _indexes(data, args.cache)
    rng = np.random.default_rng(0)
    ef_peer = args.ef_hnswlib or args.ef
    ef_base = args.baseline_ef or args.ef
    if len(ef_peer) != len(args.ef) or len(ef_base) != len(args.ef):
        ap.error("--ef-hnswlib and --baseline-ef need one value per --ef")
    base = None
    if args.baseline_index is not None:
        import nearkit

        base = nearkit.load(args.baseline_index)
    for ef, ef_hl, ef_b in zip(args.ef, ef_peer, ef_base):
        hl.set_ef(ef_hl)
        fns = {"nearkit": lambda q, ef=ef: nk.search(q, 10, ef=ef)[0],
               "hnswlib": lambda q: hl.knn_query(q, k=10, num_threads=1)[0][0]}
        if base is not None:
            fns["baseline"] = lambda q, ef=ef_b: base.search(q, 10, ef=ef)[0]
        recall = {name: round(recall_at_k(np.stack([fn(q) for q in data.queries]), truth, 10), 4)
                  for name, fn in fns.items()}
        times = {name: [] for name in fns}
        names = list(fns)
        for r in range(args.rounds):
            qs = data.queries[rng.choice(len(data.queries), 200, replace=False)]
            for name in names[r % len(names):] + names[:r % len(names)]:  # who goes first rotates
                times[name].append(_cpu(fns[name], qs))
        times = {name: np.array(t) for name, t in times.items()}
        n = args.rounds * 200
        ratios = times["hnswlib"] / times["nearkit"]
        extra = {}
        if base is not None:
            vs_base = times["baseline"] / times["nearkit"]
            extra = dict(baseline_ef=ef_b, recall_baseline=recall["baseline"],
                         qps_cpu_baseline=round(n / times["baseline"].sum()),
                         ratio_vs_baseline_median=round(float(np.median(vs_base)), 3))
        emit(bench="hnsw-paired", ef=ef, ef_hnswlib=ef_hl, recall_nearkit=recall["nearkit"],
             recall_hnswlib=recall["hnswlib"],
             qps_cpu_nearkit=round(n / times["nearkit"].sum()), qps_cpu_hnswlib=round(n / times["hnswlib"].sum()),
             ratio_median=round(float(np.median(ratios)), 3),
             ratio_q25=round(float(np.percentile(ratios, 25)), 3),
             ratio_q75=round(float(np.percentile(ratios, 75)), 3), **extra)


if __name__ == "__main__":
    main()
