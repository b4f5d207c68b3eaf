"""The command table and the connection / key-space commands.

Like Redis's own table, each command has a name, a handler, an arity (exact
when positive, a minimum when negative, counting the command name) and flags.
Handlers take ``(ctx, args)`` -- the connection and the argument list without
the command name -- and return a reply value for ``protocol.encode`` (or an
``Offload`` whose heavy part the server runs on a worker thread).

Error texts follow redis-vector-spec.md section 3 (checked against Redis 7.4).
"""

from __future__ import annotations

import hmac
import json
import platform
import sys
import time
from dataclasses import dataclass, field

from . import jsonpath
from .fdlimit import clients_within_fd_limit
from .keyspace import JsonDoc, glob_to_regex, now_ms, type_name
from .protocol import NULL_ARRAY, OK, PONG, Error, Map, Set, Simple, Verbatim

WRONGTYPE = Error("WRONGTYPE Operation against a key holding the wrong kind of value")
NOT_INT = Error("ERR value is not an integer or out of range")
SYNTAX = Error("ERR syntax error")
NOAUTH = Error("NOAUTH Authentication required.")
WRONGPASS = Error("WRONGPASS invalid username-password pair or user is disabled.")

SERVER_VERSION = "7.4.1"  # what clients read from HELLO/INFO to pick features
SEARCH_MODULE_VERSION = 21005
JSON_MODULE_VERSION = 20803


class CommandError(Exception):
    """Raised inside a handler to answer with an error reply."""

    def __init__(self, message: str):
        super().__init__(message)
        self.reply = Error(message)


class Offload:
    """A reply computed in three steps: ``prepare`` ran already (on the event
    loop); ``compute()`` runs on a worker thread (it must only read state that
    is safe there); ``finish(result)`` runs back on the loop to build the reply.
    """

    __slots__ = ("compute", "finish", "heavy", "inline")

    def __init__(self, compute, finish, heavy: bool = True, inline=None):
        # ``inline``: the same work without taking the index's read lock, for running
        # on the event loop itself (the only thread that ever writes).
        self.compute, self.finish, self.heavy = compute, finish, heavy
        self.inline = inline or compute


@dataclass
class Command:
    name: str  # lowercase
    handler: object
    arity: int
    flags: tuple = ()
    first_key: int = 0
    last_key: int = 0
    step: int = 0
    display: str = ""  # spelling in arity errors ('hset', 'FT.CREATE')
    subcommands: list = field(default_factory=list)


COMMANDS: dict[bytes, Command] = {}


def command(name: str, arity: int, flags=(), keys=(0, 0, 0), display: str | None = None):
    def deco(fn):
        if name.lower().encode() in COMMANDS:  # two modules claiming one command: a merge slip
            raise RuntimeError(f"command {name} is registered twice")
        COMMANDS[name.lower().encode()] = Command(
            name.lower(), fn, arity, tuple(flags), *keys, display=display or name.lower())
        return fn
    return deco


def wrong_args(name: str) -> Error:
    return Error(f"ERR wrong number of arguments for '{name}' command")


def parse_int(b: bytes) -> int:
    try:
        if not b or b.strip() != b or (len(b) > 1 and b[:1] == b"0") or b[:1] == b"+":
            raise ValueError
        return int(b)
    except ValueError:
        raise CommandError(NOT_INT) from None


def _text(b) -> str:
    return b.decode("utf-8", "replace") if isinstance(b, (bytes, bytearray)) else str(b)


# --------------------------------------------------------------------------------------------
# connection
# --------------------------------------------------------------------------------------------

@command("PING", -1, ("fast", "noauth_resp3"))
def cmd_ping(ctx, args):
    if len(args) > 1:
        return wrong_args("ping")
    return args[0] if args else PONG


@command("ECHO", 2, ("fast",))
def cmd_echo(ctx, args):
    return args[0]


@command("QUIT", -1, ("fast", "noauth"))
def cmd_quit(ctx, args):
    ctx.closing = True
    return OK


def _check_password(ctx, user: bytes | None, password: bytes) -> bool:
    pw = ctx.server.config.requirepass
    if user is not None and user != b"default":
        return False
    # Constant time: how long a wrong guess takes says nothing about the password.
    return pw is None or hmac.compare_digest(password, pw.encode())


