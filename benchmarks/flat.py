"""Exact search: nearkit.Flat against faiss IndexFlatIP / IndexFlatL2 and plain numpy.

    python benchmarks/flat.py                          # GloVe 399k base, 1,000 queries
    python benchmarks/flat.py --n-base 100000 --metrics cosine --knn-n 20000

Everything runs on one thread. Data: GloVe 6B 50-d, 1,000 held-out queries.
Per metric ("cosine" = faiss IndexFlatIP on unit vectors, "l2" = IndexFlatL2):

- batch:  one search call with all queries (faiss tuned as the issue asks:
          distance_compute_blas_threshold = 20 so it uses BLAS at d = 50);
          also numpy's blocked matrix products alone, without any top-k, as
          the ceiling of a "BLAS blocks + separate selection" design;
- single: a Python loop of single-query searches (--single of the queries);
- knn:    the all-pairs 10-NN graph of the first --knn-n base vectors:
          nearkit.knn_graph against faiss searching X in itself with k + 1
          and dropping each row itself.

Each timing is the best of --repeat runs, taken twice: wall clock and the
process's CPU time. On a shared machine the CPU time is the steadier measure
of the work done (it does not count time spent waiting for a core), so every
ratio is printed both ways (ratio_to_faiss: wall, ratio_to_faiss_cpu: CPU).
Ratios are nearkit's speed over the peer's (> 1: nearkit is faster); batch
lines also give the fraction of the core's FMA peak the batch path reaches
(CPU time of the batch against CPU time of the probe). The peak is measured, not looked up: the time of
a register-only loop of independent multiply-adds of the active ISA
(nearkit._core.fma_probe). On AMD Zen 4 that loop runs one 512-bit (or two
256-bit) FMA per cycle, i.e. 32 FLOP/cycle, so peak / 32 is the clock; the
line prints that implied clock too. Useful FLOPs of a batch = 2 * d * n * nq.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, glove, log, machine_load, single_thread_env  # noqa: E402

single_thread_env()

import numpy as np  # noqa: E402

K = 10
ZEN4_FLOPS_PER_CYCLE = 32  # fp32: two 256-bit FMA pipes (512-bit ops take both)


class Timing:
    """Best-of wall and CPU seconds of repeated runs."""

    def __init__(self, fn, repeat: int):
        self.wall = self.cpu = float("inf")
        for _ in range(repeat):
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            self.cpu = min(self.cpu, time.process_time() - c0)
            self.wall = min(self.wall, time.perf_counter() - w0)


def fma_peak_gflops(repeat: int) -> float:
    """GFLOP/s of a register-only FMA loop per CPU second: the core's peak."""
    from nearkit import _core

    iters = 20_000_000
    flops = _core.fma_probe(iters)
    return flops / Timing(lambda: _core.fma_probe(iters), repeat).cpu / 1e9


def numpy_batch(base, queries, k, metric, block=32):
    """Plain numpy: blocked matrix product + argpartition (the textbook way)."""
    sqn = np.einsum("ij,ij->i", base, base) if metric == "l2" else None
    ids = np.empty((len(queries), k), np.int64)
    for s in range(0, len(queries), block):
        q = queries[s:s + block]
        dots = q @ base.T
        score = sqn[None, :] - 2 * dots if metric == "l2" else -dots
        part = np.argpartition(score, k, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(score, part, 1), axis=1)
        ids[s:s + block] = np.take_along_axis(part, order, 1)
    return ids


def numpy_matmul_only(base, queries, block=64):
    """The matrix products alone, blocked, no selection: what BLAS gives the
    'BLAS blocks + separate top-k' design before it even selects anything."""
    out = np.empty((block, base.shape[0]), np.float32)
    bt = base.T
    for s in range(0, len(queries), block):
        q = queries[s:s + block]
        np.matmul(q, bt, out=out[:len(q)])


def numpy_single(base, q, k, metric, sqn=None):
    dots = base @ q
    score = sqn - 2 * dots if metric == "l2" else -dots
    part = np.argpartition(score, k)[:k]
    return part[np.argsort(score[part])]


def faiss_index(base, metric):
    import faiss

    index = faiss.IndexFlatL2(base.shape[1]) if metric == "l2" else faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    return index


