"""FT.SUG*, FT.SPELLCHECK, FT.SYNUPDATE/SYNDUMP and FT.DEL (FT.MGET / FT.GET: ../ft/cmd_docs.py)."""

from __future__ import annotations

from ...store.filters import _within_distance, text_tokens
from ..commands import CommandError, command, parse_int
from ..protocol import OK, Double, Error, Map
from .rank import fmt_score
from .suggest import SugDict

WRONGTYPE = "WRONGTYPE Operation against a key holding the wrong kind of value"


def _t(b) -> str:
    return b.decode("utf-8", "replace") if isinstance(b, (bytes, bytearray)) else str(b)


def _index(ctx, name, missing="Unknown index name"):
    idx = ctx.server.search.lookup(name)
    if idx is None:
        raise CommandError(missing)
    return idx


# -- suggestions ------------------------------------------------------------------------------

def _sug(ctx, key, create=False):
    ks = ctx.server.keyspace
    v = ks.get(key)
    if v is None:
        if not create:
            return None
        v = SugDict()
    elif type(v) is not SugDict:
        raise CommandError(WRONGTYPE)
    return v


@command("FT.SUGADD", -4, ("write",), (1, 1, 1), display="FT.SUGADD")
def ft_sugadd(ctx, args):
    key, string = args[0], args[1]
    try:
        score = float(args[2])
    except ValueError:
        return Error("ERR invalid score")
    incr, payload, i = False, None, 3
    while i < len(args):
        kw = args[i].upper()
        if kw == b"INCR":
            incr = True
            i += 1
        elif kw == b"PAYLOAD" and i + 1 < len(args):
            payload = args[i + 1]
            i += 2
        else:
            return Error(f"Unknown argument `{_t(args[i])}`")
    d = _sug(ctx, key, create=True)
    n = d.add(string, score, incr, payload)
    ctx.server.keyspace.set(key, d, keep_ttl=True)
    return n


@command("FT.SUGGET", -3, ("readonly",), (1, 1, 1), display="FT.SUGGET")
def ft_sugget(ctx, args):
    key, prefix = args[0], args[1]
    fuzzy = withscores = withpayloads = False
    num, i = 5, 2
    while i < len(args):
        kw = args[i].upper()
        if kw == b"FUZZY":
            fuzzy = True
        elif kw == b"WITHSCORES":
            withscores = True
        elif kw == b"WITHPAYLOADS":
            withpayloads = True
        elif kw == b"TRIM":
            pass
        elif kw == b"MAX" and i + 1 < len(args):
            num = parse_int(args[i + 1])
            if num < 0:
                return Error("Invalid value for MAX")
            i += 1
        else:
            return Error(f"Unknown argument `{_t(args[i])}`")
        i += 1
    if not prefix:
        return Error("Invalid query length")
    d = _sug(ctx, key)
    if d is None:
        return None
    out = []
    for score, s, payload in d.search(prefix, num, fuzzy):
        out.append(s)
        if withscores:
            out.append(Double(score) if ctx.resp3 else fmt_score(score))
        if withpayloads:
            out.append(payload)
    return out


@command("FT.SUGDEL", 3, ("write",), (1, 1, 1), display="FT.SUGDEL")
def ft_sugdel(ctx, args):
    d = _sug(ctx, args[0])
    if d is None or args[1] not in d.entries:
        return 0
    del d.entries[args[1]]
    ks = ctx.server.keyspace
    if d.entries:
        ks.set(args[0], d, keep_ttl=True)
    else:
        ks.delete(args[0])
    return 1


@command("FT.SUGLEN", 2, ("readonly",), (1, 1, 1), display="FT.SUGLEN")
def ft_suglen(ctx, args):
    d = _sug(ctx, args[0])
    return 0 if d is None else len(d.entries)


# -- synonyms -----------------------------------------------------------------------------------

