"""Payload values as each field type reads them: numbers, geo points, tags, words.

The store's field indexes, the server's index and the text parser (a quoted phrase
is split into words) all read values through these, so a value means one thing.
"""

from __future__ import annotations

import math
import re

# Redis's GEO radius units in metres, and the earth radius its haversine uses.
GEO_UNITS = {"m": 1.0, "km": 1000.0, "mi": 1609.34, "ft": 0.3048}
EARTH_RADIUS_M = 6372797.560856
GEO_LAT_LIMIT = 85.05112878

def geo_value(value):
    """A "lon,lat" payload value as (lon, lat) floats (None if absent); ValueError if invalid."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and len(value) == 2:
        parts = list(value)
    else:
        parts = str(value).replace(",", " ").split()
    try:
        if len(parts) != 2:
            raise ValueError
        lon, lat = float(parts[0]), float(parts[1])
    except (TypeError, ValueError):
        raise ValueError(f"invalid geo value {value!r}: expected 'longitude,latitude'") from None
    if not (-180.0 <= lon <= 180.0 and -GEO_LAT_LIMIT <= lat <= GEO_LAT_LIMIT):
        raise ValueError(f"invalid geo value {value!r}: longitude or latitude out of range")
    return lon, lat


def geo_distance_m(lon1, lat1, lon2, lat2):
    """Haversine distance in metres (numpy arrays or floats)."""
    import numpy as np

    lon1, lat1, lon2, lat2 = (np.radians(x) for x in (lon1, lat1, lon2, lat2))
    a = (np.sin((lat2 - lat1) / 2) ** 2
         + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(a, 1.0)))


_TEXT_SPLIT = re.compile(r"[^\w]+", re.UNICODE)


def text_tokens(value) -> list[str]:
    """Words of a TEXT value: lower-cased, split on anything that is not a letter, digit or _."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        out = []
        for v in value:
            out.extend(text_tokens(v))
        return out
    return [t for t in _TEXT_SPLIT.split(str(value).lower()) if t]


def tag_values(value, separator: str = ",", case_sensitive: bool = False) -> list[str]:
    """Tags of a TAG value: a list of strings, or one string split on ``separator``; trimmed."""
    if value is None:
        return []
    if isinstance(value, (list, tuple, set, frozenset)):
        raw = [str(v) for v in value]
    else:
        raw = str(value).split(separator) if separator else [str(value)]
    out = [v.strip() for v in raw]
    if not case_sensitive:
        out = [v.lower() for v in out]
    return [v for v in out if v]


def numeric_value(value):
    """A payload value as a float for NUMERIC fields (None if absent); ValueError if not numeric."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"invalid numeric value {value!r}")
    try:
        v = float(value)
    except OverflowError:  # an int past float64's range (10**400)
        raise ValueError("invalid numeric value: an integer beyond the float64 range") from None
    except (TypeError, ValueError):
        raise ValueError(f"invalid numeric value {value!r}") from None
    if math.isnan(v):
        raise ValueError("invalid numeric value NaN")
    return v