@command("AUTH", -2, ("fast", "noauth"))
def cmd_auth(ctx, args):
    if len(args) > 2:
        return SYNTAX
    user, password = (args[0], args[1]) if len(args) == 2 else (None, args[0])
    if ctx.server.config.requirepass is None and user is None:
        return Error("ERR AUTH <password> called without any password configured for the "
                     "default user. Are you sure your configuration is correct?")
    if user is not None and user != b"default":  # an ACL user (acl.py)
        from .acl import authenticate

        u = authenticate(ctx.server, user, password)
        if u is None:
            return WRONGPASS
        ctx.authenticated, ctx.acl_user = True, u.name
        return OK
    if not _check_password(ctx, user, password):
        return WRONGPASS
    ctx.authenticated, ctx.acl_user = True, None
    return OK


def _module_list(resp_map=True):
    mods = [("search", SEARCH_MODULE_VERSION), ("ReJSON", JSON_MODULE_VERSION)]
    return [Map([("name", name), ("ver", ver), ("path", "nearkit"), ("args", [])])
            for name, ver in mods]


@command("HELLO", -1, ("fast", "noauth"))
def cmd_hello(ctx, args):
    proto = None
    if args:
        try:
            proto = int(args[0])
        except ValueError:
            return Error("ERR Protocol version is not an integer or out of range")
        if proto not in (2, 3):
            return Error("NOPROTO unsupported protocol version")
    i = 1
    auth = setname = None
    while i < len(args):
        opt = args[i].upper()
        if opt == b"AUTH" and i + 2 < len(args):
            auth = (args[i + 1], args[i + 2])
            i += 3
        elif opt == b"SETNAME" and i + 1 < len(args):
            setname = args[i + 1]
            i += 2
        else:
            return Error(f"ERR Syntax error in HELLO option '{_text(args[i])}'")
    if auth is not None:
        if auth[0] != b"default":  # an ACL user (acl.py)
            from .acl import authenticate

            u = authenticate(ctx.server, auth[0], auth[1])
            if u is None:
                return WRONGPASS
            ctx.authenticated, ctx.acl_user = True, u.name
        elif not _check_password(ctx, auth[0], auth[1]):
            return WRONGPASS
        else:
            ctx.authenticated, ctx.acl_user = True, None
    if not ctx.authenticated:
        return Error("NOAUTH HELLO must be called with the client already authenticated, "
                     "otherwise the HELLO <proto> AUTH <user> <pass> option can be used to "
                     "authenticate the client and select the RESP protocol version at the same time")
    if setname is not None:
        ctx.name = setname
    if proto is not None:
        ctx.resp3 = proto == 3
    return Map([
        ("server", "redis"), ("version", SERVER_VERSION), ("proto", 3 if ctx.resp3 else 2),
        ("id", ctx.id), ("mode", "standalone"), ("role", "master"), ("modules", _module_list()),
    ])


@command("CLIENT", -2, ("noauth_resp3",))
def cmd_client(ctx, args):
    sub = args[0].upper()
    n = len(args)
    if sub == b"SETINFO" and n == 3:
        attr = args[1].upper()
        if attr == b"LIB-NAME":
            ctx.lib_name = args[2]
        elif attr == b"LIB-VER":
            ctx.lib_ver = args[2]
        else:
            return Error(f"ERR Unrecognized option '{_text(args[1])}'")
        return OK
    if sub == b"SETNAME" and n == 2:
        if b" " in args[1] or b"\n" in args[1]:
            return Error("ERR Client names cannot contain spaces, newlines or special characters.")
        ctx.name = args[1]
        return OK
    if sub == b"GETNAME" and n == 1:
        return ctx.name if ctx.name else None
    if sub == b"ID" and n == 1:
        return ctx.id
    if sub == b"INFO" and n == 1:
        return Verbatim(ctx.describe() + "\n")
    if sub == b"LIST":
        return Verbatim("".join(c.describe() + "\n" for c in ctx.server.clients))
    if sub in (b"SETINFO", b"SETNAME", b"GETNAME", b"ID", b"INFO"):
        return Error(f"ERR wrong number of arguments for 'client|{_text(args[0]).lower()}' command")
    return Error(f"ERR unknown subcommand '{_text(args[0])}'. Try CLIENT HELP.")


@command("SELECT", 2, ("fast",))
def cmd_select(ctx, args):
    db = parse_int(args[0])
    if db < 0 or db > 15:
        return Error("ERR DB index is out of range")
    if db != 0:
        return Error("ERR nearkit serves database 0 only")
    return OK


@command("RESET", 1, ("fast", "noauth"))
def cmd_reset(ctx, args):
    ctx.resp3 = False
    ctx.multi = None
    ctx.name = b""
    ctx.authenticated = ctx.server.config.requirepass is None
    ctx.acl_user = None
    return Simple("RESET")


