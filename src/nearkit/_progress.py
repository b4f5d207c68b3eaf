"""``progress=`` arguments: a callable ``progress(done, total)``, True for a tqdm bar, or None."""

from __future__ import annotations


class _Callback:
    def __init__(self, fn, total: int):
        self._fn, self._total, self._done = fn, total, 0
        fn(0, total)

    def update(self, n: int) -> None:
        self._done += n
        self._fn(self._done, self._total)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def start(progress, total: int, desc: str):
    """A context manager with ``update(n)``, or None when no progress is wanted."""
    if progress is None or progress is False:
        return None
    if progress is True:
        from tqdm import tqdm

        return tqdm(total=total, desc=desc, leave=False)
    if callable(progress):
        return _Callback(progress, total)
    raise TypeError(f"progress must be a callable progress(done, total), True or None, "
                    f"got {type(progress).__name__}")


def chunks(n: int, parts: int = 20, minimum: int = 1024):
    """(start, stop) ranges covering 0..n in about ``parts`` steps of at least ``minimum``."""
    step = max(minimum, -(-n // parts))
    return [(s, min(s + step, n)) for s in range(0, n, step)]
