"""FT.* commands on indexes themselves: FT.CREATE, FT.ALTER, FT.DROPINDEX, the aliases,
FT._LIST, FT.INFO, FT.CONFIG, FT.TAGVALS and the dictionaries (FT.DICT*)."""

from __future__ import annotations

from ..commands import CommandError, as_str, command, parse_int
from ..protocol import OK, Double, Error, Map, Set, Simple
from ..search import FieldSpec, SearchIndex
from .args import lookup_index
from .expressions import Expr
from .schema import parse_schema

S = Simple


_CREATE_FLAGS = {b"MAXTEXTFIELDS", b"NOOFFSETS", b"NOHL", b"NOFIELDS", b"NOFREQS",
                 b"SKIPINITIALSCAN", b"ASYNC"}
_CREATE_1ARG = {b"LANGUAGE", b"LANGUAGE_FIELD", b"SCORE", b"SCORE_FIELD", b"PAYLOAD_FIELD"}


@command("FT.CREATE", -2, ("write",), display="FT.CREATE")
def ft_create(ctx, args):
    name = args[0]
    on, prefixes, score, stopwords, skip_scan = "HASH", [], 1.0, None, False
    text_flags = set()  # NOOFFSETS / NOHL: no SUMMARIZE / HIGHLIGHT
    doc_filter = temporary = None
    i = 1
    while i < len(args):
        kw = args[i].upper()
        if kw == b"SCHEMA":
            break
        if kw == b"ON" and i + 1 < len(args):
            on = as_str(args[i + 1]).upper()
            if on not in ("HASH", "JSON"):
                return Error(f"Invalid rule type: {as_str(args[i + 1])}")
            i += 2
        elif kw == b"PREFIX" and i + 1 < len(args):
            try:
                n = int(args[i + 1])
            except ValueError:
                return Error("Bad arguments for PREFIX: Could not convert argument to expected type")
            prefixes = list(args[i + 2:i + 2 + n])
            i += 2 + n
        elif kw == b"TEMPORARY":
            try:
                temporary = int(args[i + 1])
                if temporary < 0:  # 0: Redis accepts it; the index then never expires
                    raise ValueError
            except (IndexError, ValueError):
                return Error("Bad arguments for TEMPORARY: Could not convert argument to expected type")
            i += 2
        elif kw == b"FILTER":
            if i + 1 >= len(args):
                return Error("Bad arguments for FILTER: Expected an argument, but none provided")
            doc_filter = as_str(args[i + 1])
            try:
                Expr(doc_filter)
            except CommandError as exc:
                return Error(str(exc))
            i += 2
        elif kw == b"STOPWORDS" and i + 1 < len(args):
            n = parse_int(args[i + 1])
            if n < 0 or i + 2 + n > len(args):
                return Error("Bad arguments for STOPWORDS: Could not convert argument to expected type")
            stopwords = sorted({as_str(w).lower() for w in args[i + 2:i + 2 + n]})
            i += 2 + n
        elif kw == b"SCORE" and i + 1 < len(args):
            try:
                score = float(args[i + 1])
            except ValueError:
                return Error("Invalid score")
            i += 2
        elif kw in _CREATE_1ARG and i + 1 < len(args):
            i += 2
        elif kw in _CREATE_FLAGS:
            skip_scan = skip_scan or kw == b"SKIPINITIALSCAN"
            if kw in (b"NOOFFSETS", b"NOHL"):
                text_flags.add(kw.decode().lower())
            i += 1
        else:
            return Error(f"Unknown argument `{as_str(args[i])}`")
    if i >= len(args) - 1:
        return Error("ERR wrong number of arguments for 'FT.CREATE' command")
    if name in ctx.server.search.indexes:
        return Error("Index already exists")
    fields = parse_schema(args, i + 1, on == "JSON")
    options = {"default_score": score}
    if skip_scan:
        options["skip_initial_scan"] = True
    for flag in sorted(text_flags):
        options[flag] = True
    if stopwords is not None:
        options["stopwords"] = stopwords  # a custom list (default: Redis's own)
    if doc_filter is not None:
        options["filter"] = doc_filter
    if temporary is not None:
        options["temporary"] = temporary  # seconds unused before the index is dropped
    idx = SearchIndex(name, on, prefixes or [b""], fields, options)
    ctx.server.search.create(idx)
    return OK


