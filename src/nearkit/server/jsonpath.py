"""JSONPath for JSON.* commands and ON JSON index fields, as RedisJSON reads it.

Paths that start with ``$`` are JSONPath (results come as an array); others use
RedisJSON's legacy form (one value). Steps: members ``.name`` / ``["name"]``, array
indexes ``[3]`` / ``[-1]``, wildcards ``[*]`` / ``.*``, recursive descent ``..name`` /
``..*`` / ``..[0]``, slices ``[1:3]`` / ``[::2]``, unions ``[0,2]`` / ``['a','b']`` and
filters ``[?(@.price < 10 && @.tag == "x")]`` (comparisons, ``=~`` regular expressions,
``&&``, ``||``, ``!``, parentheses, and ``@.path`` alone for "exists").
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"""[^.\[\]\s()<>=!&|,'"~]+""")
_INT = re.compile(r"-?\d+")

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
    steps: tuple  # ("key", name) | ("idx", i) | ("*", None) | ("slice", (a, b, c))
    #               | ("union", steps) | ("filter", tree) | ("desc", step)
    legacy: bool

    @property
    def is_root(self) -> bool:
        return not self.steps

    @property
    def definite(self) -> bool:
        """True if the path names at most one place (no wildcard, descent, slice...)."""
        return all(k in ("key", "idx") for k, _ in self.steps)


class _Scanner:
    def __init__(self, text: str, pos: int = 0):
        self.s, self.i = text, pos

    def error(self, at=None):
        raise ValueError(f"invalid JSONPath '{self.s}' at offset {self.i if at is None else at}")

    def ws(self):
        while self.i < len(self.s) and self.s[self.i].isspace():
            self.i += 1

    def quoted(self) -> str:
        q = self.s[self.i]
        j, out = self.i + 1, []
        while j < len(self.s) and self.s[j] != q:
            if self.s[j] == "\\" and j + 1 < len(self.s):
                j += 1
            out.append(self.s[j])
            j += 1
        if j >= len(self.s):
            self.error()
        self.i = j + 1
        return "".join(out)

    def steps(self, stop=None) -> list:
        """Steps until the end (or, in a filter, until a character that ends the path)."""
        steps = []
        while self.i < len(self.s):
            c = self.s[self.i]
            if c == ".":
                if self.s.startswith("..", self.i):
                    self.i += 2
                    if self.i < len(self.s) and self.s[self.i] == "[":
                        steps.append(("desc", self.bracket()))
                    else:
                        steps.append(("desc", self.member()))
                else:
                    self.i += 1
                    if self.i < len(self.s) and self.s[self.i] == "[":  # "$.[0]" is "$[0]"
                        steps.append(self.bracket())
                    else:
                        steps.append(self.member())
            elif c == "[":
                steps.append(self.bracket())
            elif stop is not None:
                break
            else:
                self.error()
        return steps

    def member(self):
        if self.i < len(self.s) and self.s[self.i] == "*":
            self.i += 1
            return ("*", None)
        m = _NAME.match(self.s, self.i)
        if not m:
            self.error()
        self.i = m.end()
        return ("key", m.group(0))

    def bracket(self):
        start = self.i
        self.i += 1
        self.ws()
        if self.s.startswith("*", self.i):
            self.i += 1
            step = ("*", None)
        elif self.s.startswith("?", self.i):
            self.i += 1
            self.ws()
            if not self.s.startswith("(", self.i):
                self.error()
            self.i += 1
            tree = _FilterParser(self).expr()
            self.ws()
            if not self.s.startswith(")", self.i):
                self.error()
            self.i += 1
            step = ("filter", tree)
        else:
            items = []
            while True:
                self.ws()
                if self.i < len(self.s) and self.s[self.i] in "'\"":
                    items.append(("key", self.quoted()))
                else:
                    m = re.compile(r"(-?\d*)\s*(?::\s*(-?\d*)\s*(?::\s*(-?\d*))?)?").match(self.s, self.i)
                    if not m or m.end() == self.i:
                        self.error()
                    self.i = m.end()
                    if ":" in m.group(0):
                        a, b, c = (int(x) if x else None for x in m.groups())
                        if c == 0:
                            self.error()
                        items.append(("slice", (a, b, c)))
                    else:
                        items.append(("idx", int(m.group(1))))
                self.ws()
                if self.s.startswith(",", self.i):
                    self.i += 1
                    continue
                break
            step = items[0] if len(items) == 1 else ("union", tuple(items))
        self.ws()
        if not self.s.startswith("]", self.i):
            self.error(start)
        self.i += 1
        return step


class _FilterParser:
    """``@.a < 3 && (@.b == "x" || !@.c)`` -> a small tree evaluated per candidate."""

    _OPS = ("==", "!=", "<=", ">=", "=~", "<", ">")

    def __init__(self, sc: _Scanner):
        self.sc = sc

    def expr(self):
        left = self.conj()
        while self._take("||"):
            left = ("or", left, self.conj())
        return left

    def conj(self):
        left = self.unary()
        while self._take("&&"):
            left = ("and", left, self.unary())
        return left

    def unary(self):
        if self._take("!"):
            return ("not", self.unary())
        if self._take("("):
            e = self.expr()
            if not self._take(")"):
                self.sc.error()
            return e
        left = self.operand()
        sc = self.sc
        sc.ws()
        for op in self._OPS:
            if sc.s.startswith(op, sc.i):
                sc.i += len(op)
                return ("cmp", op, left, self.operand())
        if left[0] != "path":
            sc.error()
        return ("exists", left)

    def _take(self, tok) -> bool:
        self.sc.ws()
        if self.sc.s.startswith(tok, self.sc.i) and not (tok == "!" and self.sc.s.startswith("!=", self.sc.i)):
            self.sc.i += len(tok)
            return True
        return False

    def operand(self):
        sc = self.sc
        sc.ws()
        if sc.i >= len(sc.s):
            sc.error()
        c = sc.s[sc.i]
        if c in "@$":
            sc.i += 1
            return ("path", c, tuple(sc.steps(stop=True)))
        if c in "'\"":
            return ("const", sc.quoted())
        for word, value in (("true", True), ("false", False), ("null", None)):
            if sc.s.startswith(word, sc.i):
                sc.i += len(word)
                return ("const", value)
        m = re.compile(r"-?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?").match(sc.s, sc.i)
        if not m:
            sc.error()
        sc.i = m.end()
        text = m.group(0)
        return ("const", float(text) if any(ch in text for ch in ".eE") else int(text))


def parse(path) -> Path:
    text = path.decode("utf-8", "replace") if isinstance(path, (bytes, bytearray)) else str(path)
    legacy = not text.startswith("$")
    body = text[1:] if not legacy else text
    if legacy and body == ".":
        body = ""
    if legacy and body and body[0] not in ".[":
        body = "." + body
    steps = _Scanner(body).steps()
    if len(steps) > MAX_DOCUMENT_DEPTH:
        raise ValueError(f"JSONPath '{text[:40]}...' is nested deeper than "
                         f"{MAX_DOCUMENT_DEPTH} levels")
    return Path(text, tuple(steps), legacy)


# -- evaluation ------------------------------------------------------------------------------

_ABSENT = object()


def _eval_filter(node, current, root):
    kind = node[0]
    if kind == "or":
        return _truth(_eval_filter(node[1], current, root)) or _truth(_eval_filter(node[2], current, root))
    if kind == "and":
        return _truth(_eval_filter(node[1], current, root)) and _truth(_eval_filter(node[2], current, root))
    if kind == "not":
        return not _truth(_eval_filter(node[1], current, root))
    if kind == "exists":
        return _operand(node[1], current, root) is not _ABSENT
    if kind == "cmp":
        a, b = _operand(node[2], current, root), _operand(node[3], current, root)
        if a is _ABSENT or b is _ABSENT:
            return False
        op = node[1]
        if op == "=~":
            return isinstance(a, str) and isinstance(b, str) and re.search(b, a) is not None
        if op == "==":
            return _same(a, b)
        if op == "!=":
            return not _same(a, b)
        if not ((_is_num(a) and _is_num(b)) or (isinstance(a, str) and isinstance(b, str))):
            return False
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    return False


def _truth(v) -> bool:
    return bool(v)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _same(a, b) -> bool:
    if _is_num(a) and _is_num(b):
        return a == b
    return type(a) is type(b) and a == b


def _operand(node, current, root):
    if node[0] == "const":
        return node[1]
    base = current if node[1] == "@" else root
    found = [p[k] for p, k in _locate(base, node[2], root)] if node[2] else [base]
    return found[0] if found else _ABSENT


def _select(node, step, root):
    """(container, key or index) pairs one step selects under ``node``."""
    kind, arg = step
    if kind == "key":
        if isinstance(node, dict) and arg in node:
            yield node, arg
    elif kind == "idx":
        if isinstance(node, list) and -len(node) <= arg < len(node):
            yield node, arg % len(node)
    elif kind == "*":
        if isinstance(node, dict):
            for k in list(node):
                yield node, k
        elif isinstance(node, list):
            for i in range(len(node)):
                yield node, i
    elif kind == "slice":
        if isinstance(node, list):
            for i in range(*slice(*arg).indices(len(node))):
                yield node, i
    elif kind == "union":
        for sub in arg:
            yield from _select(node, sub, root)
    elif kind == "filter":
        items = (list(node.items()) if isinstance(node, dict)
                 else list(enumerate(node)) if isinstance(node, list) else ())
        for k, v in items:
            if _eval_filter(arg, v, root):
                yield node, k
    elif kind == "desc":
        yield from _descend(node, arg, root)


def _descend(node, step, root):
    yield from _select(node, step, root)
    children = (list(node.values()) if isinstance(node, dict)
                else list(node) if isinstance(node, list) else ())
    for child in children:
        if isinstance(child, (dict, list)):
            yield from _descend(child, step, root)


def _locate(doc, steps, root=None, create_last=False):
    """(container, key) pairs the steps lead to; with create_last, a missing member
    named by a last ``.name`` step is included (for JSON.SET to create it)."""
    root = doc if root is None else root
    frontier = [(None, None, doc)]
    for n, step in enumerate(steps):
        last = n == len(steps) - 1
        nxt = []
        for _, _, node in frontier:
            if last and create_last and step[0] == "key" and isinstance(node, dict) and step[1] not in node:
                nxt.append((node, step[1], _ABSENT))
                continue
            for parent, k in _select(node, step, root):
                nxt.append((parent, k, parent[k]))
        frontier = nxt
    return [(p, k) for p, k, _ in frontier]


def find(doc, path: Path) -> list:
    if not path.steps:
        return [doc]
    return [p[k] for p, k in _locate(doc, path.steps)]


def places(doc, path: Path) -> list:
    """(container, key) of every existing value the path matches (not the root)."""
    return _locate(doc, path.steps)


def assign(doc, path: Path, value, cond=None):
    """Set the value at ``path``; returns the number of places set, or None if
    nothing was set (NX/XX condition failed or no parent exists)."""
    n = 0
    for parent, k in _locate(doc, path.steps, create_last=True):
        exists = (k in parent) if isinstance(parent, dict) else True
        if (cond == b"NX" and exists) or (cond == b"XX" and not exists):
            continue
        parent[k] = value
        n += 1
    return n or None


def _subtree_ids(v, out: set) -> None:
    out.add(id(v))
    for child in (v.values() if isinstance(v, dict) else v if isinstance(v, list) else ()):
        if isinstance(child, (dict, list)):
            _subtree_ids(child, out)


def delete(doc, path: Path) -> int:
    targets = _locate(doc, path.steps)
    # A match inside another match goes with it and is not counted ($..a on {"a": {"a": 1}}).
    inner: set = set()
    for parent, k in targets:
        v = parent[k]
        if isinstance(v, (dict, list)):
            for child in (v.values() if isinstance(v, dict) else v):
                if isinstance(child, (dict, list)):
                    _subtree_ids(child, inner)
            inner.add(id(v))
    targets = [(p, k) for p, k in targets if id(p) not in inner]
    n = 0
    seen = set()
    # Delete list items from the back so earlier indexes stay valid.
    for parent, k in sorted(targets, key=lambda t: t[1] if isinstance(t[1], int) else 0, reverse=True):
        if (id(parent), k) in seen:
            continue
        seen.add((id(parent), k))
        if isinstance(parent, dict) and k in parent:
            del parent[k]
            n += 1
        elif isinstance(parent, list) and -len(parent) <= k < len(parent):
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
