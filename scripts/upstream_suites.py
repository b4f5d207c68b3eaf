#!/usr/bin/env python
"""Run other libraries' own test suites against nearkit.compat, next to the real library.

    python scripts/upstream_suites.py                 # every suite, real and nearkit
    python scripts/upstream_suites.py annoy hnswlib   # some suites
    python scripts/upstream_suites.py --target nearkit annoy -- -x -k load
    python scripts/upstream_suites.py annoy --select test/seed_test.py test/holes_test.py

For each suite (defined in scripts/upstream/<library>.py) the tests are fetched
at run time into a cache directory (default .upstream-cache/, git-ignored; the
foreign tests are never committed), copied into a scratch directory, and run
with pytest twice: unchanged against the real library, and with the import
line rewritten to nearkit.compat against this working tree (src/ first on
PYTHONPATH). One JSON line per run, then one side-by-side line per suite.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

from upstream import Suite, rewrite_imports  # noqa: E402

LIBRARIES = ["annoy", "hnswlib", "faiss", "redis", "redisvl"]


def available_suites(names: list[str]) -> list[Suite]:
    out = []
    for name in names:
        try:
            module = importlib.import_module(f"upstream.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"upstream.{name}":
                print(f"# no scripts/upstream/{name}.py yet: skipped", file=sys.stderr)
                continue
            raise
        out.extend(module.suites())
    return out


def counts(report: Path) -> dict:
    """passed/failed/errors/skipped from pytest's JUnit XML."""
    totals = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
    if not report.exists():
        return totals
    root = ET.parse(report).getroot()
    for ts in ([root] if root.tag == "testsuite" else root.iter("testsuite")):
        tests = int(ts.get("tests", 0))
        failed, errors, skipped = (int(ts.get(k, 0)) for k in ("failures", "errors", "skipped"))
        totals["failed"] += failed
        totals["errors"] += errors
        totals["skipped"] += skipped
        totals["passed"] += tests - failed - errors - skipped
    return totals


def failures(report: Path, limit: int = 20) -> list[str]:
    if not report.exists():
        return []
    out = []
    for case in ET.parse(report).getroot().iter("testcase"):
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if bad is not None:
            msg = (bad.get("message") or "").splitlines()
            out.append(f"{case.get('classname')}::{case.get('name')}: {msg[0][:160] if msg else ''}")
    return out[:limit]


def run(suite: Suite, target: str, cache: Path, extra: list[str], keep: bool, select=None) -> dict:
    src = suite.obtain(cache)
    scratch = Path(tempfile.mkdtemp(prefix=f"upstream-{suite.name}-{target}-"))
    suite.prepare(src, scratch)
    env = dict(os.environ, **suite.env)
    env.pop("PYTHONPATH", None)
    if target == "nearkit":
        rewrite_imports(scratch, suite.rewrites, suite.leftover)
        env["PYTHONPATH"] = str(ROOT / "src")
    report = scratch / "report.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(scratch),
           f"--junitxml={report}", *suite.pytest_args, *(select or suite.select), *extra]
    t0 = time.time()
    try:
        proc = subprocess.run(cmd, cwd=scratch, env=env, capture_output=True, text=True, timeout=suite.timeout)
        status = proc.returncode
        tail = proc.stdout.strip().splitlines()[-1:] if proc.stdout else []
        if status not in (0, 1):  # pytest itself failed (usage, collection, crash)
            tail = [(proc.stdout + proc.stderr)[-2000:]]
    except subprocess.TimeoutExpired:
        status, tail = "timeout", [f"timed out after {suite.timeout} s"]
    result = {"suite": suite.name, "target": target, "source": suite.source, **counts(report),
              "seconds": round(time.time() - t0, 1), "exit": status, "pytest": tail[0] if tail else "",
              "failing": failures(report)}
    if keep:
        result["dir"] = str(scratch)
    else:
        subprocess.run(["rm", "-rf", str(scratch)])
    return result


def summary(r: dict) -> str:
    s = f"{r['passed']} passed / {r['failed'] + r['errors']} failed"
    return s + (f" / {r['skipped']} skipped" if r["skipped"] else "")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("suites", nargs="*", default=LIBRARIES, help=f"libraries (default: {' '.join(LIBRARIES)})")
    ap.add_argument("--target", choices=["both", "real", "nearkit"], default="both")
    ap.add_argument("--cache", type=Path, default=ROOT / ".upstream-cache")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directories")
    ap.add_argument("--select", nargs="+", help="test paths/node ids to run instead of the suite's own selection")
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args, extra = ap.parse_args(argv[:cut]), argv[cut + 1:]  # after --: passed on to pytest
    args.cache.mkdir(parents=True, exist_ok=True)
    targets = ["real", "nearkit"] if args.target == "both" else [args.target]
    side_by_side = []
    for suite in available_suites(args.suites):
        results = {}
        for target in targets:
            results[target] = run(suite, target, args.cache, extra, args.keep, args.select)
            print(json.dumps(results[target]), flush=True)
        side_by_side.append(f"{suite.name:10s} " + " | ".join(f"{t}: {summary(r)}" for t, r in results.items()))
    for line in side_by_side:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
