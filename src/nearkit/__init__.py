"""nearkit: nearest-neighbour search over dense vectors."""

from . import _core
from .errors import FormatError, NotTrainedError, ReadOnlyIndexError
from .indexes import HNSW, IVF, Flat, Index, Trees, load
from .indexes.factory import index_factory
from .kmeans import kmeans
from .knn import knn_graph
from .store import open  # noqa: A004  (nearkit.open(path) opens a vector store)

__version__ = "0.1.0"


def __getattr__(name):
    # nearkit.distributed needs the optional Ray extra: imported on first use only.
    if name == "distributed":
        import importlib

        return importlib.import_module(".distributed", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "Flat", "FormatError", "HNSW", "IVF", "Index", "NotTrainedError", "ReadOnlyIndexError", "Trees",
    "_core",
    "__version__", "index_factory", "kmeans", "knn_graph", "load", "open",
]
