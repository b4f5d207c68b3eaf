"""RedisJSON: JSON.SET / GET / MGET / DEL / TYPE (enough for ON JSON indexes), and
the string, array, object and number operations, TOGGLE, CLEAR, MERGE, MSET, RESP.

Each applies to every value its path matches. With a ``$`` path the reply lists one
result per match (nil where the value has the wrong type); with a legacy path it is the
single result, and a wrong type or no match is an error, as in RedisJSON 2.8.
"""

from __future__ import annotations

import json

from . import jsonpath
from .commands import COMMANDS, SYNTAX, WRONGTYPE, Command, CommandError, command
from .keyspace import JsonDoc
from .protocol import OK, Error


# -- SET, GET, MGET, DEL, TYPE ----------------------------------------------------------------

def _json_doc(ctx, key):
    v = ctx.server.keyspace.get(key)
    if v is None:
        return None
    if type(v) is not JsonDoc:
        raise CommandError(WRONGTYPE)
    return v


def _dumps(v) -> bytes:
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False).encode()


@command("JSON.SET", -4, ("write",), (1, 1, 1), display="JSON.SET")
def cmd_json_set(ctx, args):
    key, path, text = args[0], args[1], args[2]
    cond = args[3].upper() if len(args) > 3 else None
    if len(args) > 4 or cond not in (None, b"NX", b"XX"):
        return SYNTAX
    try:
        p, path_error = jsonpath.parse(path), None
    except ValueError as exc:
        p, path_error = None, exc
    # Bounded depth: the value's own, and the document's (the value plus its path).
    steps = len(p.steps) if p else 0
    col = jsonpath.too_deep(text, min(jsonpath.MAX_VALUE_DEPTH, jsonpath.MAX_DOCUMENT_DEPTH - steps))
    if col is not None:
        return Error(f"recursion limit exceeded at line 1 column {col}")
    try:
        value = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        return Error(f"ERR expected value at line 1 column {getattr(exc, 'colno', 1)}")
    doc = _json_doc(ctx, key)
    ks = ctx.server.keyspace
    if path_error is not None:
        return Error(f"ERR {path_error}")
    if p.is_root:
        if (cond == b"NX" and doc is not None) or (cond == b"XX" and doc is None):
            return None
        ks.set(key, JsonDoc(value))
        return OK
    if doc is None:
        return Error("ERR new objects must be created at the root")
    changed = jsonpath.assign(doc.value, p, value, cond)
    if changed is None:
        return None
    ks.touch(key)
    return OK


@command("JSON.GET", -2, ("readonly",), (1, 1, 1), display="JSON.GET")
def cmd_json_get(ctx, args):
    doc = _json_doc(ctx, args[0])
    paths, i = [], 1
    while i < len(args):  # formatting options (each with its argument) and NOESCAPE
        opt = args[i].upper()
        if opt in (b"INDENT", b"NEWLINE", b"SPACE"):
            i += 2
            continue
        if opt != b"NOESCAPE":
            paths.append(args[i])
        i += 1
    if doc is None:
        return None
    if not paths:
        return _dumps(doc.value)
    try:
        parsed = [jsonpath.parse(p) for p in paths]
    except ValueError as exc:
        return Error(f"ERR {exc}")
    if len(parsed) == 1:
        p = parsed[0]
        found = jsonpath.find(doc.value, p)
        if p.legacy:
            if not found:
                return Error(f"ERR Path '{p.text}' does not exist")
            return _dumps(found[0])
        return _dumps(found)
    out = {}
    for p in parsed:
        found = jsonpath.find(doc.value, p)
        out[p.text] = (found[0] if found else None) if p.legacy else found
    return _dumps(out)


@command("JSON.MGET", -3, ("readonly",), (1, -2, 1), display="JSON.MGET")
def cmd_json_mget(ctx, args):
    try:
        p = jsonpath.parse(args[-1])
    except ValueError as exc:
        return Error(f"ERR {exc}")
    out = []
    for key in args[:-1]:
        v = ctx.server.keyspace.get(key)
        if type(v) is not JsonDoc:
            out.append(None)
            continue
        found = jsonpath.find(v.value, p)
        out.append((_dumps(found[0]) if found else None) if p.legacy else _dumps(found))
    return out


