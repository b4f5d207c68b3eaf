"""Helpers shared by the benchmark scripts: data, ground truth, timing, JSON lines.

Benchmarks are scripts, never tests. Each prints one JSON object per line so
results can be pasted, diffed and plotted.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

CACHE = Path(os.environ.get("NEARKIT_CACHE", Path.home() / ".cache" / "nearkit"))


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def glove(n_base: int | None = None, n_queries: int = 1000, seed: int = 0):
    """GloVe 50-d split: base (n_base or 399k), held-out queries, both unit-normalised
    copies are NOT made here: angular indexes normalise themselves."""
    from nearkit import datasets

    return datasets.glove_split(n_base=n_base, n_queries=n_queries, seed=seed)


def ground_truth(base: np.ndarray, queries: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Exact ids, cached on disk by data shape and metric (computed with nearkit.Flat)."""
    key = f"gt_{metric}_{base.shape[0]}x{base.shape[1]}_{queries.shape[0]}_{k}_{_digest(base, queries)}.npy"
    path = CACHE / key
    if path.exists():
        return np.load(path)
    from nearkit.evaluate import ground_truth as exact

    ids = exact(base, queries, k, metric, threads=os.cpu_count())
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, ids)
    return ids


def _digest(*arrays) -> str:
    import hashlib

    h = hashlib.sha1()
    for a in arrays:
        h.update(np.ascontiguousarray(a[:: max(1, a.shape[0] // 997)]).tobytes())
    return h.hexdigest()[:12]


def single_thread_env() -> None:
    """Pin BLAS pools to one thread (call before importing numpy-heavy peers)."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def run_child(cmd: list[str], label: str, env: dict | None = None) -> list[dict]:
    """Run a benchmark step in its own process (so its peak memory is its own)
    and return the JSON objects it printed; a failure is logged and gives []."""
    out = subprocess.run(cmd, capture_output=True, text=True, env=env if env is not None else os.environ.copy())
    if out.returncode != 0:
        log(f"{label} failed:\n{out.stderr[-3000:]}")
        return []
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def machine_load() -> float:
    """1-minute load average: printed beside figures taken on a shared machine."""
    return os.getloadavg()[0]


def loadavg() -> float:
    """machine_load() rounded, for JSON lines."""
    return round(machine_load(), 2)


def free_port() -> int:
    """A TCP port free on loopback right now (for a server the benchmark starts)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
