"""FT.MGET / FT.GET / FT.DEBUG: the indexed hashes' whole contents by key (nil for a key the index
does not hold; an empty list for a JSON document, as Redis Stack 7.4 answers)."""

from __future__ import annotations

import math

from ..commands import command
from ..protocol import Error


def _contents(ctx, idx, key: bytes):
    if key not in idx.key_slot:
        return None
    doc = ctx.server.keyspace.get(key)
    if doc is None:
        return None
    if isinstance(doc, dict):  # a hash: every field, as Redis returns it
        out = []
        for f, v in doc.items():
            out += [f, v]
        return out
    return []  # a JSON document: Redis Stack 7.4 answers an empty list


@command("FT.MGET", -3, ("readonly",), display="FT.MGET")
def ft_mget(ctx, args):
    idx = ctx.server.search.lookup(args[0])
    if idx is None:
        return Error("Unknown Index name")
    return [_contents(ctx, idx, k) for k in args[1:]]


@command("FT.GET", 3, ("readonly",), display="FT.GET")
def ft_get(ctx, args):
    idx = ctx.server.search.lookup(args[0])
    if idx is None:
        return Error("Unknown Index name")
    return _contents(ctx, idx, args[1])


@command("FT.DEBUG", -2, ("readonly",), display="FT.DEBUG")
def ft_debug(ctx, args):
    """FT.DEBUG TTL <index>: the seconds a TEMPORARY index has left (only that subcommand)."""
    if args[0].upper() == b"TTL" and len(args) == 2:
        search = ctx.server.search
        idx = search.lookup(args[1], touch=False)
        if idx is None:
            return Error("Unknown index name")
        if not idx.options.get("temporary"):
            return Error("Index is not temporary")
        return max(0, math.floor(search.ttl(idx)))
    return Error(f"nearkit: FT.DEBUG supports only TTL <index>, not {args[0].decode('utf-8', 'replace')}")
