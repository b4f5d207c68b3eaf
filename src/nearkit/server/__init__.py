"""A Redis-compatible vector search server (RESP2/RESP3, FT.* search commands).

Run it with ``nearkit serve`` or ``python -m nearkit.server``; embed it with
``Server(Config(...))``.
"""

from .server import Config, Server, add_serve_subcommand, main, run

__all__ = ["Config", "Server", "add_serve_subcommand", "main", "run"]
