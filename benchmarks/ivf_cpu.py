"""IVF side by side with faiss, measured in CPU time and interleaved.

    python benchmarks/ivf_cpu.py [--n-base 399000] [--rounds 3]

The ann harness measures wall time one algorithm after the other, which a
loaded shared machine distorts (the load average drifts between runs). Here
both libraries' indexes live in one process, each setting is timed for both
back to back, several rounds, keeping the best, in process CPU time (one
thread: OMP/BLAS pinned to 1) and in wall time (best of the rounds). Same data, same factory strings and sweep
settings as benchmarks/algos/ivf.py. Prints JSON lines, then ratio lines
(nearkit queries/s over faiss's at equal recall, interpolated).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import emit, glove, ground_truth, machine_load, single_thread_env  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-base", type=int, default=None)
    ap.add_argument("--n-queries", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    single_thread_env()

    import numpy as np

    from algos import ivf as algos_ivf
    from ann import qps_at_recall
    from nearkit.evaluate import recall_at_k

    data = glove(n_base=args.n_base, n_queries=args.n_queries)
    truth = ground_truth(data.base, data.queries, 10, "cosine")
    pairs = [("nearkit-ivf-flat", "faiss-ivf-flat"), ("nearkit-ivf-pq4fs-rflat", "faiss-ivf-pq4fs-rflat")]
    by_name = {a.name: a for a in algos_ivf.ALGOS}
    for ours_name, peer_name in pairs:
        ours, peer = by_name[ours_name], by_name[peer_name]
        built = {a.name: a.build(data.base, "cosine") for a in (ours, peer)}
        rows = {ours_name: [], peer_name: []}
        for params in ours.sweep:
            best, best_wall = {}, {}
            found = {}
            for _ in range(args.rounds):
                for algo in (ours, peer):
                    idx = built[algo.name]
                    out = np.empty((len(data.queries), 10), np.int64)
                    t0, w0 = time.process_time(), time.perf_counter()
                    for i, q in enumerate(data.queries):
                        out[i] = algo.query(idx, q, 10, params)
                    dt, dw = time.process_time() - t0, time.perf_counter() - w0
                    best[algo.name] = min(best.get(algo.name, 1e9), dt)
                    best_wall[algo.name] = min(best_wall.get(algo.name, 1e9), dw)
                    found[algo.name] = out
            for algo in (ours, peer):
                row = dict(bench="ivf-cpu", algo=algo.name, n=int(data.base.shape[0]), params=params,
                           recall=round(recall_at_k(found[algo.name], truth, 10), 4),
                           qps=round(len(data.queries) / best[algo.name], 1),
                           qps_wall=round(len(data.queries) / best_wall[algo.name], 1),
                           index_bytes=algo.index_bytes(built[algo.name]), load=round(machine_load(), 2))
                rows[algo.name].append(row)
                emit(**row)
        for target in (0.9, 0.95):
            for clock, key in (("cpu", "qps"), ("wall", "qps_wall")):
                ours_rows = [dict(r, qps=r[key]) for r in rows[ours_name]]
                peer_rows = [dict(r, qps=r[key]) for r in rows[peer_name]]
                a, b = qps_at_recall(ours_rows, target), qps_at_recall(peer_rows, target)
                if a and b:
                    emit(bench="ivf-cpu-ratio", clock=clock, ours=ours_name, peer=peer_name,
                         recall=target, qps_ours=round(a, 1), qps_peer=round(b, 1), ratio=round(a / b, 3))


if __name__ == "__main__":
    main()
