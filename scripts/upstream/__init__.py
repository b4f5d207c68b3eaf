"""Upstream test suites, one module per library (annoy.py, hnswlib.py, ...).

Each module defines ``suites() -> list[Suite]``. A Suite says where the
library's own tests come from (its sdist on PyPI, or a snapshot of its
repository), how to lay them out in a scratch directory, which import lines to
rewrite so they exercise ``nearkit.compat``, and how to run them with pytest.
``scripts/upstream_suites.py`` runs every suite twice, against the real library
and against nearkit, and prints the counts side by side.

The tests are obtained at run time into a cache directory that git ignores;
they are never committed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# Where repository snapshots may already sit as bare git directories
# (<root>/<owner>+<name>/repo); otherwise they are cloned from GitHub.
MIRRORS = Path(os.environ.get("NEARKIT_UPSTREAM_MIRRORS", "/work/.mirror"))


@dataclass
class Suite:
    name: str
    source: str  # human-readable origin, e.g. "spotify/annoy@v1.17.3"
    obtain: Callable[[Path], Path]  # cache dir -> directory holding the upstream files
    prepare: Callable[[Path, Path], None]  # (upstream files, scratch run dir) -> lays tests out
    rewrites: list[tuple[str, str]]  # (regex, replacement) for every .py file, nearkit run only
    leftover: str  # regex that must not match any .py file after rewriting
    select: list[str] = field(default_factory=lambda: ["."])  # what pytest collects (--select replaces it)
    pytest_args: list[str] = field(default_factory=list)  # options
    timeout: int = 3600
    env: dict[str, str] = field(default_factory=dict)


def git_snapshot(repo: str, rev: str, paths: list[str]) -> Callable[[Path], Path]:
    """Files of ``repo`` ("owner/name") at ``rev``, exported with git archive."""

    def obtain(cache: Path) -> Path:
        dest = cache / f"{repo.replace('/', '+')}@{rev}"
        if (dest / ".complete").exists():
            return dest
        git_dir = MIRRORS / repo.replace("/", "+") / "repo"
        if not git_dir.exists():
            git_dir = cache / f"{repo.replace('/', '+')}.git"
            if not git_dir.exists():
                subprocess.run(["git", "clone", "--bare", "--quiet", f"https://github.com/{repo}.git",
                                str(git_dir)], check=True)
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        archive = subprocess.run(["git", f"--git-dir={git_dir}", "archive", "--format=tar", rev, *paths],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
        (dest / ".complete").touch()
        return dest

    return obtain


def sdist(requirement: str) -> Callable[[Path], Path]:
    """The unpacked source distribution of ``requirement`` (e.g. "annoy==1.17.3") from PyPI."""

    def obtain(cache: Path) -> Path:
        dest = cache / f"sdist-{requirement}"
        if (dest / ".complete").exists():
            return next(p for p in dest.iterdir() if p.is_dir())
        shutil.rmtree(dest, ignore_errors=True)
        dest.mkdir(parents=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:",
                        "--no-deps", requirement, "-d", str(dest)], check=True)
        for archive in dest.glob("*.tar.gz"):
            with tarfile.open(archive) as tf:
                tf.extractall(dest, filter="data")
        (dest / ".complete").touch()
        return next(p for p in dest.iterdir() if p.is_dir())

    return obtain


def copy_tree(*paths: str) -> Callable[[Path, Path], None]:
    """Copy the given upstream paths into the run dir, keeping their relative place."""

    def prepare(src: Path, run: Path) -> None:
        for p in paths:
            s = src / p
            if s.is_dir():
                shutil.copytree(s, run / p, dirs_exist_ok=True)
            else:
                (run / p).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(s, run / p)

    return prepare


def rewrite_imports(run: Path, rewrites: list[tuple[str, str]], leftover: str) -> int:
    """Apply the import rewrites to every .py file under ``run``; returns files changed.
    Raises if the real library's import is still there afterwards."""
    changed = 0
    for py in run.rglob("*.py"):
        text = py.read_text()
        new = text
        for pattern, repl in rewrites:
            new = re.sub(pattern, repl, new, flags=re.MULTILINE)
        if new != text:
            py.write_text(new)
            changed += 1
        if re.search(leftover, new, flags=re.MULTILINE):
            raise RuntimeError(f"{py}: the real library is still imported after rewriting")
    return changed
