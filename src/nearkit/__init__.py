"""nearkit: nearest-neighbour search over dense vectors."""

from . import _core
from .errors import FormatError
from .indexes import Index
from .indexes.hnsw import HNSW
from .io import load

__version__ = "0.1.0"

__all__ = ["FormatError", "HNSW", "Index", "_core", "__version__", "load"]
