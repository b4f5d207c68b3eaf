"""Reading faiss's own index files (placeholder until the reader lands)."""


def is_faiss_file(magic: bytes) -> bool:
    return False


def read(fname, faiss_module):  # pragma: no cover
    raise NotImplementedError
