"""Exceptions raised by nearkit."""


class FormatError(ValueError):
    """An index file is truncated, damaged, foreign, or from a newer format version."""
