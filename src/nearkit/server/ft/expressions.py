"""The expression language of FT.AGGREGATE's APPLY / FILTER (and FT.CREATE ... FILTER):
numbers, @fields, strings, arithmetic, comparisons, logic and a few functions."""

from __future__ import annotations

import math
import re

from ..commands import CommandError


_EXPR_TOKEN = re.compile(r"""\s*(?:(?P<num>\d+\.?\d*(?:[eE][-+]?\d+)?|\.\d+)|(?P<field>@[\w.$]+)|(?P<str>"[^"]*"|'[^']*')|(?P<op>==|!=|<=|>=|&&|\|\||[-+*/%^()<>!,])|(?P<name>[A-Za-z_]\w*))""")


class Expr:
    """A tiny evaluator for APPLY / FILTER expressions: numbers, @fields, strings,
    + - * / % ^, comparisons, && || !, parentheses and a few functions."""

    _FUNCS = {
        "abs": abs, "floor": math.floor, "ceil": math.ceil, "sqrt": math.sqrt,
        "log": math.log, "log2": math.log2, "exp": math.exp,
        "upper": lambda s: str(s).upper(), "lower": lambda s: str(s).lower(),
        "exists": lambda v: 0 if v is None else 1,
        "startswith": lambda s, p: float(_text_of(s).startswith(_text_of(p))),
        "contains": lambda s, p: float(_text_of(s).count(_text_of(p))),
        "strlen": lambda s: float(len(_text_of(s))),
    }

    def __init__(self, text: str):
        self.toks = []
        pos = 0
        text = text.strip()
        while pos < len(text):
            m = _EXPR_TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise CommandError(f"Syntax error at offset {pos} near {text[pos:pos + 8]}")
            kind = m.lastgroup
            self.toks.append((kind, m.group(kind)))
            pos = m.end()
        self.i = 0
        self.depth = 0
        self.tree = self._or()
        if self.i != len(self.toks):
            raise CommandError(f"Syntax error near {self.toks[self.i][1]}")

    def _peek(self):
        return self.toks[self.i][1] if self.i < len(self.toks) else None

    def _take(self):
        t = self.toks[self.i]
        self.i += 1
        return t

    # Deepest expression tree: parsing and evaluating recurse once per level.
    MAX_DEPTH = 100

    def _nest(self, levels: int = 1):
        self.depth += levels
        if self.depth > self.MAX_DEPTH:
            raise CommandError(f"Syntax error: expression nested too deeply "
                               f"(more than {self.MAX_DEPTH} levels)")

    def _bin(self, sub, ops):
        # A run of operators of one precedence is one flat node, folded left to right
        # by a loop: "1+1+...+1" must not make a tree as deep as it is long.
        first = sub()
        rest = []
        while self._peek() in ops:
            op = self._take()[1]
            rest.append((op, sub()))
        return ("chain", first, tuple(rest)) if rest else first

    def _or(self):
        return self._bin(self._and, ("||",))

    def _and(self):
        return self._bin(self._cmp, ("&&",))

    def _cmp(self):
        return self._bin(self._add, ("==", "!=", "<", "<=", ">", ">="))

    def _add(self):
        return self._bin(self._mul, ("+", "-"))

    def _mul(self):
        return self._bin(self._pow, ("*", "/", "%"))

    def _pow(self):
        return self._bin(self._unary, ("^",))

    def _unary(self):
        if self._peek() in ("-", "!"):
            op = self._take()[1]
            self._nest()
            node = ("un", op, self._unary())
            self.depth -= 1
            return node
        return self._atom()

    def _atom(self):
        if self.i >= len(self.toks):
            raise CommandError("Syntax error: unexpected end of expression")
        kind, val = self._take()
        if kind == "num":
            return ("const", float(val))
        if kind == "str":
            return ("const", val[1:-1])
        if kind == "field":
            return ("field", val[1:])
        if val == "(":
            self._nest()
            e = self._or()
            if self._peek() != ")":
                raise CommandError("Syntax error: missing ')'")
            self._take()
            self.depth -= 1
            return e
        if kind == "name" and self._peek() == "(":
            self._take()
            self._nest()
            args = []
            if self._peek() != ")":
                args.append(self._or())
                while self._peek() == ",":
                    self._take()
                    args.append(self._or())
            if self._peek() != ")":
                raise CommandError("Syntax error: missing ')'")
            self._take()
            if val.lower() not in self._FUNCS:
                raise CommandError(f"Unknown function name '{val}'")
            self.depth -= 1
            return ("call", val.lower(), args)
        raise CommandError(f"Syntax error near {val}")

    def eval(self, row: dict):
        return self._ev(self.tree, row)

    def fields(self) -> list:
        """The @names the expression reads, in order of appearance."""
        out = []

        def walk(n):
            if n[0] == "field":
                if n[1] not in out:
                    out.append(n[1])
            elif n[0] == "un":
                walk(n[2])
            elif n[0] == "chain":  # ("chain", first, ((op, operand), ...))
                walk(n[1])
                for _, operand in n[2]:
                    walk(operand)
            elif n[0] == "call":
                for a in n[2]:
                    walk(a)
        walk(self.tree)
        return out

    def _ev(self, n, row):
        kind = n[0]
        if kind == "const":
            return n[1]
        if kind == "field":
            v = row.get(n[1])
            return as_number(v)
        if kind == "un":
            v = self._ev(n[2], row)
            return -as_float(v) if n[1] == "-" else float(not truthy(v))
        if kind == "call":
            args = [self._ev(a, row) for a in n[2]]
            try:
                return self._FUNCS[n[1]](*args)
            except (TypeError, ValueError):
                return None
        v = self._ev(n[1], row)
        for op, right in n[2]:
            v = self._apply(op, v, self._ev(right, row))
        return v

    @staticmethod
    def _apply(op, a, b):
        if op == "&&":
            return float(truthy(a) and truthy(b))
        if op == "||":
            return float(truthy(a) or truthy(b))
        if op in ("==", "!="):
            eq = (as_float(a) == as_float(b)) if is_number(a) and is_number(b) else str(a) == str(b)
            return float(eq if op == "==" else not eq)
        if op in ("<", "<=", ">", ">="):
            x, y = (as_float(a), as_float(b)) if is_number(a) and is_number(b) else (str(a), str(b))
            return float({"<": x < y, "<=": x <= y, ">": x > y, ">=": x >= y}[op])
        x, y = as_float(a), as_float(b)
        try:
            if op == "+":
                return x + y
            if op == "-":
                return x - y
            if op == "*":
                return x * y
            if op == "/":
                return x / y if y else math.nan
            if op == "%":
                return float(int(x) % int(y)) if y else math.nan
            return x ** y
        except (OverflowError, ValueError):
            return math.nan


def as_number(v):
    if isinstance(v, (bytes, bytearray)):
        v = v.decode("utf-8", "replace")
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


def _text_of(v) -> str:
    if isinstance(v, (bytes, bytearray)):
        return v.decode("utf-8", "replace")
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return "" if v is None else str(v)


def is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def as_float(v) -> float:
    if is_number(v):
        return float(v)
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def truthy(v) -> bool:
    if v is None:
        return False
    if is_number(v):
        return v != 0 and not math.isnan(v)
    return bool(v)
