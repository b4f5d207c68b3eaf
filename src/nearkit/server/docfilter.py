"""FT.CREATE ... FILTER {expression}: only documents for which the expression is true are
indexed. The expression language is FT.AGGREGATE's (APPLY / FILTER); ``@name`` reads the
document's own field (any hash field, or a JSON document's top-level key or schema alias)
and ``@__key`` its key. A document lacking a field the expression reads is indexed, as in
Redis (its evaluation fails, which does not exclude the document)."""

from __future__ import annotations

import json

from .ft.expressions import Expr, truthy  # FT.AGGREGATE's APPLY / FILTER language


class DocFilter:
    def __init__(self, text: str):
        self.text = text
        self.expr = Expr(text)  # CommandError (a syntax error) if it does not parse
        self.names = self.expr.fields()

    def accepts(self, key: bytes, value, index) -> bool:
        row = {"__key": key.decode("utf-8", "replace")}
        if isinstance(value, dict):  # a hash
            for name in self.names:
                v = value.get(name.encode())
                if v is not None:
                    row[name] = v.decode("utf-8", "replace")
        else:  # a JSON document: top-level keys, then the schema's aliases
            doc = value.value
            if isinstance(doc, dict):
                for name in self.names:
                    if name in doc:
                        row[name] = _scalar(doc[name])
            for f in index.fields:
                if f.alias in self.names and f.alias not in row:
                    raw = index._raw(value, f)
                    if raw is not None:
                        row[f.alias] = _scalar(raw[0] if isinstance(raw, list) and raw else raw)
        if any(name not in row for name in self.names):
            return True  # Redis indexes a document the expression cannot be evaluated on
        try:
            return truthy(self.expr.eval(row))
        except (ArithmeticError, TypeError, ValueError):
            return False


def _scalar(v):
    if isinstance(v, (str, int, float)) and not isinstance(v, bool):
        return v if isinstance(v, str) else str(v)
    return json.dumps(v)
