"""hnswlib 0.8.0's own Python tests (tests/python and python_bindings/tests in nmslib/hnswlib)."""

import shutil
from pathlib import Path

from . import Suite, git_snapshot


def _flatten(src: Path, run: Path) -> None:
    # upstream CI runs them from one directory (they write index files into the cwd)
    for d in ("tests/python", "python_bindings/tests"):
        for f in sorted((src / d).glob("bindings_test*.py")):
            shutil.copy2(f, run / f.name)


def suites() -> list[Suite]:
    return [Suite(
        name="hnswlib",
        source="nmslib/hnswlib@v0.8.0 tests/python/bindings_test*.py, python_bindings/tests",
        obtain=git_snapshot("nmslib/hnswlib", "v0.8.0", ["tests/python", "python_bindings/tests"]),
        prepare=_flatten,
        rewrites=[(r"^import hnswlib$", "import nearkit.compat.hnswlib as hnswlib")],
        leftover=r"^\s*(import hnswlib\b|from hnswlib import)",
        # the files do not match pytest's default name pattern; test_space_main is a
        # module-level helper taking `self` that pytest would collect as a test
        select=["."],
        pytest_args=["-o", "python_files=bindings_test*.py",
                     "--deselect", "bindings_test_pickle.py::test_space_main"],
    )]
