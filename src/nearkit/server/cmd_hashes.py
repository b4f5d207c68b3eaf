"""Hash commands: HSET, HMSET, HSETNX, HGET, HMGET, HGETALL, HDEL, HLEN, HEXISTS,
HKEYS, HVALS, HINCRBY."""

from __future__ import annotations

from .commands import WRONGTYPE, CommandError, command, parse_int, wrong_args
from .protocol import OK, Error, Map


def _hash(ctx, key, create=False):
    """The hash under ``key`` (None if missing); raises WRONGTYPE for other types."""
    v = ctx.server.keyspace.get(key)
    if v is None:
        return None
    if type(v) is not dict:
        raise CommandError(WRONGTYPE)
    return v


@command("HSET", -4, ("write", "fast"), (1, 1, 1))
def cmd_hset(ctx, args):
    if len(args) % 2 != 1:
        return wrong_args("hset")
    ks = ctx.server.keyspace
    key = args[0]
    h = _hash(ctx, key)
    if h is None:
        h = {}
        new = 0
        for i in range(1, len(args), 2):
            if args[i] not in h:
                new += 1
            h[args[i]] = args[i + 1]
        ks.set(key, h)
        return new
    new = 0
    for i in range(1, len(args), 2):
        if args[i] not in h:
            new += 1
        h[args[i]] = args[i + 1]
    ks.touch(key)
    return new


@command("HMSET", -4, ("write", "fast"), (1, 1, 1))
def cmd_hmset(ctx, args):
    if len(args) % 2 != 1:
        return wrong_args("hmset")
    cmd_hset(ctx, args)
    return OK


@command("HSETNX", 4, ("write", "fast"), (1, 1, 1))
def cmd_hsetnx(ctx, args):
    h = _hash(ctx, args[0])
    if h is not None and args[1] in h:
        return 0
    return cmd_hset(ctx, args)


@command("HGET", 3, ("readonly", "fast"), (1, 1, 1))
def cmd_hget(ctx, args):
    h = _hash(ctx, args[0])
    return None if h is None else h.get(args[1])


@command("HMGET", -3, ("readonly", "fast"), (1, 1, 1))
def cmd_hmget(ctx, args):
    h = _hash(ctx, args[0]) or {}
    return [h.get(f) for f in args[1:]]


@command("HGETALL", 2, ("readonly",), (1, 1, 1))
def cmd_hgetall(ctx, args):
    h = _hash(ctx, args[0]) or {}
    return Map(list(h.items()))


@command("HDEL", -3, ("write", "fast"), (1, 1, 1))
def cmd_hdel(ctx, args):
    ks = ctx.server.keyspace
    h = _hash(ctx, args[0])
    if h is None:
        return 0
    n = 0
    for f in args[1:]:
        if f in h:
            del h[f]
            n += 1
    if not h:
        ks.delete(args[0])
    elif n:
        ks.touch(args[0])
    return n


@command("HLEN", 2, ("readonly", "fast"), (1, 1, 1))
def cmd_hlen(ctx, args):
    return len(_hash(ctx, args[0]) or {})


@command("HEXISTS", 3, ("readonly", "fast"), (1, 1, 1))
def cmd_hexists(ctx, args):
    return int(args[1] in (_hash(ctx, args[0]) or {}))


@command("HKEYS", 2, ("readonly",), (1, 1, 1))
def cmd_hkeys(ctx, args):
    return list((_hash(ctx, args[0]) or {}).keys())


@command("HVALS", 2, ("readonly",), (1, 1, 1))
def cmd_hvals(ctx, args):
    return list((_hash(ctx, args[0]) or {}).values())


@command("HINCRBY", 4, ("write", "fast"), (1, 1, 1))
def cmd_hincrby(ctx, args):
    h = _hash(ctx, args[0])
    by = parse_int(args[2]) if args[2][:1] != b"-" else -parse_int(args[2][1:])
    cur = 0 if h is None or args[1] not in h else h[args[1]]
    try:
        n = int(cur) + by
    except ValueError:
        return Error("ERR hash value is not an integer")
    cmd_hset(ctx, [args[0], args[1], str(n).encode()])
    return n
