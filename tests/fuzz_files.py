"""Seeded mutation fuzzer for index files (run as a script in a child process).

Each case takes a small valid index file of one kind, changes it in one of a
few ways — bytes of a section, one element set to an edge value, a section's
length, a dtype, a parameter in the header — and writes it back with
``nearkit.io.write_index``, which recomputes every checksum, so the damage gets
past the CRC gate and reaches the loader. The case then loads the file and, if
that worked, searches, adds, removes and searches again.

Allowed outcomes: the load raises FormatError, a later call raises ValueError,
TypeError, KeyError or RuntimeError (e.g. a read-only index refusing to change),
or everything works. Anything else — another exception type, or the process
dying on a signal — is a bug. The child prints ``case <n>`` before each case so
the parent can name the case that killed it.

    python tests/fuzz_files.py KIND N SEED [WORKDIR]
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import traceback

import numpy as np

KINDS = ("flat", "hnsw", "ivf_pq8", "ivf_pq4fs", "ivf_sq8", "ivf_flat", "trees", "store")
DIM = 8


def _base(kind: str, path: str) -> None:
    """A small valid file of ``kind`` (with some removals, so free slots exist)."""
    import nearkit

    rng = np.random.default_rng(7)
    x = rng.standard_normal((300, DIM)).astype(np.float32)
    if kind == "flat":
        ix = nearkit.Flat(DIM)
    elif kind == "hnsw":
        ix = nearkit.HNSW(DIM, M=4, ef_construction=16)
    elif kind == "trees":
        ix = nearkit.Trees(DIM, "l2", n_trees=3, leaf_size=8)
    else:
        codec = {"ivf_pq8": "pq4", "ivf_pq4fs": "pq4x4fs", "ivf_sq8": "sq8", "ivf_flat": "flat"}[kind]
        ix = nearkit.IVF(DIM, "l2", nlist=4, codec=codec, refine=kind == "ivf_sq8")
        ix.train(x)
    ix.add(x[:120])
    ix.remove(np.arange(0, 120, 7))
    if kind == "trees":
        ix.build()
    ix.save(path)


def _store_base(root: str) -> None:
    import nearkit

    rng = np.random.default_rng(7)
    st = nearkit.open(root)
    col = st.create_collection("c", DIM, index="hnsw")
    col.upsert([f"k{i}" for i in range(60)], rng.standard_normal((60, DIM)))
    col.delete(["k5", "k9"])
    st.close()


_EDGE_INTS = (0, 1, -1, -2, 2, 255, 256, 2**15, 2**16, 2**31 - 1, 2**31, 2**32 - 1, 2**62, -(2**63))
_EDGE_FLOATS = (0.0, -0.0, 1e38, -1e38, float("nan"), float("inf"), -float("inf"), 1e-45)


def _mutate_array(arr: np.ndarray, rng) -> np.ndarray:
    a = np.array(arr, copy=True)
    how = rng.integers(0, 6)
    if a.size and how <= 2:  # bytes or elements
        flat = a.reshape(-1)
        if how == 0:
            raw = flat.view(np.uint8)
            for _ in range(int(rng.integers(1, 9))):
                raw[rng.integers(0, raw.size)] ^= np.uint8(1 << int(rng.integers(0, 8)))
        else:
            i = int(rng.integers(0, flat.size))
            if a.dtype.kind == "f":
                flat[i] = _EDGE_FLOATS[int(rng.integers(0, len(_EDGE_FLOATS)))]
            else:
                info = np.iinfo(a.dtype)
                v = _EDGE_INTS[int(rng.integers(0, len(_EDGE_INTS)))]
                flat[i] = min(max(v, info.min), info.max)
        return a
    if how == 3 and a.ndim >= 1 and a.shape[0]:  # shorter
        return np.ascontiguousarray(a[: int(rng.integers(0, a.shape[0]))])
    if how == 4 and a.ndim >= 1:  # longer (repeat rows)
        return np.ascontiguousarray(np.concatenate([a, a[: max(1, a.shape[0] // 3)]]))
    # another dtype of the same bytes
    kinds = [np.uint8, np.int32, np.int64, np.float32, np.uint32]
    t = kinds[int(rng.integers(0, len(kinds)))]
    raw = a.reshape(-1).view(np.uint8)
    usable = raw.size // np.dtype(t).itemsize * np.dtype(t).itemsize
    return np.ascontiguousarray(raw[:usable]).view(t)


def _mutate_params(params: dict, rng) -> dict:
    p = json.loads(json.dumps(params))
    keys = [k for k, v in p.items() if isinstance(v, (int, float, str, bool)) or v is None]
    if not keys:
        return p
    key = keys[int(rng.integers(0, len(keys)))]
    choices = [0, -1, 1, 2**31, 2**63, 10**9, 1.5, "x", None, True, [], {}]
    p[key] = choices[int(rng.integers(0, len(choices)))]
    return p


def mutate_file(path: str, rng) -> str:
    """Rewrite ``path`` with one mutation (checksums recomputed); returns what changed."""
    from nearkit import io

    f = io.read_index(path)
    sections = {k: np.array(v, copy=True) for k, v in f.sections.items()}
    params, dim = f.params, f.dim
    if rng.random() < 0.15 or not sections:
        params = _mutate_params(params, rng)
        what = "params"
    elif rng.random() < 0.05:
        dim = int([1, DIM - 1, DIM + 1, 2**20, 2**31][int(rng.integers(0, 5))])
        what = f"dim={dim}"
    else:
        name = sorted(sections)[int(rng.integers(0, len(sections)))]
        sections[name] = _mutate_array(sections[name], rng)
        if rng.random() < 0.2:  # sometimes two sections at once
            other = sorted(sections)[int(rng.integers(0, len(sections)))]
            sections[other] = _mutate_array(sections[other], rng)
            name += "+" + other
        what = name
    try:
        io.write_index(path, f.kind, dim, f.metric, params, sections)
    except (TypeError, ValueError):
        return "unwritable"
    return what


_ALLOWED_AFTER_LOAD = (ValueError, TypeError, KeyError, RuntimeError)


def _exercise(ix) -> None:
    rng = np.random.default_rng(1)
    q = rng.standard_normal((3, DIM)).astype(np.float32)
    calls = [
        lambda: ix.search(q, 5),
        lambda: ix.search(q[0], 400),
        lambda: ix.search(q, 3, filter=np.arange(0, 200, 3)),
        lambda: ix.add(rng.standard_normal((20, DIM)).astype(np.float32)),
        lambda: ix.remove(np.arange(0, 50, 3)),
        lambda: ix.add(rng.standard_normal((5, DIM)).astype(np.float32), ids=[1, 2, 500, 501, 3]),
        lambda: ix.search(q, 10),
        lambda: len(ix),
    ]
    for call in calls:
        try:
            call()
        except _ALLOWED_AFTER_LOAD:
            pass


def run_index_case(kind: str, base: str, work: str, rng) -> str:
    import nearkit
    from nearkit.errors import FormatError

    with open(base, "rb") as src, open(work, "wb") as dst:
        dst.write(src.read())
    what = mutate_file(work, rng)
    try:
        ix = nearkit.load(work, mmap=bool(rng.random() < 0.2))
    except FormatError:
        return what + ": refused"
    _exercise(ix)
    return what + ": loaded"


def run_store_case(base_root: str, work_root: str, rng) -> str:
    import shutil

    import nearkit
    from nearkit.store import snapshots

    shutil.rmtree(work_root, ignore_errors=True)
    shutil.copytree(base_root, work_root)
    files = []
    for dirpath, _, names in os.walk(os.path.join(work_root, "snapshots")):
        files += [os.path.join(dirpath, n) for n in names
                  if n.endswith(snapshots.INDEX) or n.endswith(snapshots.STATE)]
    target = sorted(files)[int(rng.integers(0, len(files)))]
    what = os.path.basename(target) + ":" + mutate_file(target, rng)
    q = np.random.default_rng(2).standard_normal(DIM)
    try:
        st = nearkit.open(work_root)
    except _ALLOWED_AFTER_LOAD:
        return what + ": store refused"
    try:
        col = st.get_collection("c")
        for call in (lambda: col.search(q, 5), lambda: col.upsert(["new"], q[None]),
                     lambda: col.delete(["k3"]), lambda: col.search(q, 70)):
            try:
                call()
            except _ALLOWED_AFTER_LOAD:
                pass
    finally:
        st.close()
    return what + ": opened"


def main(argv) -> int:
    kind, n, seed = argv[0], int(argv[1]), int(argv[2])
    work_dir = argv[3] if len(argv) > 3 else tempfile.mkdtemp(prefix="nk-fuzz-")
    os.makedirs(work_dir, exist_ok=True)
    base = os.path.join(work_dir, f"base-{kind}")
    if kind == "store":
        _store_base(base)
    else:
        _base(kind, base)
    outcomes: dict[str, int] = {}
    for i in range(n):
        case_seed = seed * 1_000_003 + i
        print(f"case {case_seed}", flush=True)
        rng = np.random.default_rng(case_seed)
        try:
            if kind == "store":
                out = run_store_case(base, os.path.join(work_dir, "store-work"), rng)
            else:
                out = run_index_case(kind, base, os.path.join(work_dir, "work"), rng)
        except Exception:  # noqa: BLE001 - reported to the parent as a failure
            print(f"FAIL {case_seed}\n{traceback.format_exc()}", flush=True)
            return 1
        tag = out.rsplit(": ", 1)[-1]
        outcomes[tag] = outcomes.get(tag, 0) + 1
    print("OUTCOMES " + json.dumps(outcomes), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
