"""FT.AGGREGATE and FT.CURSOR."""

from __future__ import annotations

from ..commands import as_str, command
from . import aggregate as _aggregate
from . import cursors as _cursors
from .args import lookup_index


@command("FT.AGGREGATE", -3, ("readonly",), display="FT.AGGREGATE")
def ft_aggregate(ctx, args):
    idx = lookup_index(ctx, args[0], "{name}: no such index")
    return _aggregate.aggregate(ctx, idx, as_str(args[1]), args[2:])


@command("FT.CURSOR", -4, ("readonly",), display="FT.CURSOR")
def ft_cursor(ctx, args):
    return _cursors.cursor(ctx, args)
