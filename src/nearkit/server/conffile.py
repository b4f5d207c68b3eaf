"""A Redis-style configuration file for ``nearkit serve --config FILE``.

One directive per line, ``name value``, ``#`` comments, values quoted as in Redis's
files when they hold spaces. The directives the server acts on:

    requirepass <password>   # kept out of the process list, unlike --requirepass
    port <n>
    bind <address>           # the first address given
    maxclients <n>
    timeout <seconds>

Anything else is an error, as in Redis (a silently ignored line is a setting the
operator believes in and does not have).
"""

from __future__ import annotations

import shlex

# directive -> (Config field, converter)
DIRECTIVES = {
    "requirepass": ("requirepass", str),
    "port": ("port", int),
    "bind": ("host", str),
    "maxclients": ("max_clients", int),
    "timeout": ("timeout", int),
}


def read_config_file(path: str) -> dict:
    """{Config field: value} from the file; ValueError naming the line for a bad one."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            try:
                words = shlex.split(line, comments=True)
            except ValueError as exc:
                raise ValueError(f"{path} line {lineno}: {exc}") from None
            if not words:
                continue
            name, args = words[0].lower(), words[1:]
            if name not in DIRECTIVES:
                raise ValueError(f"{path} line {lineno}: unknown directive {words[0]!r} "
                                 f"(known: {', '.join(DIRECTIVES)})")
            if not args or (name != "bind" and len(args) != 1):
                raise ValueError(f"{path} line {lineno}: wrong number of arguments for {name}")
            field, convert = DIRECTIVES[name]
            try:
                out[field] = convert(args[0])
            except ValueError:
                raise ValueError(f"{path} line {lineno}: {name} needs an integer, got {args[0]!r}") from None
    return out
