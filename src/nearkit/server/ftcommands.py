"""FT.* commands: argument parsing and reply shapes (redis-vector-spec.md 4-7).

The work itself lives in ``search`` (indexes), ``query`` (query strings) and
``execute`` (running a parsed search against an index).
"""

from __future__ import annotations

from . import execute
from .commands import CommandError, command, parse_int
from .protocol import OK, Double, Error, Map, Set, Simple
from .query import QueryError
from .search import FieldSpec, SearchIndex
from .vectors import DTYPES, METRICS

S = Simple


def _t(b) -> str:
    return b.decode("utf-8", "replace") if isinstance(b, (bytes, bytearray)) else str(b)


def _err(msg: str):
    raise CommandError(msg)


def _index(ctx, name: bytes, missing: str):
    idx = ctx.server.search.lookup(name)
    if idx is None:
        _err(missing.format(name=_t(name)))
    return idx


# --------------------------------------------------------------------------------------------
# FT.CREATE / FT.ALTER
# --------------------------------------------------------------------------------------------

_TEXT_FLAGS = {"NOSTEM", "NOINDEX", "WITHSUFFIXTRIE", "INDEXEMPTY", "INDEXMISSING", "SORTABLE", "UNF"}
_TAG_FLAGS = {"CASESENSITIVE", "NOINDEX", "WITHSUFFIXTRIE", "INDEXEMPTY", "INDEXMISSING",
              "SORTABLE", "UNF"}
_NUM_FLAGS = {"NOINDEX", "INDEXMISSING", "SORTABLE", "UNF"}
_GEO_FLAGS = {"NOINDEX", "INDEXMISSING", "SORTABLE"}
_GEOSHAPE_FLAGS = {"NOINDEX", "INDEXMISSING", "FLAT", "SPHERICAL"}
# Widest vector a field may declare: a FLOAT64 vector of it is 512 KiB, well inside a
# request; Redis itself accepts any DIM and fails later, when memory runs out.
MAX_DIM = 65536
# Most links per graph node nearkit.HNSW builds (Redis accepts more).
MAX_M = 2048

_FLAT_PARAMS = {"TYPE", "DIM", "DISTANCE_METRIC", "INITIAL_CAP", "BLOCK_SIZE"}
_HNSW_PARAMS = {"TYPE", "DIM", "DISTANCE_METRIC", "INITIAL_CAP", "M", "EF_CONSTRUCTION",
                "EF_RUNTIME", "EPSILON"}


def _parse_vector(args, i, name):
    """VECTOR <ALGO> <nargs> k v ... at args[i] (just after VECTOR); returns (options, next i)."""
    if i >= len(args):
        _err("Bad arguments for vector similarity algorithm: Unknown argument")
    algo = _t(args[i]).upper()
    if algo not in ("FLAT", "HNSW"):
        _err("Bad arguments for vector similarity algorithm: Unknown argument")
    if i + 1 >= len(args):
        _err("Bad arguments for vector similarity number of parameters: Expected an argument, "
             "but none provided")
    try:
        nargs = int(args[i + 1])
    except ValueError:
        _err("Bad arguments for vector similarity number of parameters: Could not convert "
             "argument to expected type")
    if nargs % 2:
        _err(f"Bad number of arguments for vector similarity index: got {nargs} but expected "
             "even number as algorithm parameters (should be submitted as named arguments)")
    j = i + 2
    end = j + nargs
    if end > len(args):
        _err(f"Bad arguments for vector similarity {algo} index: Expected an argument, "
             "but none provided")
    allowed = _FLAT_PARAMS if algo == "FLAT" else _HNSW_PARAMS
    opts = {"algorithm": algo}
    while j < end:
        key = _t(args[j]).upper()
        val = _t(args[j + 1])
        if key not in allowed:
            _err(f"Bad arguments for algorithm {algo}: {_t(args[j])}")
        if key == "TYPE":
            if val.upper() not in DTYPES:
                _err(f"Bad arguments for vector similarity {algo} index type: Unknown argument")
            opts["TYPE"] = val.upper()
        elif key == "DISTANCE_METRIC":
            if val.upper() not in METRICS:
                _err(f"Bad arguments for vector similarity {algo} index metric: Unknown argument")
            opts["DISTANCE_METRIC"] = val.upper()
        elif key == "EPSILON":
            try:
                opts[key] = float(val)
            except ValueError:
                _err(f"Bad arguments for vector similarity {algo} index epsilon: Could not "
                     "convert argument to expected type")
        else:
            try:
                n = int(val)
            except ValueError:
                _err(f"Bad arguments for vector similarity {algo} index {key.lower()}: Could not "
                     "convert argument to expected type")
            if n < (1 if key in ("DIM", "M", "EF_CONSTRUCTION", "EF_RUNTIME") else 0) or n > 1 << 31 \
                    or (key == "DIM" and n > MAX_DIM) or (key == "M" and n > MAX_M):
                _err(f"Bad arguments for vector similarity {algo} index {key.lower()}: Value is "
                     "outside acceptable bounds")
            opts[key] = n
        j += 2
    for req in ("TYPE", "DIM", "DISTANCE_METRIC"):
        if req not in opts:
            _err(f"Missing mandatory parameter: cannot create {algo} index without specifying "
                 f"{req} argument")
    return opts, end


