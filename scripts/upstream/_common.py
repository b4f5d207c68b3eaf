"""Shared pieces of the upstream-suite scripts: fetch a client's sdist (its tests ride along),
start nearkit's server and the reference Redis, run pytest, read its counts.

Nothing fetched is kept in the repository: sdists unpack under a temporary directory
(or --work DIR)."""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tarfile
import time
from importlib import metadata

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_REF_CANDIDATES = [os.path.join(ROOT, *up, "shared", "redis", "start_reference_redis.sh")
                   for up in (("..",), ("..", ".."))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 60.0, proc=None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listening on port {port}")


def sdist_tree(dist: str, work: str) -> str:
    """Unpacked sdist of the installed version of `dist` (tests included), downloaded once."""
    version = metadata.version(dist)
    dest = os.path.join(work, f"{dist}-{version}")
    if os.path.isdir(dest):
        return dest
    dl = os.path.join(work, "dl")
    os.makedirs(dl, exist_ok=True)
    found = glob.glob(os.path.join(dl, f"{dist}-{version}.tar.gz"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "--no-binary", ":all:", "-d", dl, f"{dist}=={version}"], check=True)
        found = glob.glob(os.path.join(dl, f"{dist}-{version}.tar.gz"))
    with tarfile.open(found[0]) as tar:
        tar.extractall(work, filter="data")
    return dest


class NearkitServer:
    """``python -m nearkit.server`` from this checkout, on a free port."""

    def __init__(self):
        self.port = free_port()
        env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "src") + os.pathsep
                   + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen([sys.executable, "-m", "nearkit.server", "--port",
                                      str(self.port)], env=env, stdout=subprocess.DEVNULL)
        wait_port(self.port, 60, self.proc)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class ReferenceRedis:
    """The reference Redis Stack 7.4 (start_reference_redis.sh), or an already running one."""

    def __init__(self, url: str | None = None):
        self.pid = None
        if url:
            self.url = url
            return
        script = os.environ.get("NEARKIT_REFERENCE_REDIS") or next(
            (p for p in _REF_CANDIDATES if os.path.exists(p)), None)
        if script is None:
            raise RuntimeError("no reference Redis: pass --reference-url or set "
                               "NEARKIT_REFERENCE_REDIS to start_reference_redis.sh")
        port = free_port()
        out = subprocess.run(["bash", script, "stack", str(port)], capture_output=True,
                             text=True, timeout=600, check=True)
        self.pid = int(out.stdout.strip().splitlines()[-1])
        wait_port(port, 60)
        self.url = f"redis://127.0.0.1:{port}/0"

    def stop(self):
        if self.pid:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass


_COUNT = re.compile(r"(\d+) (passed|failed|error|errors|skipped|xfailed|xpassed)")


def run_pytest(args: list[str], cwd: str, env: dict, log: str, timeout: int) -> dict:
    """Run pytest; {'counts': {...}, 'outcomes': {nodeid: outcome}} from its report."""
    report = log + ".json"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rN",
           "--timeout", "60", "-o", "junit_family=xunit2", f"--junitxml={report}.xml", *args]
    with open(log, "w") as fh:
        try:
            subprocess.run(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT,
                           timeout=timeout)
        except subprocess.TimeoutExpired:
            fh.write("\nTIMEOUT\n")
    outcomes = _junit_outcomes(report + ".xml")
    counts: dict = {}
    for v in outcomes.values():
        counts[v] = counts.get(v, 0) + 1
    return {"counts": counts, "outcomes": outcomes}


def _junit_outcomes(path: str) -> dict:
    import xml.etree.ElementTree as ET

    if not os.path.exists(path):
        return {}
    out = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        if "skipped" in kinds:
            out[name] = "skipped"
        elif "failure" in kinds:
            out[name] = "failed"
        elif "error" in kinds:
            out[name] = "error"
        else:
            out[name] = "passed"
    return out


def side_by_side(suite: str, ref: dict, nk: dict) -> dict:
    """One comparison line: counts on each server and the tests passing only on the reference."""
    ref_pass = {k for k, v in ref["outcomes"].items() if v == "passed"}
    nk_pass = {k for k, v in nk["outcomes"].items() if v == "passed"}
    return {"suite": suite, "reference": ref["counts"], "nearkit": nk["counts"],
            "ref_passed": len(ref_pass), "nearkit_passed_of_those": len(ref_pass & nk_pass),
            "regressions": sorted(ref_pass - nk_pass)}


def print_line(row: dict, verbose: bool) -> None:
    short = {k: v for k, v in row.items() if k != "regressions"}
    short["regressions"] = len(row["regressions"])
    print(json.dumps(short), flush=True)
    if verbose:
        for name in row["regressions"]:
            print("   only-reference-passes:", name, flush=True)


def main(description: str, run) -> int:
    """Command line shared by the suite scripts: start both servers, call
    ``run(ref_url, nearkit_url, work, select)`` -> rows, print one JSON line per suite."""
    import argparse
    import tempfile

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--reference-url", help="an already running Redis Stack 7.4 "
                    "(default: start one with start_reference_redis.sh)")
    ap.add_argument("--nearkit-url", help="an already running nearkit server "
                    "(default: start one from this checkout)")
    ap.add_argument("--work", help="where sdists are unpacked and logs written "
                    "(default: a temporary directory)")
    ap.add_argument("--only", choices=["reference", "nearkit"], help="run one side only")
    ap.add_argument("-k", dest="select", help="pytest -k expression")
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="list the tests that pass only on the reference")
    args = ap.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="nearkit-upstream-")
    os.makedirs(work, exist_ok=True)
    ref = nk = None
    try:
        if args.only != "nearkit":
            ref = ReferenceRedis(args.reference_url)
        if args.only != "reference":
            nk = None if args.nearkit_url else NearkitServer()
        nk_url = args.nearkit_url or (nk.url if nk else None)
        for row in run(ref.url if ref else None, nk_url, work, args.select):
            print_line(row, args.verbose)
    finally:
        for s in (nk, ref):
            if s is not None:
                s.stop()
    print(f"# logs in {work}", flush=True)
    return 0


def run_both(suite: str, ref_url, nk_url, run_one) -> dict:
    """run_one(url, tag) -> pytest result, on each server that is there."""
    empty = {"counts": {}, "outcomes": {}}
    ref = run_one(ref_url, "reference") if ref_url else empty
    nk = run_one(nk_url, "nearkit") if nk_url else empty
    return side_by_side(suite, ref, nk)