# --------------------------------------------------------------------------------------------
# server
# --------------------------------------------------------------------------------------------

def _command_info(cmd: Command):
    return [cmd.display, cmd.arity, Set(list(cmd.flags)), cmd.first_key, cmd.last_key, cmd.step,
            [], [], [], []]


@command("COMMAND", -1, ("loading", "stale"))
def cmd_command(ctx, args):
    if not args:
        return [_command_info(c) for c in COMMANDS.values()]
    sub = args[0].upper()
    if sub == b"COUNT":
        return len(COMMANDS)
    if sub == b"INFO":
        names = args[1:] or list(COMMANDS)
        return [_command_info(COMMANDS[n.lower()]) if n.lower() in COMMANDS else None
                for n in names]
    if sub == b"DOCS":
        names = args[1:] or list(COMMANDS)
        return Map([(COMMANDS[n.lower()].display,
                     Map([("summary", ""), ("since", "1.0.0"), ("group", "generic")]))
                    for n in names if n.lower() in COMMANDS])
    if sub == b"LIST":
        return [c.display for c in COMMANDS.values()]
    if sub == b"GETKEYS" and len(args) > 1:
        cmd = COMMANDS.get(args[1].lower())
        if cmd is None or cmd.first_key == 0:
            return Error("ERR The command has no key arguments")
        rest = args[2:]
        last = len(rest) if cmd.last_key < 0 else cmd.last_key
        return [rest[i - 1] for i in range(cmd.first_key, last + 1, max(cmd.step, 1))
                if i - 1 < len(rest)]
    return Error(f"ERR unknown subcommand '{_text(args[0])}'. Try COMMAND HELP.")


def _info_text(ctx, section: str | None) -> str:
    s = ctx.server
    sections = {
        "server": [("redis_version", SERVER_VERSION), ("nearkit_version", s.version),
                   ("redis_mode", "standalone"), ("os", f"{platform.system()} {platform.machine()}"),
                   ("arch_bits", 64 if sys.maxsize > 2**32 else 32), ("process_id", s.pid), ("tcp_port", s.port),
                   ("uptime_in_seconds", int(time.time() - s.started))],
        "clients": [("connected_clients", len(s.clients)), ("maxclients", s.config.max_clients)],
        "memory": [("used_memory", 0)],
        "persistence": [("loading", 0), ("aof_enabled", 0),
                        ("nearkit_durability", s.config.durability)],
        "stats": [("total_commands_processed", s.commands_processed),
                  ("total_connections_received", s.connections_received),
                  # KNN requests answered by multi-query graph searches, and the loop ticks that ran them.
                  ("nearkit_knn_batched_queries", s.knn_batched_queries),
                  ("nearkit_knn_batches", s.knn_batches)],
        "replication": [("role", "master"), ("connected_slaves", 0)],
        # Clients' test set-ups (redis-py's) look for both modules here.
        "modules": [("module", f"name=ReJSON,ver={JSON_MODULE_VERSION},api=1,filters=0,"
                               f"usedby=[search],using=[],options=[]"),
                    ("module", f"name=search,ver={SEARCH_MODULE_VERSION},api=1,filters=0,"
                               f"usedby=[],using=[ReJSON],options=[]")],
        "cluster": [("cluster_enabled", 0)],
        "keyspace": ([("db0", f"keys={len(s.keyspace)},expires={len(s.keyspace.expires)},"
                              f"avg_ttl=0,subexpiry=0")] if len(s.keyspace) else []),
    }
    wanted = list(sections) if section in (None, "all", "everything", "default") else [section]
    parts = []
    for name in wanted:
        if name in sections:
            lines = [f"# {name.capitalize()}"] + [f"{k}:{v}" for k, v in sections[name]]
            parts.append("\r\n".join(lines) + "\r\n")
    return "\r\n".join(parts)


@command("INFO", -1, ("loading", "stale"))
def cmd_info(ctx, args):
    section = _text(args[0]).lower() if args else None
    return Verbatim(_info_text(ctx, section))


@command("CONFIG", -2, ("admin",))
def cmd_config(ctx, args):
    sub = args[0].upper()
    if sub == b"GET" and len(args) >= 2:
        cfg = ctx.server.config
        known = {"appendonly": "no", "save": "", "maxclients": str(cfg.max_clients),
                 "databases": "1", "proto-max-bulk-len": str(cfg.max_request_bytes),
                 "requirepass": "", "port": str(ctx.server.port), "timeout": str(cfg.timeout)}
        pairs = []
        for pat in args[1:]:
            rx = glob_to_regex(pat, nocase=True)
            pairs += [(k, v) for k, v in known.items() if rx.match(k.encode())]
        return Map(pairs)
    if sub == b"SET":
        return _config_set(ctx, args[1:])
    if sub == b"RESETSTAT":
        return OK
    return Error(f"ERR unknown subcommand '{_text(args[0])}'. Try CONFIG HELP.")


