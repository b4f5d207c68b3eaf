"""The nearkit index file format: one file per index, memory-mappable, checksummed.

Layout (all integers little-endian)::

    offset 0   8 bytes   magic  b"\\x89NEARKIT"
    offset 8   u32       format version (FORMAT_VERSION)
    offset 12  u32       header length H
    offset 16  H bytes   JSON header: kind, dim, metric, params, sections
    16+H       u32       crc32 of bytes [8, 16+H)  (version, length and JSON)
    ...        zero padding to a multiple of 64
    sections   each starts at a multiple of 64; the header's section table
               gives name, dtype (numpy str, e.g. "<f4"), shape, offset,
               nbytes and crc32 of each; the file ends where the last one does.

The first byte is non-ASCII so a text file is never mistaken for an index.
Sections are 64-byte aligned so ``numpy`` can map them in place (mmap=True)
with every element aligned for SIMD loads.
"""

from __future__ import annotations

import json
import mmap as _mmap
import numbers
import os
import secrets
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .errors import FormatError

MAGIC = b"\x89NEARKIT"
FORMAT_VERSION = 1
ALIGN = 64
_PREFIX = struct.Struct("<8sII")  # magic, version, header length
_CRC = struct.Struct("<I")
# A header larger than this is a damaged length field, not a real header.
_MAX_HEADER = 64 << 20
# Plain numeric and fixed-width string dtypes; object and structured dtypes
# cannot be mapped from a file meaningfully.
_DTYPE_KINDS = "biufcSU"
_UPGRADE_HINT = "upgrade nearkit (pip install -U nearkit)"


@dataclass(frozen=True)
class SectionInfo:
    """One row of the section table."""

    name: str
    dtype: str
    shape: tuple
    offset: int
    nbytes: int
    crc32: int


@dataclass
class IndexFile:
    """The parsed content of an index file."""

    kind: str
    version: int
    dim: int
    metric: str
    params: dict
    sections: dict  # name -> ndarray (read-only memory map when mmap=True)
    table: list = field(default_factory=list)  # list[SectionInfo], in file order
    file_size: int = 0
    verified: bool = False  # True when every section checksum was checked


# -- writing -------------------------------------------------------------------


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _bytes_of(arr: np.ndarray) -> np.ndarray:
    """The raw bytes of a C-contiguous array as a flat uint8 view (no copy)."""
    return arr.reshape(-1).view(np.uint8)


def _json_default(value):
    # numpy scalars sneak into params easily (e.g. np.int64 from a shape).
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(
        f"index params must be JSON values (numbers, strings, lists, dicts), "
        f"got {type(value).__name__}; arrays belong in sections"
    )


def _prepare_section(name, arr) -> np.ndarray:
    if not isinstance(name, str) or not name:
        raise ValueError(f"section names must be non-empty strings, got {name!r}")
    arr = np.asarray(arr)
    if arr.dtype.kind not in _DTYPE_KINDS or arr.dtype.fields is not None:
        raise TypeError(f"section {name!r} has dtype {arr.dtype}, which cannot be stored in a file")
    if arr.dtype.itemsize > 1 and arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("<"))  # files are little-endian
    # not ascontiguousarray: it turns 0-d arrays into 1-d ones.
    return arr if arr.flags.c_contiguous else arr.copy(order="C")


def _encode_header(kind, dim, metric, params, arrays, crcs) -> tuple[bytes, list[SectionInfo]]:
    """Serialise the header; section offsets depend on its length, so iterate to a fixed point."""
    data_start = _align(_PREFIX.size + _CRC.size)
    while True:
        table, offset = [], data_start
        for (name, arr), crc in zip(arrays.items(), crcs):
            table.append(
                SectionInfo(name, arr.dtype.str, tuple(arr.shape), offset, arr.nbytes, crc)
            )
            offset = _align(offset + arr.nbytes)
        header = {
            "kind": kind,
            "dim": dim,
            "metric": metric,
            "params": params,
            "sections": [
                {
                    "name": s.name,
                    "dtype": s.dtype,
                    "shape": list(s.shape),
                    "offset": s.offset,
                    "nbytes": s.nbytes,
                    "crc32": s.crc32,
                }
                for s in table
            ],
        }
        text = json.dumps(header, default=_json_default, allow_nan=False, sort_keys=True)
        encoded = text.encode("utf-8")
        needed = _align(_PREFIX.size + len(encoded) + _CRC.size)
        if needed == data_start:
            return encoded, table
        data_start = needed


