"""GEOSHAPE fields: WKT POINT / POLYGON values and the WITHIN / CONTAINS / INTERSECTS /
DISJOINT queries on them, with ``shapely`` (optional: the ``server`` extra).

A document's shape is parsed once when it is indexed; a query compares every shape of the
field with the query shape in one vectorised shapely call. Both coordinate systems are
evaluated in the plane: FLAT as Redis does, SPHERICAL on (longitude, latitude) with
straight edges where Redis follows great circles (the answers differ only near long edges).
"""

from __future__ import annotations

import numpy as np

SHAPE_TYPES = ("POINT", "POLYGON")


def _shapely():
    try:
        import shapely
    except ImportError:
        raise ValueError("GEOSHAPE fields need the 'shapely' package: pip install 'nearkit[server]'") from None
    return shapely


def parse(text):
    """A WKT POINT or POLYGON as a shapely geometry; ValueError naming the problem.
    Coordinates are not range-checked (Redis indexes POINT (200 10) in SPHERICAL too)."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", "replace")
    if not isinstance(text, str):
        raise ValueError("a GEOSHAPE value must be WKT text")
    shapely = _shapely()
    kind = text.lstrip()[:8].upper()
    if not kind.startswith(SHAPE_TYPES):
        raise ValueError("unknown geometry type")  # Redis's words
    try:
        geom = shapely.from_wkt(text)
    except Exception:  # shapely raises its own GEOSException subclasses
        raise ValueError(f"invalid WKT in {text[:60]!r}") from None
    if geom.is_empty:
        raise ValueError(f"empty shape in {text[:60]!r}")
    return geom


class ShapeColumns:
    """The shapes of one index's GEOSHAPE fields, by slot."""

    def __init__(self):
        self._shapes: dict[str, dict[int, object]] = {}
        self._arrays: dict[str, tuple] = {}  # field -> (slots, geometries), rebuilt after a change

    def clear(self) -> None:
        self._shapes.clear()
        self._arrays.clear()

    def update(self, slot: int, fields: list, payload: dict) -> None:
        """Store the slot's shapes for ``fields`` (those absent from ``payload`` are removed)."""
        for f in fields:
            col = self._shapes.setdefault(f, {})
            g = payload.get(f)
            if g is None:
                if col.pop(slot, None) is not None:
                    self._arrays.pop(f, None)
            else:
                col[slot] = g
                self._arrays.pop(f, None)

    def remove(self, slot: int) -> None:
        for f, col in self._shapes.items():
            if col.pop(slot, None) is not None:
                self._arrays.pop(f, None)

    def mask(self, field: str, op: str, query_wkt: str, n: int) -> np.ndarray:
        """Slots [0, n) whose shape relates to the query shape by ``op``."""
        shapely = _shapely()
        out = np.zeros(n, bool)
        arr = self._arrays.get(field)
        if arr is None:
            col = self._shapes.get(field, {})
            slots = np.fromiter(col.keys(), np.int64, len(col))
            arr = self._arrays[field] = (slots, np.array(list(col.values()), dtype=object))
        slots, geoms = arr
        if slots.size == 0:
            return out
        try:
            query = parse(query_wkt)
        except ValueError as exc:
            raise ValueError(f"Error querying geoshape index: {exc}") from None
        # Redis: WITHIN = the document's shape lies within the query shape; CONTAINS = the
        # document's shape contains it.
        fn = {"WITHIN": shapely.within, "CONTAINS": shapely.contains,
              "INTERSECTS": shapely.intersects, "DISJOINT": shapely.disjoint}[op]
        try:
            hit = np.asarray(fn(geoms, query), bool)
        except Exception as exc:  # GEOS refuses some invalid (self-crossing) polygons
            raise ValueError(f"Error querying geoshape index: {exc}") from None
        keep = slots < n
        out[slots[keep & hit]] = True
        return out
