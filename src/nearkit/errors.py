"""Exceptions raised by nearkit."""


class FormatError(ValueError):
    """An index file is truncated, damaged, foreign, or from a newer format version."""


class NotTrainedError(RuntimeError):
    """An index that needs training (IVF, PQ, SQ) was used before ``train()``."""


class ReadOnlyIndexError(ValueError, RuntimeError):
    """A change (add, remove, train) to an index loaded with ``mmap=True``.

    A ValueError like every other refused call (and a RuntimeError, which HNSW raised
    before the kinds agreed on one type).
    """
