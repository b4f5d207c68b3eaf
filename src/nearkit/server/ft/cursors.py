"""WITHCURSOR / FT.CURSOR READ and DEL: the rest of an aggregate's rows, paged."""

from __future__ import annotations

import time

from ..protocol import Error, Simple
from .render import aggregate_reply


def cursor_reply(ctx, idx, rows, count, new=False, cid=None):
    page, rest = rows[:count], rows[count:]
    if rest:
        if cid is None:
            cid = next(ctx.server.ft.cursor_ids)
        ctx.server.ft.cursors[cid] = (idx.name, rest, count, time.time())
    else:
        if cid is not None:
            ctx.server.ft.cursors.pop(cid, None)
        cid = 0
    return [aggregate_reply(ctx, page), cid]


def cursor(ctx, args):
    sub = args[0].upper()
    try:
        cid = int(args[2])
    except ValueError:
        return Error("Bad cursor ID")
    cursors = ctx.server.ft.cursors
    entry = cursors.get(cid)
    if sub == b"DEL":
        if entry is None:
            return Error("Cursor does not exist")
        del cursors[cid]
        return Simple("OK")
    if sub == b"READ":
        if entry is None or entry[0] != args[1]:
            return Error("Cursor not found, id: %d" % cid)
        count = entry[2]
        if len(args) >= 5 and args[3].upper() == b"COUNT":
            count = int(args[4])
        idx = ctx.server.search.indexes.get(entry[0])
        return cursor_reply(ctx, idx, entry[1], count, cid=cid)
    return Error("Unknown subcommand")
