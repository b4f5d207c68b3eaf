"""FT.AGGREGATE (the common cases): the pipeline parsed, documents selected like
FT.SEARCH, then LOAD, GROUPBY / REDUCE, APPLY, FILTER, SORTBY and LIMIT in order."""

from __future__ import annotations

import math
import random

import numpy as np

from .. import jsonpath
from ..commands import CommandError, Offload, as_str
from ..fulltext import rank as _text
from .args import check_scorer, int_arg, parse_params
from .cursors import cursor_reply
from .expressions import Expr, as_float, as_number, is_number, truthy
from .plan import prepare
from .render import MAX_RESULTS, TEXT_SCORE, aggregate_reply, fmt_number, json_text
from .select import select


_SAMPLER = random.Random()


def _reduce(fn: str, values: list, extra=()):
    nums = [as_float(v) for v in values if v is not None]
    nums = [x for x in nums if not math.isnan(x)]
    if fn == "COUNT":
        return float(len(values))
    if fn in ("COUNT_DISTINCT", "COUNT_DISTINCTISH"):
        return float(len({str(v) for v in values if v is not None}))
    if fn == "SUM":
        return float(sum(nums))
    if fn == "MIN":
        return min(nums) if nums else math.inf
    if fn == "MAX":
        return max(nums) if nums else -math.inf
    if fn == "AVG":
        return sum(nums) / len(nums) if nums else math.nan
    if fn == "STDDEV":
        if len(nums) < 2:
            return 0.0
        m = sum(nums) / len(nums)
        return math.sqrt(sum((x - m) ** 2 for x in nums) / (len(nums) - 1))
    if fn == "TOLIST":
        seen = []
        for v in values:
            if v is not None and v not in seen:
                seen.append(v)
        return seen
    if fn == "FIRST_VALUE":
        return values[0] if values else None
    if fn == "RANDOM_SAMPLE":  # RANDOM_SAMPLE 2 @f N: up to N of the group's values
        if not extra:
            raise CommandError("Bad arguments for <sample size>: Expected an argument, but none provided")
        try:
            k = int(extra[0])
        except ValueError:
            raise CommandError("Bad arguments for <sample size>: Could not convert argument to expected type") from None
        if k > 1000:
            raise CommandError("Sample size too large")
        present = [v for v in values if v is not None]
        if k <= 0:
            return []
        # A reservoir that never fills keeps every value in order, as Redis's does.
        return present if len(present) <= k else _SAMPLER.sample(present, k)
    if fn == "QUANTILE":
        try:
            q = float(extra[0])
        except (IndexError, ValueError):
            raise CommandError("Bad arguments for QUANTILE: Could not convert argument to expected type") from None
        if not 0.0 <= q <= 1.0:
            raise CommandError("Quantile must be between 0.0 and 1.0")
        if not nums:
            return math.nan
        ordered = sorted(nums)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
    raise CommandError(f"Unknown reducer `{fn}`")


def _value_bytes(v):
    if v is None:
        return None
    if isinstance(v, (bytes, bytearray)):
        return bytes(v)
    if isinstance(v, float):
        return fmt_number(v)
    if isinstance(v, list):
        return [_value_bytes(x) for x in v]
    return str(v).encode()


