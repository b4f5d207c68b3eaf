"""Memory: how much a store collection and a server search index grow the process,
against the bare HNSW index holding the same vectors.

    python benchmarks/memory.py [--n 100000] [--dim 128] [--cases hnsw collection server]

Each case runs in a fresh child process. The data (random float32 vectors, the
keys, and for the server the hash documents the key space would hold) is made
before the first RSS reading, so only what the structure itself keeps counts:

- ``hnsw``: ``nearkit.HNSW(dim).add(vectors, ids)``;
- ``collection``: ``db.create_collection(..., index="hnsw")`` then ``upsert`` of
  string keys ``doc:<i>`` (no payloads) in batches of 10,000, durability "off"
  (the SQLite file is on disk, not in memory);
- ``server``: the server's search index object (``server.search.SearchIndex``,
  ``FT.CREATE ... ON HASH SCHEMA vec VECTOR HNSW ...``) fed each document through
  ``on_change`` as the key space does, then ``flush_vectors``.

RSS is read from /proc after ``gc.collect()``; ``grow_mib`` is the difference,
``trimmed_mib`` the same after ``malloc_trim(0)`` (heap pages freed but kept by
the allocator). ``ratio`` is grow_mib / the hnsw case's grow_mib. One JSON line
per case; HNSW parameters M=16, ef_construction=100, one build thread.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import emit, log  # noqa: E402

M, EFC = 16, 100


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _settled_rss() -> tuple[float, float]:
    gc.collect()
    before_trim = _rss_mib()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    return before_trim, _rss_mib()


def run_case(case: str, n: int, dim: int) -> dict:
    import numpy as np

    import nearkit

    x = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
    keys = [f"doc:{i}" for i in range(n)]
    if case == "server":
        from nearkit.server.search import FieldSpec, SearchIndex

        docs = [{b"vec": x[i].tobytes()} for i in range(n)]
        bkeys = [k.encode() for k in keys]
        spec = FieldSpec("vec", "vec", "VECTOR",
                         {"algorithm": "HNSW", "TYPE": "FLOAT32", "DIM": str(dim),
                          "DISTANCE_METRIC": "L2", "M": str(M), "EF_CONSTRUCTION": str(EFC)}, [])
    tmp = tempfile.mkdtemp(prefix="nearkit-mem-")
    base, base_trim = _settled_rss()
    keep = None
    if case == "hnsw":
        keep = nearkit.HNSW(dim, "l2", M=M, ef_construction=EFC)
        keep.add(x, np.arange(n, dtype=np.int64), threads=1)
    elif case == "collection":
        db = nearkit.open(os.path.join(tmp, "db"), durability="off")
        keep = db.create_collection("c", dim, "l2", index="hnsw",
                                    index_params={"M": M, "ef_construction": EFC})
        for a in range(0, n, 10_000):
            keep.upsert(keys[a:a + 10_000], x[a:a + 10_000])
        db.flush()
        keep._wait_for_snapshot()
    elif case == "server":
        keep = SearchIndex(b"idx", "HASH", [b"doc:"], [spec], {})
        for k, d in zip(bkeys, docs):
            keep.on_change(k, d)
        keep.flush_vectors()
    else:
        raise ValueError(case)
    after, after_trim = _settled_rss()
    return {"case": case, "n": n, "dim": dim, "grow_mib": round(after - base, 1),
            "trimmed_mib": round(after_trim - base_trim, 1)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--cases", nargs="*", default=["hnsw", "collection", "server"])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(run_case(args.child, args.n, args.dim)), flush=True)
        return
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    results = {}
    for case in args.cases:
        out = subprocess.run([sys.executable, __file__, "--child", case, "--n", str(args.n),
                              "--dim", str(args.dim)], capture_output=True, text=True, env=env)
        if out.returncode != 0:
            log(f"{case} failed:\n{out.stderr[-3000:]}")
            continue
        results[case] = json.loads(out.stdout.strip().splitlines()[-1])
    ref = results.get("hnsw")
    for case, r in results.items():
        if ref and ref["grow_mib"] > 0:
            r["ratio"] = round(r["grow_mib"] / ref["grow_mib"], 2)
            r["trimmed_ratio"] = round(r["trimmed_mib"] / ref["trimmed_mib"], 2)
        emit(bench="memory", **r)


if __name__ == "__main__":
    main()
