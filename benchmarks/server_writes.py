"""nearkit serve --data: the write path, per durability mode.

    PYTHONPATH=src python benchmarks/server_writes.py [--n 20000] [--modes always,everysec,off]

For each durability mode a fresh server with ``--data`` in a temporary directory:

- ``load``: one redis-py client HSETs --n 128-d vectors in pipelines of 500 into a
  FLAT-indexed prefix (the flat index keeps the index cost small, so the durable
  record's cost shows);
- ``small_writes``: --clients client processes each send single SETs (no pipelining)
  for --duration seconds; under ``always`` every reply waits for its commit, and the
  connections served in one loop tick share it (group commit).

Also the same phases without ``--data`` (memory only) as the reference; and, less
exposed to a busy machine, ``record``: the durable record alone, in a child process
(``persist.Durable.flush`` of --n keys in batches of 500, then 1,000 one-key flushes
as under ``always`` one loop tick with one write makes), best of --repeat runs, wall
and CPU seconds. Prints JSON lines with rates and the load average; ``--src`` runs
another checkout's ``src`` (to compare before/after on the same machine state).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from common import free_port, loadavg

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def emit(**fields):
    fields.setdefault("bench", "server_writes")
    print(json.dumps(fields), flush=True)


def start(src, port, data, mode):
    import redis

    args = [sys.executable, "-m", "nearkit.server", "--port", str(port)]
    if data is not None:
        args += ["--data", data, "--durability", mode]
    proc = subprocess.Popen(args, env=dict(os.environ, PYTHONPATH=src),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = redis.Redis(port=port)
    deadline = time.time() + 60
    while True:
        try:
            r.ping()
            return proc
        except redis.ConnectionError:
            if time.time() > deadline or proc.poll() is not None:
                raise RuntimeError("server did not start")
            time.sleep(0.05)


def load(port, base, batch=500):
    import redis

    r = redis.Redis(port=port, protocol=2)
    r.execute_command("FT.CREATE", "idx", "ON", "HASH", "PREFIX", "1", "v:", "SCHEMA", "v", "VECTOR",
                      "FLAT", "6", "TYPE", "FLOAT32", "DIM", str(base.shape[1]), "DISTANCE_METRIC", "L2")
    t0 = time.perf_counter()
    for s in range(0, base.shape[0], batch):
        p = r.pipeline(transaction=False)
        for i in range(s, min(s + batch, base.shape[0])):
            p.hset(f"v:{i}", "v", base[i].tobytes())
        p.execute()
    return time.perf_counter() - t0


def _writer(port, worker, duration, barrier, out_q):
    import redis

    r = redis.Redis(port=port, protocol=2)
    r.ping()
    barrier.wait()
    n, t_end = 0, time.perf_counter() + duration
    while time.perf_counter() < t_end:
        r.set(f"s:{worker}:{n}", "x" * 64)
        n += 1
    out_q.put(n)


def small_writes(port, clients, duration):
    ctx = mp.get_context("fork")
    barrier, out_q = ctx.Barrier(clients + 1), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(port, c, duration, barrier, out_q)) for c in range(clients)]
    for p in procs:
        p.start()
    barrier.wait()
    t0 = time.perf_counter()
    total = sum(out_q.get() for _ in procs)
    wall = time.perf_counter() - t0
    for p in procs:
        p.join()
    return total / wall


RECORD_CHILD = r"""
import json, os, sys, tempfile, time
import numpy as np
from nearkit.server.keyspace import Keyspace
from nearkit.server.persist import Durable

mode, n, dim = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
base = np.random.default_rng(0).standard_normal((n, dim)).astype(np.float32)
d = Durable(os.path.join(tempfile.mkdtemp(prefix="nk-record-"), "data"), mode)
ks = Keyspace()
w0, c0 = time.perf_counter(), time.process_time()
for s in range(0, n, 500):
    for i in range(s, min(s + 500, n)):
        ks.set(b"v:%d" % i, {b"v": base[i].tobytes(), b"tag": b"a"})
    d.flush(ks)
d.flush(ks, force=True)
w1, c1 = time.perf_counter(), time.process_time()
for i in range(1000):
    ks.set(b"s:%d" % i, b"x" * 64)
    d.flush(ks)
d.flush(ks, force=True)
w2, c2 = time.perf_counter(), time.process_time()
d.close(ks)
print(json.dumps({"batch_keys_per_s": n / (w1 - w0), "batch_cpu_s": c1 - c0,
                  "single_flushes_per_s": 1000 / (w2 - w1), "single_cpu_ms": (c2 - c1)}))
"""


def record(src, mode, n, dim):
    out = subprocess.run([sys.executable, "-c", RECORD_CHILD, mode, str(n), str(dim)],
                         env=dict(os.environ, PYTHONPATH=src), capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--modes", default="memory,always,everysec,off")
    ap.add_argument("--src", default=os.path.join(ROOT, "src"), help="the nearkit source tree to run")
    ap.add_argument("--label", default="")
    ap.add_argument("--record-only", action="store_true", help="only the in-process record phase")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    base = np.random.default_rng(0).standard_normal((args.n, args.dim)).astype(np.float32)
    emit(phase="setup", n=args.n, dim=args.dim, clients=args.clients, src=args.src, label=args.label,
         cpus=os.cpu_count(), loadavg=loadavg())
    for mode in args.modes.split(","):
        if mode != "memory":
            runs = [record(args.src, mode, args.n, args.dim) for _ in range(args.repeat)]
            emit(phase="record", mode=mode, label=args.label,
                 batch_keys_per_s=round(max(r["batch_keys_per_s"] for r in runs)),
                 batch_cpu_s=round(min(r["batch_cpu_s"] for r in runs), 3),
                 single_flushes_per_s=round(max(r["single_flushes_per_s"] for r in runs)),
                 single_cpu_ms_per_1000=round(1000 * min(r["single_cpu_ms"] for r in runs), 1),
                 loadavg=loadavg())
        if args.record_only:
            continue
        tmp = tempfile.mkdtemp(prefix="nk-writes-")
        data = None if mode == "memory" else os.path.join(tmp, "data")
        port = free_port()
        proc = start(args.src, port, data, mode)
        try:
            secs = load(port, base)
            emit(phase="load", mode=mode, label=args.label, vectors_per_s=round(args.n / secs),
                 loadavg=loadavg())
            rate = small_writes(port, args.clients, args.duration)
            emit(phase="small_writes", mode=mode, label=args.label, clients=args.clients,
                 writes_per_s=round(rate), loadavg=loadavg())
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(60)
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
