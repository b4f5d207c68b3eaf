"""annoy 1.17.3's own tests (test/ in the spotify/annoy repository; the sdist ships none)."""

from . import Suite, copy_tree, git_snapshot


def suites() -> list[Suite]:
    return [Suite(
        name="annoy",
        source="spotify/annoy@v1.17.3 test/",
        obtain=git_snapshot("spotify/annoy", "v1.17.3", ["test", "examples"]),
        prepare=copy_tree("test", "examples"),  # tests open test/test.tree relative to the cwd
        rewrites=[(r"^from annoy import AnnoyIndex\b", "from nearkit.compat.annoy import AnnoyIndex"),
                  (r"^import annoy$", "import nearkit.compat.annoy as annoy")],
        leftover=r"^\s*(from annoy import|import annoy\b)",
        # accuracy_test downloads ann-benchmarks data sets over the network
        select=["test"],
        pytest_args=["--ignore=test/accuracy_test.py"],
    )]
