"""ACL users: ACL SETUSER / DELUSER / GETUSER / USERS / LIST / WHOAMI / CAT, AUTH and HELLO
AUTH with a user name, and the per-command check (command rules and key patterns).

The ``default`` user stays what ``requirepass`` makes it (all commands, all keys); ACL
SETUSER refuses to change it. Other users live in memory, as in Redis without an ACL
file: they are gone after a restart. Commands run from Lua scripts are not checked.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from .commands import COMMANDS, CommandError, command
from .glob import compile_glob
from .protocol import OK, Error, Map

# Commands that are only about the connection (Redis's @connection).
_CONNECTION = {"ping", "echo", "quit", "auth", "hello", "client", "select", "reset"}
_TRANSACTION = {"multi", "exec", "discard", "watch", "unwatch"}
_SCRIPTING = {"eval", "evalsha", "script"}
_KEYSPACE = {"exists", "del", "type", "keys", "scan", "expire", "pexpire", "expireat",
             "pexpireat", "ttl", "pttl", "persist", "rename", "renamenx", "dbsize", "flushdb"}
# Redis 7.4's categories (ACL CAT); "all" is implied.
CATEGORIES = ("keyspace", "read", "write", "set", "sortedset", "list", "hash", "string", "bitmap",
              "hyperloglog", "geo", "stream", "pubsub", "admin", "fast", "slow", "blocking",
              "dangerous", "connection", "transaction", "scripting")


def categories(cmd) -> frozenset:
    """The ACL categories a command belongs to, from its flags and family. FT.* and JSON.*
    are in none but @all, as in Redis Stack 7.4 (its modules give their commands none)."""
    name = cmd.name
    cats = {"all"}
    if "." in name:
        return frozenset(cats)
    if "write" in cmd.flags:
        cats.add("write")
    if "readonly" in cmd.flags:
        cats.add("read")
    if "admin" in cmd.flags:
        cats |= {"admin", "dangerous"}
    cats.add("fast" if "fast" in cmd.flags else "slow")
    if name in _CONNECTION:
        cats.add("connection")
    if name in _TRANSACTION:
        cats.add("transaction")
    if name in _SCRIPTING:
        cats.add("scripting")
    if name in _KEYSPACE:
        cats.add("keyspace")
    if name.startswith("h"):
        cats.add("hash")
    elif name in ("get", "set", "mget", "incr", "incrby"):
        cats.add("string")
    return frozenset(cats)


@dataclass
class User:
    name: str
    enabled: bool = False
    nopass: bool = False
    passwords: set = field(default_factory=set)  # sha256 hex digests
    key_patterns: list = field(default_factory=list)  # b"*" for allkeys
    channel_patterns: list = field(default_factory=list)
    # Command rules in the order given; the last one that names a command decides.
    rules: list = field(default_factory=list)  # (allow, "all" | "cat" | "cmd", value)

    def reset(self):
        self.__init__(self.name)

    def allows(self, name: str, sub: str | None, cats: frozenset) -> bool:
        allowed = False
        for allow, kind, value in self.rules:
            if (kind == "all" or (kind == "cat" and value in cats) or
                    (kind == "cmd" and (value == name or (sub is not None and value == f"{name}|{sub}")))):
                allowed = allow
        return allowed

    def key_ok(self, key: bytes) -> bool:
        return any(compile_glob(p).match(key) for p in self.key_patterns)

    def describe(self) -> str:
        """The user as ACL LIST prints it."""
        parts = ["user", self.name, "on" if self.enabled else "off"]
        if self.nopass:
            parts.append("nopass")
        parts.append("sanitize-payload")
        parts += ["#" + h for h in sorted(self.passwords)]
        parts += ["~" + p.decode("latin-1") for p in self.key_patterns]
        if not self.channel_patterns:
            parts.append("resetchannels")
        parts += ["&" + p.decode("latin-1") for p in self.channel_patterns]
        parts.append(self.command_text())
        return " ".join(parts)

    def command_text(self) -> str:
        out = ["-@all"]
        for allow, kind, value in self.rules:
            sign = "+" if allow else "-"
            out.append(sign + ("@all" if kind == "all" else "@" + value if kind == "cat" else value))
        if len(out) > 1 and out[1] == "+@all":
            out = out[1:]
        return " ".join(out)


def _users(server) -> dict:
    users = getattr(server, "acl_users", None)
    if users is None:
        users = server.acl_users = {}
    return users


def _hash(password: bytes) -> str:
    return hashlib.sha256(password).hexdigest()


def _apply_rule(user: User, rule: bytes) -> None:
    r = rule.decode("utf-8", "replace")
    low = r.lower()
    if low == "on":
        user.enabled = True
    elif low == "off":
        user.enabled = False
    elif low == "reset":
        user.reset()
    elif low == "nopass":
        user.nopass, user.passwords = True, set()
    elif low == "resetpass":
        user.nopass, user.passwords = False, set()
    elif r.startswith(">"):
        user.passwords.add(_hash(rule[1:]))
        user.nopass = False
    elif r.startswith("<"):
        user.passwords.discard(_hash(rule[1:]))
    elif r.startswith("#") and len(r) == 65:
        user.passwords.add(r[1:].lower())
        user.nopass = False
    elif r.startswith("~"):
        user.key_patterns.append(rule[1:])
    elif low == "allkeys":
        user.key_patterns = [b"*"]
    elif low == "resetkeys":
        user.key_patterns = []
    elif r.startswith("&"):
        user.channel_patterns.append(rule[1:])
    elif low == "allchannels":
        user.channel_patterns = [b"*"]
    elif low == "resetchannels":
        user.channel_patterns = []
    elif low in ("allcommands", "+@all"):
        user.rules.append((True, "all", None))
    elif low in ("nocommands", "-@all"):
        user.rules.append((False, "all", None))
    elif r[:2] in ("+@", "-@"):
        cat = low[2:]
        if cat not in CATEGORIES and cat != "all":
            raise CommandError(f"ERR Error in ACL SETUSER modifier '{r}': Unknown command or category name in ACL")
        user.rules.append((r[0] == "+", "cat", cat))
    elif r[:1] in ("+", "-") and len(r) > 1:
        name = low[1:]
        if name.split("|")[0].encode() not in COMMANDS:
            raise CommandError(f"ERR Error in ACL SETUSER modifier '{r}': Unknown command or category name in ACL")
        user.rules.append((r[0] == "+", "cmd", name))
    else:
        raise CommandError(f"ERR Error in ACL SETUSER modifier '{r}': Syntax error")


def authenticate(server, username: bytes, password: bytes):
    """The User that ``username``/``password`` log in as, or None."""
    user = _users(server).get(username.decode("utf-8", "replace"))
    if user is None or not user.enabled:
        return None
    if user.nopass:
        return user
    digest = _hash(password)
    return user if any(hmac.compare_digest(digest, h) for h in user.passwords) else None


def check(conn, cmd, req: list):
    """None if the connection's user may run this request, else the NOPERM error."""
    user = _users(conn.server).get(conn.acl_user)
    if user is None or not user.enabled:  # deleted or disabled since it logged in:
        # Redis disconnects such clients at once; this one goes at its next command.
        conn.closing = True
        if conn.transport is not None:
            conn.transport.close()
        return Error("NOPERM this user has been removed or disabled")
    sub = req[1].decode("utf-8", "replace").lower() if cmd.subcommands or (
        len(req) > 1 and cmd.name in ("client", "config", "acl", "script", "ft.config",
                                      "ft.cursor", "command", "module")) else None
    if not user.allows(cmd.name, sub, categories(cmd)):
        shown = f"{cmd.name}|{sub}" if sub else cmd.display if "." in cmd.name else cmd.name
        return Error(f"NOPERM User {user.name} has no permissions to run the '{shown}' command")
    if cmd.first_key > 0 and user.key_patterns != [b"*"]:
        last = cmd.last_key if cmd.last_key >= 0 else len(req) + cmd.last_key
        for i in range(cmd.first_key, min(last, len(req) - 1) + 1, max(cmd.step, 1)):
            if not user.key_ok(req[i]):
                return Error("NOPERM No permissions to access a key")
    return None