@command("FT.ALTER", -5, ("write",), display="FT.ALTER")
def ft_alter(ctx, args):
    idx = lookup_index(ctx, args[0], "Unknown index name")
    i = 1
    if args[i].upper() == b"SKIPINITIALSCAN":
        i += 1
    if i + 1 >= len(args) or args[i].upper() != b"SCHEMA" or args[i + 1].upper() != b"ADD":
        return Error("Unknown argument `{}`".format(as_str(args[i])))
    fields = parse_schema(args, i + 2, idx.on == "JSON", existing=idx.fields)
    if not fields:
        return Error("ERR wrong number of arguments for 'FT.ALTER' command")
    idx.add_fields(fields, ctx.server.keyspace)
    ctx.server.search.save(idx)
    return OK


@command("FT.DROPINDEX", -2, ("write",), display="FT.DROPINDEX")
def ft_dropindex(ctx, args):
    idx = ctx.server.search.drop(lookup_index(ctx, args[0], "Unknown Index name").name)
    if len(args) > 1 and args[1].upper() == b"DD":
        ks = ctx.server.keyspace
        for key in [k for k in idx.slot_key if k is not None]:
            ks.delete(key)
    return OK


@command("FT.ALIASADD", 3, ("write",), display="FT.ALIASADD")
def ft_aliasadd(ctx, args):
    engine = ctx.server.search
    if args[0] in engine.aliases:
        return Error("Alias already exists")
    idx = engine.indexes.get(args[1])
    if idx is None:
        return Error("Unknown index name (or name is an alias itself)")
    engine.set_alias(args[0], idx)
    return OK


@command("FT.ALIASUPDATE", 3, ("write",), display="FT.ALIASUPDATE")
def ft_aliasupdate(ctx, args):
    engine = ctx.server.search
    idx = engine.indexes.get(args[1])
    if idx is None:
        return Error("Unknown index name (or name is an alias itself)")
    engine.set_alias(args[0], idx)
    return OK


@command("FT.ALIASDEL", 2, ("write",), display="FT.ALIASDEL")
def ft_aliasdel(ctx, args):
    engine = ctx.server.search
    if args[0] not in engine.aliases:
        return Error("Alias does not exist")
    engine.set_alias(args[0], None)
    return OK


@command("FT._LIST", 1, ("readonly",), display="FT._LIST")
def ft_list(ctx, args):
    ctx.server.search.expire_temporary()
    return Set([S(as_str(n)) for n in ctx.server.search.indexes])


_FLAG_ORDER = ["CASESENSITIVE", "SORTABLE", "UNF", "NOSTEM", "NOINDEX", "WITHSUFFIXTRIE",
               "INDEXEMPTY", "INDEXMISSING"]


def _info_flags(f: FieldSpec) -> list:
    """The field's flags as FT.INFO lists them: Redis's order; a sortable NUMERIC is UNF."""
    flags = set(f.flags)
    if "SORTABLE" in flags and f.type == "NUMERIC":
        flags.add("UNF")
    if "SORTABLE" not in flags:
        flags.discard("UNF")
    return [x for x in _FLAG_ORDER if x in flags] + sorted(flags - set(_FLAG_ORDER))


