"""A small JSONPath subset for JSON.* commands and ON JSON index fields.

Supported: ``$`` and ``.`` (root), member steps ``.name`` / ``["name"]``,
array steps ``[3]`` / ``[-1]`` and the wildcard ``[*]`` / ``.*``. Paths that
start with ``$`` are JSONPath (results come as an array); others use RedisJSON's
legacy form (one value).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_STEP = re.compile(r"""\.(?P<name>[A-Za-z_$][\w$-]*)|\.(?P<star>\*)|\[(?P<idx>-?\d+)\]|\[(?P<wild>\*)\]|\[\s*(?P<q>['"])(?P<key>(?:\\.|(?!(?P=q)).)*)(?P=q)\s*\]""")

_MISSING = object()

# Deepest JSON value one command may pass (RedisJSON's parser stops at 128 levels),
# and deepest a document may grow by setting values under paths: walks over a
# document and json.dumps recurse once per level, and Python's stack is finite.
MAX_VALUE_DEPTH = 127
MAX_DOCUMENT_DEPTH = 512
_STRUCTURE = re.compile(rb'["\\\[\]{}]')


def too_deep(text: bytes, limit: int = MAX_VALUE_DEPTH) -> int | None:
    """The 1-based column where the JSON ``text`` nests deeper than ``limit``, or None.

    Called before parsing, so that a 100,000-deep document is refused instead of
    exhausting the parser's stack; only the structural characters are visited."""
    if text.count(b"[") + text.count(b"{") <= limit:
        return None
    depth, in_string, skip_to = 0, False, -1
    for m in _STRUCTURE.finditer(text):
        i = m.start()
        if i < skip_to:
            continue
        c = text[i]
        if in_string:
            if c == 0x5C:  # an escaped character, whatever it is
                skip_to = i + 2
            elif c == 0x22:
                in_string = False
        elif c == 0x22:
            in_string = True
        elif c in (0x5B, 0x7B):
            depth += 1
            if depth > limit:
                return i + 1
        elif c in (0x5D, 0x7D):
            depth -= 1
    return None


@dataclass(frozen=True)
class Path:
    text: str
    steps: tuple  # ("key", name) | ("idx", i) | ("*", None)
    legacy: bool

    @property
    def is_root(self) -> bool:
        return not self.steps


def parse(path) -> Path:
    text = path.decode("utf-8", "replace") if isinstance(path, (bytes, bytearray)) else str(path)
    legacy = not text.startswith("$")
    body = text[1:] if not legacy else text
    if legacy and body == ".":
        body = ""
    if legacy and body and body[0] not in ".[":
        body = "." + body
    steps, pos = [], 0
    while pos < len(body):
        m = _STEP.match(body, pos)
        if not m:
            raise ValueError(f"invalid JSONPath '{text}' at offset {pos}")
        if m.group("name") is not None:
            steps.append(("key", m.group("name")))
        elif m.group("star") or m.group("wild"):
            steps.append(("*", None))
        elif m.group("idx") is not None:
            steps.append(("idx", int(m.group("idx"))))
        else:
            steps.append(("key", re.sub(r"\\(.)", r"\1", m.group("key"))))
        pos = m.end()
        if len(steps) > MAX_DOCUMENT_DEPTH:
            raise ValueError(f"JSONPath '{text[:40]}...' is nested deeper than "
                             f"{MAX_DOCUMENT_DEPTH} levels")
    return Path(text, tuple(steps), legacy)


def _walk(node, steps):
    if not steps:
        yield node
        return
    kind, arg = steps[0]
    rest = steps[1:]
    if kind == "key":
        if isinstance(node, dict) and arg in node:
            yield from _walk(node[arg], rest)
    elif kind == "idx":
        if isinstance(node, list) and -len(node) <= arg < len(node):
            yield from _walk(node[arg], rest)
    else:
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        for child in children:
            yield from _walk(child, rest)


def find(doc, path: Path) -> list:
    return list(_walk(doc, path.steps))


def _parents(doc, path: Path):
    """(container, key-or-index) pairs addressed by the path's last step."""
    *head, (kind, arg) = path.steps
    for parent in _walk(doc, tuple(head)):
        if kind == "key" and isinstance(parent, dict):
            yield parent, arg
        elif kind == "idx" and isinstance(parent, list) and -len(parent) <= arg < len(parent):
            yield parent, arg
        elif kind == "*":
            if isinstance(parent, dict):
                for k in list(parent):
                    yield parent, k
            elif isinstance(parent, list):
                for i in range(len(parent)):
                    yield parent, i


def assign(doc, path: Path, value, cond=None):
    """Set the value at ``path``; returns the number of places set, or None if
    nothing was set (NX/XX condition failed or no parent exists)."""
    n = 0
    for parent, k in _parents(doc, path):
        exists = (k in parent) if isinstance(parent, dict) else True
        if (cond == b"NX" and exists) or (cond == b"XX" and not exists):
            continue
        parent[k] = value
        n += 1
    return n or None


def delete(doc, path: Path) -> int:
    targets = list(_parents(doc, path))
    n = 0
    # Delete list items from the back so earlier indexes stay valid.
    for parent, k in sorted(targets, key=lambda t: t[1] if isinstance(t[1], int) else 0, reverse=True):
        if isinstance(parent, dict) and k in parent:
            del parent[k]
            n += 1
        elif isinstance(parent, list):
            del parent[k]
            n += 1
    return n


def type_of(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"
