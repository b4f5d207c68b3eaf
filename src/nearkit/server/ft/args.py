"""Arguments FT.SEARCH, FT.AGGREGATE and FT.EXPLAIN share: PARAMS, DIALECT, SCORER,
SUMMARIZE / HIGHLIGHT, and the parsed FT.SEARCH request."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..commands import CommandError, as_str, parse_int
from ..fulltext import rank as _text


def fail(msg: str):
    """Answer the command with the error ``msg``."""
    raise CommandError(msg)


def lookup_index(ctx, name: bytes, missing: str):
    """The index (or alias) ``name``, or the error ``missing`` (``{name}`` filled in)."""
    idx = ctx.server.search.lookup(name)
    if idx is None:
        fail(missing.format(name=as_str(name)))
    return idx


def int_arg(args, i, what):
    try:
        return int(args[i])
    except (IndexError, ValueError):
        raise CommandError(f"Bad arguments for {what}: Could not convert argument to expected type") from None


def check_scorer(name) -> str:
    try:
        return _text.check_scorer(as_str(name))
    except ValueError as exc:
        raise CommandError(str(exc)) from None


@dataclass
class SearchRequest:
    query: str
    nocontent: bool = False
    verbatim: bool = False
    nostopwords: bool = False
    withscores: bool = False
    withpayloads: bool = False
    withsortkeys: bool = False
    inorder: bool = False
    explainscore: bool = False
    offset: int = 0
    num: int = 10
    return_fields: list | None = None
    sortby: str | None = None
    sort_desc: bool = False
    params: dict = field(default_factory=dict)
    dialect: int = 1
    numeric_filters: list = field(default_factory=list)
    inkeys: list | None = None
    param_pos: dict = field(default_factory=dict)  # parameter name -> its value's index in args
    scorer: str = "TFIDF"
    slop: int | None = None
    infields: list | None = None
    summarize: dict | None = None   # SUMMARIZE settings (fulltext/highlight.py)
    highlight: dict | None = None   # HIGHLIGHT settings
    text_tree: object = None        # the query tree, for SUMMARIZE / HIGHLIGHT


SEARCH_FLAGS = {k: k.decode().lower() for k in (
    b"NOCONTENT", b"VERBATIM", b"NOSTOPWORDS", b"WITHSCORES", b"WITHPAYLOADS", b"WITHSORTKEYS",
    b"INORDER", b"EXPLAINSCORE")}


def parse_params(args, i, positions_out=None):
    n = args[i + 1] if i + 1 < len(args) else None
    if n is None:
        fail("Bad arguments for PARAMS: Expected an argument, but none provided")
    try:
        n = int(n)
    except ValueError:
        fail("Bad arguments for PARAMS: Could not convert argument to expected type")
    if n % 2:
        fail("Parameters must be specified in PARAM VALUE pairs")
    if i + 2 + n > len(args):
        fail("Bad arguments for PARAMS: Expected an argument, but none provided")
    params = {}
    positions = {}
    for j in range(i + 2, i + 2 + n, 2):
        name = as_str(args[j])
        if name in params:
            fail(f"Duplicate parameter `{name}`")
        params[name] = args[j + 1]
        positions[name] = j + 1
    if positions_out is not None:
        positions_out.update(positions)
    return params, i + 2 + n


def parse_dialect(args, i):
    try:
        d = int(args[i + 1])
    except (ValueError, IndexError):
        d = 0
    if not 1 <= d <= 4:
        fail("DIALECT requires a non negative integer >=1 and <= 4")
    return d


def parse_highlight(req, args, i):
    """SUMMARIZE [FIELDS n f..] [FRAGS n] [LEN n] [SEPARATOR s] | HIGHLIGHT [FIELDS n f..]
    [TAGS open close] at args[i]; returns the index after it."""
    kw = args[i].upper()
    if kw == b"SUMMARIZE":
        spec = {"fields": None, "frags": 3, "len": 20, "sep": "... "}
    else:
        spec = {"fields": None, "open": "<b>", "close": "</b>"}
    i += 1
    while i < len(args):
        opt = args[i].upper()
        if opt == b"FIELDS":
            n = parse_int(args[i + 1]) if i + 1 < len(args) else -1
            if n < 0 or i + 2 + n > len(args):
                fail(f"Bad arguments for FIELDS: Expected an argument, but none provided")
            spec["fields"] = [as_str(a) for a in args[i + 2:i + 2 + n]]
            i += 2 + n
        elif kw == b"SUMMARIZE" and opt in (b"FRAGS", b"LEN") and i + 1 < len(args):
            try:
                spec[as_str(opt).lower()] = int(args[i + 1])
            except ValueError:
                fail(f"Bad arguments for {as_str(opt)}: Could not convert argument to expected type")
            i += 2
        elif kw == b"SUMMARIZE" and opt == b"SEPARATOR" and i + 1 < len(args):
            spec["sep"] = as_str(args[i + 1])
            i += 2
        elif kw == b"HIGHLIGHT" and opt == b"TAGS" and i + 2 < len(args):
            spec["open"], spec["close"] = as_str(args[i + 1]), as_str(args[i + 2])
            i += 3
        else:
            break
    if kw == b"SUMMARIZE":
        req.summarize = spec
    else:
        req.highlight = spec
    return i
