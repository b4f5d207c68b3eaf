"""Connection and server commands: PING, ECHO, QUIT, AUTH, HELLO, CLIENT, SELECT,
RESET; COMMAND, INFO, CONFIG, MODULE, DBSIZE, FLUSHDB, SAVE, LASTSAVE, TIME."""

from __future__ import annotations

import hmac
import platform
import sys
import time

from .commands import (
    COMMANDS, SYNTAX, WRONGPASS, Command, as_str, command, parse_int, wrong_args,
)
from .fdlimit import clients_within_fd_limit
from .keyspace import glob_to_regex
from .protocol import OK, PONG, Error, Map, Set, Simple, Verbatim


SERVER_VERSION = "7.4.1"  # what clients read from HELLO/INFO to pick features
SEARCH_MODULE_VERSION = 21005
JSON_MODULE_VERSION = 20803


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
            return Error(f"ERR Syntax error in HELLO option '{as_str(args[i])}'")
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
            return Error(f"ERR Unrecognized option '{as_str(args[1])}'")
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
        return Error(f"ERR wrong number of arguments for 'client|{as_str(args[0]).lower()}' command")
    return Error(f"ERR unknown subcommand '{as_str(args[0])}'. Try CLIENT HELP.")


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
    return Error(f"ERR unknown subcommand '{as_str(args[0])}'. Try COMMAND HELP.")


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
    section = as_str(args[0]).lower() if args else None
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
    return Error(f"ERR unknown subcommand '{as_str(args[0])}'. Try CONFIG HELP.")


def _config_set(ctx, args):
    """CONFIG SET for the settings the server acts on (timeout, maxclients); the
    others are accepted and ignored, as before."""
    if not args or len(args) % 2:
        return wrong_args("config|set")
    cfg = ctx.server.config
    changes = {}
    for name, value in zip(args[::2], args[1::2]):
        key = as_str(name).lower()
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
    return Error(f"ERR unknown subcommand '{as_str(args[0])}'. Try MODULE HELP.")


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
