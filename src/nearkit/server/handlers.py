"""Every module that registers commands in the table (``commands.COMMANDS``), imported
once, in this order, by the server. A new command module is added here."""

from . import cmd_server  # noqa: F401  PING, AUTH, HELLO, CLIENT, INFO, CONFIG, COMMAND, ...
from . import cmd_keys  # noqa: F401  DEL, EXISTS, EXPIRE, TTL, TYPE, SCAN, RENAME, ...
from . import cmd_strings  # noqa: F401  GET, SET, MGET, INCR
from . import cmd_hashes  # noqa: F401  HSET, HGET, HGETALL, ...
from . import cmd_transactions  # noqa: F401  MULTI, EXEC, DISCARD, WATCH
from . import cmd_json  # noqa: F401  JSON.*
from . import acl  # noqa: F401  ACL
from .ft import cmd_index  # noqa: F401  FT.CREATE, FT.ALTER, FT.INFO, FT.DICT*, ...
from .ft import cmd_search  # noqa: F401  FT.SEARCH, FT.EXPLAIN
from .ft import cmd_aggregate  # noqa: F401  FT.AGGREGATE, FT.CURSOR
from .ft import cmd_docs  # noqa: F401  FT.MGET, FT.GET, FT.DEBUG
from .fulltext import commands as _textcommands  # noqa: F401  FT.SUG*, SPELLCHECK, SYN*
from .fulltext import profile as _profile  # noqa: F401  FT.PROFILE
from . import cmd_scripting  # noqa: F401  EVAL, EVALSHA, SCRIPT