def _attr(f: FieldSpec, resp3: bool):
    pairs = [(S("identifier"), S(f.identifier)), (S("attribute"), S(f.alias)),
             (S("type"), S(f.type))]
    if f.type == "VECTOR":
        o = f.options
        pairs += [(S("algorithm"), S(o["algorithm"])), (S("data_type"), S(o["TYPE"])),
                  (S("dim"), int(o["DIM"])), (S("distance_metric"), S(o["DISTANCE_METRIC"]))]
        if o["algorithm"] == "HNSW":
            pairs += [(S("M"), int(o.get("M", 16))),
                      (S("ef_construction"), int(o.get("EF_CONSTRUCTION", 200)))]
    elif f.type == "TAG":
        pairs.append((S("SEPARATOR"), S(f.options.get("SEPARATOR", ","))))
    elif f.type == "TEXT":
        pairs.append((S("WEIGHT"), Double(f.options.get("WEIGHT", 1.0))))
    elif f.type == "GEOSHAPE":  # the coordinate system is shown as a value, not a flag
        pairs.append((S("coord_system"), S("FLAT" if "FLAT" in f.flags else "SPHERICAL")))
    flags = [S(x) for x in _info_flags(f) if not (f.type == "GEOSHAPE" and x in ("FLAT", "SPHERICAL"))]
    if resp3:
        pairs.append((S("flags"), flags))
        return Map(pairs)
    flat = []
    for k, v in pairs:
        flat += [k, v]
    return flat + flags


def _errors_block(count, err):
    return Map([(S("indexing failures"), count), (S("last indexing error"), S(err[0])),
                (S("last indexing error key"), err[1].encode())])


@command("FT.INFO", 2, ("readonly",), display="FT.INFO")
def ft_info(ctx, args):
    idx = lookup_index(ctx, args[0], "Unknown index name")
    resp3 = ctx.resp3
    mb = 1024.0 * 1024.0
    vec_bytes = sum(v.memory_bytes for v in idx.vectors.values())
    n = idx.num_docs
    definition = [(S("key_type"), S(idx.on)),
                  (S("prefixes"), [S(as_str(p)) for p in idx.prefixes])]
    if idx.options.get("filter"):
        definition.append((S("filter"), S(idx.options["filter"])))
    definition.append((S("default_score"), Double(idx.options.get("default_score", 1.0))))
    zero = Double(0.0)
    field_stats = []
    for f in idx.fields:
        field_stats.append(Map([(S("identifier"), S(f.identifier)), (S("attribute"), S(f.alias)),
                                (S("Index Errors"), _errors_block(0, ("N/A", "N/A")))]))
    return Map([
        (S("index_name"), S(as_str(idx.name))),
        (S("index_options"), []),
        (S("index_definition"), Map(definition)),
        (S("attributes"), [_attr(f, resp3) for f in idx.fields]),
        (S("num_docs"), n),
        (S("max_doc_id"), len(idx.slot_key)),
        (S("num_terms"), 0),
        (S("num_records"), n * max(1, len(idx.fields))),
        (S("inverted_sz_mb"), zero),
        (S("vector_index_sz_mb"), Double(vec_bytes / mb)),
        (S("total_inverted_index_blocks"), 0),
        (S("offset_vectors_sz_mb"), zero),
        (S("doc_table_size_mb"), zero),
        (S("sortable_values_size_mb"), zero),
        (S("key_table_size_mb"), zero),
        (S("tag_overhead_sz_mb"), zero),
        (S("text_overhead_sz_mb"), zero),
        (S("total_index_memory_sz_mb"), Double(vec_bytes / mb)),
        (S("geoshapes_sz_mb"), zero),
        (S("records_per_doc_avg"), Double(float(len(idx.fields)) if n else 0.0)),
        (S("bytes_per_record_avg"), zero),
        (S("offsets_per_term_avg"), zero),
        (S("offset_bits_per_record_avg"), zero),
        (S("hash_indexing_failures"), idx.failures),
        (S("total_indexing_time"), zero),
        (S("indexing"), 0),
        (S("percent_indexed"), Double(1.0)),
        (S("number_of_uses"), idx.number_of_uses),
        (S("cleaning"), 0),
        (S("gc_stats"), Map([(S(k), zero) for k in (
            "bytes_collected", "total_ms_run", "total_cycles", "average_cycle_time_ms",
            "last_run_time_ms", "gc_numeric_trees_missed", "gc_blocks_denied")])),
        (S("cursor_stats"), Map([(S("global_idle"), 0), (S("global_total"), 0),
                                 (S("index_capacity"), 128), (S("index_total"), 0)])),
    ] + ([(S("stopwords_list"), [S(w) for w in idx.options["stopwords"]])]
         if "stopwords" in idx.options else []) + [
        (S("dialect_stats"), Map([(S(f"dialect_{d}"), 0) for d in (1, 2, 3, 4)])),
        (S("Index Errors"), _errors_block(idx.failures, idx.last_error)),
        (S("field statistics"), field_stats),
    ])


