"""Run faiss's own Python tests against nearkit.compat.faiss and against faiss-cpu.

The tests are never committed: they are exported at run time from a snapshot of
github.com/facebookresearch/faiss (a local git directory given by --snapshot or
$FAISS_SNAPSHOT; otherwise a shallow clone of the tag over the network) into a
temporary directory. In a copy of them, `import faiss` becomes
`from nearkit.compat import faiss`; `common_faiss_tests.py` and `faiss.contrib`
stay on the real faiss-cpu (they only generate data and ground truth).

Two ways to run it:

- through the shared runner (scripts/upstream_suites.py, from the annoy/hnswlib
  work), which imports ``suites()`` from this module;
- on its own: ``python scripts/upstream/faiss.py [--side nearkit|faiss|both]``,
  printing one line per side: "faiss <side>: N passed, M failed, ... of T collected".
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

NAME = "faiss"
TAG = "v1.15.0"  # closest tag to faiss-cpu 1.15.1
REPO_URL = "https://github.com/facebookresearch/faiss"
DEFAULT_SNAPSHOT = "/work/.mirror/facebookresearch+faiss/repo"
FILES = [
    "test_index.py", "test_factory.py", "test_io.py", "test_clustering.py",
    "test_search_params.py", "test_index_composite.py", "test_graph_based.py",
    "test_refine.py", "test_build_blocks.py",
]
# Each SIMD-parametrised class is cloned per level; run the portable one only.
DESELECT = "not _AVX"
REPO_ROOT = Path(__file__).resolve().parents[2]


def export_tests(dest: Path, snapshot: str | None) -> Path:
    """Put the tag's tests/ directory under dest; returns its path."""
    snapshot = snapshot or os.environ.get("FAISS_SNAPSHOT") or DEFAULT_SNAPSHOT
    if not Path(snapshot).exists():
        snapshot = str(dest / "faiss.git")
        subprocess.run(["git", "clone", "--bare", "--depth", "1", "--branch", TAG, REPO_URL, snapshot],
                       check=True)
    archive = subprocess.run(["git", "--git-dir", snapshot, "archive", TAG, "tests"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "tests"


def point_at_nearkit(tests: Path) -> None:
    for name in FILES:
        path = tests / name
        text = re.sub(r"^import faiss$", "from nearkit.compat import faiss", path.read_text(),
                      flags=re.M)
        path.write_text(text)


def run_pytest(tests: Path, side: str, extra: list[str], timeout: float) -> dict:
    env = dict(os.environ)
    if side == "nearkit":
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT / "src"), env.get("PYTHONPATH")]))
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-W", "ignore", "-k", DESELECT]
    proc = subprocess.run(cmd + extra + FILES, cwd=tests, env=env, capture_output=True, text=True,
                          timeout=timeout)
    tail = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-500:]
    counts = {key: int(num) for num, key in re.findall(r"(\d+) (passed|failed|error|errors|skipped|deselected)", tail)}
    counts["errors"] = counts.pop("error", 0) + counts.get("errors", 0)
    counts["summary"] = tail
    counts["output"] = proc.stdout
    return counts


def _prepare_flat(src: Path, run: Path) -> None:
    """The nine files and their helper side by side; the helper keeps the real faiss
    (it only generates data), spelled so that no import rewrite touches it."""
    import shutil

    for name in FILES:
        shutil.copy2(src / "tests" / name, run / name)
    helper = (src / "tests" / "common_faiss_tests.py").read_text()
    (run / "common_faiss_tests.py").write_text(
        re.sub(r"^import faiss$", "import faiss as faiss  # the real one: data and ground truth",
               helper, flags=re.M))


def suites():
    """The suite for scripts/upstream_suites.py (needs the scripts/upstream package)."""
    from . import Suite, git_snapshot

    return [Suite(
        name=NAME,
        source=f"facebookresearch/faiss@{TAG} tests/ ({len(FILES)} files)",
        obtain=git_snapshot("facebookresearch/faiss", TAG, ["tests"]),
        prepare=_prepare_flat,
        rewrites=[(r"^import faiss$", "from nearkit.compat import faiss")],
        leftover=r"^import faiss$",
        pytest_args=["-W", "ignore", "-k", DESELECT, *FILES],
    )]


def describe(side: str, c: dict) -> str:
    collected = sum(c.get(k, 0) for k in ("passed", "failed", "errors", "skipped"))
    share = 100.0 * c.get("passed", 0) / collected if collected else 0.0
    return (f"{NAME} {side}: {c.get('passed', 0)} passed, {c.get('failed', 0)} failed, "
            f"{c.get('errors', 0)} errors, {c.get('skipped', 0)} skipped of {collected} collected "
            f"({share:.0f}% pass; {c.get('deselected', 0)} deselected by -k '{DESELECT}')")


def run(sides=("nearkit", "faiss"), snapshot=None, extra=(), keep=False, timeout=1800.0,
        verbose=False) -> dict:
    """Run the suite on each side; returns {side: counts} and prints a line per side."""
    results = {}
    tmp = Path(tempfile.mkdtemp(prefix="faiss-upstream-"))
    for side in sides:
        tests = export_tests(tmp / side, snapshot) if (tmp / side).mkdir() is None else None
        if side == "nearkit":
            point_at_nearkit(tests)
        res = run_pytest(tests, side, list(extra), timeout)
        if verbose:
            print(res["output"])
        print(describe(side, res), flush=True)
        results[side] = res
    if not keep:
        subprocess.run(["rm", "-rf", str(tmp)], check=False)
    else:
        print(f"tests kept in {tmp}")
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--side", choices=["nearkit", "faiss", "both"], default="both")
    ap.add_argument("--snapshot", help="git dir of a facebookresearch/faiss snapshot (has tag %s)" % TAG)
    ap.add_argument("--keep", action="store_true", help="keep the exported tests")
    ap.add_argument("-v", "--verbose", action="store_true", help="print pytest's output")
    ap.add_argument("pytest_args", nargs="*", help="extra pytest arguments (after --)")
    args = ap.parse_args(argv)
    sides = ("nearkit", "faiss") if args.side == "both" else (args.side,)
    run(sides, args.snapshot, args.pytest_args, args.keep, verbose=args.verbose)
    return 0


if __name__ == "__main__":
    sys.exit(main())
