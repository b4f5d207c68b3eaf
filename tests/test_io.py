"""The index file format: round trips, memory maps, and every kind of damaged file."""

import json
import os
import struct
import zlib

import numpy as np
import pytest

import nearkit
from nearkit import io
from nearkit.errors import FormatError
from nearkit.indexes import register
from nearkit.indexes.base import Index


@register("_test_tiny")
class TinyIndex(Index):
    """A brute-force numpy index: just enough to exercise save/load through the base class."""

    def __init__(self, dim, metric="l2"):
        super().__init__(dim, metric)
        self._x = np.empty((0, dim), np.float32)
        self._labels = np.empty(0, np.int64)

    def __len__(self):
        return self._labels.shape[0]

    def _add(self, x, ids):
        self._x = np.concatenate([self._x, x])
        self._labels = np.concatenate([self._labels, ids])

    def _search(self, q, k, mask, threads):
        d = ((q[:, None, :] - self._x[None, :, :]) ** 2).sum(-1).astype(np.float32)
        order = np.argsort(d, axis=1, kind="stable")[:, :k]
        return self._labels[order], np.take_along_axis(d, order, 1)

    def _slot_labels(self):
        return self._labels

    def _params(self):
        return {"note": "tiny", "n": len(self)}

    def _sections(self):
        return {"vectors": self._x, "labels": self._labels}

    @classmethod
    def _from_sections(cls, dim, metric, params, sections):
        index = cls(dim, metric)
        index._x, index._labels = sections["vectors"], sections["labels"]
        return index


SECTIONS = {
    "f32": np.arange(7 * 5, dtype=np.float32).reshape(7, 5) / 3,
    "i64": np.array([5, -1, 2**40], dtype=np.int64),
    "u8_3d": np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4),
    "mask": np.array([True, False, True]),
    "f64_scalar": np.array(2.5),
    "empty": np.empty((0, 5), np.float32),
    "f16": np.array([1.5, -2.0], np.float16),
    "c64": np.array([1 + 2j], np.complex64),
    "words": np.array(["king", "paris"], dtype="U6"),
    "big_endian": np.array([1.0, 2.0, 3.0], dtype=">f8"),
    "strided": np.arange(40, dtype=np.int32).reshape(8, 5)[::2, 1:4],
}
PARAMS = {"M": 16, "ef": 64.5, "name": "x", "nested": {"a": [1, 2]}, "np_int": np.int64(3)}


def write_sample(path):
    io.write_index(path, "sample", 5, "cosine", PARAMS, SECTIONS)
    return path


@pytest.fixture
def sample(tmp_path):
    return write_sample(tmp_path / "sample.nk")


@pytest.mark.parametrize("mmap", [False, True])
def test_round_trip_keeps_every_dtype_shape_and_value(sample, mmap):
    f = io.read_index(sample, mmap=mmap)
    assert (f.kind, f.version, f.dim, f.metric) == ("sample", 1, 5, "cosine")
    assert f.params == {**PARAMS, "np_int": 3}
    assert list(f.sections) == list(SECTIONS)
    for name, want in SECTIONS.items():
        got = f.sections[name]
        assert got.shape == want.shape, name
        assert got.dtype == want.dtype.newbyteorder("<") or got.dtype == want.dtype, name
        np.testing.assert_array_equal(got, want, err_msg=name)
        assert got.flags.c_contiguous
    assert f.verified


def test_mmap_sections_are_aligned_read_only_maps(sample):
    f = io.read_index(sample, mmap=True)
    for name, arr in f.sections.items():
        assert not arr.flags.writeable, name
        if arr.nbytes:
            assert arr.ctypes.data % 64 == 0, name
    with pytest.raises(ValueError):
        f.sections["f32"][0, 0] = 1.0
    plain = io.read_index(sample)
    assert plain.sections["f32"].flags.writeable


def test_sections_are_64_byte_aligned_in_the_file(sample):
    f = io.read_index(sample)
    assert all(s.offset % 64 == 0 for s in f.table)
    assert f.file_size == os.path.getsize(sample)


