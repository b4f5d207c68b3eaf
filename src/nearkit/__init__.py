"""nearkit: nearest-neighbour search over dense vectors."""

from . import _core
from .errors import FormatError
from .indexes import Index
from .io import load
from .store import open  # noqa: A004  (nearkit.open(path) opens a vector store)

__version__ = "0.1.0"

__all__ = ["FormatError", "Index", "_core", "__version__", "load", "open"]
