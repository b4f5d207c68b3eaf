"""k-means: nearkit.kmeans against faiss.Kmeans, 10 iterations, same data, same threads.

    python benchmarks/kmeans.py                 # GloVe 400k x 50, k = 1024 and 256
    python benchmarks/kmeans.py --k 1024 --repeat 3
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/kmeans.py   # one thread each

Both subsample to 256 points per centroid. The inertia of each result is
measured the same way (nearkit.kmeans.assign over ALL points), so the ratio
compares final quality, not each library's own bookkeeping. Timings alternate
between the two libraries and keep the best of --repeat runs, which tames the
noise of a shared machine; process CPU time is printed too (with one thread it
is the fairest measure on a loaded machine: descheduling does not count).
Prints one JSON line per k plus the load average.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, machine_load  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--k", type=int, nargs="*", default=[1024, 256])
    ap.add_argument("--niter", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--n", type=int, default=None, help="number of GloVe vectors (default all)")
    args = ap.parse_args(argv)

    import faiss
    import numpy as np

    import nearkit
    from nearkit import datasets
    from nearkit.kmeans import assign

    x = np.ascontiguousarray(datasets.glove_vectors(mmap=False)[: args.n], dtype=np.float32)
    # BLAS / OpenMP pools follow OMP_NUM_THREADS when set (e.g. =1 for a
    # single-threaded comparison); otherwise both libraries use every core.
    threads = int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1))
    for k in args.k:
        t_nk, t_fa, c_nk, c_fa = [], [], [], []
        for rep in range(args.repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            ours = nearkit.kmeans(x, k, niter=args.niter, seed=rep)
            t_nk.append(time.perf_counter() - t0)
            c_nk.append(time.process_time() - c0)
            km = faiss.Kmeans(x.shape[1], k, niter=args.niter, seed=rep)
            t0, c0 = time.perf_counter(), time.process_time()
            km.train(x)
            t_fa.append(time.perf_counter() - t0)
            c_fa.append(time.process_time() - c0)
        _, d_nk = assign(x, ours.centroids)
        _, d_fa = assign(x, km.centroids)
        i_nk, i_fa = float(d_nk.sum(dtype=np.float64)), float(d_fa.sum(dtype=np.float64))
        emit(bench="kmeans", n=int(x.shape[0]), dim=int(x.shape[1]), k=k, niter=args.niter,
             threads=threads, nearkit_s=round(min(t_nk), 3), faiss_s=round(min(t_fa), 3),
             time_ratio=round(min(t_nk) / min(t_fa), 3), nearkit_cpu_s=round(min(c_nk), 3),
             faiss_cpu_s=round(min(c_fa), 3), cpu_ratio=round(min(c_nk) / min(c_fa), 3),
             nearkit_inertia=round(i_nk, 1),
             faiss_inertia=round(i_fa, 1), inertia_ratio=round(i_nk / i_fa, 4),
             load=round(machine_load(), 2))


if __name__ == "__main__":
    main()