def aggregate(ctx, idx, query: str, args: list):
    """Parse the pipeline, select documents like FT.SEARCH, then run the steps in order."""
    steps, params, dialect, cursor, i = [], {}, ctx.server.search.default_dialect, None, 0
    addscores = False
    scorer = _text.DEFAULT_SCORER
    while i < len(args):
        kw = args[i].upper()
        if kw == b"LOAD":
            if i + 1 < len(args) and args[i + 1] == b"*":
                steps.append(("load", None))
                i += 2
                continue
            n = int_arg(args, i + 1, "LOAD")
            steps.append(("load", [as_str(a).lstrip("@") for a in args[i + 2:i + 2 + n]]))
            i += 2 + n
        elif kw == b"GROUPBY":
            n = int_arg(args, i + 1, "GROUPBY")
            keys = [as_str(a).lstrip("@") for a in args[i + 2:i + 2 + n]]
            i += 2 + n
            reducers = []
            while i < len(args) and args[i].upper() == b"REDUCE":
                fn = as_str(args[i + 1]).upper() if i + 1 < len(args) else ""
                na = int_arg(args, i + 2, "REDUCE")
                rargs = [as_str(a).lstrip("@") for a in args[i + 3:i + 3 + na]]
                i += 3 + na
                name = None
                if i + 1 < len(args) and args[i].upper() == b"AS":
                    name = as_str(args[i + 1])
                    i += 2
                if name is None:
                    name = f"__generated_alias{fn.lower()}{','.join(rargs)}"
                reducers.append((fn, rargs, name))
            steps.append(("group", keys, reducers))
        elif kw == b"APPLY":
            expr = Expr(as_str(args[i + 1])) if i + 1 < len(args) else None
            if expr is None or i + 3 >= len(args) + 1 or i + 2 >= len(args) or args[i + 2].upper() != b"AS":
                raise CommandError("Bad arguments for APPLY: AS is required")
            steps.append(("apply", expr, as_str(args[i + 3])))
            i += 4
        elif kw == b"FILTER":
            steps.append(("filter", Expr(as_str(args[i + 1]))))
            i += 2
        elif kw == b"SORTBY":
            n = int_arg(args, i + 1, "SORTBY")
            toks = [as_str(a) for a in args[i + 2:i + 2 + n]]
            i += 2 + n
            keys, j = [], 0
            while j < len(toks):
                name = toks[j].lstrip("@")
                desc = False
                if j + 1 < len(toks) and toks[j + 1].upper() in ("ASC", "DESC"):
                    desc = toks[j + 1].upper() == "DESC"
                    j += 1
                keys.append((name, desc))
                j += 1
            mx = None
            if i + 1 < len(args) and args[i].upper() == b"MAX":
                mx = int_arg(args, i + 1, "MAX")
                i += 2
            steps.append(("sort", keys, mx))
        elif kw == b"LIMIT":
            steps.append(("limit", int_arg(args, i + 1, "LIMIT"), int_arg(args, i + 2, "LIMIT")))
            i += 3
        elif kw == b"PARAMS":
            params, i = parse_params(args, i)
        elif kw == b"DIALECT":
            dialect = int_arg(args, i + 1, "DIALECT")
            if not 1 <= dialect <= 4:
                raise CommandError("DIALECT requires a non negative integer >=1 and <= 4")
            i += 2
        elif kw == b"WITHCURSOR":
            cursor = {"count": 1000}
            i += 1
            while i + 1 < len(args) and args[i].upper() in (b"COUNT", b"MAXIDLE"):
                cursor[as_str(args[i]).lower()] = int_arg(args, i + 1, "WITHCURSOR")
                i += 2
        elif kw in (b"VERBATIM", b"ADDSCORES"):
            addscores = addscores or kw == b"ADDSCORES"
            i += 1
        elif kw == b"SCORER" and i + 1 < len(args):
            scorer = check_scorer(args[i + 1])
            i += 2
        elif kw == b"TIMEOUT":
            i += 2
        else:
            raise CommandError(f"Unknown argument `{as_str(args[i])}` at position {i} for <main>")
    prep = prepare(ctx.server.ft.plans, idx, query, params, dialect)

    def compute():
        idx.lock.acquire_read()
        try:
            slots, scores = select(idx, prep)
            if prep.phrases and _text.has_text(idx) and prep.plan.knn is None:
                keep = np.isin(slots, _text.filter_slop(idx, prep.tree, slots, None, False))
                slots = slots[keep]
                scores = {k: v[keep] for k, v in scores.items()}
            slots = slots[:MAX_RESULTS]
            scores = {k: v[:MAX_RESULTS] for k, v in scores.items()}
            if addscores and _text.has_text(idx) and prep.plan.knn is None:
                scores[TEXT_SCORE] = _text.rank(idx, prep.tree, slots, scorer)[0]
            return [idx.slot_key[int(s)] for s in slots], scores
        finally:
            idx.lock.release_read()

    def finish(result):
        keys, scores = result
        rows = _run_pipeline(ctx, idx, keys, scores, steps, addscores)
        if cursor is not None:
            return cursor_reply(ctx, idx, rows, cursor["count"], new=True)
        return aggregate_reply(ctx, rows)

    return Offload(compute, finish, heavy=prep.heavy)


def _load_field(idx, doc, name):
    if name == "__key":
        return None
    f = idx.field(name)
    if type(doc) is dict:
        return doc.get((f.identifier if f is not None else name).encode())
    path = f.path if f is not None and f.path is not None else None
    if path is None:
        try:
            path = jsonpath.parse(name if name.startswith("$") else "$." + name)
        except ValueError:
            return None
    found = jsonpath.find(doc.value, path)
    return json_text(found[0]) if found else None


