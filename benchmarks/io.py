"""Index files: nearkit save / load (read, memory-mapped, with and without checksums)
against faiss write_index / read_index, on a Flat index of GloVe.

    python benchmarks/io.py                    # 399k x 50 GloVe, cosine
    python benchmarks/io.py --n-base 100000 --repeat 5

Both sides hold the same vectors (faiss: IndexFlatIP of unit vectors). The
files are freshly written, so reads come from the page cache: this measures
parsing, copying and checksumming, not the disk. "search_after_load" is one
batch of 1,000 queries on the loaded index, to show that a memory-mapped index
searches as fast as one read into memory. "read_index*" times the file format
alone; "nearkit-load*" adds what the index class checks when it is rebuilt.
Saving includes the fsync that makes it durable. Each time is the best of --repeat.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit, glove, log, machine_load, single_thread_env  # noqa: E402

single_thread_env()

import numpy as np  # noqa: E402

import nearkit  # noqa: E402
import nearkit.io  # noqa: E402


def best(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-base", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    split = glove(args.n_base)
    base, queries = split.base, split.queries
    index = nearkit.Flat(base.shape[1], "cosine")
    index.add(base)
    common = {"bench": "io", "n": base.shape[0], "dim": base.shape[1]}
    tmp = tempfile.mkdtemp(prefix="nearkit-io-bench-")
    nk_path = os.path.join(tmp, "glove.nk")
    times = {}

    _, times["nearkit-save"] = best(lambda: index.save(nk_path), args.repeat)
    # The file format alone (io.read_index) and a whole load (format + the index's own checks).
    for mmap in (False, True):
        for verify in (True, False):
            name = f"read_index{'-mmap' if mmap else ''}{'' if verify else '-noverify'}"
            _, times[name] = best(
                lambda m=mmap, v=verify: nearkit.io.read_index(nk_path, mmap=m, verify=v), args.repeat)
    loaded = {}
    for name, mmap in (("nearkit-load", False), ("nearkit-load-mmap", True)):
        loaded[name], times[name] = best(lambda m=mmap: nearkit.load(nk_path, mmap=m), args.repeat)
    for name, idx in loaded.items():
        _, t = best(lambda idx=idx: idx.search(queries, 10), args.repeat)
        emit(**common, op="search_after_load", impl=name, qps=round(len(queries) / t, 1))

    try:
        import faiss
    except ImportError:
        faiss = None
        log("faiss not installed: no peer comparison")
    if faiss is not None:
        faiss.omp_set_num_threads(1)
        f_index = faiss.IndexFlatIP(base.shape[1])
        unit = base / np.linalg.norm(base, axis=1, keepdims=True)
        f_index.add(unit.astype(np.float32))
        f_path = os.path.join(tmp, "glove.faiss")
        _, times["faiss-write"] = best(lambda: faiss.write_index(f_index, f_path), args.repeat)
        _, times["faiss-read"] = best(lambda: faiss.read_index(f_path), args.repeat)
        mmap_flag = getattr(faiss, "IO_FLAG_MMAP_IFC", None)
        if mmap_flag is not None:
            try:
                _, times["faiss-read-mmap"] = best(
                    lambda: faiss.read_index(f_path, mmap_flag), args.repeat)
            except RuntimeError as exc:  # older faiss: flat codes cannot be mapped
                log(f"faiss mmap read unavailable: {exc}")
        emit(**common, op="size", nearkit_bytes=os.path.getsize(nk_path),
             faiss_bytes=os.path.getsize(f_path))

    load = machine_load()
    for name, t in times.items():
        emit(**common, op="time", impl=name, ms=round(t * 1e3, 2),
             gb_per_s=round(index.vectors.nbytes / t / 1e9, 2), load=load)
    if faiss is not None:
        ratios = {
            "save_vs_faiss_write": times["faiss-write"] / times["nearkit-save"],
            "read_index_vs_faiss_read": times["faiss-read"] / times["read_index"],
            "load_vs_faiss_read": times["faiss-read"] / times["nearkit-load"],
        }
        if "faiss-read-mmap" in times:
            ratios["read_index_mmap_noverify_vs_faiss_mmap"] = (
                times["faiss-read-mmap"] / times["read_index-mmap-noverify"])
            ratios["load_mmap_vs_faiss_mmap"] = times["faiss-read-mmap"] / times["nearkit-load-mmap"]
        emit(**common, op="ratio", **{k: round(v, 3) for k, v in ratios.items()},
             note="> 1: nearkit is faster", load=load)
    for name in os.listdir(tmp):
        os.unlink(os.path.join(tmp, name))
    os.rmdir(tmp)


if __name__ == "__main__":
    main()