def parse_schema(args, i, on_json: bool, existing=()):
    """Parse field definitions from args[i:]; returns a list of FieldSpec."""
    fields = []
    names = {f.alias for f in existing}
    while i < len(args):
        ident = _t(args[i])
        i += 1
        alias = ident
        if i + 1 < len(args) and args[i].upper() == b"AS":
            alias = _t(args[i + 1])
            i += 2
        elif on_json and ident.startswith("$"):
            alias = ident
        if i >= len(args):
            _err(f"Field `{ident}` does not have a type")
        ftype = _t(args[i]).upper()
        i += 1
        options, flags = {}, []
        if ftype == "VECTOR":
            options, i = _parse_vector(args, i, alias)
        elif ftype in ("TEXT", "TAG", "NUMERIC", "GEO", "GEOSHAPE"):
            allowed = {"TEXT": _TEXT_FLAGS, "TAG": _TAG_FLAGS, "NUMERIC": _NUM_FLAGS,
                       "GEO": _GEO_FLAGS, "GEOSHAPE": _GEOSHAPE_FLAGS}[ftype]
            if ftype == "TEXT":
                options["WEIGHT"] = 1.0
            if ftype == "TAG":
                options["SEPARATOR"] = ","
            while i < len(args):
                opt = _t(args[i]).upper()
                if ftype == "TEXT" and opt in ("WEIGHT", "PHONETIC"):
                    if i + 1 >= len(args):
                        _err(f"{opt} requires an argument")
                    if opt == "WEIGHT":
                        try:
                            options["WEIGHT"] = float(args[i + 1])
                        except ValueError:
                            _err("Could not parse field spec")
                    else:  # dm:en, dm:fr, dm:pt, dm:es: Double Metaphone
                        matcher = _t(args[i + 1])
                        if matcher.lower() not in ("dm:en", "dm:fr", "dm:pt", "dm:es"):
                            _err("Matcher Format: <2 chars algorithm>:<2 chars language>. "
                                 "Support algorithms: double metaphone (dm). Supported "
                                 "languages: English (en), French (fr), Portuguese (pt) and "
                                 "Spanish (es)")
                        options["PHONETIC"] = matcher
                    i += 2
                elif ftype == "TAG" and opt == "SEPARATOR":
                    if i + 1 >= len(args):
                        _err("SEPARATOR requires an argument")
                    sep = _t(args[i + 1])
                    if len(sep) != 1:
                        _err(f"Tag separator must be a single character. Got `{sep}`")
                    options["SEPARATOR"] = sep
                    i += 2
                elif opt in allowed:
                    if opt not in flags:
                        flags.append(opt)
                    i += 1
                else:
                    break
        else:
            _err(f"Invalid field type for field `{ident}`")
        if "NOINDEX" in flags and "INDEXMISSING" in flags:
            _err(f"'Field `{ident}` cannot be defined with both `NOINDEX` and `INDEXMISSING`'")
        if alias in names:
            _err(f"Duplicate field in schema - {alias}")
        names.add(alias)
        fields.append(FieldSpec(ident, alias, ftype, options, flags))
    return fields


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
            on = _t(args[i + 1]).upper()
            if on not in ("HASH", "JSON"):
                return Error(f"Invalid rule type: {_t(args[i + 1])}")
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
            doc_filter = _t(args[i + 1])
            try:
                execute._Expr(doc_filter)
            except CommandError as exc:
                return Error(str(exc))
            i += 2
        elif kw == b"STOPWORDS" and i + 1 < len(args):
            n = parse_int(args[i + 1])
            if n < 0 or i + 2 + n > len(args):
                return Error("Bad arguments for STOPWORDS: Could not convert argument to expected type")
            stopwords = sorted({_t(w).lower() for w in args[i + 2:i + 2 + n]})
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
            return Error(f"Unknown argument `{_t(args[i])}`")
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
    idx = _index(ctx, args[0], "Unknown index name")
    i = 1
    if args[i].upper() == b"SKIPINITIALSCAN":
        i += 1
    if i + 1 >= len(args) or args[i].upper() != b"SCHEMA" or args[i + 1].upper() != b"ADD":
        return Error("Unknown argument `{}`".format(_t(args[i])))
    fields = parse_schema(args, i + 2, idx.on == "JSON", existing=idx.fields)
    if not fields:
        return Error("ERR wrong number of arguments for 'FT.ALTER' command")
    idx.add_fields(fields, ctx.server.keyspace)
    ctx.server.search.save(idx)
    return OK