def test_write_rejects_what_a_file_cannot_hold(tmp_path):
    p = tmp_path / "bad.nk"
    with pytest.raises(TypeError, match="dtype object"):
        io.write_index(p, "k", 2, "l2", {}, {"o": np.array([object()])})
    with pytest.raises(ValueError, match="finite"):
        io.write_index(p, "k", 2, "l2", {"x": float("nan")}, {})
    with pytest.raises(TypeError, match="sections"):
        io.write_index(p, "k", 2, "l2", {"x": np.zeros(3)}, {})
    with pytest.raises(ValueError, match="dim"):
        io.write_index(p, "k", 0, "l2", {}, {})
    with pytest.raises(ValueError, match="kind"):
        io.write_index(p, "", 2, "l2", {}, {})
    assert not p.exists()


def test_file_without_sections_round_trips(tmp_path):
    p = tmp_path / "none.nk"
    io.write_index(p, "k", 3, "ip", {}, {})
    f = io.read_index(p, mmap=True)
    assert f.sections == {} and f.dim == 3 and f.metric == "ip"


# -- atomic writes ---------------------------------------------------------------


def test_write_leaves_no_temp_files_and_replaces_old_content(tmp_path):
    p = tmp_path / "a.nk"
    io.write_index(p, "k", 2, "l2", {"v": 1}, {"x": np.zeros(3)})
    io.write_index(p, "k", 2, "l2", {"v": 2}, {"x": np.ones(4)})
    assert sorted(os.listdir(tmp_path)) == ["a.nk"]
    f = io.read_index(p)
    assert f.params == {"v": 2}
    np.testing.assert_array_equal(f.sections["x"], np.ones(4))


def test_failed_write_keeps_the_old_file_and_cleans_up(tmp_path, monkeypatch):
    p = tmp_path / "a.nk"
    io.write_index(p, "k", 2, "l2", {"v": 1}, {"x": np.zeros(3)})
    before = p.read_bytes()

    def boom(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(io.os, "replace", boom)
    with pytest.raises(OSError, match="disk on fire"):
        io.write_index(p, "k", 2, "l2", {"v": 2}, {"x": np.ones(3)})
    assert p.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["a.nk"]


def test_mmap_reader_survives_the_file_being_replaced(tmp_path):
    p = tmp_path / "a.nk"
    io.write_index(p, "k", 2, "l2", {}, {"x": np.arange(1000.0)})
    mapped = io.read_index(p, mmap=True).sections["x"]
    io.write_index(p, "k", 2, "l2", {}, {"x": np.zeros(1000)})
    np.testing.assert_array_equal(mapped, np.arange(1000.0))


def test_writing_onto_a_directory_is_refused(tmp_path):
    with pytest.raises(IsADirectoryError):
        io.write_index(tmp_path, "k", 2, "l2", {}, {})


# -- damaged files -----------------------------------------------------------------


def header_end(path) -> int:
    data = path.read_bytes()
    (hlen,) = struct.unpack_from("<I", data, 12)
    return 16 + hlen + 4


@pytest.mark.parametrize("mmap", [False, True])
def test_truncation_anywhere_is_reported_as_truncated(sample, mmap):
    data = sample.read_bytes()
    table = io.read_index(sample).table
    last = table[-1]
    cuts = [3, 8, 14, 20, header_end(sample) - 1, header_end(sample), table[0].offset + 4,
            last.offset, last.offset + last.nbytes - 1]
    for cut in cuts:
        sample.write_bytes(data[:cut])
        with pytest.raises(FormatError, match="truncated") as err:
            io.read_index(sample, mmap=mmap)
        assert str(sample) in str(err.value)
    sample.write_bytes(data[: last.offset + 1])
    with pytest.raises(FormatError, match=f"expected {len(data)} bytes, found {last.offset + 1}"):
        io.read_index(sample, mmap=mmap)


def test_every_flipped_header_byte_is_caught(sample):
    data = bytearray(sample.read_bytes())
    end = header_end(sample)
    # every byte of the fixed fields and the checksum, every 3rd of the JSON
    for pos in [*range(8, 16), *range(16, end - 4, 3), *range(end - 4, end)]:
        damaged = bytearray(data)
        damaged[pos] ^= 0x40
        sample.write_bytes(damaged)
        with pytest.raises(FormatError, match="damaged|truncated|newer"):
            io.read_index(sample)


def test_flipped_json_byte_says_header_damaged(sample):
    data = bytearray(sample.read_bytes())
    data[30] ^= 0x01
    sample.write_bytes(data)
    with pytest.raises(FormatError, match="header damaged: header checksum mismatch"):
        io.read_index(sample)


@pytest.mark.parametrize("mmap", [False, True])
def test_flipped_byte_in_each_section_names_that_section(sample, mmap):
    data = sample.read_bytes()
    for info in io.read_index(sample).table:
        for pos in {info.offset, info.offset + info.nbytes // 2, info.offset + info.nbytes - 1}:
            if not info.nbytes:
                continue
            damaged = bytearray(data)
            damaged[pos] ^= 0x10
            sample.write_bytes(damaged)
            with pytest.raises(FormatError, match=f"checksum mismatch in section '{info.name}'"):
                io.read_index(sample, mmap=mmap)
            # verify=False skips the check and hands back the damaged bytes.
            assert io.read_index(sample, mmap=mmap, verify=False).verified is False


def test_trailing_garbage_is_refused(sample):
    with open(sample, "ab") as f:
        f.write(b"xx")
    with pytest.raises(FormatError, match="2 unexpected bytes"):
        io.read_index(sample)


@pytest.mark.parametrize(
    "content",
    [b"hello world, not an index", b"\x93NUMPY\x01\x00", b"PK\x03\x04" + b"\0" * 40, b"\x89NEAR"
     b"KIX" + b"\0" * 30],
)
def test_foreign_files_are_not_nearkit_files(tmp_path, content):
    p = tmp_path / "foreign"
    p.write_bytes(content)
    with pytest.raises(FormatError, match="not a nearkit index file"):
        io.read_index(p)


def test_a_real_npy_file_is_foreign(tmp_path):
    p = tmp_path / "x.npy"
    np.save(p, np.zeros(10))
    with pytest.raises(FormatError, match="not a nearkit index file"):
        nearkit.load(p)


def rewrite_version(path, version):
    """Set the version field and re-seal the header checksum, as a newer writer would."""
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, 8, version)
    end = header_end(path)
    struct.pack_into("<I", data, end - 4, zlib.crc32(bytes(data[8 : end - 4])))
    path.write_bytes(data)


def test_newer_version_says_which_and_to_upgrade(sample):
    rewrite_version(sample, 7)
    with pytest.raises(FormatError, match=r"format version 7.*reads \(1\).*upgrade nearkit"):
        io.read_index(sample)


def test_version_zero_is_damage(sample):
    rewrite_version(sample, 0)
    with pytest.raises(FormatError, match="version 0"):
        io.read_index(sample)


def test_empty_file(tmp_path):
    p = tmp_path / "empty.nk"
    p.write_bytes(b"")
    with pytest.raises(FormatError, match="empty file"):
        io.read_index(p)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError):
        io.read_index(tmp_path / "nope.nk")
    with pytest.raises(FileNotFoundError):
        nearkit.load(tmp_path / "nope.nk")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        nearkit.load(tmp_path)


