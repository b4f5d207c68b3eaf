"""Exceptions raised by nearkit."""


class FormatError(ValueError):
    """An index file is truncated, damaged, foreign, or from a newer format version."""


class NotTrainedError(RuntimeError):
    """An index that needs training (IVF, PQ, SQ) was used before ``train()``."""
