"""What the safety guards cost on the one-query search loop (issue 12).

Trees and IVF searches now take a reader-writer lock, every search clips k and
ef to the stored count, and native loops poll a stop token for Ctrl-C. This
times single-query search loops of each index kind for two source trees — this
checkout and a baseline (``--baseline /path/to/other/src``, e.g. main's) — in
child processes that take turns, and prints one JSON line per (kind, tree) and
one with the ratio per kind. Pin one thread before Python starts:

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/guard_overhead.py --baseline /work/main/src
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
import numpy as np
import nearkit
kind, n, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
x = rng.standard_normal((n, 32)).astype(np.float32)
q = rng.standard_normal((500, 32)).astype(np.float32)
if kind == "flat":
    ix, kw = nearkit.Flat(32), {}
elif kind == "hnsw":
    ix, kw = nearkit.HNSW(32), {"ef": 64}
elif kind == "trees":
    ix, kw = nearkit.Trees(32, "l2", n_trees=10), {"search_k": 2000}
else:
    ix, kw = nearkit.IVF(32, nlist=64, nprobe=4), {}
    ix.train(x)
ix.add(x)
ix.search(q[0], 10, **kw)
best = float("inf")
for _ in range(rounds):
    t = time.perf_counter()
    for row in q:
        ix.search(row, 10, **kw)
    best = min(best, (time.perf_counter() - t) / len(q))
print(json.dumps({"us_per_query": best * 1e6}))
"""


def run(src: str, kind: str, n: int, rounds: int) -> float:
    env = dict(os.environ, PYTHONPATH=src)
    out = subprocess.run([sys.executable, "-c", CHILD, kind, str(n), str(rounds)],
                         capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["us_per_query"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--baseline", required=True, help="src directory of the tree to compare with")
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")
    for kind in ("flat", "hnsw", "trees", "ivf"):
        times = {"this": [], "baseline": []}
        for _ in range(args.trials):  # take turns, so load changes hit both alike
            times["this"].append(run(here, kind, args.n, args.rounds))
            times["baseline"].append(run(args.baseline, kind, args.n, args.rounds))
        best = {k: min(v) for k, v in times.items()}
        for tree, us in best.items():
            print(json.dumps({"bench": "guard_overhead", "kind": kind, "tree": tree,
                              "n": args.n, "us_per_query": round(us, 2),
                              "spread": round(statistics.pstdev(times[tree]), 2)}), flush=True)
        print(json.dumps({"bench": "guard_overhead", "kind": kind,
                          "ratio_this_to_baseline": round(best["this"] / best["baseline"], 3)}),
              flush=True)


if __name__ == "__main__":
    main()