def test_format_error_is_a_value_error():
    assert issubclass(nearkit.FormatError, ValueError)


def reseal_header(path, mutate):
    """Rewrite the JSON header through ``mutate`` with a valid checksum and layout."""
    data = path.read_bytes()
    (hlen,) = struct.unpack_from("<I", data, 12)
    header = json.loads(data[16 : 16 + hlen])
    mutate(header)
    text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= hlen, "test mutation must not grow the header"
    text = text + b" " * (hlen - len(text))  # JSON allows trailing whitespace
    new = bytearray(data)
    new[16 : 16 + hlen] = text
    struct.pack_into("<I", new, 16 + hlen, zlib.crc32(bytes(new[8 : 16 + hlen])))
    path.write_bytes(new)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda h: h["sections"][0].update(dtype="O"), "unsupported dtype"),
        (lambda h: h["sections"][0].update(dtype="zz"), "unknown dtype"),
        (lambda h: h["sections"][0].update(offset=h["sections"][0]["offset"] + 1), "bad offset"),
        (lambda h: h["sections"][0].update(shape=[7, 4]), "disagrees"),
        (lambda h: h["sections"][1].update(name="f32"), "repeated section name"),
        (lambda h: h.update(dim=-1), "bad dimension"),
        (lambda h: h.pop("kind"), "no index kind"),
    ],
)
def test_inconsistent_but_sealed_headers_are_refused(sample, mutate, message):
    reseal_header(sample, mutate)
    with pytest.raises(FormatError, match=message):
        io.read_index(sample)


# -- nearkit.load ---------------------------------------------------------------------


