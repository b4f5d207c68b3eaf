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


class ShardUnavailableError(RuntimeError):
    """A shard of a distributed index died and could not be restored; the message names it.

    Raised instead of answering from the remaining shards: a partial answer would
    be silently wrong.
    """

    def __init__(self, shard: int, message: str):
        super().__init__(f"shard {shard}: {message}")
        self.shard = shard
