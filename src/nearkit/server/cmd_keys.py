"""Generic key commands, whatever the value's type: EXISTS, DEL, TYPE, KEYS, SCAN,
EXPIRE / PEXPIRE / EXPIREAT / PEXPIREAT, TTL / PTTL, PERSIST, RENAME / RENAMENX."""

from __future__ import annotations

from .commands import COMMANDS, SYNTAX, Command, as_str, command, parse_int
from .keyspace import glob_to_regex, now_ms, type_name
from .protocol import OK, Error, Simple


@command("EXISTS", -2, ("readonly", "fast"), (1, -1, 1))
def cmd_exists(ctx, args):
    ks = ctx.server.keyspace
    return sum(1 for k in args if ks.get(k) is not None)


@command("DEL", -2, ("write",), (1, -1, 1))
def cmd_del(ctx, args):
    ks = ctx.server.keyspace
    return sum(1 for k in args if ks.get(k) is not None and ks.delete(k))


COMMANDS[b"unlink"] = Command("unlink", cmd_del, -2, ("write", "fast"), 1, -1, 1, display="unlink")


@command("TYPE", 2, ("readonly", "fast"), (1, 1, 1))
def cmd_type(ctx, args):
    return Simple(type_name(ctx.server.keyspace.get(args[0])))


@command("KEYS", 2, ("readonly",))
def cmd_keys(ctx, args):
    pat = args[0]
    return ctx.server.keyspace.keys(None if pat == b"*" else glob_to_regex(pat))


@command("SCAN", -2, ("readonly",))
def cmd_scan(ctx, args):
    cursor = parse_int(args[0]) if args[0] != b"0" else 0
    match, count, type_filter = None, 10, None
    i = 1
    while i < len(args):
        opt = args[i].upper()
        if i + 1 >= len(args):
            return SYNTAX
        if opt == b"MATCH":
            match = None if args[i + 1] == b"*" else glob_to_regex(args[i + 1])
        elif opt == b"COUNT":
            count = parse_int(args[i + 1])
            if count < 1:
                return SYNTAX
        elif opt == b"TYPE":
            type_filter = as_str(args[i + 1]).lower()
        else:
            return SYNTAX
        i += 2
    nxt, keys = ctx.server.keyspace.scan(cursor, count, match, type_filter)
    return [str(nxt).encode(), keys]


def _expire(ctx, args, scale_ms: int, absolute: bool):
    ks = ctx.server.keyspace
    t = parse_int(args[1]) if args[1][:1] != b"-" else -parse_int(args[1][1:])
    flags = {a.upper() for a in args[2:]}
    if not flags <= {b"NX", b"XX", b"GT", b"LT"} or len(flags) != len(args) - 2:
        return Error(f"ERR Unsupported option {as_str(args[2])}")
    if ks.get(args[0]) is None:
        return 0
    cur = ks.expires.get(args[0])
    deadline = t * scale_ms if absolute else now_ms() + t * scale_ms
    if (b"NX" in flags and cur is not None) or (b"XX" in flags and cur is None):
        return 0
    if b"GT" in flags and (cur is None or deadline <= cur):
        return 0
    if b"LT" in flags and cur is not None and deadline >= cur:
        return 0
    return int(ks.expire_at(args[0], deadline))


@command("EXPIRE", -3, ("write", "fast"), (1, 1, 1))
def cmd_expire(ctx, args):
    return _expire(ctx, args, 1000, False)


@command("PEXPIRE", -3, ("write", "fast"), (1, 1, 1))
def cmd_pexpire(ctx, args):
    return _expire(ctx, args, 1, False)


@command("EXPIREAT", -3, ("write", "fast"), (1, 1, 1))
def cmd_expireat(ctx, args):
    return _expire(ctx, args, 1000, True)


@command("PEXPIREAT", -3, ("write", "fast"), (1, 1, 1))
def cmd_pexpireat(ctx, args):
    return _expire(ctx, args, 1, True)


@command("TTL", 2, ("readonly", "fast"), (1, 1, 1))
def cmd_ttl(ctx, args):
    ms = ctx.server.keyspace.ttl_ms(args[0])
    return ms if ms < 0 else (ms + 500) // 1000


@command("PTTL", 2, ("readonly", "fast"), (1, 1, 1))
def cmd_pttl(ctx, args):
    return ctx.server.keyspace.ttl_ms(args[0])


@command("PERSIST", 2, ("write", "fast"), (1, 1, 1))
def cmd_persist(ctx, args):
    return int(ctx.server.keyspace.persist(args[0]))


@command("RENAME", 3, ("write",), (1, 2, 1))
def cmd_rename(ctx, args):
    ks = ctx.server.keyspace
    value = ks.get(args[0])
    if value is None:
        return Error("ERR no such key")
    if args[0] == args[1]:
        return OK
    deadline = ks.expires.get(args[0])
    ks.delete(args[0])
    ks.delete(args[1])
    ks.set(args[1], value)
    if deadline is not None:
        ks.expire_at(args[1], deadline)
    return OK


@command("RENAMENX", 3, ("write",), (1, 2, 1))
def cmd_renamenx(ctx, args):
    ks = ctx.server.keyspace
    if ks.get(args[0]) is None:
        return Error("ERR no such key")
    if ks.get(args[1]) is not None:
        return 0
    cmd_rename(ctx, args)
    return 1
