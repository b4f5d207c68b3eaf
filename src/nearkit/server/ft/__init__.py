"""FT.*: RediSearch's commands over the server's search indexes (``server/search.py``).

One job a module; imports go down this list:

- ``args``        FT.SEARCH / FT.AGGREGATE argument helpers, ``SearchRequest``
- ``schema``      FT.CREATE / FT.ALTER SCHEMA parsing
- ``expressions`` the APPLY / FILTER expression interpreter (also FT.CREATE FILTER)
- ``plan``        query text -> a cached plan -> ``Prepared`` (stop words, stems, filters)
- ``select``      which documents a prepared query matches: filter masks, KNN, ranges
- ``render``      FT.SEARCH / FT.AGGREGATE replies
- ``fastpath``    repeated plain KNN queries without parsing, batched across connections
- ``aggregate``   the FT.AGGREGATE pipeline (LOAD, GROUPBY/REDUCE, APPLY, FILTER, ...)
- ``cursors``     WITHCURSOR / FT.CURSOR
- ``state``       ``FtState``: the plan cache, fast-path entries and cursors, one per
                  server (``server.ft``), so two servers in one process share none
- ``explain``     FT.EXPLAIN's tree text
- ``cmd_index``, ``cmd_search``, ``cmd_aggregate``, ``cmd_docs``: the FT.* command
  handlers (registered when imported, by ``server/handlers.py``)

TEXT search (scoring, highlighting, suggestions, FT.PROFILE) is ``server/fulltext/``.
"""


