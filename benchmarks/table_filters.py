"""The store table's filtered-search paths, timed by selectivity: the measurement
behind ``nearkit.store.table.EXACT_MIN_ROWS`` / ``EXACT_SCALE``.

    python benchmarks/table_filters.py [--n-base 100000 25000] [--queries 100]

For each base size and each number of allowed rows it times, one query per call
(as a collection or the server searches), the two paths ``Table.select`` chooses
between: ``exact`` (``Index.scan``: HNSW scans the allowed slots of its own
storage in place) and ``walk`` (the HNSW
walk restricted by a slot mask; the core's own small-set scan disabled, so this
is the walk). Recall@10 is against exact search over the allowed rows. One JSON
line per (n, allowed, path) with ms per query; a last line per n gives the
crossing point and the EXACT_SCALE it implies (crossing**2 / n). Data: GloVe
(cosine), the ann.py split; one thread.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, glove, machine_load, single_thread_env  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-base", type=int, nargs="*", default=[100_000, 25_000])
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--ef", type=int, default=64)
    ap.add_argument("--allowed", type=int, nargs="*",
                    default=[500, 1000, 2000, 4000, 8000, 12000, 16000, 24000, 32000])
    args = ap.parse_args(argv)
    single_thread_env()
    import nearkit
    from nearkit.indexes.base import SlotFilter
    from nearkit.metrics import normalize_rows

    for n in args.n_base:
        data = glove(n_base=n, n_queries=1000)
        qs = data.queries[: args.queries]
        index = nearkit.HNSW(data.base.shape[1], "cosine")
        index.add(data.base, threads=2)
        index._core.exact_threshold, index._core.exact_scale = 0, 0.0  # time the walk itself
        b, pq = normalize_rows(data.base), normalize_rows(qs)
        labels = index.slot_labels()
        slot_of_id = np.empty(n, np.int64)
        slot_of_id[labels[labels >= 0]] = np.flatnonzero(labels >= 0)
        rng = np.random.default_rng(0)
        cross = None
        for m in [a for a in args.allowed if a < n]:
            ids = np.sort(rng.choice(n, m, replace=False))
            slots = slot_of_id[ids]
            mask = np.zeros(labels.shape[0], bool)
            mask[slots] = True
            d = 1.0 - pq @ b[ids].T
            truth = ids[np.argsort(d, axis=1)[:, :10]]
            times = {}
            for path in ("exact", "walk"):
                found = []
                t0 = time.process_time()
                for qi in range(qs.shape[0]):
                    if path == "exact":
                        got, _ = index.scan(qs[qi:qi + 1], 10, SlotFilter(mask))
                        found.append(got[0])
                    else:
                        got, _ = index.search(qs[qi:qi + 1], 10, ef=args.ef, filter=SlotFilter(mask), threads=1)
                        found.append(got[0])
                ms = (time.process_time() - t0) * 1000 / qs.shape[0]
                times[path] = ms
                rec = np.mean([len(set(f.tolist()) & set(t.tolist())) / 10 for f, t in zip(found, truth)])
                emit(bench="table-filter", n=n, allowed=m, path=path, ms_per_query=round(ms, 3),
                     recall=round(float(rec), 4), load=round(machine_load(), 2))
            if cross is None and times["exact"] > times["walk"]:
                cross = m
        emit(bench="table-filter-crossing", n=n, crossing_allowed=cross,
             implied_exact_scale=None if cross is None else round(cross * cross / n, 1))


if __name__ == "__main__":
    main()
