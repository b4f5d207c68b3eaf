"""String commands: GET, MGET, SET, INCR, INCRBY."""

from __future__ import annotations

from .commands import NOT_INT, SYNTAX, WRONGTYPE, command, parse_int
from .keyspace import now_ms
from .protocol import OK, Error


@command("GET", 2, ("readonly", "fast"), (1, 1, 1))
def cmd_get(ctx, args):
    v = ctx.server.keyspace.get(args[0])
    if v is None:
        return None
    if type(v) is not bytes:
        return WRONGTYPE
    return v


@command("MGET", -2, ("readonly", "fast"), (1, -1, 1))
def cmd_mget(ctx, args):
    ks = ctx.server.keyspace
    out = []
    for k in args:
        v = ks.get(k)
        out.append(v if type(v) is bytes else None)
    return out


@command("SET", -3, ("write",), (1, 1, 1))
def cmd_set(ctx, args):
    ks = ctx.server.keyspace
    key, value = args[0], args[1]
    nx = xx = get = keepttl = False
    deadline = None
    i = 2
    while i < len(args):
        opt = args[i].upper()
        if opt in (b"EX", b"PX", b"EXAT", b"PXAT") and i + 1 < len(args) and deadline is None:
            n = parse_int(args[i + 1])
            if n <= 0:
                return Error("ERR invalid expire time in 'set' command")
            deadline = {b"EX": now_ms() + n * 1000, b"PX": now_ms() + n,
                        b"EXAT": n * 1000, b"PXAT": n}[opt]
            i += 2
            continue
        if opt == b"NX" and not xx:
            nx = True
        elif opt == b"XX" and not nx:
            xx = True
        elif opt == b"GET":
            get = True
        elif opt == b"KEEPTTL" and deadline is None:
            keepttl = True
        else:
            return SYNTAX
        i += 1
    old = ks.get(key)
    if get and old is not None and type(old) is not bytes:
        return WRONGTYPE
    if (nx and old is not None) or (xx and old is None):
        return old if get else None
    ks.set(key, value, keep_ttl=keepttl)
    if deadline is not None:
        ks.expire_at(key, deadline)
    return old if get else OK


@command("INCRBY", 3, ("write", "fast"), (1, 1, 1))
def cmd_incrby(ctx, args):
    return _incr(ctx, args[0], parse_int(args[1]) if args[1][:1] != b"-" else -parse_int(args[1][1:]))


@command("INCR", 2, ("write", "fast"), (1, 1, 1))
def cmd_incr(ctx, args):
    return _incr(ctx, args[0], 1)


def _incr(ctx, key, by):
    ks = ctx.server.keyspace
    v = ks.get(key)
    if v is not None and type(v) is not bytes:
        return WRONGTYPE
    try:
        n = int(v) if v is not None else 0
    except ValueError:
        return NOT_INT
    ks.set(key, str(n + by).encode(), keep_ttl=True)
    return n + by
