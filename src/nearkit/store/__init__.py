"""Persistent vector store: collections of keyed vectors with payload filters.

SQLite is the durable record; index files are snapshots that make opening fast.
Key tables (``db.key_table``) are durable byte maps in the same record.
See ``db.open`` for the entry point (re-exported as ``nearkit.open``).
"""

from ..query import FilterError, FilterSyntaxError, parse_filter, to_filter
from .collection import Collection, Hit, Record
from .db import CollectionNotFound, Database, open
from .durability import DURABILITY_MODES, StoreLockedError
from .keytable import KeyTable, KeyTableNotFound

__all__ = [
    "DURABILITY_MODES", "Collection", "CollectionNotFound", "Database", "FilterError",
    "FilterSyntaxError", "Hit", "KeyTable", "KeyTableNotFound", "Record", "StoreLockedError", "open",
    "parse_filter", "to_filter",
]
