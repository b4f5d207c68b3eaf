"""The ``nearkit`` command: demo, build, search and info.

Every failure a user can cause (missing file, damaged index, bad argument,
missing data package) ends in a one-line message on stderr and a non-zero
exit status, never a traceback: 1 for errors, 2 for usage errors and a
missing data package.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from . import datasets
from .datasets import DatasetUnavailable
from .errors import FormatError, NotTrainedError

DEMO_WORDS = ("king", "paris", "python", "computer")
EXIT_ERROR, EXIT_USAGE = 1, 2


class CliError(Exception):
    """A user-facing error: the message is printed as is."""


# -- helpers ---------------------------------------------------------------------


def _parse_params(pairs) -> dict:
    """``["M=16", "ef=1.5", "kind=x"]`` -> {"M": 16, "ef": 1.5, "kind": "x"}."""
    params = {}
    for pair in pairs or ():
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise CliError(f"--param expects KEY=VALUE, got {pair!r}")
        for convert in (int, float):
            try:
                params[key] = convert(raw)
                break
            except ValueError:
                continue
        else:
            params[key] = raw
    return params


def _index_class(kind: str):
    from .indexes import index_class

    try:
        return index_class(kind)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _kinds_text() -> str:
    from .indexes import public_kinds

    return ", ".join(public_kinds())


def _progress(total: int, desc: str, quiet: bool):
    from tqdm import tqdm

    # disable=None: no bar when stderr is not a terminal (logs, CI)
    return tqdm(total=total, desc=desc, unit="vec", unit_scale=True, disable=True if quiet else None,
                leave=False)


def _add_in_batches(index, x, ids, batch: int, desc: str, quiet: bool = False) -> None:
    """Add rows of ``x`` (possibly a memory map) in chunks, with a progress bar.

    Chunks bound the memory a memory-mapped input needs (each is converted to
    float32 on its own) and let the bar move.
    """
    n = x.shape[0]
    with _progress(n, desc, quiet) as bar:
        for start in range(0, n, batch):
            stop = min(start + batch, n)
            if index.parallel_add:
                index.add(x[start:stop], ids=ids[start:stop], threads=-1)
            else:
                index.add(x[start:stop], ids=ids[start:stop])
            bar.update(stop - start)


def _human_bytes(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n} B"  # pragma: no cover


def _as_matrix(x, path) -> np.ndarray:
    if getattr(x, "ndim", 0) != 2:
        raise CliError(f"{path}: expected a 2-D array of vectors, got shape {np.shape(x)}")
    return x


# -- demo ----------------------------------------------------------------------------


DEMO_N_BASE = 100_000  # GloVe's most frequent words: the default demo runs in seconds


def _demo_data(args):
    """(base, base_ids, queries, metric, label_of, probes) for GloVe or synthetic data."""
    if args.synthetic:
        n = args.n_base or 20_000
        print(f"generating {n:,} synthetic clustered vectors ...", flush=True)
        x = datasets.synthetic_clustered(n + 1000, 32, seed=0)
        base, queries = x[:n], x[n:]
        probes = [(f"vector #{i}", base[i], i) for i in (0, 1, 2, 3)]
        return base, np.arange(n, dtype=np.int64), queries, "l2", str, probes

    print("loading GloVe 6B 50-d ...", flush=True)
    words = datasets.glove_words()
    vectors = datasets.glove_vectors()
    if args.full:
        split = datasets.glove_split(n_queries=1000, seed=0)
        base, base_ids, queries = split.base, split.base_ids.astype(np.int64), split.queries
    else:
        # The vocabulary is sorted by frequency: the first rows are the common words
        # the probes look for. 1,000 of them, drawn at random, are held out as queries.
        n = min(args.n_base or DEMO_N_BASE, vectors.shape[0] - 1000)
        rows = np.arange(n + 1000)
        held = np.zeros(rows.size, bool)
        held[np.random.default_rng(0).choice(rows.size, 1000, replace=False)] = True
        base_ids, query_ids = rows[~held].astype(np.int64), rows[held]
        base = np.ascontiguousarray(vectors[: n + 1000][~held], dtype=np.float32)
        queries = np.ascontiguousarray(vectors[query_ids], dtype=np.float32)
    row_of = {w: i for i, w in enumerate(words)}
    probes = []
    for word in DEMO_WORDS:
        if word in row_of:
            row = row_of[word]
            probes.append((word, np.asarray(vectors[row]), row))
    return base, base_ids, queries, "cosine", words.__getitem__, probes


def cmd_demo(args) -> int:
    from .evaluate import recall_at_k

    kind = args.index or "hnsw"
    cls, exact_cls = _index_class(kind), _index_class("flat")
    if args.full and (args.synthetic or args.n_base):
        raise CliError("--full takes the whole GloVe set: leave out --synthetic and --n-base")
    base, base_ids, queries, metric, label_of, probes = _demo_data(args)
    source = "synthetic clusters" if args.synthetic else "GloVe 6B 50-d"
    print(f"{source}: {base.shape[0]:,} base vectors of dim {base.shape[1]}, "
          f"{queries.shape[0]:,} held-out queries, metric {metric}")
    if not (args.synthetic or args.full or args.n_base):
        print("(the most frequent words; `nearkit demo --full` indexes all 399,000)")

    print(f"building a {kind} index ...", flush=True)
    t0 = time.perf_counter()
    index = cls(base.shape[1], metric)
    if getattr(index, "is_trained", True) is False:
        _train_on_sample(index, base, kind, source, args.quiet)
    _add_in_batches(index, base, base_ids, args.batch, f"building {kind}", args.quiet)
    print(f"built {kind} index in {time.perf_counter() - t0:.2f} s")

    print(f"\nnearest {'vectors' if args.synthetic else 'words'} (itself excluded):")
    width = max((len(p[0]) for p in probes), default=0)
    for label, vec, own_id in probes:
        ids, _ = index.search(vec, 9)
        near = [int(i) for i in ids if i >= 0 and i != own_id][:8]
        print(f"  {label:<{width}}  {', '.join(str(label_of(i)) for i in near)}")

    k = 10
    print(f"\nmeasuring recall@{k} against exact search ...", flush=True)
    exact = exact_cls(base.shape[1], metric)
    exact.add(base, ids=base_ids)
    t0 = time.perf_counter()
    truth, _ = exact.search(queries, k)
    exact_qps = queries.shape[0] / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    found, _ = index.search(queries, k)
    qps = queries.shape[0] / (time.perf_counter() - t0)
    recall = recall_at_k(found, truth, k)
    print(f"{kind}: recall@{k} = {recall:.4f} at {qps:,.0f} queries/s "
          f"(exact search: {exact_qps:,.0f} queries/s; {queries.shape[0]:,} queries, 1 thread)")
    return 0


# -- build / search / info -------------------------------------------------------------


def cmd_build(args) -> int:
    from .io import read_index

    ext = os.path.splitext(args.input)[1].lower()
    metric = args.metric
    if metric is None and ext in (".hdf5", ".h5"):
        metric = datasets.hdf5_metric(args.input)
    metric = metric or "l2"
    x = _as_matrix(datasets.load_vectors(args.input, dataset=args.dataset, mmap=True), args.input)
    if x.shape[0] == 0:
        raise CliError(f"{args.input}: contains no vectors")
    cls = _index_class(args.index)
    t0 = time.perf_counter()
    try:
        index = cls(x.shape[1], metric, **_parse_params(args.param))
    except TypeError as exc:
        raise CliError(f"bad --param for {args.index}: {exc}") from None
    if getattr(index, "is_trained", True) is False:
        _train_on_sample(index, x, args.index, args.input, args.quiet)
    ids = np.arange(x.shape[0], dtype=np.int64)
    _add_in_batches(index, x, ids, args.batch, f"adding to {args.index}", args.quiet)
    try:
        index.save(args.output)
    except OSError as exc:  # name the user's path, not the temporary file it is written through
        raise CliError(f"{args.output}: cannot write: {exc.strerror or exc}") from None
    size = read_index(args.output, verify=False, mmap=True).file_size
    print(f"wrote {args.output}: {args.index} index, {len(index):,} vectors of dim {x.shape[1]}, "
          f"metric {index.metric}, {_human_bytes(size)} in {time.perf_counter() - t0:.2f} s")
    return 0


def _train_on_sample(index, x, kind: str, source: str, quiet: bool) -> None:
    """Train an index that needs it (IVF) on up to 256 rows per list of the input."""
    n = x.shape[0]
    want = min(n, 256 * getattr(index, "nlist", 1))
    rows = np.sort(np.random.default_rng(0).choice(n, want, replace=False)) if want < n else slice(None)
    sample = np.ascontiguousarray(x[rows], dtype=np.float32)
    if not quiet:
        print(f"training {kind} on {sample.shape[0]:,} vectors ...", file=sys.stderr)
    try:
        index.train(sample)
    except ValueError as exc:
        raise CliError(f"cannot train {kind} on {source}: {exc}; "
                       "fewer lists fit small inputs, e.g. -p nlist=16") from None


def _json_floats(row) -> list:
    # JSON has no infinity: padded slots (distance +inf) become null. str() of a
    # float32 is its shortest round-trip form (0.44733936, not 0.44733935594558716).
    return [float(str(v)) if np.isfinite(v) else None for v in row.astype(np.float32)]


def cmd_search(args) -> int:
    from .indexes import load

    index = load(args.index, mmap=args.mmap)
    q = _as_matrix(datasets.load_vectors(args.queries, dataset=args.dataset), args.queries)
    ids, dist = index.search(q, args.k, threads=args.threads, **_parse_params(args.param))
    if args.out:
        ext = os.path.splitext(args.out)[1].lower()
        if ext == ".npz":
            np.savez(args.out, ids=ids, distances=dist)
        elif ext == ".npy":
            np.save(args.out, ids)
        else:
            raise CliError(f"--out must end in .npz (ids and distances) or .npy (ids), got {args.out!r}")
        print(f"wrote {args.out}: {ids.shape[0]:,} queries x {args.k}", file=sys.stderr)
        return 0
    out = sys.stdout
    for i, (row_ids, row_dist) in enumerate(zip(ids, dist)):
        out.write(json.dumps({"query": i, "ids": row_ids.tolist(), "distances": _json_floats(row_dist)}))
        out.write("\n")
    return 0


def cmd_info(args) -> int:
    from .io import read_index, section_checksum_ok

    f = read_index(args.file, mmap=True, verify=False)
    status = {s.name: section_checksum_ok(s, f.sections[s.name]) for s in f.table}
    bad = [name for name, ok in status.items() if not ok]
    if args.json:
        print(json.dumps({
            "file": args.file, "size": f.file_size, "kind": f.kind, "version": f.version,
            "dim": f.dim, "metric": f.metric, "params": f.params,
            "sections": [
                {"name": s.name, "dtype": s.dtype, "shape": list(s.shape), "offset": s.offset,
                 "nbytes": s.nbytes, "checksum_ok": status[s.name]}
                for s in f.table
            ],
        }))
    else:
        print(f"file      {args.file} ({_human_bytes(f.file_size)})")
        print(f"kind      {f.kind}")
        print(f"version   {f.version}")
        print(f"dim       {f.dim}")
        print(f"metric    {f.metric}")
        print(f"params    {json.dumps(f.params, sort_keys=True)}")
        print(f"sections  {len(f.table)}")
        rows = [(s.name, s.dtype, "x".join(map(str, s.shape)) or "scalar", _human_bytes(s.nbytes),
                 "ok" if status[s.name] else "CHECKSUM MISMATCH") for s in f.table]
        widths = [max((len(r[c]) for r in rows), default=0) for c in range(5)]
        for r in rows:
            print("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
        print("checksums " + (f"MISMATCH in {', '.join(bad)}" if bad else "all ok"))
    return EXIT_ERROR if bad else 0


# -- argument parsing -----------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nearkit", description="Nearest-neighbour search over dense vectors.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="nearest words in GloVe, and recall/speed against exact search")
    demo.add_argument("--index", help=f"index kind: {_kinds_text()} (default: hnsw)")
    demo.add_argument("--synthetic", action="store_true", help="use synthetic clusters instead of GloVe")
    demo.add_argument("--n-base", type=_positive_int,
                      help=f"base vectors (default: the {DEMO_N_BASE:,} most frequent GloVe words; "
                           "synthetic: 20,000)")
    demo.add_argument("--full", action="store_true", help="index all 399,000 GloVe words (minutes)")
    demo.add_argument("--batch", type=_positive_int, default=50_000, help=argparse.SUPPRESS)
    demo.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    demo.set_defaults(func=cmd_demo)

    build = sub.add_parser("build", help="build an index file from .npy, .fvecs/.bvecs/.ivecs or HDF5")
    build.add_argument("input")
    build.add_argument("output")
    build.add_argument("--index", default="flat",
                       help=f"index kind: {_kinds_text()} (default: flat)")
    build.add_argument("--metric", help="l2, ip or cosine (default: the HDF5 file's, else l2)")
    build.add_argument("--dataset", default="train", help="HDF5 data set to index (default: train)")
    build.add_argument("--batch", type=_positive_int, default=50_000, help="vectors per add (default: 50000)")
    build.add_argument("--param", "-p", action="append", metavar="KEY=VALUE", help="index constructor parameter")
    build.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    build.set_defaults(func=cmd_build)

    search = sub.add_parser("search", help="search an index file with a file of queries")
    search.add_argument("index")
    search.add_argument("queries")
    search.add_argument("-k", type=_positive_int, required=True, help="neighbours per query")
    search.add_argument("--out", help="results.npz (ids, distances) or ids.npy; default: JSON lines on stdout")
    search.add_argument("--dataset", default="test", help="HDF5 data set of queries (default: test)")
    search.add_argument("--mmap", action="store_true", help="memory-map the index instead of reading it")
    search.add_argument("--threads", type=int, help="search threads (0: all cores)")
    search.add_argument("--param", "-p", action="append", metavar="KEY=VALUE", help="search parameter, e.g. ef=64")
    search.set_defaults(func=cmd_search)

    info = sub.add_parser("info", help="describe an index file and check its checksums")
    info.add_argument("file")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=cmd_info)

    # Listed here for --help; main() hands `serve` to the server's own parser, so the
    # server (and hiredis, from the `server` extra) is imported only when it runs.
    sub.add_parser("serve", help="run the Redis-compatible vector search server "
                                 "(needs the `server` extra)", add_help=False)
    return parser


class MissingExtra(Exception):
    """A command needs an optional dependency: the message says what to install."""


def cmd_serve(argv) -> int:
    try:
        from .server.server import add_serve_arguments, config_from_args, run
    except ModuleNotFoundError as exc:
        if exc.name not in _SERVER_EXTRA_MODULES:
            raise
        raise MissingExtra(
            f"the server needs the package {exc.name!r}, which comes with the `server` extra: "
            "pip install 'nearkit[server]'"
        ) from None
    parser = argparse.ArgumentParser(prog="nearkit serve",
                                     description="Redis-compatible vector search server")
    add_serve_arguments(parser)
    return run(config_from_args(parser.parse_args(argv)))


# Imported by nearkit.server but not by the base install (see pyproject's `server` extra).
_SERVER_EXTRA_MODULES = ("hiredis",)


def _describe_os_error(exc: OSError) -> str:
    if exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return str(exc)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["serve"]:
        args = argparse.Namespace(command="serve", func=lambda _: cmd_serve(argv[1:]))
    else:
        args = build_parser().parse_args(argv)
    prog = f"nearkit {args.command}"
    try:
        return args.func(args)
    except MissingExtra as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except DatasetUnavailable as exc:
        hint = "; or run `nearkit demo --synthetic` without it" if args.command == "demo" else ""
        print(f"{prog}: {exc}{hint}", file=sys.stderr)
        return EXIT_USAGE
    except (CliError, FormatError, NotTrainedError, ValueError, TypeError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # e.g. `nearkit search ... | head`: stop quietly
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the final flush at exit cannot fail again
        return EXIT_ERROR
    except OSError as exc:
        print(f"{prog}: error: {_describe_os_error(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
