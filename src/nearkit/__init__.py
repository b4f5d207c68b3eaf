"""nearkit: nearest-neighbour search over dense vectors."""

from . import _core
from .errors import FormatError
from .indexes import Index
from .indexes.flat import Flat
from .indexes.hnsw import HNSW
from .io import load
from .knn import knn_graph
from .store import open  # noqa: A004  (nearkit.open(path) opens a vector store)

__version__ = "0.1.0"

__all__ = ["Flat", "FormatError", "HNSW", "Index", "_core", "__version__", "knn_graph", "load", "open"]
