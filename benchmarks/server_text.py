"""Full-text search on nearkit serve vs a real Redis 7.4 + search 2.10: load rate and
queries/s of scored text queries (one client, loopback).

    PYTHONPATH=src python benchmarks/server_text.py --redis-port PORT [--docs 20000]

Data: synthetic documents of 40 words drawn from a Zipf-distributed 20,000-word
vocabulary (title weight 2 + body). Queries: one word, two words (intersection), a
union, a prefix and "*", each with WITHSCORES NOCONTENT LIMIT 0 10 (TFIDF, the default,
and BM25STD); the word picks are seeded and the same for both servers. Prints JSON lines
with queries/s per server, nearkit / Redis ratios and the load average. Before timing,
every query's top-10 ids and scores are compared between the servers (``same_top10``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import free_port, loadavg  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def words(n_vocab, rng):
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return ["".join(rng.choice(letters, size=rng.integers(4, 9))) for _ in range(n_vocab)]


def load(r, docs):
    r.flushall()
    r.execute_command("FT.CREATE", "t", "ON", "HASH", "PREFIX", "1", "d:", "SCHEMA",
                      "title", "TEXT", "WEIGHT", "2", "body", "TEXT")
    t0 = time.perf_counter()
    pipe = r.pipeline(transaction=False)
    for i, (title, body) in enumerate(docs):
        pipe.hset(f"d:{i}", mapping={"title": title, "body": body})
        if i % 500 == 499:
            pipe.execute()
    pipe.execute()
    while True:  # Redis indexes in the background
        info = r.execute_command("FT.INFO", "t")
        if str(info[info.index(b"indexing") + 1]) in ("0", "b'0'"):
            break
        time.sleep(0.05)
    return time.perf_counter() - t0


def run_queries(r, queries, scorer, seconds):
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        for q in queries:
            r.execute_command("FT.SEARCH", "t", q, "WITHSCORES", "NOCONTENT", "SCORER", scorer,
                              "LIMIT", "0", "10", "DIALECT", "2")
            n += 1
    return n / (time.perf_counter() - t0)


def main():
    import redis

    ap = argparse.ArgumentParser()
    ap.add_argument("--redis-port", type=int, required=True)
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    rng = np.random.default_rng(7)
    vocab = words(20000, rng)
    ranks = np.minimum(rng.zipf(1.3, size=(args.docs, 44)), len(vocab)) - 1
    docs = [(" ".join(vocab[j] for j in row[:4]), " ".join(vocab[j] for j in row[4:]))
            for row in ranks]
    mid = [vocab[i] for i in rng.integers(20, 400, size=40)]
    kinds = {
        "word": mid[:10],
        "two_words": [f"{a} {b}" for a, b in zip(vocab[:10], mid[10:20])],
        "union": [f"{a}|{b}" for a, b in zip(mid[20:30], mid[30:40])],
        "prefix": [w[:3] + "*" for w in mid[:10]],
        "wildcard": ["*"],
    }
    port = free_port()
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src"))
    proc = subprocess.Popen([sys.executable, "-m", "nearkit.server", "--port", str(port)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            try:
                redis.Redis(port=port).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        servers = {"redis": redis.Redis(port=args.redis_port), "nearkit": redis.Redis(port=port)}
        print(json.dumps({"phase": "setup", "docs": args.docs, "words_per_doc": 44,
                          "vocab": len(vocab), "loadavg": loadavg(), "bench": "server_text"}))
        secs = {}
        for name, r in servers.items():
            secs[name] = load(r, docs)
            print(json.dumps({"phase": "load", "server": name, "seconds": round(secs[name], 2),
                              "docs_per_s": round(args.docs / secs[name]), "bench": "server_text"}))
        print(json.dumps({"phase": "ratio", "what": "load_rate",
                          "nearkit_over_redis": round(secs["redis"] / secs["nearkit"], 3),
                          "bench": "server_text"}))
        for kind, qs in kinds.items():
            for scorer in ("TFIDF", "BM25STD"):
                same = all(servers["redis"].execute_command(
                    "FT.SEARCH", "t", q, "WITHSCORES", "NOCONTENT", "SCORER", scorer, "LIMIT",
                    "0", "10", "DIALECT", "2") == servers["nearkit"].execute_command(
                    "FT.SEARCH", "t", q, "WITHSCORES", "NOCONTENT", "SCORER", scorer, "LIMIT",
                    "0", "10", "DIALECT", "2") for q in qs)
                qps = {name: run_queries(r, qs, scorer, args.seconds)
                       for name, r in servers.items()}
                print(json.dumps({"phase": "query", "kind": kind, "scorer": scorer,
                                  "redis_qps": round(qps["redis"], 1),
                                  "nearkit_qps": round(qps["nearkit"], 1),
                                  "nearkit_over_redis": round(qps["nearkit"] / qps["redis"], 3),
                                  "same_top10": same, "loadavg": loadavg(),
                                  "bench": "server_text"}))
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
