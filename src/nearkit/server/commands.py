"""The command table: every command's name, handler, arity and flags, and the
error replies handlers share.

Like Redis's own table, each command has a name, a handler, an arity (exact
when positive, a minimum when negative, counting the command name) and flags.
Handlers take ``(ctx, args)`` -- the connection and the argument list without
the command name -- and return a reply value for ``protocol.encode`` (or an
``Offload`` whose heavy part the server runs on a worker thread).

The handlers live in modules by data type, as Redis's ``t_*.c`` files do:
``cmd_server`` (connection and server), ``cmd_keys`` (generic key commands),
``cmd_strings``, ``cmd_hashes``, ``cmd_transactions``, ``cmd_json``,
``cmd_scripting``, ``acl`` and the FT.* package ``ft/``; each registers its
commands with ``@command`` when imported (``handlers`` imports them all).
Registering a name twice is an error at import.

Error texts follow redis-vector-spec.md section 3 (checked against Redis 7.4).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .protocol import NULL_ARRAY, Error, Simple


WRONGTYPE = Error("WRONGTYPE Operation against a key holding the wrong kind of value")
NOT_INT = Error("ERR value is not an integer or out of range")
SYNTAX = Error("ERR syntax error")
NOAUTH = Error("NOAUTH Authentication required.")
WRONGPASS = Error("WRONGPASS invalid username-password pair or user is disabled.")


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


def as_str(b) -> str:
    """An argument as text (invalid UTF-8 replaced), for messages and names."""
    return b.decode("utf-8", "replace") if isinstance(b, (bytes, bytearray)) else str(b)


__all__ = ["COMMANDS", "Command", "CommandError", "Offload", "wrong_args", "NOAUTH",
           "NULL_ARRAY"]

QUEUED_REPLY = Simple("QUEUED")