def _config_set(ctx, args):
    """CONFIG SET for the settings the server acts on (timeout, maxclients); the
    others are accepted and ignored, as before."""
    if not args or len(args) % 2:
        return wrong_args("config|set")
    cfg = ctx.server.config
    changes = {}
    for name, value in zip(args[::2], args[1::2]):
        key = _text(name).lower()
        if key not in ("timeout", "maxclients"):
            continue
        try:
            n = int(value)
        except ValueError:
            n = -1
        if n < (0 if key == "timeout" else 1):
            return Error(f"ERR CONFIG SET failed (possibly related to argument '{key}') - "
                         "argument couldn't be parsed into an integer" if n == -1 else
                         f"ERR CONFIG SET failed (possibly related to argument '{key}') - "
                         "argument must be between 0 and 2147483647 inclusive")
        changes[key] = n
    if "timeout" in changes:
        cfg.timeout = changes["timeout"]
    if "maxclients" in changes:
        want = changes["maxclients"]
        got = clients_within_fd_limit(want)
        if got < want:
            return Error(f"ERR CONFIG SET failed (possibly related to argument 'maxclients') - "
                         f"The operating system is not able to handle the specified number of "
                         f"clients, try with {got}")
        cfg.max_clients = want
    return OK


@command("MODULE", -2, ("admin",))
def cmd_module(ctx, args):
    if args[0].upper() == b"LIST":
        return _module_list()
    return Error(f"ERR unknown subcommand '{_text(args[0])}'. Try MODULE HELP.")


@command("DBSIZE", 1, ("readonly", "fast"))
def cmd_dbsize(ctx, args):
    return len(ctx.server.keyspace)


@command("FLUSHDB", -1, ("write",))
def cmd_flushdb(ctx, args):
    if len(args) > 1 or (args and args[0].upper() not in (b"ASYNC", b"SYNC")):
        return SYNTAX
    ctx.server.flush_all()
    return OK


COMMANDS[b"flushall"] = Command("flushall", cmd_flushdb, -1, ("write",), display="flushall")


@command("SAVE", 1, ("admin",))
def cmd_save(ctx, args):
    ctx.server.durable_flush(force=True)
    return OK


@command("LASTSAVE", 1, ("fast",))
def cmd_lastsave(ctx, args):
    return int(time.time())


@command("TIME", 1, ("fast",))
def cmd_time(ctx, args):
    t = time.time()
    return [str(int(t)).encode(), str(int((t % 1) * 1e6)).encode()]


# --------------------------------------------------------------------------------------------
# generic key commands
# --------------------------------------------------------------------------------------------

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
            type_filter = _text(args[i + 1]).lower()
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
        return Error(f"ERR Unsupported option {_text(args[2])}")
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


# --------------------------------------------------------------------------------------------
# strings
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# hashes
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# transactions (as redis-py pipelines send them)
# --------------------------------------------------------------------------------------------

@command("MULTI", 1, ("fast",))
def cmd_multi(ctx, args):
    if ctx.multi is not None:
        return Error("ERR MULTI calls can not be nested")
    ctx.multi = []
    ctx.multi_error = False
    return OK


@command("EXEC", 1, ())
def cmd_exec(ctx, args):
    # Handled by the connection (it owns the queue); reaching here means no MULTI.
    return Error("ERR EXEC without MULTI")


@command("DISCARD", 1, ("fast",))
def cmd_discard(ctx, args):
    if ctx.multi is None:
        return Error("ERR DISCARD without MULTI")
    ctx.multi = None
    return OK


@command("WATCH", -2, ("fast",))
def cmd_watch(ctx, args):
    if ctx.multi is not None:
        return Error("ERR WATCH inside MULTI is not allowed")
    return OK


@command("UNWATCH", 1, ("fast",))
def cmd_unwatch(ctx, args):
    return OK


# --------------------------------------------------------------------------------------------
# JSON (enough of RedisJSON for ON JSON indexes)
# --------------------------------------------------------------------------------------------

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


__all__ = ["COMMANDS", "Command", "CommandError", "Offload", "wrong_args", "NOAUTH",
           "NULL_ARRAY"]

QUEUED_REPLY = Simple("QUEUED")
