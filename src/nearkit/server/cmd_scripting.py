"""EVAL / EVALSHA / SCRIPT: Lua scripts run by a real Lua 5.1 (the ``lupa`` package,
an optional extra: ``pip install 'nearkit[lua]'``), with Redis's conversions between
replies and Lua values.

A script runs on the event loop to the end, like in Redis: its ``redis.call`` commands
go through the same command table as a client's, in order, with nothing in between.
"""

from __future__ import annotations

import hashlib

from .commands import COMMANDS, CommandError, Offload, command, parse_int
from .protocol import NULL_ARRAY, OK, Double, Error, Map, Set, Simple, Verbatim

class Scripts:
    """One server's scripts (``server.scripts``): their bodies by SHA1 and, from the first
    script run, the Lua runtime with their compiled functions. Two servers in one process
    share neither."""

    def __init__(self):
        self.bodies: dict = {}  # sha1 hex (bytes) -> script body (bytes)
        self._runtime = None  # (LuaRuntime, {sha: compiled function})

    def runtime(self):
        if self._runtime is None:
            try:
                from lupa import lua51
            except ImportError:
                raise CommandError("ERR scripting needs the optional 'lupa' package "
                                   "(pip install 'nearkit[lua]')") from None
            lua = lua51.LuaRuntime(encoding=None, unpack_returned_tuples=False)
            # Scripts see only what Redis gives them: no files, no processes, no module loading.
            lua.execute(b"os = {time = os.time, clock = os.clock}; io = nil; require = nil; "
                        b"dofile = nil; loadfile = nil; package = nil; debug = nil")
            self._runtime = (lua, {})
        return self._runtime

    def flush(self):
        self.bodies.clear()
        if self._runtime is not None:
            self._runtime[1].clear()


def _sha(body: bytes) -> bytes:
    return hashlib.sha1(body).hexdigest().encode()


# -- conversions (Redis's rules) ---------------------------------------------------------------

def _to_lua(lua, reply):
    """A command's reply as the Lua value a script sees."""
    if reply is None or reply is NULL_ARRAY:
        return False
    if isinstance(reply, Error):
        t = lua.table()
        t[b"err"] = str(reply).encode()
        return t
    if isinstance(reply, Simple):
        t = lua.table()
        t[b"ok"] = str(reply).encode()
        return t
    if isinstance(reply, bool):
        return 1 if reply else False
    if isinstance(reply, int):
        return reply
    if isinstance(reply, (Double, float)):
        return repr(float(reply)).encode()
    if isinstance(reply, (str, Verbatim)):
        return reply.encode()
    if isinstance(reply, (bytes, bytearray)):
        return bytes(reply)
    if isinstance(reply, Map):
        flat = []
        for k, v in reply:
            flat += [k, v]
        reply = flat
    if isinstance(reply, (list, tuple, Set)):
        return lua.table(*[_to_lua(lua, x) for x in reply])
    return str(reply).encode()


def _from_lua(lua, value):
    """A script's return value as a reply."""
    if value is None or value is False:
        return None
    if value is True:
        return 1
    if isinstance(value, (int, float)):
        return int(value)  # Lua numbers become integers (truncated), as in Redis
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    if lua.eval(b"type")(value) == b"table":
        err = value[b"err"]
        if err is not None:
            return Error(err.decode("utf-8", "replace"))
        ok = value[b"ok"]
        if ok is not None:
            return Simple(ok.decode("utf-8", "replace"))
        out, i = [], 1
        while value[i] is not None:  # an array ends at its first nil
            out.append(_from_lua(lua, value[i]))
            i += 1
        return out
    return None


# -- running ----------------------------------------------------------------------------------

def _call_command(ctx, args: list):
    """Run one command for a script; its reply (errors as Error values)."""
    if not args:
        return Error("ERR Please specify at least one argument for this redis lib call")
    name = args[0].lower()
    if name in (b"eval", b"evalsha", b"multi", b"exec", b"script"):
        return Error("ERR This Redis command is not allowed from script")
    err = ctx._check(COMMANDS.get(name), args)
    if err is not None:
        return err
    reply = ctx._call(COMMANDS[name], args)
    try:
        if hasattr(reply, "run") and not isinstance(reply, Offload):
            reply = reply.run()  # a KNN job: answered here, in order
        elif isinstance(reply, Offload):
            reply = reply.finish(reply.inline())
    except CommandError as exc:
        reply = exc.reply
    return reply