@command("JSON.DEL", -2, ("write",), (1, 1, 1), display="JSON.DEL")
def cmd_json_del(ctx, args):
    doc = _json_doc(ctx, args[0])
    if doc is None:
        return 0
    ks = ctx.server.keyspace
    try:
        p = jsonpath.parse(args[1] if len(args) > 1 else b"$")
    except ValueError as exc:
        return Error(f"ERR {exc}")
    if p.is_root:
        ks.delete(args[0])
        return 1
    n = jsonpath.delete(doc.value, p)
    if n:
        ks.touch(args[0])
    return n


COMMANDS[b"json.forget"] = Command("json.forget", cmd_json_del, -2, ("write",), 1, 1, 1,
                                   display="JSON.FORGET")


@command("JSON.TYPE", -2, ("readonly",), (1, 1, 1), display="JSON.TYPE")
def cmd_json_type(ctx, args):
    doc = _json_doc(ctx, args[0])
    if doc is None:
        return None
    p = jsonpath.parse(args[1] if len(args) > 1 else b".")
    names = [jsonpath.type_of(v) for v in jsonpath.find(doc.value, p)]
    if p.legacy:
        return names[0] if names else None
    return names


_WRONG = object()  # a match of the wrong type


def _loads(text: bytes):
    try:
        return json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CommandError(f"ERR expected value at line 1 column {getattr(exc, 'colno', 1)}") from None


def _path(arg) -> jsonpath.Path:
    try:
        return jsonpath.parse(arg)
    except ValueError as exc:
        raise CommandError(f"ERR {exc}") from None


def _apply(ctx, key: bytes, path_arg, fn, expected: str, missing_ok=False, nil_if_no_path=False):
    """Run ``fn(container, k)`` on every match; returns (results, path)."""
    doc = _json_doc(ctx, key)
    p = _path(path_arg)
    if doc is None:
        if missing_ok and p.legacy:
            return None, p
        raise CommandError("ERR could not perform this operation on a key that doesn't exist")
    holder = {"": doc.value}  # the root gets a container too, so it can be replaced
    places = jsonpath._locate(holder, (("key", ""),) + p.steps, root=doc.value)
    results = [fn(parent, k) for parent, k in places]
    if holder[""] is not doc.value:
        doc.value = holder[""]
    if any(r is not _WRONG for r in results) and getattr(fn, "writes", False):
        ctx.server.keyspace.touch(key)
    if p.legacy:
        good = [r for r in results if r is not _WRONG]
        if not results:
            if nil_if_no_path:  # OBJLEN / OBJKEYS answer nil there, as RedisJSON does
                return None, p
            raise CommandError(f"ERR Path '{p.text}' does not exist")
        if not good:
            found = jsonpath.type_of(places[0][0][places[0][1]])
            raise CommandError(f"ERR wrong type of path value - expected {expected} but found {found}")
        # Every match is changed; a write replies with the last one's result, a read
        # with the first's (as RedisJSON does).
        return (good[-1] if getattr(fn, "writes", False) else good[0]), p
    return [None if r is _WRONG else r for r in results], p


def _writes(fn):
    fn.writes = True
    return fn


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# -- strings ----------------------------------------------------------------------------------

@command("JSON.STRAPPEND", -3, ("write",), (1, 1, 1), display="JSON.STRAPPEND")
def json_strappend(ctx, args):
    path, text = (args[1], args[2]) if len(args) == 3 else (b".", args[1])
    if len(args) > 3:
        return SYNTAX
    add = _loads(text)
    if not isinstance(add, str):
        return Error("ERR wrong type of value - expected string")

    @_writes
    def fn(c, k):
        if not isinstance(c[k], str):
            return _WRONG
        c[k] += add
        return len(c[k])
    return _apply(ctx, args[0], path, fn, "string")[0]


@command("JSON.STRLEN", -2, ("readonly",), (1, 1, 1), display="JSON.STRLEN")
def json_strlen(ctx, args):
    def fn(c, k):
        return len(c[k]) if isinstance(c[k], str) else _WRONG
    return _apply(ctx, args[0], args[1] if len(args) > 1 else b".", fn, "string", True)[0]


# -- arrays -----------------------------------------------------------------------------------

@command("JSON.ARRAPPEND", -4, ("write",), (1, 1, 1), display="JSON.ARRAPPEND")
def json_arrappend(ctx, args):
    values = [_loads(a) for a in args[2:]]

    @_writes
    def fn(c, k):
        if not isinstance(c[k], list):
            return _WRONG
        c[k].extend(json.loads(json.dumps(values)))
        return len(c[k])
    return _apply(ctx, args[0], args[1], fn, "array")[0]


