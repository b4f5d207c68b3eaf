"""nearkit serve restart time with and without HNSW graph snapshots.

    PYTHONPATH=src python benchmarks/server_restart.py [--n-base 100000] [--dim 128]

Loads the data into a server with --data, shuts it down cleanly (which writes the
snapshot), then times start-up (until the port answers PING) twice: once adopting
the snapshot, once with the snapshot directory removed (full rebuild from SQLite).
Prints JSON lines with the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time


HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "src"))
sys.path.insert(0, HERE)

from server import free_port, load, loadavg  # noqa: E402


def emit(**fields):
    fields.setdefault("bench", "server_restart")
    print(json.dumps(fields), flush=True)


def start(data, port):
    import nearkit
    import redis

    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(nearkit.__file__))))
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "nearkit.server", "--port", str(port), "--data", data,
                             "--durability", "off"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    r = redis.Redis(port=port)
    while True:
        try:
            r.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    return proc, time.perf_counter() - t0


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    proc.wait(120)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n-base", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=128)
    args = ap.parse_args()
    import redis
    from nearkit.datasets import synthetic_clustered

    base = synthetic_clustered(args.n_base + 10, args.dim, n_clusters=64, seed=0)
    qs, base = base[args.n_base:], base[: args.n_base]
    data = tempfile.mkdtemp(prefix="nearkit-restart-")
    port = free_port()
    try:
        proc, _ = start(data, port)
        load(port, base)
        stop(proc)

        def answers():
            r = redis.Redis(port=port, protocol=2)
            return [r.execute_command("FT.SEARCH", "idx", "*=>[KNN 10 @v $b AS d]", "SORTBY", "d",
                                      "RETURN", "1", "d", "PARAMS", "2", "b", q.tobytes(),
                                      "DIALECT", "2") for q in qs]

        proc, t_snap = start(data, port)
        stop(proc)
        shutil.rmtree(os.path.join(data, "snapshots", "server-indexes"))
        proc, t_full = start(data, port)
        rebuilt = answers()
        stop(proc)
        proc, t_snap2 = start(data, port)  # the rebuild wrote a new snapshot at shutdown
        same = answers() == rebuilt  # the restored graph answers as the one it saved
        stop(proc)
        emit(phase="restart", n_base=args.n_base, dim=args.dim, snapshot_s=round(t_snap, 2),
             snapshot_again_s=round(t_snap2, 2), rebuild_s=round(t_full, 2),
             rebuild_over_snapshot=round(t_full / min(t_snap, t_snap2), 2),
             same_answers_after_restart=same, loadavg=loadavg())
    finally:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
