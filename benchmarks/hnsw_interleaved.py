"""nearkit HNSW vs hnswlib, queried in alternating blocks in one process.

    python benchmarks/hnsw_interleaved.py [--n-base N] [--nearkit saved.nk] [--hnswlib saved.bin]

On a shared machine the load changes from minute to minute, so two algorithms
timed one after the other (as benchmarks/ann.py does) can see very different
conditions. Here both indexes (GloVe angular, M=16, ef_construction=200) live
in one process and answer the same 1,000 held-out queries in alternating
blocks of 250, twice, so both see the same load. Queries/s is reported on wall
time and on the thread's CPU time (which leaves out time spent descheduled).
One JSON line per (algorithm, ef), then ann-ratio lines at equal recall.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from ann import qps_at_recall  # noqa: E402
from common import emit, glove, ground_truth, log, machine_load, single_thread_env  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-base", type=int, default=None, help="base size (default 399,000)")
    ap.add_argument("--nearkit", help="a saved nearkit HNSW of this base (else built, 2 threads)")
    ap.add_argument("--hnswlib", help="a saved hnswlib index of this base (else built, 2 threads)")
    ap.add_argument("--ef-nearkit", default="48,64,96,128,192")
    ap.add_argument("--ef-hnswlib", default="48,64,96,128,192")
    ap.add_argument("--recall", type=float, nargs="*", default=[0.9, 0.95])
    args = ap.parse_args(argv)
    single_thread_env()
    import hnswlib

    import nearkit

    data = glove(n_base=args.n_base, n_queries=1000)
    truth = ground_truth(data.base, data.queries, 10, "cosine")
    if args.nearkit:
        nk = nearkit.load(args.nearkit)
    else:
        log("building nearkit ...")
        nk = nearkit.HNSW(data.base.shape[1], "cosine")
        nk.add(data.base, threads=2)
    hl = hnswlib.Index(space="cosine", dim=data.base.shape[1])
    if args.hnswlib:
        hl.load_index(args.hnswlib)
    else:
        log("building hnswlib ...")
        hl.init_index(max_elements=data.base.shape[0], M=16, ef_construction=200)
        hl.add_items(data.base, np.arange(data.base.shape[0]), num_threads=2)
    hl.set_num_threads(1)
    assert len(nk) == hl.get_current_count() == data.base.shape[0], "indexes hold another base"

    def q_nearkit(q, ef):
        return nk.search(q, 10, ef=ef)[0]

    def q_hnswlib(q, ef):
        if hl.ef != ef:
            hl.set_ef(ef)
        return hl.knn_query(q, k=10, num_threads=1)[0][0]

    algos = [("nearkit-hnsw", q_nearkit, [int(e) for e in args.ef_nearkit.split(",")]),
             ("hnswlib", q_hnswlib, [int(e) for e in args.ef_hnswlib.split(",")])]
    acc: dict = {}
    queries = data.queries
    for rep in range(2):
        for start in range(0, len(queries), 250):
            block = queries[start:start + 250]
            for name, fn, efs in algos:
                for ef in efs:
                    for q in block[:10]:  # warm this configuration
                        fn(q, ef)
                    found = np.empty((len(block), 10), np.int64)
                    w0, c0 = time.perf_counter(), time.thread_time()
                    for i, q in enumerate(block):
                        found[i] = fn(q, ef)
                    wall, cpu = time.perf_counter() - w0, time.thread_time() - c0
                    a = acc.setdefault((name, ef), {"wall": 0.0, "cpu": 0.0, "n": 0, "hits": 0})
                    a["wall"] += wall
                    a["cpu"] += cpu
                    a["n"] += len(block)
                    if rep == 0:
                        t = truth[start:start + len(block)]
                        a["hits"] += sum(len(set(f) & set(g)) for f, g in zip(found.tolist(), t.tolist()))
    rows = []
    for (name, ef), a in sorted(acc.items()):
        row = dict(bench="ann-interleaved", algo=name, n=int(data.base.shape[0]), params={"ef": ef},
                   recall=round(a["hits"] / (10 * len(queries)), 4), qps=round(a["n"] / a["wall"], 1),
                   qps_cpu=round(a["n"] / a["cpu"], 1), load=round(machine_load(), 2))
        emit(**row)
        rows.append(row)
    for target in args.recall:
        for key in ("qps", "qps_cpu"):
            ours = qps_at_recall([{"recall": r["recall"], "qps": r[key]} for r in rows if r["algo"] == "nearkit-hnsw"], target)
            peer = qps_at_recall([{"recall": r["recall"], "qps": r[key]} for r in rows if r["algo"] == "hnswlib"], target)
            if ours and peer:
                emit(bench="ann-ratio", mode="interleaved-" + ("wall" if key == "qps" else "cpu"),
                     ours="nearkit-hnsw", peer="hnswlib", recall=target, qps_ours=round(ours, 1),
                     qps_peer=round(peer, 1), ratio=round(ours / peer, 3), load=round(machine_load(), 2))


if __name__ == "__main__":
    main()