@command("FT.SYNUPDATE", -4, ("write",), display="FT.SYNUPDATE")
def ft_synupdate(ctx, args):
    idx = _index(ctx, args[0])
    gid = _t(args[1])
    i, skip = 2, False
    if args[i].upper() == b"SKIPINITIALSCAN":
        skip, i = True, i + 1
    words = [_t(w).lower() for w in args[i:]]
    if not words:
        return Error("wrong number of arguments for 'FT.SYNUPDATE' command")
    syn = idx.options.setdefault("synonyms", {})
    group = syn.setdefault(gid, [])
    for w in words:
        if w not in group:
            group.append(w)
    ctx.server.search.save(idx)  # kept with the index definition
    if not skip:  # Redis re-indexes the documents unless told not to
        idx.backfill(ctx.server.keyspace)
    return OK


@command("FT.SYNDUMP", 2, ("readonly",), display="FT.SYNDUMP")
def ft_syndump(ctx, args):
    idx = _index(ctx, args[0])
    by_word: dict = {}
    for gid, words in (idx.options.get("synonyms") or {}).items():
        for w in words:
            by_word.setdefault(w, []).append(gid)
    items = [(w.encode(), [g.encode() for g in gids]) for w, gids in by_word.items()]
    if ctx.resp3:
        return Map(items)
    return [x for kv in items for x in kv]


# -- spelling -----------------------------------------------------------------------------------

@command("FT.SPELLCHECK", -3, ("readonly",), display="FT.SPELLCHECK")
def ft_spellcheck(ctx, args):
    idx = _index(ctx, args[0], f"{_t(args[0])}: no such index")
    distance, include, exclude, i = 1, [], [], 2
    dicts = ctx.server.search.dicts
    while i < len(args):
        kw = args[i].upper()
        if kw == b"DISTANCE" and i + 1 < len(args):
            try:
                distance = int(args[i + 1])
            except ValueError:
                return Error("bad distance given, distance must be a natural number between 1 to 4")
            if not 1 <= distance <= 4:
                return Error("bad distance given, distance must be a natural number between 1 to 4")
            i += 2
        elif kw == b"TERMS" and i + 2 < len(args):
            mode = args[i + 1].upper()
            if mode not in (b"INCLUDE", b"EXCLUDE"):
                return Error("bad format for TERMS, expected INCLUDE or EXCLUDE")
            if args[i + 2] not in dicts:
                return Error(f"Dict does not exist: {_t(args[i + 2])}")
            (include if mode == b"INCLUDE" else exclude).append(dicts[args[i + 2]])
            i += 3
        elif kw == b"DIALECT" and i + 1 < len(args):
            i += 2
        else:
            return Error(f"Unknown argument `{_t(args[i])}`")
    text = idx.text
    # index words -> documents holding them (stems, phonetic codes and synonym groups aside)
    vocab = {} if text is None else {t: s for t, s in text.term_docs.items()
                                     if t[:1] not in ("+", "<", "~")}
    n_docs = max(idx.num_docs, 1)
    excluded = {_t(w).lower() for d in exclude for w in d}
    rows = []
    seen = set()
    for word in text_tokens(_t(args[1])):
        if word in seen:
            continue
        seen.add(word)
        if word in vocab or word in excluded:
            continue
        sugg = {}
        for term in sorted(vocab):
            if term not in excluded and _within_distance(word, term, distance):
                sugg[term] = len(vocab[term]) / n_docs
        for d in include:
            for w in sorted(_t(x) for x in d):
                if w not in sugg and w not in excluded and _within_distance(word, w.lower(), distance):
                    sugg[w] = 0.0
        ranked = sorted(sugg.items(), key=lambda kv: -kv[1])
        rows.append((word, ranked))
    if ctx.resp3:
        return Map([("results", Map([(w, [Map([(s, Double(v))]) for s, v in r])
                                     for w, r in rows]))])
    return [["TERM", w, [[fmt_score(v), s] for s, v in r]] for w, r in rows]


# -- documents --------------------------------------------------------------------------------------

@command("FT.DEL", -3, ("write",), display="FT.DEL")
def ft_del(ctx, args):
    idx = _index(ctx, args[0])
    key = args[1]
    if key not in idx.key_slot:
        return 0
    return 1 if ctx.server.keyspace.delete(key) else 0
