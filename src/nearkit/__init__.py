"""nearkit: nearest-neighbour search over dense vectors."""

from . import _core
from .errors import FormatError, NotTrainedError
from .indexes import Index
from .indexes.ivf import IVF
from .kmeans import kmeans

__version__ = "0.1.0"

__all__ = ["FormatError", "IVF", "Index", "NotTrainedError", "_core", "__version__", "kmeans"]
