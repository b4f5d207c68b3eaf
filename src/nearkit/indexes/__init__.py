"""Index implementations. Each module registers its class with ``base.register``."""

from .base import INDEX_KINDS, Index, IndexImage, SlotFilter, register

__all__ = ["INDEX_KINDS", "Index", "IndexImage", "SlotFilter", "register"]
