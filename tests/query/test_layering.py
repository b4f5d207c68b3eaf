"""``nearkit.query`` sits below the store and the server: it imports neither (nor
anything else of nearkit's outside the package)."""

import ast
import pathlib

import nearkit.query

QUERY_DIR = pathlib.Path(nearkit.query.__file__).parent


def _imports(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            yield node.level, node.module or ""
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield 0, alias.name


def test_the_package_imports_only_itself_and_outside_libraries():
    paths = sorted(QUERY_DIR.glob("*.py"))
    assert {p.name for p in paths} >= {"nodes.py", "parse_text.py", "parse_dict.py", "evaluate.py"}
    for path in paths:
        for level, module in _imports(path):
            assert level <= 1, f"{path.name}: 'from {'.' * level}{module}' leaves the package"
            assert not module.startswith("nearkit"), f"{path.name} imports {module}"
