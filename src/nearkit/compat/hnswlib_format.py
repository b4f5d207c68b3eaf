"""hnswlib 0.8's index files (``Index.save_index`` / ``BFIndex.save_index``), read and written with numpy.

``Index`` file (native little-endian, no magic, no version, no space or dim):

1. a 96-byte header: offsetLevel0 u64, max_elements u64, cur_element_count u64,
   size_data_per_element u64, label_offset u64, offsetData u64, maxlevel i32,
   enterpoint_node u32, maxM u64, maxM0 u64, M u64, mult f64, ef_construction u64;
2. ``count`` level-0 records of ``size_data_per_element`` bytes:
   [u32: neighbour count in the low 16 bits, bit 16 = deleted][maxM0 x u32 ids]
   [dim x f32 vector][u64 label];
3. per element: u32 byte size, then ``level`` upper-level lists of
   ``maxM * 4 + 4`` bytes each ([u32 count][maxM x u32 ids]).

``BFIndex`` file: max_elements u64, size_per_element u64, count u64, then
``max_elements`` records of [dim x f32][u64 label] (unused ones too).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

HEADER = np.dtype([
    ("offset_level0", "<u8"), ("max_elements", "<u8"), ("count", "<u8"),
    ("size_data_per_element", "<u8"), ("label_offset", "<u8"), ("offset_data", "<u8"),
    ("max_level", "<i4"), ("entry", "<u4"), ("maxM", "<u8"), ("maxM0", "<u8"), ("M", "<u8"),
    ("mult", "<f8"), ("ef_construction", "<u8"),
])
assert HEADER.itemsize == 96
_DELETED = np.uint32(1 << 16)


@dataclass
class HnswFile:
    """What an hnswlib Index file holds, decoded."""

    max_elements: int
    M: int
    ef_construction: int
    max_level: int
    entry: int
    vectors: np.ndarray  # (count, dim) float32
    labels: np.ndarray  # (count,) uint64
    deleted: np.ndarray  # (count,) bool
    levels: np.ndarray  # (count,) int32
    level0: np.ndarray  # (count, maxM0) uint32 neighbour ids, counts in level0_count
    level0_count: np.ndarray  # (count,) int
    upper: list  # per element: (level, maxM + 1) uint32 arrays ([count, ids...]) or None


def _corrupt():
    return RuntimeError("Index seems to be corrupted or unsupported")


def read_index(path, dim: int) -> HnswFile:
    """Decode an hnswlib Index file. RuntimeError as hnswlib for a missing or
    inconsistent file, and (unlike hnswlib) for a file written for another dim."""
    try:
        raw = np.fromfile(os.fspath(path), dtype=np.uint8)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise RuntimeError("Cannot open file") from None
    if raw.size < HEADER.itemsize:
        raise _corrupt()
    h = raw[: HEADER.itemsize].view(HEADER)[0]
    count, spe, maxM, maxM0 = int(h["count"]), int(h["size_data_per_element"]), int(h["maxM"]), int(h["maxM0"])
    links0 = maxM0 * 4 + 4
    if (int(h["offset_level0"]) != 0 or int(h["offset_data"]) != links0 or maxM0 > 2**20 or maxM > 2**20
            or int(h["label_offset"]) + 8 != spe or spe < links0 + 8 or (spe - links0 - 8) % 4):
        raise _corrupt()
    file_dim = (spe - links0 - 8) // 4
    if file_dim != dim:
        raise RuntimeError(f"hnswlib index file {os.fspath(path)!r} holds {file_dim}-d vectors, "
                           f"this index is {dim}-d")
    start = HEADER.itemsize
    end0 = start + count * spe
    if end0 > raw.size:
        raise _corrupt()
    rec = raw[start:end0].reshape(count, spe)
    words = rec[:, :links0].copy().view("<u4")
    head = words[:, 0]
    level0_count = (head & 0xFFFF).astype(np.int64)
    deleted = (head & _DELETED) != 0
    level0 = np.ascontiguousarray(words[:, 1:])
    vectors = np.ascontiguousarray(rec[:, links0: links0 + 4 * dim]).view("<f4").reshape(count, dim)
    labels = np.ascontiguousarray(rec[:, spe - 8:]).view("<u8").reshape(count)
    # the upper levels: walk the size prefixes (hnswlib's own consistency check)
    per_level = maxM * 4 + 4
    levels = np.zeros(count, np.int32)
    upper = [None] * count
    pos = end0
    for i in range(count):
        if pos + 4 > raw.size:
            raise _corrupt()
        size = int(raw[pos: pos + 4].view("<u4")[0])
        pos += 4
        if size:
            if size % per_level or pos + size > raw.size:
                raise _corrupt()
            levels[i] = size // per_level
            upper[i] = raw[pos: pos + size].copy().view("<u4").reshape(levels[i], maxM + 1)
            pos += size
    if pos != raw.size:
        raise _corrupt()
    if count and (level0_count > maxM0).any():
        raise _corrupt()
    return HnswFile(int(h["max_elements"]), int(h["M"]), int(h["ef_construction"]), int(h["max_level"]),
                    int(h["entry"]), vectors.astype(np.float32), labels.astype(np.uint64), deleted,
                    levels, level0, level0_count, upper)


def encode_index(*, vectors, labels, deleted, levels, level0, level0_count, upper, max_elements, M,
                 ef_construction, max_level, entry) -> list:
    """The bytes of an hnswlib Index file, as a list of buffers to write in order."""
    count, dim = vectors.shape
    maxM, maxM0 = M, 2 * M
    links0 = maxM0 * 4 + 4
    spe = links0 + 4 * dim + 8
    h = np.zeros(1, HEADER)
    h["offset_level0"], h["max_elements"], h["count"] = 0, max_elements, count
    h["size_data_per_element"], h["label_offset"], h["offset_data"] = spe, spe - 8, links0
    h["max_level"], h["entry"] = max_level, entry & 0xFFFFFFFF
    h["maxM"], h["maxM0"], h["M"] = maxM, maxM0, M
    h["mult"] = 1.0 / np.log(M)
    h["ef_construction"] = ef_construction
    rec = np.zeros((count, spe), np.uint8)
    words = np.zeros((count, maxM0 + 1), "<u4")
    words[:, 0] = level0_count.astype(np.uint32) | np.where(deleted, _DELETED, np.uint32(0))
    words[:, 1:] = level0
    rec[:, :links0] = words.view(np.uint8).reshape(count, links0)
    rec[:, links0: links0 + 4 * dim] = np.ascontiguousarray(vectors, "<f4").view(np.uint8).reshape(count, 4 * dim)
    rec[:, spe - 8:] = np.ascontiguousarray(labels, "<u8").view(np.uint8).reshape(count, 8)
    parts = [h.tobytes(), rec.tobytes()]
    tail = bytearray()
    for i in range(count):
        lv = int(levels[i])
        if lv:
            block = np.ascontiguousarray(upper[i], "<u4")
            tail += np.uint32(block.nbytes).tobytes() + block.tobytes()
        else:
            tail += b"\0\0\0\0"
    parts.append(bytes(tail))
    return parts


def file_size(count: int, dim: int, M: int, levels: np.ndarray) -> int:
    """Bytes ``encode_index`` writes (hnswlib's index_file_size)."""
    spe = (2 * M) * 4 + 4 + 4 * dim + 8
    return HEADER.itemsize + count * spe + 4 * count + int(levels[:count].sum()) * (M * 4 + 4)


# -- BFIndex ------------------------------------------------------------------------------


def read_bf(path, dim: int):
    """(max_elements, vectors (count, dim), labels (count,)) of a BFIndex file."""
    try:
        raw = np.fromfile(os.fspath(path), dtype=np.uint8)
    except (FileNotFoundError, IsADirectoryError, PermissionError):
        raise RuntimeError("Cannot open file") from None
    if raw.size < 24:
        raise _corrupt()
    max_elements, size_per, count = (int(v) for v in raw[:24].view("<u8"))
    if size_per != 4 * dim + 8:
        raise RuntimeError(f"BFIndex file {os.fspath(path)!r} holds {(size_per - 8) // 4}-d vectors, "
                           f"this index is {dim}-d")
    if count > max_elements or 24 + max_elements * size_per != raw.size:
        raise _corrupt()
    rec = raw[24: 24 + count * size_per].reshape(count, size_per)
    vectors = np.ascontiguousarray(rec[:, : 4 * dim]).view("<f4").reshape(count, dim).astype(np.float32)
    labels = np.ascontiguousarray(rec[:, 4 * dim:]).view("<u8").reshape(count).astype(np.uint64)
    return max_elements, vectors, labels


def encode_bf(vectors, labels, max_elements: int) -> list:
    count, dim = vectors.shape
    size_per = 4 * dim + 8
    rec = np.zeros((max_elements, size_per), np.uint8)
    rec[:count, : 4 * dim] = np.ascontiguousarray(vectors, "<f4").view(np.uint8).reshape(count, 4 * dim)
    rec[:count, 4 * dim:] = np.ascontiguousarray(labels, "<u8").view(np.uint8).reshape(count, 8)
    return [np.array([max_elements, size_per, count], "<u8").tobytes(), rec.tobytes()]


def write_parts(path, parts) -> None:
    """Write the buffers to ``path`` (a new file replaces the old one atomically)."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as fh:
        for p in parts:
            fh.write(p)
    os.replace(tmp, path)