@command("JSON.ARRINSERT", -5, ("write",), (1, 1, 1), display="JSON.ARRINSERT")
def json_arrinsert(ctx, args):
    index = _int(args[2])
    values = [_loads(a) for a in args[3:]]

    @_writes
    def fn(c, k):
        arr = c[k]
        if not isinstance(arr, list):
            return _WRONG
        i = index + len(arr) if index < 0 else index
        if i < 0 or i > len(arr):
            raise CommandError("ERR index out of bounds")
        arr[i:i] = json.loads(json.dumps(values))
        return len(arr)
    return _apply(ctx, args[0], args[1], fn, "array")[0]


@command("JSON.ARRLEN", -2, ("readonly",), (1, 1, 1), display="JSON.ARRLEN")
def json_arrlen(ctx, args):
    def fn(c, k):
        return len(c[k]) if isinstance(c[k], list) else _WRONG
    return _apply(ctx, args[0], args[1] if len(args) > 1 else b".", fn, "array", True)[0]


@command("JSON.ARRPOP", -2, ("write",), (1, 1, 1), display="JSON.ARRPOP")
def json_arrpop(ctx, args):
    index = _int(args[2]) if len(args) > 2 else -1

    @_writes
    def fn(c, k):
        arr = c[k]
        if not isinstance(arr, list):
            return _WRONG
        if not arr:
            return None
        i = min(max(index + len(arr) if index < 0 else index, 0), len(arr) - 1)
        return _dumps(arr.pop(i))
    return _apply(ctx, args[0], args[1] if len(args) > 1 else b".", fn, "array")[0]


@command("JSON.ARRTRIM", 5, ("write",), (1, 1, 1), display="JSON.ARRTRIM")
def json_arrtrim(ctx, args):
    start, stop = _int(args[2]), _int(args[3])

    @_writes
    def fn(c, k):
        arr = c[k]
        if not isinstance(arr, list):
            return _WRONG
        n = len(arr)
        a = max(start + n if start < 0 else start, 0)
        b = min(stop + n if stop < 0 else stop, n - 1)
        c[k] = arr[a:b + 1] if a <= b and a < n else []
        return len(c[k])
    return _apply(ctx, args[0], args[1], fn, "array")[0]


def _strictly_equal(a, b) -> bool:
    """JSON equality as JSON.ARRINDEX has it: 3 is not 3.0 (nor true 1), at any depth."""
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_strictly_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_strictly_equal(a[k], b[k]) for k in a)
    return a == b


@command("JSON.ARRINDEX", -4, ("readonly",), (1, 1, 1), display="JSON.ARRINDEX")
def json_arrindex(ctx, args):
    value = _loads(args[2])
    start = _int(args[3]) if len(args) > 3 else 0
    stop = _int(args[4]) if len(args) > 4 else 0

    def fn(c, k):
        arr = c[k]
        if not isinstance(arr, list):
            return _WRONG
        n = len(arr)
        a = max(start + n if start < 0 else start, 0)
        b = n if stop == 0 else min(stop + n if stop < 0 else stop, n)
        for i in range(a, b):
            if _strictly_equal(arr[i], value):
                return i
        return -1
    return _apply(ctx, args[0], args[1], fn, "array")[0]


# -- objects ----------------------------------------------------------------------------------

@command("JSON.OBJKEYS", -2, ("readonly",), (1, 1, 1), display="JSON.OBJKEYS")
def json_objkeys(ctx, args):
    def fn(c, k):
        return [x.encode() for x in c[k]] if isinstance(c[k], dict) else _WRONG
    return _apply(ctx, args[0], args[1] if len(args) > 1 else b".", fn, "object", True, True)[0]


@command("JSON.OBJLEN", -2, ("readonly",), (1, 1, 1), display="JSON.OBJLEN")
def json_objlen(ctx, args):
    def fn(c, k):
        return len(c[k]) if isinstance(c[k], dict) else _WRONG
    return _apply(ctx, args[0], args[1] if len(args) > 1 else b".", fn, "object", True, True)[0]


# -- numbers, booleans, clearing ------------------------------------------------------------

def _num_op(ctx, args, op, name):
    by = _loads(args[2])
    if not _is_num(by):
        return Error("ERR expected value")

    @_writes
    def fn(c, k):
        v = c[k]
        if not _is_num(v):
            return _WRONG
        r = op(v, by)
        if isinstance(r, float) and r.is_integer() and isinstance(v, int) and isinstance(by, int):
            r = int(r)
        c[k] = r
        return r
    results, p = _apply(ctx, args[0], args[1], fn, "number")
    return _dumps(results)