@command("ACL", -2, ("admin", "noscript"))
def cmd_acl(ctx, args):
    sub = args[0].upper()
    users = _users(ctx.server)
    if sub == b"SETUSER" and len(args) >= 2:
        name = args[1].decode("utf-8", "replace")
        if name == "default":
            return Error("ERR nearkit: the default user is set up by requirepass; "
                         "ACL SETUSER changes other users only")
        user = User(name)
        if name in users:  # rules add to an existing user (on a copy: all or nothing)
            old = users[name]
            user = User(name, old.enabled, old.nopass, set(old.passwords), list(old.key_patterns),
                        list(old.channel_patterns), list(old.rules))
        for rule in args[2:]:
            _apply_rule(user, rule)
        users[name] = user
        return OK
    if sub == b"DELUSER" and len(args) >= 2:
        n = 0
        for a in args[1:]:
            name = a.decode("utf-8", "replace")
            if name == "default":
                return Error("ERR The 'default' user cannot be removed")
            n += users.pop(name, None) is not None
        return n
    if sub == b"GETUSER" and len(args) == 2:
        name = args[1].decode("utf-8", "replace")
        if name == "default":
            return Map([("flags", (["on", "nopass"] if ctx.server.config.requirepass is None
                                   else ["on"]) + ["sanitize-payload"]), ("passwords", []), ("commands", "+@all"), ("keys", "~*"),
                        ("channels", "&*"), ("selectors", [])])
        user = users.get(name)
        if user is None:
            return None
        flags = (["on" if user.enabled else "off"] + (["nopass"] if user.nopass else [])
                 + ["sanitize-payload"])
        return Map([("flags", flags), ("passwords", sorted(user.passwords)),
                    ("commands", user.command_text()),
                    ("keys", " ".join("~" + p.decode("latin-1") for p in user.key_patterns)),
                    ("channels", " ".join("&" + p.decode("latin-1") for p in user.channel_patterns)),
                    ("selectors", [])])
    if sub == b"USERS" and len(args) == 1:
        return sorted(["default", *users])
    if sub == b"LIST" and len(args) == 1:
        pw = ctx.server.config.requirepass
        default = "user default on " + ("nopass sanitize-payload " if pw is None
                                        else "sanitize-payload #" + _hash(pw.encode()) + " ")
        return [default + "~* &* +@all"] + [users[n].describe() for n in sorted(users)]
    if sub == b"WHOAMI" and len(args) == 1:
        return getattr(ctx, "acl_user", None) or "default"
    if sub == b"CAT" and len(args) == 1:
        return list(CATEGORIES)
    if sub == b"CAT" and len(args) == 2:
        cat = args[1].decode("utf-8", "replace").lower()
        if cat not in CATEGORIES:
            return Error(f"ERR Unknown category '{cat}'")
        return sorted(c.name for c in COMMANDS.values() if cat in categories(c))
    return Error(f"ERR unknown subcommand or wrong number of arguments for '{args[0].decode('utf-8', 'replace')}'")
