"""nearkit.sklearn.NearestNeighbors against scikit-learn's NearestNeighbors.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/sklearn.py
    python benchmarks/sklearn.py --n-base 50000 --n-queries 2000 --ef 32,64,128

Data: GloVe 6B 50-d (50,000 base rows, held-out queries), metric "euclidean"
(true Euclidean distances on both sides). Everything runs on one thread
(n_jobs=None on both sides; BLAS pinned by the environment variables above,
set here too if missing). Per line: fit time, kneighbors time for all queries
(best of --repeat; CPU seconds, wall seconds beside them), recall@k against
sklearn's exact answer, and the ratio sklearn's kneighbors CPU time / nearkit's
(> 1: nearkit is faster). sklearn runs
with its default algorithm="auto" (brute force at d = 50) and "brute"; --kd-tree
adds "kd_tree" (about 30x slower than brute here).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

# This file is named sklearn.py: its own directory must not shadow the real package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]

import importlib.util  # noqa: E402

import numpy as np  # noqa: E402

_spec = importlib.util.spec_from_file_location("nearkit_bench_common", os.path.join(_HERE, "common.py"))
_common = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_common)
emit, glove, loadavg = _common.emit, _common.glove, _common.loadavg


def timed(fn, repeat):
    """(best CPU seconds, best wall seconds, result). The shared machine is loaded, so
    ratios use CPU time (process_time: every thread of this process; both sides run
    on one thread)."""
    best_cpu, best_wall, out = float("inf"), float("inf"), None
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        best_cpu = min(best_cpu, time.process_time() - c0)
        best_wall = min(best_wall, time.perf_counter() - t0)
    return best_cpu, best_wall, out


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    k = truth.shape[1]
    return float(np.mean([len(np.intersect1d(f, t)) / k for f, t in zip(found, truth)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-base", type=int, default=50_000)
    ap.add_argument("--n-queries", type=int, default=2000)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--M", type=int, default=24)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--ef", default="48,64,80,96,128")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--kd-tree", action="store_true", help="also time sklearn's kd_tree (~70 s)")
    args = ap.parse_args()

    from sklearn.neighbors import NearestNeighbors as SkNN

    from nearkit.sklearn import NearestNeighbors as NkNN

    split = glove(n_base=args.n_base, n_queries=args.n_queries)
    X, Q, k = split.base, split.queries, args.k
    common = dict(dataset="glove-50d", n_base=X.shape[0], n_queries=Q.shape[0], dim=X.shape[1], k=k,
                  threads=1)

    truth, sk_times = None, {}
    for algo in ("auto", "brute") + (("kd_tree",) if args.kd_tree else ()):
        t0 = time.perf_counter()
        sk = SkNN(n_neighbors=k, algorithm=algo).fit(X)
        fit_s = time.perf_counter() - t0
        secs, wall, (_, ids) = timed(lambda: sk.kneighbors(Q), args.repeat)
        if truth is None:
            truth = ids
        sk_times[algo] = secs
        emit(lib="sklearn", algorithm=algo, fit_s=round(fit_s, 3), kneighbors_cpu_s=round(secs, 4),
             kneighbors_wall_s=round(wall, 4), qps_cpu=round(Q.shape[0] / secs, 1),
             recall=round(recall(ids, truth), 4), load=loadavg(), **common)

    t0 = time.process_time()
    nk = NkNN(n_neighbors=k, algorithm="hnsw",
              algorithm_params={"M": args.M, "ef_construction": args.ef_construction}).fit(X)
    fit_s = time.process_time() - t0  # CPU seconds
    for ef in (int(e) for e in args.ef.split(",")):
        nk.set_params(algorithm_params={"M": args.M, "ef_construction": args.ef_construction, "ef": ef})
        nk._search_params = {"ef": ef}  # search-time only: no refit needed
        secs, wall, (dist, ids) = timed(lambda: nk.kneighbors(Q), args.repeat)
        emit(lib="nearkit", algorithm="hnsw", M=args.M, ef_construction=args.ef_construction, ef=ef,
             fit_cpu_s=round(fit_s, 3), kneighbors_cpu_s=round(secs, 4), kneighbors_wall_s=round(wall, 4),
             qps_cpu=round(Q.shape[0] / secs, 1),
             recall=round(recall(ids, truth), 4),
             speedup_vs_sklearn_auto=round(sk_times["auto"] / secs, 2),
             speedup_vs_sklearn_brute=round(sk_times["brute"] / secs, 2),
             **({"speedup_vs_sklearn_kd_tree": round(sk_times["kd_tree"] / secs, 2)} if args.kd_tree else {}),
             load=loadavg(), **common)


if __name__ == "__main__":
    main()
