"""The README's Python tour runs as written (so it cannot drift from the API)."""

import os
import re

import pytest

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


def python_blocks():
    if not os.path.exists(README):  # an installed package tested without its sources
        pytest.skip("README.md not found next to the tests")
    with open(README, encoding="utf-8") as f:
        return re.findall(r"```python\n(.*?)```", f.read(), flags=re.S)


def test_readme_python_blocks_run_in_order(tmp_path, monkeypatch):
    blocks = python_blocks()
    assert len(blocks) >= 3
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)
    # spot-check what the tour claims
    assert namespace["ids"].shape == (5, 10)
    assert namespace["graph_ids"].shape == (2000, 5)
    assert len(namespace["mapped"]) == len(namespace["index"])
