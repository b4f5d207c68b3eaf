"""The index kinds and how files become indexes.

``KINDS`` is the one table from a kind name (as stored in index files) to its
class; :func:`load` reads a file with :mod:`nearkit.io` (the container, which
knows nothing of indexes) and rebuilds the index its header names.
"""

from __future__ import annotations

import os

from ..errors import FormatError
from ..io import IndexFile, read_index
from .base import Index, IndexImage, SlotFilter
from .flat import Flat
from .hnsw import HNSW
from .ivf import IVF
from .trees import Trees

# kind name -> class. Extra kinds (tests, plug-ins) join through register().
KINDS: dict[str, type[Index]] = {cls.kind: cls for cls in (Flat, HNSW, IVF, Trees)}
INDEX_KINDS = KINDS  # the earlier name


def register(kind: str):
    """Class decorator: make an index class loadable by :func:`load` under ``kind``."""

    def deco(cls):
        cls.kind = kind
        KINDS[kind] = cls
        return cls

    return deco


def index_class(kind: str) -> type[Index]:
    """The class of ``kind``; ValueError naming the known kinds otherwise."""
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"unknown index kind {kind!r} (known: {', '.join(sorted(public_kinds()))})")
    return cls


def public_kinds() -> list[str]:
    """The kind names a user may ask for (not the underscore ones tests register)."""
    return sorted(k for k in KINDS if not k.startswith("_"))


def from_sections(kind: str, dim: int, metric: str, params: dict, sections: dict) -> Index:
    """An index of ``kind`` over ``sections`` (arrays as ``Index._sections`` gives them)."""
    return index_class(kind)._from_sections(dim, metric, params, sections)


def from_image(image: IndexImage, copy: bool = False) -> Index:
    """The index an :class:`IndexImage` describes; ``copy=True`` when the image's
    arrays are read-only (e.g. Ray's object store) and the index must change."""
    import numpy as np

    sections = image.sections
    if copy:
        sections = {name: np.array(a, copy=True) for name, a in sections.items()}
    return from_sections(image.kind, image.dim, image.metric, image.params, sections)


def from_file(f: IndexFile, path) -> Index:
    """The index a parsed file holds; an unknown kind, and whatever a damaged file
    makes the loader trip on (a missing key, a wrong type, a number out of range),
    raise FormatError naming the file."""
    cls = KINDS.get(f.kind)
    if cls is None:
        raise FormatError(
            f"{os.fspath(path)}: index kind {f.kind!r} is unknown to this nearkit "
            f"(known: {', '.join(public_kinds())}); it may need a newer nearkit"
        )
    try:
        return cls._from_sections(f.dim, f.metric, f.params, f.sections)
    except FormatError:
        raise
    except KeyError as exc:
        raise FormatError(f"{os.fspath(path)}: a {f.kind!r} index file lacks {exc}") from None
    except (TypeError, ValueError, OverflowError, IndexError, AttributeError) as exc:
        raise FormatError(f"{os.fspath(path)}: damaged {f.kind!r} index file: {exc}") from None


def load(path, mmap: bool | str = False, verify: bool = True) -> Index:
    """Load an index saved with ``index.save(path)``.

    With ``mmap=True`` the index searches the file's pages in place (read-only).
    ``mmap="private"`` gives a normal, modifiable index read through a
    copy-on-write map: an index that copies its arrays anyway copies straight
    from the file's pages (one copy instead of two), one that adopts them copies
    a page only when it writes to it. Only for files that are never rewritten in
    place (nearkit's own writes replace files).
    """
    return from_file(read_index(path, mmap=mmap, verify=verify), path)


__all__ = [
    "Flat", "HNSW", "INDEX_KINDS", "IVF", "Index", "IndexImage", "KINDS", "SlotFilter", "Trees",
    "from_file", "from_image", "from_sections", "index_class", "load", "public_kinds", "register",
]
