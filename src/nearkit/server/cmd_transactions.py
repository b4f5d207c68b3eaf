"""MULTI, EXEC, DISCARD, WATCH, UNWATCH (as redis-py pipelines send them). The
connection owns the queue (server.py); these answer what reaches the table."""

from __future__ import annotations

from .commands import command
from .protocol import OK, Error


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