@command("FT.DROPINDEX", -2, ("write",), display="FT.DROPINDEX")
def ft_dropindex(ctx, args):
    idx = ctx.server.search.drop(_index(ctx, args[0], "Unknown Index name").name)
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
    return Set([S(_t(n)) for n in ctx.server.search.indexes])


# --------------------------------------------------------------------------------------------
# FT.INFO
# --------------------------------------------------------------------------------------------

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
    idx = _index(ctx, args[0], "Unknown index name")
    resp3 = ctx.resp3
    mb = 1024.0 * 1024.0
    vec_bytes = sum(v.memory_bytes for v in idx.vectors.values())
    n = idx.num_docs
    definition = [(S("key_type"), S(idx.on)),
                  (S("prefixes"), [S(_t(p)) for p in idx.prefixes])]
    if idx.options.get("filter"):
        definition.append((S("filter"), S(idx.options["filter"])))
    definition.append((S("default_score"), Double(idx.options.get("default_score", 1.0))))
    zero = Double(0.0)
    field_stats = []
    for f in idx.fields:
        field_stats.append(Map([(S("identifier"), S(f.identifier)), (S("attribute"), S(f.alias)),
                                (S("Index Errors"), _errors_block(0, ("N/A", "N/A")))]))
    return Map([
        (S("index_name"), S(_t(idx.name))),
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


# --------------------------------------------------------------------------------------------
# FT.SEARCH
# --------------------------------------------------------------------------------------------

_SEARCH_FLAGS = {k: k.decode().lower() for k in (
    b"NOCONTENT", b"VERBATIM", b"NOSTOPWORDS", b"WITHSCORES", b"WITHPAYLOADS", b"WITHSORTKEYS",
    b"INORDER", b"EXPLAINSCORE")}


def parse_params(args, i, positions_out=None):
    n = args[i + 1] if i + 1 < len(args) else None
    if n is None:
        _err("Bad arguments for PARAMS: Expected an argument, but none provided")
    try:
        n = int(n)
    except ValueError:
        _err("Bad arguments for PARAMS: Could not convert argument to expected type")
    if n % 2:
        _err("Parameters must be specified in PARAM VALUE pairs")
    if i + 2 + n > len(args):
        _err("Bad arguments for PARAMS: Expected an argument, but none provided")
    params = {}
    positions = {}
    for j in range(i + 2, i + 2 + n, 2):
        name = _t(args[j])
        if name in params:
            _err(f"Duplicate parameter `{name}`")
        params[name] = args[j + 1]
        positions[name] = j + 1
    if positions_out is not None:
        positions_out.update(positions)
    return params, i + 2 + n


def _parse_dialect(args, i):
    try:
        d = int(args[i + 1])
    except (ValueError, IndexError):
        d = 0
    if not 1 <= d <= 4:
        _err("DIALECT requires a non negative integer >=1 and <= 4")
    return d


def _parse_highlight(req, args, i):
    """SUMMARIZE [FIELDS n f..] [FRAGS n] [LEN n] [SEPARATOR s] | HIGHLIGHT [FIELDS n f..]
    [TAGS open close] at args[i]; returns the index after it."""
    kw = args[i].upper()
    if kw == b"SUMMARIZE":
        spec = {"fields": None, "frags": 3, "len": 20, "sep": "... "}
    else:
        spec = {"fields": None, "open": "<b>", "close": "</b>"}
    i += 1
    while i < len(args):
        opt = args[i].upper()
        if opt == b"FIELDS":
            n = parse_int(args[i + 1]) if i + 1 < len(args) else -1
            if n < 0 or i + 2 + n > len(args):
                _err(f"Bad arguments for FIELDS: Expected an argument, but none provided")
            spec["fields"] = [_t(a) for a in args[i + 2:i + 2 + n]]
            i += 2 + n
        elif kw == b"SUMMARIZE" and opt in (b"FRAGS", b"LEN") and i + 1 < len(args):
            try:
                spec[_t(opt).lower()] = int(args[i + 1])
            except ValueError:
                _err(f"Bad arguments for {_t(opt)}: Could not convert argument to expected type")
            i += 2
        elif kw == b"SUMMARIZE" and opt == b"SEPARATOR" and i + 1 < len(args):
            spec["sep"] = _t(args[i + 1])
            i += 2
        elif kw == b"HIGHLIGHT" and opt == b"TAGS" and i + 2 < len(args):
            spec["open"], spec["close"] = _t(args[i + 1]), _t(args[i + 2])
            i += 3
        else:
            break
    if kw == b"SUMMARIZE":
        req.summarize = spec
    else:
        req.highlight = spec
    return i


@command("FT.SEARCH", -2, ("readonly",), display="FT.SEARCH")
def ft_search(ctx, args):
    if len(args) < 2:
        return Error("No query string provided")
    job = execute.fast_knn_job(ctx, args)
    if job is not None:
        return job  # the server runs it, batched with other connections' (KnnJob)
    idx = _index(ctx, args[0], "{name}: no such index")
    req = execute.SearchRequest(query=_t(args[1]), dialect=ctx.server.search.default_dialect)
    i = 2
    n_args = len(args)
    while i < n_args:
        kw = args[i].upper()
        pos = i - 1
        flag = _SEARCH_FLAGS.get(kw)
        if flag is not None:
            setattr(req, flag, True)
            i += 1
        elif kw == b"LIMIT":
            if i + 2 >= len(args):
                return Error("LIMIT requires two arguments")
            try:
                off, num = int(args[i + 1]), int(args[i + 2])
            except ValueError:
                return Error("LIMIT needs two numeric arguments")
            if off < 0 or num < 0:
                return Error("LIMIT needs two numeric arguments")
            if off > 10000:
                return Error("OFFSET exceeds maximum of 10000")
            req.offset, req.num = off, num
            i += 3
        elif kw == b"RETURN":
            try:
                n = int(args[i + 1])
            except (ValueError, IndexError):
                return Error("Bad arguments for RETURN: Could not convert argument to expected type")
            if i + 2 + n > len(args):
                return Error("Bad arguments for RETURN: Expected an argument, but none provided")
            items = args[i + 2:i + 2 + n]
            ret, j = [], 0
            while j < len(items):
                fname = _t(items[j])
                label = fname
                if j + 1 < len(items) and items[j + 1].upper() == b"AS":
                    if j + 2 >= len(items):
                        return Error("Bad arguments for AS: Expected an argument, but none provided")
                    label = _t(items[j + 2])
                    j += 3
                else:
                    j += 1
                if all(label != seen for _, seen in ret):  # Redis returns a field once
                    ret.append((fname, label))
            req.return_fields = ret
            if n == 0:
                req.nocontent = True
            i += 2 + n
        elif kw == b"SORTBY":
            if i + 1 >= len(args):
                return Error("Bad arguments for SORTBY: Expected an argument, but none provided")
            req.sortby = _t(args[i + 1]).lstrip("@")
            i += 2
            while i < len(args) and args[i].upper() in (b"ASC", b"DESC", b"WITHCOUNT"):
                if args[i].upper() == b"DESC":
                    req.sort_desc = True
                elif args[i].upper() == b"ASC":
                    req.sort_desc = False
                i += 1
        elif kw == b"PARAMS":
            req.params, i = parse_params(args, i, req.param_pos)
        elif kw == b"DIALECT":
            req.dialect = _parse_dialect(args, i)
            i += 2
        elif kw == b"FILTER":
            if i + 3 >= len(args):
                return Error("Bad arguments for FILTER: Expected an argument, but none provided")
            req.numeric_filters.append((_t(args[i + 1]), _t(args[i + 2]), _t(args[i + 3])))
            i += 4
        elif kw == b"GEOFILTER":
            if i + 5 >= len(args):
                return Error("Bad arguments for GEOFILTER: Expected an argument, but none provided")
            try:
                lon, lat, radius = (float(args[i + k]) for k in (2, 3, 4))
            except ValueError:
                return Error("Bad arguments for GEOFILTER: Could not convert argument to expected type")
            unit = _t(args[i + 5]).lower()
            if unit not in ("m", "km", "mi", "ft"):
                return Error("Bad arguments for GEOFILTER: Unknown argument")
            req.numeric_filters.append((_t(args[i + 1]), lon, lat, radius, unit))
            i += 6
        elif kw in (b"INKEYS", b"INFIELDS"):
            n = parse_int(args[i + 1]) if i + 1 < len(args) else 0
            if kw == b"INKEYS":
                req.inkeys = list(args[i + 2:i + 2 + n])
            else:
                req.infields = [_t(a) for a in args[i + 2:i + 2 + n]]
            i += 2 + n
        elif kw == b"SCORER" and i + 1 < len(args):
            req.scorer = execute._check_scorer(args[i + 1])
            i += 2
        elif kw in (b"SUMMARIZE", b"HIGHLIGHT"):
            i = _parse_highlight(req, args, i)
        elif kw == b"SLOP" and i + 1 < len(args):
            try:
                req.slop = int(args[i + 1])
            except ValueError:
                return Error("Bad arguments for SLOP: Could not convert argument to expected type")
            i += 2
        elif kw in (b"SLOP", b"TIMEOUT", b"LANGUAGE", b"EXPANDER", b"SCORER", b"PAYLOAD"):
            if i + 1 >= len(args):
                return Error(f"Bad arguments for {_t(kw)}: Expected an argument, but none provided")
            i += 2
        else:
            return Error(f"Unknown argument `{_t(args[i])}` at position {pos} for <main>")
    idx.number_of_uses += 1
    return execute.search(ctx, idx, req, args)


# --------------------------------------------------------------------------------------------
# FT.AGGREGATE (common cases), FT.CURSOR, FT.CONFIG, FT.TAGVALS, FT.EXPLAIN
# --------------------------------------------------------------------------------------------

@command("FT.AGGREGATE", -3, ("readonly",), display="FT.AGGREGATE")
def ft_aggregate(ctx, args):
    idx = _index(ctx, args[0], "{name}: no such index")
    return execute.aggregate(ctx, idx, _t(args[1]), args[2:])


@command("FT.CURSOR", -4, ("readonly",), display="FT.CURSOR")
def ft_cursor(ctx, args):
    return execute.cursor(ctx, args)


# FT.CONFIG options nearkit keeps (as Redis's search module names them), with their checks.
_CONFIG_INT = {"MAXSEARCHRESULTS", "MAXAGGREGATERESULTS", "TIMEOUT", "DEFAULT_DIALECT",
               "MINPREFIX", "MAXEXPANSIONS", "MAXPREFIXEXPANSIONS", "CURSOR_MAX_IDLE"}


@command("FT.CONFIG", -3, ("readonly",), display="FT.CONFIG")
def ft_config(ctx, args):
    conf = ctx.server.search.config
    sub = args[0].upper()
    if sub == b"GET":
        name = _t(args[1]).upper()
        items = [(k, v) for k, v in conf.items() if name in ("*", k)]
        if ctx.resp3:
            return Map([(k, v) for k, v in items])
        return [[k, v] for k, v in items]
    if sub == b"SET":
        if len(args) < 3:
            return Error("ERR wrong number of arguments for 'FT.CONFIG' command")
        name, value = _t(args[1]).upper(), _t(args[2])
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
    idx = _index(ctx, args[0], "Unknown index name")
    f = idx.field(_t(args[1]))
    if f is None or f.type != "TAG":
        return Error("Not a tag field")
    vals = set()
    for rec in idx.slot_rec.values():
        vals.update(rec.get(f.alias, ()))
    return Set(sorted(vals))


@command("FT.EXPLAIN", -3, ("readonly",), display="FT.EXPLAIN")
def ft_explain(ctx, args):
    _index(ctx, args[0], "{name}: no such index")
    from .query import parse_query

    params, dialect, i = {}, ctx.server.search.default_dialect, 2
    while i < len(args):
        if args[i].upper() == b"PARAMS":
            params, i = parse_params(args, i)
        elif args[i].upper() == b"DIALECT":
            dialect = _parse_dialect(args, i)
            i += 2
        else:
            i += 1
    try:
        plan = parse_query(_t(args[1]), params, dialect)
    except QueryError as exc:
        return Error(str(exc))
    for name in ([plan.knn.vector_param] if plan.knn is not None else []) + [
            r.vector_param for r in plan.ranges]:
        if name not in params:
            return Error(f"No such parameter `{name}`")
    from .explain import render

    idx = ctx.server.search.lookup(args[0])
    tree = execute.drop_stopwords(plan.tree, idx.stopwords) or plan.tree
    return render(tree, plan.knn, {f.alias for f in idx.fields if f.type == "TAG"})


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