def write_index(path, kind: str, dim: int, metric: str, params: dict, sections: dict) -> None:
    """Write an index file atomically: readers see the old file or the new one, never half.

    ``sections`` maps names to numpy arrays of any numeric dtype and shape;
    ``params`` must be JSON-serialisable.
    """
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"kind must be a non-empty string, got {kind!r}")
    if isinstance(dim, bool) or not isinstance(dim, numbers.Integral) or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    if not isinstance(metric, str):
        raise ValueError(f"metric must be a string, got {metric!r}")
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict, got {type(params).__name__}")
    arrays = {name: _prepare_section(name, arr) for name, arr in sections.items()}
    crcs = [zlib.crc32(_bytes_of(a)) for a in arrays.values()]
    try:
        header, table = _encode_header(kind, int(dim), metric, params, arrays, crcs)
    except ValueError as exc:  # allow_nan=False: NaN/inf in params
        raise ValueError(f"index params must be finite JSON values: {exc}") from None

    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"cannot write an index to {path!r}: it is a directory")
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header)) + header
            f.write(prefix)
            f.write(_CRC.pack(zlib.crc32(prefix[8:])))
            for info, arr in zip(table, arrays.values()):
                f.write(b"\0" * (info.offset - f.tell()))
                f.write(_bytes_of(arr).data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: str) -> None:
    """Make the rename itself durable (best effort: not every platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# -- reading -------------------------------------------------------------------


def _fail(path, what: str):
    raise FormatError(f"{path}: {what}")


def _parse_prefix(path, f, size: int) -> tuple[int, dict]:
    """Check magic, version and header checksum; return (version, header dict)."""
    if size == 0:
        _fail(path, "empty file, not a nearkit index")
    head = f.read(_PREFIX.size)
    if not MAGIC.startswith(head[: len(MAGIC)]):
        _fail(path, f"not a nearkit index file (starts with {head[:8]!r}, expected {MAGIC!r})")
    # The version is checked as soon as it is there: a newer format may lay out the rest differently.
    if len(head) < 12:
        _fail(path, f"truncated: {size} bytes is shorter than the {_PREFIX.size}-byte fixed header")
    (version,) = struct.unpack_from("<I", head, 8)
    if version > FORMAT_VERSION:
        _fail(
            path,
            f"written by format version {version}, newer than the version this nearkit "
            f"reads ({FORMAT_VERSION}); {_UPGRADE_HINT}",
        )
    if version == 0:
        _fail(path, "header damaged: format version 0 does not exist")
    if len(head) < _PREFIX.size:
        _fail(path, f"truncated: {size} bytes is shorter than the {_PREFIX.size}-byte fixed header")
    (hlen,) = struct.unpack_from("<I", head, 12)
    if hlen > _MAX_HEADER:
        _fail(path, f"header damaged: header length field says {hlen} bytes")
    end = _PREFIX.size + hlen + _CRC.size
    if end > size:
        _fail(
            path,
            f"truncated or header damaged: the header needs {end} bytes, the file has {size}",
        )
    text = f.read(hlen)
    (stored,) = _CRC.unpack(f.read(_CRC.size))
    if zlib.crc32(head[8:] + text) != stored:
        _fail(path, "header damaged: header checksum mismatch")
    try:
        header = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        _fail(path, f"header damaged: not valid JSON ({exc})")
    if not isinstance(header, dict):
        _fail(path, "header damaged: the header is not a JSON object")
    return version, header


def _parse_table(path, header: dict, data_start: int) -> list[SectionInfo]:
    """Validate the section table: types, dtype/shape/nbytes agreement, alignment, order."""
    raw = header.get("sections")
    if not isinstance(raw, list):
        _fail(path, "header damaged: no section table")
    table, seen, prev_end = [], set(), data_start

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool) and v >= 0

    for entry in raw:
        try:
            name, dtype_str = entry["name"], entry["dtype"]
            shape, offset, nbytes, crc = (
                entry["shape"], entry["offset"], entry["nbytes"], entry["crc32"]
            )
        except (TypeError, KeyError) as exc:
            _fail(path, f"header damaged: section entry lacks {exc}")
        if not isinstance(name, str) or name in seen:
            _fail(path, f"header damaged: bad or repeated section name {name!r}")
        seen.add(name)
        try:
            dtype = np.dtype(dtype_str)
        except (TypeError, ValueError):
            _fail(path, f"section {name!r} has unknown dtype {dtype_str!r}")
        if dtype.kind not in _DTYPE_KINDS or dtype.fields is not None:
            _fail(path, f"section {name!r} has unsupported dtype {dtype_str!r}")
        if not (isinstance(shape, list) and all(is_int(d) for d in shape)):
            _fail(path, f"header damaged: section {name!r} has bad shape {shape!r}")
        if not (is_int(offset) and is_int(nbytes) and is_int(crc)):
            _fail(path, f"header damaged: section {name!r} has bad offset/size/checksum")
        if nbytes != int(np.prod(shape, dtype=np.int64)) * dtype.itemsize:
            _fail(path, f"header damaged: section {name!r} size disagrees with its shape and dtype")
        if offset % ALIGN or offset < prev_end:
            _fail(path, f"header damaged: section {name!r} has bad offset {offset}")
        prev_end = offset + nbytes
        table.append(SectionInfo(name, dtype.str, tuple(shape), offset, nbytes, crc))
    return table


def _check_fields(path, header: dict) -> None:
    kind, dim, metric, params = (header.get(k) for k in ("kind", "dim", "metric", "params"))
    if not isinstance(kind, str) or not kind:
        _fail(path, "header damaged: no index kind")
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
        _fail(path, f"header damaged: bad dimension {dim!r}")
    from ._validate import MAX_DIM

    if dim > MAX_DIM:
        _fail(path, f"header damaged: dimension {dim} exceeds the largest supported ({MAX_DIM})")
    if not isinstance(metric, str):
        _fail(path, f"header damaged: bad metric {metric!r}")
    if not isinstance(params, dict):
        _fail(path, "header damaged: params is not an object")


_PARALLEL_CHECK_BYTES = 1 << 20  # smaller sections are checked inline


def section_checksum_ok(info: SectionInfo, arr: np.ndarray) -> bool:
    return zlib.crc32(_bytes_of(arr)) == info.crc32


def _read_section(path, f, info: SectionInfo, mapped, writable: bool) -> np.ndarray:
    """One section's array: read into memory, or a view of ``mapped`` (the array
    keeps the map alive; it is read-only over a read-only map)."""
    dtype = np.dtype(info.dtype)
    if info.nbytes == 0:
        arr = np.empty(info.shape, dtype)
        arr.flags.writeable = writable
        return arr
    if mapped is not None:
        return np.frombuffer(mapped, dtype, info.nbytes // dtype.itemsize, info.offset).reshape(info.shape)
    arr = np.empty(info.shape, dtype)
    f.seek(info.offset)
    if f.readinto(_bytes_of(arr).data) != info.nbytes:
        _fail(path, f"truncated while reading section {info.name!r}")
    return arr


def read_index(path, mmap: bool | str = False, verify: bool = True) -> IndexFile:
    """Parse an index file. Raises FormatError (a ValueError) saying what is wrong.

    With ``mmap=True`` sections are read-only memory maps of the file (still
    checksummed unless ``verify=False``, which reads each page once). With
    ``mmap="private"`` they are writable copy-on-write maps: nothing is copied up
    front, a page is copied when first written, and the file never changes (for
    files that are replaced, never rewritten in place, as snapshots are).
    """
    if mmap not in (False, True, "private"):
        raise ValueError(f"mmap must be False, True or 'private', got {mmap!r}")
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path}: is a directory, not an index file")
    with open(path, "rb") as f:  # FileNotFoundError passes through unchanged
        size = os.fstat(f.fileno()).st_size
        version, header = _parse_prefix(path, f, size)
        _check_fields(path, header)
        data_start = f.tell()
        table = _parse_table(path, header, data_start)
        expected = table[-1].offset + table[-1].nbytes if table else data_start
        if size < expected:
            _fail(path, f"truncated: expected {expected} bytes, found {size}")
        if size > expected:
            _fail(path, f"damaged: {size - expected} unexpected bytes after the last section")

        sections = {}
        mapped = None
        if mmap and size > 0:
            access = _mmap.ACCESS_COPY if mmap == "private" else _mmap.ACCESS_READ
            mapped = _mmap.mmap(f.fileno(), 0, access=access)
        # Checksums run on worker threads (zlib releases the GIL) while the next
        # section is read: on a large file this hides most of their cost.
        checks = []
        pool = None  # started by the first large section: small files never pay for threads
        try:
            for info in table:
                arr = _read_section(path, f, info, mapped, writable=mmap is not True)
                if verify and info.nbytes >= _PARALLEL_CHECK_BYTES:
                    pool = pool or ThreadPoolExecutor(max_workers=2)
                    checks.append((info, pool.submit(section_checksum_ok, info, arr)))
                elif verify and not section_checksum_ok(info, arr):
                    _fail(path, f"checksum mismatch in section {info.name!r}: the file is damaged")
                sections[info.name] = arr
        finally:
            if pool is not None:
                pool.shutdown(wait=True)
        for info, ok in checks:
            if not ok.result():
                _fail(path, f"checksum mismatch in section {info.name!r}: the file is damaged")

    return IndexFile(
        kind=header["kind"],
        version=version,
        dim=header["dim"],
        metric=header["metric"],
        params=header["params"],
        sections=sections,
        table=table,
        file_size=size,
        verified=verify,
    )