@pytest.mark.parametrize("mmap", [False, True])
def test_load_round_trips_an_index(tmp_path, rng, mmap):
    x = rng.standard_normal((50, 6)).astype(np.float32)
    index = TinyIndex(6)
    index.add(x, ids=np.arange(100, 150))
    p = tmp_path / "tiny.nk"
    index.save(p)
    loaded = nearkit.load(p, mmap=mmap)
    assert isinstance(loaded, TinyIndex) and len(loaded) == 50 and loaded.dim == 6
    q = rng.standard_normal((4, 6))
    for a, b in zip(index.search(q, 5), loaded.search(q, 5)):
        np.testing.assert_array_equal(a, b)
    assert loaded._x.flags.writeable is (not mmap)


def test_load_unknown_kind(sample):
    with pytest.raises(FormatError, match="index kind 'sample' is unknown"):
        nearkit.load(sample)


def test_load_missing_section_is_a_format_error(tmp_path):
    p = tmp_path / "partial.nk"
    io.write_index(p, "_test_tiny", 3, "l2", {}, {"vectors": np.zeros((2, 3), np.float32)})
    with pytest.raises(FormatError, match="lacks 'labels'"):
        nearkit.load(p)


def test_saving_over_the_file_an_index_is_mapped_from(tmp_path, rng):
    p = str(tmp_path / "tiny.nk")  # str paths work as well as pathlib ones
    index = TinyIndex(4)
    index.add(rng.standard_normal((20, 4)))
    index.save(p)
    mapped = nearkit.load(p, mmap=True)
    mapped.save(p)  # reads its own mapped pages while writing the replacement
    again = nearkit.load(p)
    np.testing.assert_array_equal(again._x, index._x)
    np.testing.assert_array_equal(again._labels, index._labels)


# -- with the real Flat index -----------------------------------------------------------


@pytest.mark.parametrize("mmap", [False, True])
@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_flat_round_trip(tmp_path, rng, metric, mmap):
    x = rng.standard_normal((500, 16)).astype(np.float32)
    index = nearkit.Flat(16, metric)
    index.add(x, ids=np.arange(1000, 1500))
    index.remove([1003, 1100])
    p = tmp_path / "flat.nk"
    index.save(p)
    loaded = nearkit.load(p, mmap=mmap)
    assert isinstance(loaded, nearkit.Flat)
    assert (loaded.dim, loaded.metric, len(loaded)) == (16, metric, 498)
    q = rng.standard_normal((9, 16))
    want_ids, want_dist = index.search(q, 7)
    got_ids, got_dist = loaded.search(q, 7)
    np.testing.assert_array_equal(got_ids, want_ids)
    np.testing.assert_allclose(got_dist, want_dist, rtol=1e-6, atol=1e-6)
    assert io.read_index(p).kind == "flat"


@pytest.mark.parametrize("mmap", [False, True])
def test_damaged_flat_file_is_refused_by_load(tmp_path, rng, mmap):
    index = nearkit.Flat(8)
    index.add(rng.standard_normal((100, 8)))
    p = tmp_path / "flat.nk"
    index.save(p)
    data = p.read_bytes()
    for info in io.read_index(p).table:
        damaged = bytearray(data)
        damaged[info.offset + info.nbytes // 2] ^= 0x01
        p.write_bytes(damaged)
        with pytest.raises(FormatError, match=f"section '{info.name}'"):
            nearkit.load(p, mmap=mmap)
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match="truncated"):
        nearkit.load(p, mmap=mmap)


def test_private_map_is_writable_and_leaves_the_file_alone(tmp_path):
    x = np.arange(4096 * 3, dtype=np.float32).reshape(-1, 8)
    path = tmp_path / "f.nki"
    io.write_index(path, "raw", 8, "l2", {}, {"x": x, "empty": np.zeros(0, np.int64)})
    f = io.read_index(path, mmap="private")
    arr = f.sections["x"]
    assert arr.flags.writeable and f.sections["empty"].flags.writeable
    arr[0, :] = -1
    np.testing.assert_array_equal(io.read_index(path).sections["x"], x)  # the file is unchanged
    assert io.read_index(path, mmap="private").sections["x"][0, 0] == 0
    assert not io.read_index(path, mmap=True).sections["x"].flags.writeable
    with pytest.raises(ValueError, match="mmap must be"):
        io.read_index(path, mmap="shared")


def test_private_map_still_checks_checksums(tmp_path):
    x = np.ones((1024, 8), np.float32)
    path = tmp_path / "f.nki"
    io.write_index(path, "raw", 8, "l2", {}, {"x": x})
    data = bytearray(path.read_bytes())
    data[-5] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="checksum mismatch"):
        io.read_index(path, mmap="private")