def _run_pipeline(ctx, idx, keys, scores, steps, addscores):
    ks = ctx.server.keyspace
    rows = []
    for i, key in enumerate(keys):
        doc = ks.data.get(key)
        if doc is None:
            continue
        row = {"__key": key, "__doc": doc}
        for name, d in scores.items():
            if name != TEXT_SCORE and not np.isnan(d[i]):
                row[name] = float(d[i])
        if addscores:
            ts = scores.get(TEXT_SCORE)
            row["__score"] = float(ts[i]) if ts is not None else 0.0
        rows.append(row)
    visible = [n for n in scores if n != TEXT_SCORE]
    if addscores:
        visible.append("__score")
    grouped = False
    for step in steps:
        kind = step[0]
        if not grouped:
            # Redis loads schema fields a step names without LOAD: SORTBY any schema field
            # (which then shows in the rows), APPLY/FILTER the SORTABLE ones, GROUPBY/REDUCE
            # any schema field (read for grouping only).
            _implicit_load(idx, rows, visible, step)
        if kind == "load":
            names = step[1]
            for row in rows:
                doc = row["__doc"]
                if names is None:
                    if type(doc) is dict:
                        for k, v in doc.items():
                            row[as_str(k)] = v
                    else:
                        row["$"] = json_text(doc.value)
                else:
                    for n in names:
                        if row.get(n) is not None:
                            continue  # a distance the query yielded: LOAD keeps it
                        row[n] = row["__key"] if n == "__key" else _load_field(idx, doc, n)
            if names is None:
                for row in rows[:1]:
                    visible += [k for k in row if not k.startswith("__") and k not in visible]
            else:
                visible += [n for n in names if n not in visible]
        elif kind == "apply":
            _, expr, name = step
            for row in rows:
                row[name] = expr.eval({k: v for k, v in row.items()})
            if name not in visible:
                visible.append(name)
        elif kind == "filter":
            rows = [r for r in rows if truthy(step[1].eval(r))]
        elif kind == "group":
            _, gkeys, reducers = step
            for row in rows:
                for g in gkeys:
                    if g not in row:
                        row[g] = _load_field(idx, row["__doc"], g)
            groups: dict = {}
            for row in rows:
                gk = tuple(_value_bytes(as_number(row.get(g))) if not isinstance(row.get(g), bytes)
                           else row.get(g) for g in gkeys)
                groups.setdefault(gk, []).append(row)
            new_rows = []
            for gk, members in groups.items():
                out = {g: members[0].get(g) for g in gkeys}
                for fn, rargs, name in reducers:
                    vals = [as_number(m.get(rargs[0])) if rargs else 1 for m in members]
                    out[name] = _reduce(fn, vals, rargs[1:])
                new_rows.append(out)
            rows = new_rows
            visible = list(gkeys) + [r[2] for r in reducers]
            grouped = True
        elif kind == "sort":
            _, skeys, mx = step
            for name, desc in reversed(skeys):
                present = [r for r in rows if r.get(name) is not None]
                missing = [r for r in rows if r.get(name) is None]

                def key(r, name=name):
                    v = as_number(r.get(name))
                    return (0, v, "") if is_number(v) else (1, 0.0, as_str(v))
                present.sort(key=key, reverse=desc)
                rows = present + missing
            if mx is not None:
                rows = rows[:mx]
        elif kind == "limit":
            rows = rows[step[1]:step[1] + step[2]]
    return [[(n, _value_bytes(r[n])) for n in visible if n in r and r[n] is not None]
            for r in rows]


def _implicit_load(idx, rows, visible, step) -> None:
    kind = step[0]
    if kind == "sort":
        names, show, sortable_only = [name for name, _ in step[1]], True, False
    elif kind in ("apply", "filter"):
        names, show, sortable_only = step[1].fields(), True, True
    elif kind == "group":
        names = list(step[1]) + [a for _, rargs, _ in step[2] for a in rargs[:1]]
        show, sortable_only = False, False
    else:
        return
    for name in names:
        if name in visible or (rows and name in rows[0]):
            continue
        f = idx.field(name)
        if f is None or f.type == "VECTOR" or (sortable_only and "SORTABLE" not in f.flags):
            if kind in ("apply", "filter"):
                raise CommandError(f"Property `{name}` not loaded nor in pipeline")
            if kind == "group":
                raise CommandError(f"No such property `{name}`")
            continue
        # Taken from the sorting vector, as Redis does: a SORTABLE TEXT/TAG value lower-cased
        # (unless UNF).
        fold = f.type in ("TEXT", "TAG") and "SORTABLE" in f.flags and "UNF" not in f.flags
        for row in rows:
            if name not in row and "__doc" in row:
                v = _load_field(idx, row["__doc"], name)
                if fold and v is not None:
                    v = (v.decode("utf-8", "replace").lower().encode() if isinstance(v, bytes)
                         else str(v).lower())
                row[name] = v
        if show:
            visible.append(name)