def run_metric(args, metric, base, queries, peak):
    import nearkit

    n, d = base.shape
    nq = len(queries)
    if metric == "cosine":  # faiss and numpy get unit vectors; nearkit normalises itself
        unit = lambda x: (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)  # noqa: E731
        pbase, pqueries = unit(base), unit(queries)
    else:
        pbase, pqueries = base, queries
    fidx = faiss_index(pbase, metric)
    nk = nearkit.Flat(d, metric)
    nk.add(base)
    common = dict(bench="flat", metric=metric, n_base=n, dim=d, k=K, threads=1)

    # Same answers first (distances: ids can differ on exact ties).
    got_ids, got_d = nk.search(queries[:50], K)
    f_d, f_ids = fidx.search(pqueries[:50], K)
    f_dist = f_d if metric == "l2" else 1.0 - f_d
    agree = float(np.mean(got_ids == f_ids))
    assert np.allclose(got_d, f_dist, atol=1e-3), "nearkit and faiss disagree"

    # -- batch -------------------------------------------------------------------
    flops = 2.0 * d * n * nq
    t_nk = Timing(lambda: nk.search(queries, K), args.repeat)
    t_f = Timing(lambda: fidx.search(pqueries, K), args.repeat)
    t_np = Timing(lambda: numpy_batch(pbase, pqueries, K, metric), 1)
    t_mm = Timing(lambda: numpy_matmul_only(pbase, pqueries), 1)
    load = machine_load()
    for impl, t in (("nearkit", t_nk), (type(fidx).__name__, t_f), ("numpy", t_np),
                    ("numpy-matmul-only-no-topk", t_mm)):
        emit(**common, mode="batch", impl=impl, nq=nq, qps=round(nq / t.wall, 1),
             qps_cpu=round(nq / t.cpu, 1), gflops_cpu=round(flops / t.cpu / 1e9, 2), load=load)
    emit(**common, mode="batch", ratio_to_faiss=round(t_f.wall / t_nk.wall, 3),
         ratio_to_faiss_cpu=round(t_f.cpu / t_nk.cpu, 3),
         ratio_to_numpy_cpu=round(t_np.cpu / t_nk.cpu, 3),
         fma_peak_fraction=round(flops / t_nk.cpu / 1e9 / peak, 3),
         faiss_fma_peak_fraction=round(flops / t_f.cpu / 1e9 / peak, 3),
         fma_peak_gflops=round(peak, 1),
         implied_clock_ghz=round(peak / ZEN4_FLOPS_PER_CYCLE, 2),
         ids_agree_with_faiss=round(agree, 4), load=load)

    # -- single queries ------------------------------------------------------------
    s = min(args.single, nq)
    sqn = np.einsum("ij,ij->i", pbase, pbase) if metric == "l2" else None
    t_nk = Timing(lambda: [nk.search(queries[i], K) for i in range(s)], args.repeat)
    t_f = Timing(lambda: [fidx.search(pqueries[i:i + 1], K) for i in range(s)], args.repeat)
    t_np = Timing(lambda: [numpy_single(pbase, pqueries[i], K, metric, sqn)
                           for i in range(s)], 1)
    load = machine_load()
    for impl, t in (("nearkit", t_nk), (type(fidx).__name__, t_f), ("numpy", t_np)):
        emit(**common, mode="single", impl=impl, nq=s, qps=round(s / t.wall, 1),
             qps_cpu=round(s / t.cpu, 1), load=load)
    emit(**common, mode="single", ratio_to_faiss=round(t_f.wall / t_nk.wall, 3),
         ratio_to_faiss_cpu=round(t_f.cpu / t_nk.cpu, 3),
         ratio_to_numpy_cpu=round(t_np.cpu / t_nk.cpu, 3), load=load)


def run_knn(args, metric, base):
    import nearkit

    x = np.ascontiguousarray(base[:args.knn_n])
    n, d = x.shape
    px = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32) if metric == "cosine" else x

    out = {}

    def faiss_graph():
        D, I = faiss_index(px, metric).search(px, K + 1)
        keep = I != np.arange(n)[:, None]
        keep[keep.all(axis=1), -1] = False  # self not found (ties): drop the last
        out["faiss"] = I[keep].reshape(n, K)

    def nearkit_graph():
        out["nearkit"] = nearkit.knn_graph(x, K, metric)[0]

    t_nk = Timing(nearkit_graph, args.knn_repeat)
    t_f = Timing(faiss_graph, args.knn_repeat)
    agree = float(np.mean(np.sort(out["nearkit"], 1) == np.sort(out["faiss"], 1)))
    load = machine_load()
    common = dict(bench="flat", mode="knn_graph", metric=metric, n=n, dim=d, k=K, threads=1)
    for impl, t in (("nearkit", t_nk), ("faiss-search-self", t_f)):
        emit(**common, impl=impl, seconds=round(t.wall, 3), cpu_seconds=round(t.cpu, 3),
             load=load)
    emit(**common, ratio_to_faiss=round(t_f.wall / t_nk.wall, 3),
         ratio_to_faiss_cpu=round(t_f.cpu / t_nk.cpu, 3),
         ids_agree_with_faiss=round(agree, 4), load=load)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n-base", type=int, default=None, help="base size (default: all 399,000)")
    p.add_argument("--n-queries", type=int, default=1000)
    p.add_argument("--single", type=int, default=200, help="queries in the single-query loop")
    p.add_argument("--metrics", default="cosine,l2")
    p.add_argument("--knn-n", type=int, default=100_000, help="0 skips the knn_graph run")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--knn-repeat", type=int, default=1)
    args = p.parse_args(argv)

    import faiss
    from nearkit import _core

    faiss.omp_set_num_threads(1)
    faiss.cvar.distance_compute_blas_threshold = 20
    split = glove(n_base=args.n_base, n_queries=args.n_queries)
    log(f"base {split.base.shape}, queries {split.queries.shape}, isa {_core.isa()}, "
        f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE')}")
    peak = fma_peak_gflops(5)
    emit(bench="flat", isa=_core.isa(), fma_peak_gflops=round(peak, 1),
         implied_clock_ghz=round(peak / ZEN4_FLOPS_PER_CYCLE, 2), load=machine_load())
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()]
    for metric in metrics:
        run_metric(args, metric, split.base, split.queries, peak)
    if args.knn_n:
        for metric in metrics:
            run_knn(args, metric, split.base)


if __name__ == "__main__":
    main()
