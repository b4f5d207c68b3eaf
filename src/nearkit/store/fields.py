"""Payload field indexes: declared TAG / NUMERIC / TEXT fields, evaluated as masks.

Rows live in *slots* (dense positions owned by the collection). For each declared
field we keep what makes a filter cheap to evaluate over every slot at once:

- NUMERIC: a float64 column (NaN where the field is absent);
- TAG: an inverted map tag -> set of slots (tags case-folded unless case_sensitive);
- TEXT: an inverted map word -> set of slots (lower-cased words, no stemming).

``mask(tree, live)`` turns a bound filter tree into a boolean mask over slots: the
query package's one walk (``nearkit.query.evaluate``) with ``leaf_mask`` as its leaf hook.
Not thread-safe on its own: the collection's lock orders writers and readers.
"""

from __future__ import annotations

import sys

import numpy as np

from ..query.evaluate import masks
from ..query.nodes import FilterError, Geo, Missing, Node, Numeric, Tag, TextPattern, TextTerm, VectorRange
from ..query.values import geo_distance_m, geo_value, numeric_value, tag_values, text_tokens
from .schema import bind, normalize_schema

_FLOAT_MAX = sys.float_info.max


class FieldIndex:
    def __init__(self, schema: dict):
        self.schema = normalize_schema(schema)
        self._numeric = {f: np.full(0, np.nan) for f, s in self.schema.items() if s["type"] == "numeric"}
        # GEO: one (longitude, latitude) row per slot, NaN where absent.
        self._geo = {f: np.full((0, 2), np.nan) for f, s in self.schema.items() if s["type"] == "geo"}
        self._inverted = {f: {} for f, s in self.schema.items() if s["type"] in ("tag", "text")}
        self._cache: dict = {}    # (field, term) -> sorted int64 slots; dropped when the term changes
        self._text_fields = [f for f, s in self.schema.items() if s["type"] == "text"]
        self._plan = [(f, s["type"], s.get("separator"), s.get("case_sensitive", False))
                      for f, s in self.schema.items()]

    # -- maintenance --------------------------------------------------------------------
    def extract(self, payload) -> dict:
        """Validate one payload; returns {field: float | list[str]} for the declared fields."""
        if payload is None:
            return {}
        if not isinstance(payload, dict):
            raise TypeError(f"a payload must be a dict or None, got {type(payload).__name__}")
        rec = {}
        for f, t, sep, cs in self._plan:
            v = payload.get(f)
            if v is None:
                continue
            if t == "numeric":
                if type(v) is float or type(v) is int:  # the common case, no conversion needed
                    if v != v:
                        raise ValueError(f"payload field {f!r}: invalid numeric value NaN")
                    if type(v) is int and not -_FLOAT_MAX <= v <= _FLOAT_MAX:
                        raise ValueError(f"payload field {f!r}: invalid numeric value: an integer "
                                         "beyond the float64 range")
                    rec[f] = v
                    continue
                try:
                    rec[f] = numeric_value(v)
                except ValueError as exc:
                    raise ValueError(f"payload field {f!r}: {exc}") from None
            elif t == "geo":
                try:
                    rec[f] = geo_value(v)
                except ValueError as exc:
                    raise ValueError(f"payload field {f!r}: {exc}") from None
            elif t == "tag":
                if type(v) is str and sep not in v:  # one tag: skip the general splitter
                    tag = v.strip() if cs else v.strip().lower()
                    if tag:
                        rec[f] = [tag]
                    continue
                rec[f] = sorted(set(tag_values(v, sep, cs)))
            else:
                rec[f] = sorted(set(text_tokens(v)))
        return rec

    def reserve(self, n_slots: int) -> None:
        for f, col in self._numeric.items():
            if col.shape[0] < n_slots:
                grown = np.full(max(n_slots, 2 * col.shape[0], 1024), np.nan)
                grown[: col.shape[0]] = col
                self._numeric[f] = grown
        for f, col in self._geo.items():
            if col.shape[0] < n_slots:
                grown = np.full((max(n_slots, 2 * col.shape[0], 1024), 2), np.nan)
                grown[: col.shape[0]] = col
                self._geo[f] = grown

    def insert(self, slot: int, rec: dict) -> None:
        for f, v in rec.items():
            if f in self._numeric:
                self._numeric[f][slot] = v
            elif f in self._geo:
                self._geo[f][slot] = v
            else:
                inv = self._inverted[f]
                for term in v:
                    inv.setdefault(term, set()).add(slot)
                    self._cache.pop((f, term), None)

    def insert_many(self, slots: np.ndarray, recs: list) -> None:
        """Bulk insert: numeric columns written with one vectorised store each."""
        for f in self._numeric:
            vals = np.array([r.get(f, np.nan) for r in recs], dtype=np.float64)
            self._numeric[f][slots] = vals
        for f in self._geo:
            self._geo[f][slots] = np.array([r.get(f, (np.nan, np.nan)) for r in recs],
                                           dtype=np.float64).reshape(-1, 2)
        for f, inv in self._inverted.items():
            for slot, r in zip(slots.tolist(), recs):
                for term in r.get(f, ()):
                    s = inv.get(term)
                    if s is None:
                        inv[term] = {slot}
                    else:
                        s.add(slot)
            self._cache = {k: v for k, v in self._cache.items() if k[0] != f}

    def remove(self, slot: int, rec: dict) -> None:
        for f in self._numeric:
            self._numeric[f][slot] = np.nan
        for f in self._geo:
            self._geo[f][slot] = np.nan
        for f, terms in rec.items():
            if f in self._inverted:
                inv = self._inverted[f]
                for term in terms:
                    s = inv.get(term)
                    if s is not None:
                        s.discard(slot)
                        if not s:
                            del inv[term]
                    self._cache.pop((f, term), None)

    # -- evaluation ---------------------------------------------------------------------
    def bind(self, tree: Node) -> Node:
        return bind(tree, self.schema)

    def _slots(self, field: str, term: str) -> np.ndarray:
        key = (field, term)
        arr = self._cache.get(key)
        if arr is None:
            s = self._inverted[field].get(term)
            arr = np.fromiter(s, dtype=np.int64, count=len(s)) if s else np.empty(0, np.int64)
            self._cache[key] = arr
        return arr

    def _prefix_slots(self, field: str, prefix: str) -> list:
        return [self._slots(field, t) for t in list(self._inverted[field]) if t.startswith(prefix)]

    def mask(self, tree: Node, live: np.ndarray) -> np.ndarray:
        """Boolean mask over slots (same length as ``live``) of live rows matching ``tree``."""
        return masks(tree, live, self.leaf_mask) & live

    def leaf_mask(self, node: Node, live: np.ndarray) -> np.ndarray:
        """The leaf hook of ``mask``: one leaf's mask over slots, from the field indexes."""
        answer = self._LEAF_MASKS.get(type(node))
        if answer is None:
            raise TypeError(f"not a filter node: {node!r}")
        return answer(self, node, live.shape[0])

    def _numeric_mask(self, node: Numeric, n: int) -> np.ndarray:
        col = self._numeric[node.field][:n]
        lo = col >= node.lo if node.lo_inclusive else col > node.lo
        hi = col <= node.hi if node.hi_inclusive else col < node.hi
        return lo & hi

    def _geo_mask(self, node: Geo, n: int) -> np.ndarray:
        col = self._geo[node.field][:n]
        with np.errstate(invalid="ignore"):
            return geo_distance_m(node.lon, node.lat, col[:, 0], col[:, 1]) <= node.radius_m

    def _tag_mask(self, node: Tag, n: int) -> np.ndarray:
        cs = self.schema[node.field]["case_sensitive"]
        fold = (lambda v: v) if cs else str.lower
        m = np.zeros(n, dtype=bool)
        for v in node.values:
            m[self._slots(node.field, fold(v))] = True
        for p in node.prefixes:
            for arr in self._prefix_slots(node.field, fold(p)):
                m[arr] = True
        return m

    def _pattern_mask(self, node: TextPattern, n: int) -> np.ndarray:
        fields = [node.field] if node.field else self._text_fields
        m = np.zeros(n, dtype=bool)
        for f in fields:
            for term in list(self._inverted[f]):
                if node.accepts(term):
                    m[self._slots(f, term)] = True
        return m

    def _term_mask(self, node: TextTerm, n: int) -> np.ndarray:
        fields = [node.field] if node.field else self._text_fields
        m = np.zeros(n, dtype=bool)
        word = node.word.lower()
        for f in fields:
            if node.prefix:
                for arr in self._prefix_slots(f, word):
                    m[arr] = True
            else:
                m[self._slots(f, word)] = True
        return m

    def _missing_mask(self, node: Missing, n: int):
        raise FilterError("ismissing() is evaluated by the caller (it knows which rows have the field)")

    def _vector_range_mask(self, node: VectorRange, n: int):
        raise FilterError("VECTOR_RANGE is not a payload filter; use search_radius")

    # leaf type -> its mask; a leaf type not here is not the field indexes' to answer
    _LEAF_MASKS = {Numeric: _numeric_mask, Geo: _geo_mask, Tag: _tag_mask, TextPattern: _pattern_mask,
                   TextTerm: _term_mask, Missing: _missing_mask, VectorRange: _vector_range_mask}

    # -- snapshots ----------------------------------------------------------------------
    def export(self, n_slots: int) -> dict:
        """Sections holding the field indexes for slots [0, n_slots): numeric columns as is,
        each inverted map as its terms (packed strings) and CSR posting lists."""
        out = {}
        for f, col in self._numeric.items():
            out[f"num:{f}"] = col[:n_slots]
        for f, col in self._geo.items():
            out[f"geo:{f}"] = col[:n_slots]
        for f, inv in self._inverted.items():
            terms = list(inv)
            out[f"terms:{f}"], out[f"terms_off:{f}"] = pack_strings(terms)
            sizes = np.fromiter((len(inv[t]) for t in terms), np.int64, len(terms))
            out[f"post_off:{f}"] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
            out[f"post:{f}"] = (np.fromiter((s for t in terms for s in inv[t]), np.int64, int(sizes.sum()))
                                if terms else np.empty(0, np.int64))
        return out

    def import_(self, sections: dict, n_slots: int) -> None:
        """Inverse of ``export`` (the schema must match; KeyError names a missing section)."""
        self.reserve(n_slots)
        for f in self._numeric:
            col = sections[f"num:{f}"]
            if col.shape != (n_slots,):
                raise ValueError(f"numeric column {f!r} has shape {col.shape}, expected ({n_slots},)")
            self._numeric[f][:n_slots] = col
        for f in self._geo:
            col = sections[f"geo:{f}"]
            if col.shape != (n_slots, 2):
                raise ValueError(f"geo column {f!r} has shape {col.shape}, expected ({n_slots}, 2)")
            self._geo[f][:n_slots] = col
        for f in self._inverted:
            terms = unpack_strings(sections[f"terms:{f}"], sections[f"terms_off:{f}"])
            off, post = sections[f"post_off:{f}"], sections[f"post:{f}"]
            if off.shape != (len(terms) + 1,) or (post.size and (post.min() < 0 or post.max() >= n_slots)):
                raise ValueError(f"posting lists of field {f!r} are inconsistent")
            bounds = off.tolist()
            plist = post.tolist()
            self._inverted[f] = {t: set(plist[bounds[i]:bounds[i + 1]]) for i, t in enumerate(terms)}
        self._cache = {}


def pack_strings(strings) -> tuple[np.ndarray, np.ndarray]:
    """Strings -> (utf-8 bytes as uint8, int64 character offsets (n + 1))."""
    text = "".join(strings)
    lens = np.fromiter((len(s) for s in strings), np.int64, len(strings))
    off = np.zeros(len(strings) + 1, np.int64)
    np.cumsum(lens, out=off[1:])
    return np.frombuffer(text.encode("utf-8", "surrogatepass"), np.uint8), off


def unpack_strings(blob: np.ndarray, off: np.ndarray) -> list[str]:
    text = blob.tobytes().decode("utf-8", "surrogatepass")
    if off.ndim != 1 or off.shape[0] < 1 or off[-1] != len(text):
        raise ValueError("packed strings: offsets do not match the text")
    b = off.tolist()
    return [text[b[i]:b[i + 1]] for i in range(len(b) - 1)]