@command("JSON.NUMINCRBY", 4, ("write",), (1, 1, 1), display="JSON.NUMINCRBY")
def json_numincrby(ctx, args):
    return _num_op(ctx, args, lambda a, b: a + b, "NUMINCRBY")


@command("JSON.NUMMULTBY", 4, ("write",), (1, 1, 1), display="JSON.NUMMULTBY")
def json_nummultby(ctx, args):
    return _num_op(ctx, args, lambda a, b: a * b, "NUMMULTBY")


@command("JSON.TOGGLE", -2, ("write",), (1, 1, 1), display="JSON.TOGGLE")
def json_toggle(ctx, args):
    @_writes
    def fn(c, k):
        if not isinstance(c[k], bool):
            return _WRONG
        c[k] = not c[k]
        return int(c[k])
    results, p = _apply(ctx, args[0], args[1] if len(args) > 1 else b".", fn, "bool")
    return (b"true" if results else b"false") if p.legacy else results


@command("JSON.CLEAR", -2, ("write",), (1, 1, 1), display="JSON.CLEAR")
def json_clear(ctx, args):
    doc = _json_doc(ctx, args[0])
    if doc is None:
        raise CommandError("ERR could not perform this operation on a key that doesn't exist")

    @_writes
    def fn(c, k):
        v = c[k]
        if isinstance(v, (dict, list)):
            if not v:
                return 0
            c[k] = type(v)()
            return 1
        if _is_num(v):
            if v == 0:
                return 0
            c[k] = 0
            return 1
        return 0
    results, p = _apply(ctx, args[0], args[1] if len(args) > 1 else b"$", fn, "container")
    return sum(results) if isinstance(results, list) else results


# -- whole values -----------------------------------------------------------------------------

def _merge(target, patch):
    """RFC 7396: objects merge member by member, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    if not isinstance(target, dict):
        target = {}
    for k, v in patch.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = _merge(target.get(k), v)
    return target


@command("JSON.MERGE", 4, ("write",), (1, 1, 1), display="JSON.MERGE")
def json_merge(ctx, args):
    patch = _loads(args[2])
    p = _path(args[1])
    doc = _json_doc(ctx, args[0])
    if doc is None:
        if not p.is_root:
            return Error("ERR new objects must be created at the root")
        ctx.server.keyspace.set(args[0], JsonDoc(_merge(None, patch)))
        return OK
    holder = {"": doc.value}
    places = jsonpath._locate(holder, (("key", ""),) + p.steps, root=doc.value, create_last=True)
    for parent, k in places:
        if patch is None and k != "":
            del parent[k]
        else:
            parent[k] = _merge(parent.get(k) if isinstance(parent, dict) else parent[k], patch)
    doc.value = holder[""]
    ctx.server.keyspace.touch(args[0])
    return OK


@command("JSON.MSET", -4, ("write",), (1, -1, 3), display="JSON.MSET")
def json_mset(ctx, args):
    if len(args) % 3:
        return Error("ERR wrong number of arguments for 'JSON.MSET' command")
    for i in range(0, len(args), 3):  # checked first: MSET applies all or nothing
        _loads(args[i + 2])
        _path(args[i + 1])
    for i in range(0, len(args), 3):
        reply = cmd_json_set(ctx, args[i:i + 3])
        if isinstance(reply, Error):
            return reply
    return OK


def _resp(v):
    if v is None:
        return None
    if isinstance(v, bool):
        return b"true" if v else b"false"
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return repr(v).encode()
    if isinstance(v, str):
        return v.encode()
    if isinstance(v, list):
        return [b"["] + [_resp(x) for x in v]
    out = [b"{"]
    for k, x in v.items():
        out += [k.encode(), _resp(x)]
    return out


@command("JSON.RESP", -2, ("readonly",), (1, 1, 1), display="JSON.RESP")
def json_resp(ctx, args):
    doc = _json_doc(ctx, args[0])
    if doc is None:
        return None
    p = _path(args[1] if len(args) > 1 else b".")
    found = jsonpath.find(doc.value, p)
    if p.legacy:
        if not found:
            return Error(f"ERR Path '{p.text}' does not exist")
        return _resp(found[0])
    return [_resp(v) for v in found]


def _int(b) -> int:
    try:
        return int(b)
    except ValueError:
        raise CommandError("ERR value is not an integer or out of range") from None
