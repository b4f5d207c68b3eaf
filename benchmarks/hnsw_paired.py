"""nearkit's HNSW against hnswlib in one process, in alternating short rounds.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/hnsw_paired.py [--ef 96] [--rounds 30]
        [--ef-hnswlib 104]   (pair at equal recall when the two need different ef)

ann.py runs each library in its own process, one after the other; on a shared
host whose speed drifts from minute to minute that moves ratios by +-15%. Here
both indexes (GloVe 399k, built as ann.py builds them; kept in --cache) answer the same 200 random queries in turn, round
after round, and the ratio is the median of the per-round ratios of CPU time.
Prints one JSON line per ef with both recalls@10 (over all 1,000 queries).
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
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "nearkit-paired")
    args = ap.parse_args(argv)
    from nearkit.evaluate import recall_at_k

    data = glove(n_queries=1000)
    truth = ground_truth(data.base, data.queries, 10, "cosine")
    nk, hl = _indexes(data, args.cache)
    rng = np.random.default_rng(0)
    ef_peer = args.ef_hnswlib or args.ef
    if len(ef_peer) != len(args.ef):
        ap.error("--ef-hnswlib needs one value per --ef")
    for ef, ef_hl in zip(args.ef, ef_peer):
        hl.set_ef(ef_hl)
        ours = lambda q: nk.search(q, 10, ef=ef)  # noqa: E731
        peer = lambda q: hl.knn_query(q, k=10, num_threads=1)  # noqa: E731
        rec_ours = recall_at_k(np.stack([ours(q)[0] for q in data.queries]), truth, 10)
        rec_peer = recall_at_k(np.stack([peer(q)[0][0] for q in data.queries]), truth, 10)
        ratios, t_ours, t_peer = [], 0.0, 0.0
        for r in range(args.rounds):
            qs = data.queries[rng.choice(len(data.queries), 200, replace=False)]
            if r % 2:  # alternate who goes first
                b, a = _cpu(peer, qs), _cpu(ours, qs)
            else:
                a, b = _cpu(ours, qs), _cpu(peer, qs)
            ratios.append(b / a)
            t_ours, t_peer = t_ours + a, t_peer + b
        n = args.rounds * 200
        emit(bench="hnsw-paired", ef=ef, ef_hnswlib=ef_hl, recall_nearkit=round(rec_ours, 4), recall_hnswlib=round(rec_peer, 4),
             qps_cpu_nearkit=round(n / t_ours), qps_cpu_hnswlib=round(n / t_peer),
             ratio_median=round(float(np.median(ratios)), 3),
             ratio_q25=round(float(np.percentile(ratios, 25)), 3),
             ratio_q75=round(float(np.percentile(ratios, 75)), 3))


if __name__ == "__main__":
    main()
