"""scripts/upstream_suites.py: the import rewrites and the count parsing (no network, no foreign tests)."""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture(scope="module")
def runner():
    sys.path.insert(0, str(SCRIPTS))
    try:
        spec = importlib.util.spec_from_file_location("upstream_suites", SCRIPTS / "upstream_suites.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(SCRIPTS))


def test_every_library_module_defines_suites(runner):
    suites = runner.available_suites(["annoy", "hnswlib"])
    assert [s.name for s in suites] == ["annoy", "hnswlib"]
    for s in suites:
        assert callable(s.obtain) and callable(s.prepare) and s.rewrites and s.leftover


def test_import_rewrites_and_leftover_check(runner, tmp_path):
    import upstream

    annoy, hnsw = runner.available_suites(["annoy", "hnswlib"])
    (tmp_path / "a_test.py").write_text("import os\nfrom annoy import AnnoyIndex\nx = AnnoyIndex(3, 'dot')\n")
    (tmp_path / "b_test.py").write_text("import hnswlib\np = hnswlib.Index('l2', 4)\n")
    assert upstream.rewrite_imports(tmp_path / "", annoy.rewrites, annoy.leftover) == 1
    assert "from nearkit.compat.annoy import AnnoyIndex\n" in (tmp_path / "a_test.py").read_text()
    with pytest.raises(RuntimeError, match="still imported"):
        upstream.rewrite_imports(tmp_path, annoy.rewrites, hnsw.leftover)  # hnswlib not rewritten yet
    upstream.rewrite_imports(tmp_path, hnsw.rewrites, hnsw.leftover)
    assert (tmp_path / "b_test.py").read_text().startswith("import nearkit.compat.hnswlib as hnswlib\n")


def test_counts_from_junit(runner, tmp_path):
    report = tmp_path / "r.xml"
    report.write_text('<testsuites><testsuite name="pytest" tests="10" failures="2" errors="1" skipped="3">'
                      '<testcase classname="t" name="a"><failure message="boom&#10;more"/></testcase>'
                      '</testsuite></testsuites>')
    assert runner.counts(report) == {"passed": 4, "failed": 2, "errors": 1, "skipped": 3}
    assert runner.failures(report) == ["t::a: boom"]
    assert runner.counts(tmp_path / "missing.xml")["passed"] == 0
