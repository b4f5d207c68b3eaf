"""nearkit: nearest-neighbour search over dense vectors."""

from . import _core
from .errors import FormatError
from .indexes import Index
from .indexes.trees import Trees

__version__ = "0.1.0"

__all__ = ["FormatError", "Index", "Trees", "_core", "__version__"]
