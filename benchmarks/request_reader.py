"""CPU cost of the server's request framing (RequestReader) over bare hiredis.

RequestReader adds to hiredis the checks a server needs: argument counts and
lengths checked before hiredis allocates for them, exact wire accounting, the
buffered-bytes cap. This measures what those cost per request, on pipelined
streams fed in 64 KiB pieces: bare ``hiredis.Reader`` (the floor, the peer) and
RequestReader, interleaved, best of 7 (CPU time of this process).

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 PYTHONPATH=src python benchmarks/request_reader.py
"""

from __future__ import annotations

import gc
import time

import hiredis

from common import emit, loadavg
from nearkit.server.protocol import RequestReader


def _cmd(*args: bytes) -> bytes:
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)


def _bare(chunks) -> int:
    r, n = hiredis.Reader(), 0
    for c in chunks:
        r.feed(c)
        while (req := r.gets()) is not False:
            n += 1
    return n


def _framed(chunks) -> int:
    r, n = RequestReader(), 0
    for c in chunks:
        n += len(r.feed(c))
    return n


def main(n: int = 20000) -> None:
    streams = {
        "SET 10-byte values": [_cmd(b"SET", b"key:%d" % i, b"v" * 10) for i in range(n)],
        "HSET 512-byte vector + tag": [_cmd(b"HSET", b"doc:%d" % i, b"v", b"\x01" * 512, b"t", b"x")
                                       for i in range(n)],
        "HSET 13-digit timestamps": [_cmd(b"HSET", b"doc:%d" % i, b"ts", b"1733212345678")
                                     for i in range(n)],
    }
    for name, reqs in streams.items():
        data = b"".join(reqs)
        chunks = [data[i:i + 65536] for i in range(0, len(data), 65536)]
        best = {"hiredis": float("inf"), "nearkit": float("inf")}
        for _ in range(7):
            for label, fn in (("hiredis", _bare), ("nearkit", _framed)):
                gc.collect()
                t = time.process_time()
                assert fn(chunks) == n
                best[label] = min(best[label], time.process_time() - t)
        emit(bench="request_reader", stream=name, requests=n,
             hiredis_us_per_request=round(1e6 * best["hiredis"] / n, 3),
             nearkit_us_per_request=round(1e6 * best["nearkit"] / n, 3),
             nearkit_over_hiredis=round(best["nearkit"] / best["hiredis"], 3), loadavg=loadavg())


if __name__ == "__main__":
    main()
