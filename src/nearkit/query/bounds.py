"""Numeric range bounds written as text: ``5``, ``(5`` (exclusive), ``-inf``, ``+inf``.

The query parser (``@n:[(1 +inf]``, and a ``$param`` bound) and the server's
``FILTER field lo hi`` arguments read bounds here, so both accept the same spellings.
"""

from __future__ import annotations

import math


def bound_value(text: str) -> float:
    """A bound's number: ``inf``/``+inf``/``-inf`` or anything ``float()`` reads
    (NaN included: callers decide whether it is allowed). ValueError otherwise."""
    low = text.lower()
    if low in ("inf", "+inf"):
        return math.inf
    if low == "-inf":
        return -math.inf
    return float(text)


def parse_bound(text: str) -> tuple[float, bool]:
    """``(value, inclusive)`` of one bound; a leading ``(`` makes it exclusive.
    ValueError if the rest is not a number."""
    t = text.strip()
    inclusive = not t.startswith("(")
    return bound_value(t if inclusive else t[1:]), inclusive
