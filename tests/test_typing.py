"""Type information ships with the package: py.typed and a stub of the C++ module that
names exactly what the built module has (regenerate it after changing the bindings)."""

import ast
import inspect
import os

import nearkit
from nearkit import _core

PACKAGE = os.path.dirname(nearkit.__file__)
REGENERATE = "python -m nanobind.stubgen -m nearkit._core -o src/nearkit/_core.pyi"


def stub_names():
    with open(os.path.join(PACKAGE, "_core.pyi"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    top, members = set(), {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            top.add(node.name)
        if isinstance(node, ast.ClassDef):
            members[node.name] = {n.name for n in node.body
                                  if isinstance(n, (ast.FunctionDef, ast.AnnAssign, ast.Assign))
                                  and not getattr(n, "name", "").startswith("__")}
            members[node.name] |= {t.id for n in node.body if isinstance(n, ast.AnnAssign)
                                   for t in [n.target] if isinstance(t, ast.Name)}
    return top, members


def public(obj):
    return {n for n in dir(obj) if not n.startswith("_")}


def test_py_typed_marker_ships():
    assert os.path.exists(os.path.join(PACKAGE, "py.typed"))


def test_core_stub_matches_the_built_module():
    top, members = stub_names()
    assert top == public(_core), f"nearkit/_core.pyi is out of date: {REGENERATE}"
    for name, cls in inspect.getmembers(_core, inspect.isclass):
        if name.startswith("_"):
            continue
        assert members[name] == public(cls), f"_core.pyi: {name} differs; {REGENERATE}"