def _lua_args(value) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, bool) or value is None:
        raise CommandError("ERR Lua redis lib command arguments must be strings or integers")
    if isinstance(value, float) and value.is_integer():
        return str(int(value)).encode()
    if isinstance(value, (int, float)):
        return str(value).encode()
    if isinstance(value, str):
        return value.encode()
    raise CommandError("ERR Lua redis lib command arguments must be strings or integers")


def _run(ctx, sha: bytes, body: bytes, args: list):
    lua, compiled = ctx.server.scripts.runtime()
    numkeys = parse_int(args[0]) if args[0][:1] != b"-" else -1
    if numkeys < 0:
        return Error("ERR Number of keys can't be negative")
    if numkeys > len(args) - 1:
        return Error("ERR Number of keys can't be greater than number of args")
    keys, argv = args[1:1 + numkeys], args[1 + numkeys:]
    fn = compiled.get(sha)
    if fn is None:
        try:
            fn = lua.eval(b"function(KEYS, ARGV, redis) " + body + b"\nend")
        except Exception as exc:
            return Error(f"ERR Error compiling script (new function): {exc}")
        compiled[sha] = fn

    class _ScriptError(Exception):
        pass

    def call(*cargs):
        reply = _call_command(ctx, [_lua_args(a) for a in cargs])
        if isinstance(reply, Error):
            raise _ScriptError(str(reply))
        return _to_lua(lua, reply)

    def pcall(*cargs):
        try:
            return _to_lua(lua, _call_command(ctx, [_lua_args(a) for a in cargs]))
        except CommandError as exc:
            return _to_lua(lua, exc.reply)

    def status_reply(text):
        t = lua.table()
        t[b"ok"] = text
        return t

    def error_reply(text):
        t = lua.table()
        t[b"err"] = text
        return t

    redis_lib = lua.table_from({b"call": call, b"pcall": pcall, b"status_reply": status_reply,
                                b"error_reply": error_reply,
                                b"sha1hex": lambda s: _sha(_lua_args(s))})
    try:
        result = fn(lua.table(*keys), lua.table(*argv), redis_lib)
    except _ScriptError as exc:
        return Error(f"{exc} script: {sha.decode()}")
    except CommandError as exc:
        return exc.reply
    except Exception as exc:  # a Lua runtime error
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return Error(f"ERR user_script:1: {text} script: {sha.decode()}")
    return _from_lua(lua, result)


@command("EVAL", -3, ("noscript",), keys=(3, 3, 1))
def cmd_eval(ctx, args):
    body = args[0]
    sha = _sha(body)
    ctx.server.scripts.bodies[sha] = body
    return _run(ctx, sha, body, args[1:])


@command("EVALSHA", -3, ("noscript",), keys=(3, 3, 1))
def cmd_evalsha(ctx, args):
    sha = args[0].lower()
    body = ctx.server.scripts.bodies.get(sha)
    if body is None:
        return Error("NOSCRIPT No matching script. Please use EVAL.")
    return _run(ctx, sha, body, args[1:])


@command("SCRIPT", -2, ("noscript",))
def cmd_script(ctx, args):
    scripts = ctx.server.scripts
    sub = args[0].upper()
    if sub == b"LOAD" and len(args) == 2:
        lua, compiled = scripts.runtime()
        sha = _sha(args[1])
        try:
            compiled.setdefault(sha, lua.eval(b"function(KEYS, ARGV, redis) " + args[1] + b"\nend"))
        except Exception as exc:
            return Error(f"ERR Error compiling script (new function): {exc}")
        scripts.bodies[sha] = args[1]
        return sha
    if sub == b"EXISTS" and len(args) >= 2:
        return [1 if a.lower() in scripts.bodies else 0 for a in args[1:]]
    if sub == b"FLUSH":
        scripts.flush()
        return OK
    return Error(f"ERR unknown subcommand or wrong number of arguments for "
                 f"'{args[0].decode('utf-8', 'replace')}'. Try SCRIPT HELP.")