# FT.CONFIG options nearkit keeps (as Redis's search module names them), with their checks.
_CONFIG_INT = {"MAXSEARCHRESULTS", "MAXAGGREGATERESULTS", "TIMEOUT", "DEFAULT_DIALECT",
               "MINPREFIX", "MAXEXPANSIONS", "MAXPREFIXEXPANSIONS", "CURSOR_MAX_IDLE"}


@command("FT.CONFIG", -3, ("readonly",), display="FT.CONFIG")
def ft_config(ctx, args):
    conf = ctx.server.search.config
    sub = args[0].upper()
    if sub == b"GET":
        name = as_str(args[1]).upper()
        items = [(k, v) for k, v in conf.items() if name in ("*", k)]
        if ctx.resp3:
            return Map([(k, v) for k, v in items])
        return [[k, v] for k, v in items]
    if sub == b"SET":
        if len(args) < 3:
            return Error("ERR wrong number of arguments for 'FT.CONFIG' command")
        name, value = as_str(args[1]).upper(), as_str(args[2])
        if name not in conf:
            return Error("Invalid option")
        if name in _CONFIG_INT:
            try:
                n = int(value)
            except ValueError:
                return Error("Could not convert argument to expected type")
            if name == "DEFAULT_DIALECT" and not 1 <= n <= 4:
                return Error("Default dialect version cannot be higher than 4" if n > 4
                             else "Default dialect version cannot be lower than 1")
            if n < 0:
                return Error("Value is outside acceptable bounds")
            value = str(n)
        conf[name] = value
        return OK
    return Error("Unknown subcommand")


@command("FT.TAGVALS", 3, ("readonly",), display="FT.TAGVALS")
def ft_tagvals(ctx, args):
    idx = lookup_index(ctx, args[0], "Unknown index name")
    f = idx.field(as_str(args[1]))
    if f is None or f.type != "TAG":
        return Error("Not a tag field")
    vals = set()
    for rec in idx.slot_rec.values():
        vals.update(rec.get(f.alias, ()))
    return Set(sorted(vals))


@command("FT.DICTADD", -3, ("write",), display="FT.DICTADD")
def ft_dictadd(ctx, args):
    words = ctx.server.search.dicts.setdefault(args[0], set())
    before = len(words)
    words.update(args[1:])
    if len(words) != before:
        ctx.server.search.save_dict(args[0])
    return len(words) - before


@command("FT.DICTDEL", -3, ("write",), display="FT.DICTDEL")
def ft_dictdel(ctx, args):
    dicts = ctx.server.search.dicts
    words = dicts.get(args[0], set())
    before = len(words)
    words.difference_update(args[1:])
    if len(words) != before:
        ctx.server.search.save_dict(args[0])
    return before - len(words)


@command("FT.DICTDUMP", 2, ("readonly",), display="FT.DICTDUMP")
def ft_dictdump(ctx, args):
    words = ctx.server.search.dicts.get(args[0])
    if words is None:
        return Error("could not open dict key")
    return Set(sorted(words))
