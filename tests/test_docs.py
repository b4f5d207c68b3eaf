"""Every code block in README.md and docs/*.md: python blocks run, in order, per file.

Each file's ```python blocks run one after another in one namespace, in a
fresh temporary directory, so a page is a complete program: no name may come
from outside it. Blocks not meant to run carry another language (```sh,
```text, ...); a block with no language at all is refused, so nothing is left
unchecked by accident. README.md runs twice in the same directory (a new user
runs an example again). docs/server.md talks to `nearkit serve --port 6379`:
the test starts a server in-process and points the block at its port.
"""

from __future__ import annotations

import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```\s*$", flags=re.S | re.M)
SERVER_PORT = "6379"


def doc_files() -> list[str]:
    files = [os.path.join(ROOT, "README.md")] + sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
    return [f for f in files if os.path.exists(f)]


def blocks(path: str) -> list[tuple[str, str]]:
    with open(path, encoding="utf-8") as f:
        return [(lang.strip(), body) for lang, body in FENCE.findall(f.read())]


def relative(path: str) -> str:
    return os.path.relpath(path, ROOT)


pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(ROOT, "README.md")),
                                reason="README.md not found next to the tests (installed package)")


@pytest.mark.parametrize("path", doc_files(), ids=relative)
def test_every_block_names_its_language(path):
    unnamed = [body.splitlines()[0] if body.strip() else "(empty)"
               for lang, body in blocks(path) if not lang]
    assert not unnamed, f"{relative(path)}: blocks without a language (use ```python, ```sh, ```text): {unnamed}"


def run_python_blocks(path: str, replace=None) -> dict:
    namespace: dict = {"__name__": "__docs__"}
    for number, (lang, body) in enumerate(blocks(path)):
        if lang != "python":
            continue
        if replace:
            for old, new in replace.items():
                body = body.replace(old, new)
        exec(compile(body, f"{relative(path)} (python block {number})", "exec"), namespace)
    return namespace


@pytest.mark.parametrize("path", [p for p in doc_files() if not p.endswith("server.md")
                                  and any(lang == "python" for lang, _ in blocks(p))],
                         ids=relative)
def test_python_blocks_run_in_order(path, tmp_path, monkeypatch):
    if any("import ray" in body for lang, body in blocks(path) if lang == "python"):
        pytest.importorskip("ray")  # the `ray` extra (in the test extra, so CI runs it)
        # Ray's workers start elsewhere: a relative PYTHONPATH (src, in a dev checkout)
        # must be made absolute for them to import nearkit.
        paths = os.environ.get("PYTHONPATH")
        if paths:
            monkeypatch.setenv("PYTHONPATH", os.pathsep.join(os.path.abspath(p) for p in paths.split(os.pathsep)))
    monkeypatch.chdir(tmp_path)
    runs = 2 if path.endswith("README.md") else 1
    for _ in range(runs):
        namespace = run_python_blocks(path)
    if path.endswith("README.md"):  # spot-check what the tour claims
        assert namespace["ids"].shape == (5, 10)
        assert namespace["graph_ids"].shape == (2000, 5)
        assert len(namespace["mapped"]) == len(namespace["index"])


def test_server_page_blocks_run_against_a_server(tmp_path, monkeypatch):
    pytest.importorskip("hiredis")
    pytest.importorskip("redis")
    from server_helpers import ThreadServer

    path = os.path.join(ROOT, "docs", "server.md")
    monkeypatch.chdir(tmp_path)
    server = ThreadServer()
    try:
        run_python_blocks(path, replace={f"port={SERVER_PORT}": f"port={server.port}"})
    finally:
        server.stop()


def test_no_link_leaves_the_repository():
    outside = ("../" + "shared", "/" + "shared/")  # spelled apart so this file does not match
    offenders = []
    for pattern in ("README.md", "docs/*.md", "src/**/*.py", "tests/**/*.py", "benchmarks/**/*.py",
                    "scripts/**/*"):
        for path in glob.glob(os.path.join(ROOT, pattern), recursive=True):
            if os.path.isdir(path):
                continue
            with open(path, encoding="utf-8", errors="replace") as f:
                text = f.read()
            offenders += [f"{relative(path)}: {s}" for s in outside if s in text]
    assert not offenders


def test_the_reference_redis_script_ships_with_the_project():
    import server_helpers

    assert os.path.exists(os.path.join(ROOT, "scripts", "start_reference_redis.sh"))
    if "NEARKIT_REFERENCE_REDIS" not in os.environ:
        assert server_helpers.REFERENCE_SCRIPT == os.path.join(ROOT, "scripts", "start_reference_redis.sh")
