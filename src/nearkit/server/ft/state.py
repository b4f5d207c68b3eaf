"""What FT.* keeps between commands, owned by one server (``server.ft``): two servers in
one process share none of it, and a server's caches go with it."""

from __future__ import annotations

import itertools

from .plan import PlanCache


class FtState:
    def __init__(self):
        self.plans = PlanCache()  # parsed query texts (plan.py)
        self.fast: dict = {}  # (index name, query text, number of args) -> fastpath._FastSearch
        self.cursors: dict = {}  # cursor id -> (index name, rows left, count, time made)
        self.cursor_ids = itertools.count(1000003, 7919)  # Redis-looking ids, never 0
