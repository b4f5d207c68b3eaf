"""nearkit.compat.annoy against annoy itself, through annoy's API only.

One ``add_item`` per vector, ``build(50, n_jobs=1)``, one ``get_nns_by_vector``
per query, on GloVe 50-d (100k base, 1000 held-out queries, angular), single
thread. Times are CPU seconds of this process (time.process_time), so that
other work on a shared machine disturbs the comparison less. Prints JSON lines: build time, a search_k sweep (queries/s and
recall@10 per library), queries/s at recall 0.9 (interpolated on the sweep)
with the ratio, and the per-call overhead of small calls.

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 PYTHONPATH=src python benchmarks/annoy_compat.py
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from common import emit, ground_truth, glove, single_thread_env

single_thread_env()

import numpy as np  # noqa: E402

K = 10
N_TREES = 50
SEARCH_K = [500, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000, 16000]


def _libraries():
    import annoy

    from nearkit.compat import annoy as compat

    return {"annoy": annoy.AnnoyIndex, "nearkit": compat.AnnoyIndex}


def _build(cls, base):
    t0 = time.process_time()
    index = cls(base.shape[1], "angular")
    for i, v in enumerate(base):
        index.add_item(i, v)
    t_add = time.process_time() - t0
    index.build(N_TREES, n_jobs=1)
    return index, t_add, time.process_time() - t0


def _sweep(index, queries, truth):
    points = []
    for sk in SEARCH_K:
        t0 = time.process_time()
        found = [index.get_nns_by_vector(q, K, search_k=sk) for q in queries]
        dt = time.process_time() - t0
        hits = sum(len(set(f) & set(t)) for f, t in zip(found, truth[:, :K].tolist()))
        points.append((sk, len(queries) / dt, hits / truth[:, :K].size))
    return points


def _qps_at(points, target):
    """Queries/s where recall crosses ``target`` (linear between sweep points)."""
    for (_, q0, r0), (_, q1, r1) in zip(points, points[1:]):
        if r0 < target <= r1:
            return q0 + (q1 - q0) * (target - r0) / (r1 - r0)
    return points[0][1] if points and points[0][2] >= target else None


def _per_call(index, v, item, repeat=20000):
    out = {}
    vec_list = v.tolist()
    for name, call in (
        ("get_nns_by_vector(v,1,include_distances=True)", lambda: index.get_nns_by_vector(v, 1, include_distances=True)),
        ("get_nns_by_vector(list,1,include_distances=True)", lambda: index.get_nns_by_vector(vec_list, 1, include_distances=True)),
        ("get_item_vector(i)", lambda: index.get_item_vector(item)),
        ("get_distance(i,j)", lambda: index.get_distance(item, item + 1)),
    ):
        best = float("inf")
        for _ in range(3):
            t0 = time.process_time()
            for _ in range(repeat):
                call()
            best = min(best, (time.process_time() - t0) / repeat)
        out[name] = best * 1e6
    return out


def _load_time(cls, path, f, repeat=2000):
    index = cls(f, "angular")
    t0 = time.process_time()
    for _ in range(repeat):
        index.load(path)
        index.unload()
    return (time.process_time() - t0) / repeat * 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    split = glove(n_base=args.n, n_queries=args.queries)
    base, queries = split.base, split.queries
    truth = ground_truth(base, queries, K, "cosine")
    results, tmp, built = {}, tempfile.mkdtemp(prefix="nearkit-annoy-compat-"), {}
    for name, cls in _libraries().items():
        index, t_add, t_total = _build(cls, base)
        built[name] = index
        results[name] = {"build": t_total}
        emit(bench="annoy_compat", lib=name, phase="add+build", n=len(base), n_trees=N_TREES,
             add_s=round(t_add, 3), add_build_s=round(t_total, 3))
    # the machine is shared: interleave the libraries and keep each one's best of `rounds`
    sweeps = {name: {} for name in built}
    for _ in range(args.rounds):
        for name, index in built.items():
            for sk, qps, rec in _sweep(index, queries, truth):
                old = sweeps[name].get(sk)
                sweeps[name][sk] = (sk, max(qps, old[1]) if old else qps, rec)
    for name, index in built.items():
        points = [sweeps[name][sk] for sk in SEARCH_K]
        for sk, qps, rec in points:
            emit(bench="annoy_compat", lib=name, phase="search", search_k=sk, qps=round(qps, 1),
                 recall=round(rec, 4))
        results[name]["qps90"] = _qps_at(points, 0.9)
    for name, index in built.items():
        calls = _per_call(index, queries[0], 7)
        results[name]["calls"] = calls
        emit(bench="annoy_compat", lib=name, phase="per_call_us", **{k: round(v, 2) for k, v in calls.items()})
    for name, index in built.items():
        path = os.path.join(tmp, f"{name}.ann")
        index.save(path)
        emit(bench="annoy_compat", lib=name, phase="load+unload_us", file_mb=round(os.path.getsize(path) / 2**20, 1),
             us=round(_load_time(_libraries()[name], path, base.shape[1]), 2))
        calls = _per_call(index, queries[0], 7)
        emit(bench="annoy_compat", lib=name, phase="per_call_us_after_save", **{k: round(v, 2) for k, v in calls.items()})
    a, n = results["annoy"], results["nearkit"]
    emit(bench="annoy_compat", phase="ratios", build_time_nearkit_over_annoy=round(n["build"] / a["build"], 3),
         qps_at_recall_0_9_annoy=a["qps90"] and round(a["qps90"], 1),
         qps_at_recall_0_9_nearkit=n["qps90"] and round(n["qps90"], 1),
         qps_ratio_nearkit_over_annoy=(a["qps90"] and n["qps90"]) and round(n["qps90"] / a["qps90"], 3),
         **{f"per_call_ratio {k}": round(n["calls"][k] / a["calls"][k], 2) for k in a["calls"]})


if __name__ == "__main__":
    main()
