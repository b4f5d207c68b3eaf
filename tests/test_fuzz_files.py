"""Mutation fuzzing of index files and store snapshots (see tests/fuzz_files.py).

Each kind runs in a child process, so a crash (a signal) fails the test and
names the case seed instead of killing pytest. The default run is short; the
long run (>= 10,000 mutations per kind) is behind ``-m fuzz_long``:

    PYTHONPATH=src python -m pytest -m fuzz_long tests/test_fuzz_files.py
"""

import os
import subprocess
import sys

import pytest

from child_env import child_env
from fuzz_files import KINDS

HERE = os.path.dirname(os.path.abspath(__file__))


def run_fuzz(kind: str, n: int, seed: int, tmp_path) -> str:
    env = child_env()
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "fuzz_files.py"), kind, str(n), str(seed),
         str(tmp_path / kind)],
        capture_output=True, text=True, env=env, timeout=3600)
    out = proc.stdout
    if proc.returncode != 0:
        started = [line for line in out.splitlines() if line.startswith("case ")]
        last = started[-1] if started else "before the first case"
        how = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit {proc.returncode}"
        pytest.fail(f"{kind} fuzz failed ({how}) at {last}; reproduce with "
                    f"`python tests/fuzz_files.py {kind} {n} {seed}`\n"
                    f"{out[-3000:]}\n{proc.stderr[-3000:]}")
    assert "OUTCOMES" in out
    return out


# Short run: a few hundred mutations in all.
SHORT = {"flat": 40, "hnsw": 60, "ivf_pq8": 40, "ivf_pq4fs": 30, "ivf_sq8": 30, "ivf_flat": 30,
         "trees": 40, "store": 12}


@pytest.mark.parametrize("kind", KINDS)
def test_fuzz_short(kind, tmp_path):
    out = run_fuzz(kind, SHORT[kind], seed=20261203, tmp_path=tmp_path)
    # The mutations must reach both outcomes: files refused and files that load.
    if kind != "store":
        assert '"refused"' in out and '"loaded"' in out, out[-500:]


@pytest.mark.fuzz_long
@pytest.mark.parametrize("kind", KINDS)
def test_fuzz_long(kind, tmp_path):
    run_fuzz(kind, 10_000 if kind != "store" else 2_000, seed=7, tmp_path=tmp_path)
