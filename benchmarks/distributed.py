"""nearkit.distributed on a local Ray instance: build time, search throughput and
merge overhead for 1, 2 and 4 shards, against the same index in-process.

    python benchmarks/distributed.py                      # 384-d synthetic clusters
    python benchmarks/distributed.py --n 100000 --kinds flat --shards 1,2

Data: ``datasets.synthetic_clustered`` (n rows, --dim, held-out queries from the
same clusters). For each kind (flat, hnsw) the peer is one plain nearkit index
in this process, one thread; then ``ShardedIndex`` with S shards (one Ray actor
each, each searching on one thread) on ``ray.init(num_cpus=--cpus)``.

Lines (JSON, one per measurement; every line carries the 1-minute load average,
because the machine is shared and wall-clock times move with it):

- ``what=build``:  seconds to add all rows (sharded: routing, object-store puts,
  parallel adds);
- ``what=search``: queries/s for one big batch (best of --repeat), recall@10
  against exact search, ``speedup_vs_1_shard`` and ``ratio_to_plain`` (sharded
  qps over the in-process index's qps);
- ``what=shard_cpu``: CPU seconds each shard's thread spent on the batch (best
  of --repeat): ``cpu_speedup_bound`` = in-process CPU / slowest shard's CPU (the
  speed-up S idle cores would give, before Ray's and the merge's overhead),
  ``work_ratio`` = all shards' CPU / in-process CPU (the work sharding adds);
  steadier than wall-clock on a loaded machine;
- ``what=merge``:  the driver's merge of S per-shard top-k lists for the batch
  (ms and share of the batch's search time), and the fixed cost per batch
  measured with a small batch;
- ``what=knn_graph``: the all-pairs 10-NN graph of --graph-n rows, local
  (one thread) against the distributed version on S tasks, with the number of
  entries where the two differ (near-ties; see docs/distributed.md).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, loadavg, log, single_thread_env  # noqa: E402

single_thread_env()

import numpy as np  # noqa: E402

K = 10


def best_of(repeat, fn):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def cpu_best_of(repeat, fn):
    """Least CPU time of this thread over repeat calls of fn (single-threaded work)."""
    best = float("inf")
    for _ in range(repeat):
        t = time.thread_time()
        fn()
        best = min(best, time.thread_time() - t)
    return best


def recall(found, truth):
    return float(np.mean([len(set(f) & set(t)) / truth.shape[1] for f, t in zip(found, truth)]))


def make_index(kind, dim, args):
    import nearkit

    if kind == "flat":
        return nearkit.Flat(dim)
    return nearkit.HNSW(dim, M=args.M, ef_construction=args.ef_construction)


def kind_options(kind, args):
    return {} if kind == "flat" else {"M": args.M, "ef_construction": args.ef_construction}


def search_params(kind, args):
    return {} if kind == "flat" else {"ef": args.ef}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--hnsw-n", type=int, default=20_000, help="rows for hnsw (its build is slow)")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--nq", type=int, default=2000, help="the big batch")
    ap.add_argument("--small-nq", type=int, default=8, help="the small batch (fixed cost per batch)")
    ap.add_argument("--shards", default="1,2,4")
    ap.add_argument("--kinds", default="flat,hnsw")
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=100)
    ap.add_argument("--ef", type=int, default=64)
    ap.add_argument("--graph-n", type=int, default=20_000)
    args = ap.parse_args()

    import ray

    import nearkit
    from nearkit import datasets
    from nearkit.distributed import ShardedIndex, knn_graph
    from nearkit.distributed.merge import merge_topk

    ray.init(num_cpus=args.cpus, include_dashboard=False, logging_level="ERROR",
             log_to_driver=False)
    shard_counts = [int(s) for s in args.shards.split(",")]
    data = datasets.synthetic_clustered(args.n + args.nq, args.dim, seed=7)
    base_all, queries = data[:args.n], data[args.n:]
    exact = nearkit.Flat(args.dim)
    exact.add(base_all)
    truth_all = exact.search(queries, K)[0]
    del exact

    for kind in filter(None, args.kinds.split(",")):
        n = args.n if kind == "flat" else min(args.n, args.hnsw_n)
        base = base_all[:n]
        truth = truth_all if n == args.n else _truth(base, queries)
        params = search_params(kind, args)
        # the peer: one index in this process
        plain = make_index(kind, args.dim, args)
        cpu0 = time.thread_time()
        build_s, _ = best_of(1, lambda: plain.add(base))
        build_cpu = time.thread_time() - cpu0
        nbytes = plain.nbytes if kind == "hnsw" else n * (4 * args.dim + 12)  # flat: vector, id, norm
        emit(bench="distributed", what="build", kind=kind, shards=0, n=n, dim=args.dim,
             seconds=round(build_s, 3), cpu_seconds=round(build_cpu, 3),
             vectors_per_cpu_s=round(n / build_cpu), bytes_per_vector=round(nbytes / n), loadavg=loadavg())
        plain_s, (ids, _) = best_of(args.repeat, lambda: plain.search(queries, K, **params))
        plain_qps = args.nq / plain_s
        plain_cpu = cpu_best_of(args.repeat, lambda: plain.search(queries, K, **params))
        emit(bench="distributed", what="search", kind=kind, shards=0, n=n, nq=args.nq,
             qps=round(plain_qps, 1), cpu_s=round(plain_cpu, 4), qps_per_cpu_s=round(args.nq / plain_cpu, 1),
             recall=round(recall(ids, truth), 4), loadavg=loadavg())
        plain = None  # free it before the sharded runs
        qps_one = None
        for s in shard_counts:
            index = ShardedIndex(kind, dim=args.dim, shards=s, **kind_options(kind, args))
            build_s, _ = best_of(1, lambda: index.add(base))
            emit(bench="distributed", what="build", kind=kind, shards=s, n=n, dim=args.dim,
                 seconds=round(build_s, 3), vectors_per_s=round(n / build_s), loadavg=loadavg())
            index.search(queries[:args.small_nq], K, **params)  # warm the actors
            t, (ids, _) = best_of(args.repeat, lambda: index.search(queries, K, **params))
            qps = args.nq / t
            qps_one = qps if s == 1 else qps_one
            emit(bench="distributed", what="search", kind=kind, shards=s, n=n, nq=args.nq,
                 qps=round(qps, 1), recall=round(recall(ids, truth), 4),
                 speedup_vs_1_shard=round(qps / qps_one, 3) if qps_one else None,
                 ratio_to_plain=round(qps / plain_qps, 3), loadavg=loadavg())
            # CPU seconds of each shard's own search of the batch (best of --repeat):
            # on an idle machine with a core per shard the batch takes max(shard_cpu)
            # plus Ray's and the merge's overhead; sum/plain is the extra work sharding adds.
            q_ref = ray.put(queries)
            shard_cpu = [float("inf")] * s
            for _ in range(args.repeat):
                parts = ray.get([a.search_timed.remote(q_ref, K, params) for a in index.actors])
                shard_cpu = [min(c, p[2]) for c, p in zip(shard_cpu, parts)]
            emit(bench="distributed", what="shard_cpu", kind=kind, shards=s, n=n, nq=args.nq,
                 shard_cpu_s=[round(c, 4) for c in shard_cpu], plain_cpu_s=round(plain_cpu, 4),
                 cpu_speedup_bound=round(plain_cpu / max(shard_cpu), 3),
                 work_ratio=round(sum(shard_cpu) / plain_cpu, 3), loadavg=loadavg())
            # merge cost: the same merge the search did, on lists of the real shape
            merge_s, _ = best_of(args.repeat, lambda: merge_topk([p[0] for p in parts],
                                                                 [p[1] for p in parts], K))
            small_s, _ = best_of(args.repeat,
                                 lambda: index.search(queries[:args.small_nq], K, **params))
            emit(bench="distributed", what="merge", kind=kind, shards=s, nq=args.nq,
                 merge_ms=round(merge_s * 1e3, 3), merge_share=round(merge_s / t, 4),
                 small_batch_nq=args.small_nq, small_batch_ms=round(small_s * 1e3, 2),
                 loadavg=loadavg())
            for a in index.actors:
                ray.kill(a)
            index = None

    if args.graph_n:
        x = base_all[:args.graph_n]
        local_s, want = best_of(1, lambda: nearkit.knn_graph(x, K))
        emit(bench="distributed", what="knn_graph", shards=0, n=args.graph_n,
             seconds=round(local_s, 3), loadavg=loadavg())
        for s in shard_counts:
            t, got = best_of(1, lambda: knn_graph(x, K, shards=s))
            # Entries that differ from the local graph: near-ties at the k-th place,
            # where the local kernel's selection score rounds (see docs/distributed.md).
            differ = int((got[0] != want[0]).sum())
            emit(bench="distributed", what="knn_graph", shards=s, n=args.graph_n,
                 seconds=round(t, 3), ratio_to_local=round(local_s / t, 3),
                 entries_differing=differ, entries=int(want[0].size), loadavg=loadavg())
    ray.shutdown()


def _truth(base, queries):
    import nearkit

    f = nearkit.Flat(base.shape[1])
    f.add(base)
    return f.search(queries, K)[0]


if __name__ == "__main__":
    log(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    main()
