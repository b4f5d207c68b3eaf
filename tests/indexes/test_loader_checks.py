"""Loaders validate everything a later call relies on (issue 12, items 2, 3, 9 and
the crafted-header and compat.faiss findings).

Each test crafts a file with valid checksums (``nearkit.io.write_index``
recomputes them) that today's main loads and then crashes on, reads out of
bounds with, or answers with a non-FormatError exception.
"""

import json
import os
import struct
import zlib

import numpy as np
import pytest

import nearkit
from child_env import child_env
from nearkit import io
from nearkit.compat import faiss
from nearkit.errors import FormatError

DIM = 8


def _x(n=300, seed=0):
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def _rewrite(path, sections=None, params=None, dim=None, kind=None):
    """Rewrite ``path`` with some sections/params replaced; checksums recomputed."""
    f = io.read_index(path)
    secs = {k: np.array(v, copy=True) for k, v in f.sections.items()}
    secs.update(sections or {})
    p = dict(f.params)
    p.update(params or {})
    io.write_index(path, kind or f.kind, dim or f.dim, f.metric, p, secs)
    return io.read_index(path)


@pytest.fixture
def hnsw_file(tmp_path):
    ix = nearkit.HNSW(DIM, M=4)
    ix.add(_x(100))
    ix.remove([3, 4])  # two free slots
    path = str(tmp_path / "h.nk")
    ix.save(path)
    return path


def _labels(path):
    return np.array(io.read_index(path).sections["labels"])


# -- item 2: HNSW labels ------------------------------------------------------------------

def test_hnsw_two_live_slots_with_one_id_is_refused(hnsw_file):
    labels = _labels(hnsw_file)
    live = np.flatnonzero(labels >= 0)
    labels[live[1]] = labels[live[0]]
    _rewrite(hnsw_file, {"labels": labels})
    with pytest.raises(FormatError, match="one id to two live slots"):
        nearkit.load(hnsw_file)


def test_hnsw_minus_one_on_a_linked_node_is_refused(hnsw_file):
    labels = _labels(hnsw_file)
    labels[np.flatnonzero(labels >= 0)[5]] = -1
    _rewrite(hnsw_file, {"labels": labels})
    with pytest.raises(FormatError):
        nearkit.load(hnsw_file)


def test_hnsw_live_label_on_a_free_slot_is_refused(hnsw_file):
    labels = _labels(hnsw_file)
    labels[np.flatnonzero(labels < 0)[0]] = 10_000
    _rewrite(hnsw_file, {"labels": labels})
    with pytest.raises(FormatError, match="free-slot flags"):
        nearkit.load(hnsw_file)


def test_hnsw_label_below_minus_one_and_bad_entry_are_refused(hnsw_file):
    labels = _labels(hnsw_file)
    labels[0] = -7
    _rewrite(hnsw_file, {"labels": labels})
    with pytest.raises(FormatError):
        nearkit.load(hnsw_file)


def test_hnsw_entry_on_a_free_slot_is_refused(hnsw_file):
    f = io.read_index(hnsw_file)
    free = int(np.flatnonzero(np.asarray(f.sections["labels"]) < 0)[0])
    _rewrite(hnsw_file, {"state": np.array([free, 0], np.int64)})
    with pytest.raises(FormatError, match="entry point"):
        nearkit.load(hnsw_file)


def test_hnsw_nan_quantiser_is_refused(hnsw_file):
    quant = np.array(io.read_index(hnsw_file).sections["quant"])
    quant[1, 0] = np.nan
    _rewrite(hnsw_file, {"quant": quant})
    with pytest.raises(FormatError, match="NaN"):
        nearkit.load(hnsw_file)


def test_valid_hnsw_file_still_loads_and_works(hnsw_file):
    ix = nearkit.load(hnsw_file)
    assert len(ix) == 98
    ix.add(_x(5, seed=1), ids=[3, 4, 200, 201, 202])
    assert ix.remove([200, 7]) == 2
    ids, _ = ix.search(_x(100)[10], 1)
    assert ids[0] == 10


def test_hnsw_small_wide_file_loads_without_reserving_memory(tmp_path):
    # One 60,000-d vector: a file of ~0.3 MB. Loading it used to reserve 1024
    # slots of that width (~300 MB; at 250,000-d a 1.6 MB file took 1 GB).
    import subprocess
    import sys

    ix = nearkit.HNSW(60_000)
    ix.add(np.ones((1, 60_000), np.float32))
    path = str(tmp_path / "wide.nk")
    ix.save(path)
    assert os.path.getsize(path) < 1 << 20
    code = ("import resource, nearkit\n"
            "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            f"ix = nearkit.load({path!r})\n"
            "assert len(ix) == 1\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=child_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout.split()[-1]) < 50_000  # kB


def test_hnsw_file_wider_than_the_limit_is_refused(tmp_path):
    ix = nearkit.HNSW(DIM)
    path = str(tmp_path / "wide.nk")
    ix.save(path)
    f = io.read_index(path)
    io.write_index(path, f.kind, 250_000, f.metric, f.params, dict(f.sections))
    with pytest.raises(FormatError, match="exceeds the largest supported"):
        nearkit.load(path)


# -- item 3: IVF / PQ / SQ / fast scan -------------------------------------------------------

def _ivf_file(tmp_path, codec, **kw):
    x = _x(600)
    ix = nearkit.IVF(DIM, nlist=4, codec=codec, **kw)
    ix.train(x)
    ix.add(x)
    path = str(tmp_path / f"{codec}.nk")
    ix.save(path)
    return path


def test_ivf_pq8_codebooks_smaller_than_the_codes_are_refused(tmp_path):
    path = _ivf_file(tmp_path, "pq4")
    books = np.array(io.read_index(path).sections["pq_codebooks"])
    _rewrite(path, {"pq_codebooks": np.ascontiguousarray(books[:, :16, :])})
    with pytest.raises(FormatError, match="pq_codebooks"):
        nearkit.load(path)


def test_ivf_pq4fs_codebooks_must_have_16_entries(tmp_path):
    path = _ivf_file(tmp_path, "pq4x4fs")
    books = np.array(io.read_index(path).sections["pq_codebooks"])
    _rewrite(path, {"pq_codebooks": np.ascontiguousarray(books[:, :8, :])})
    with pytest.raises(FormatError):
        nearkit.load(path)


def test_ivf_sq8_ranges_must_cover_the_dimension(tmp_path):
    path = _ivf_file(tmp_path, "sq8")
    _rewrite(path, {"sq_step": np.ones(DIM - 2, np.float32)})
    with pytest.raises(FormatError, match="sq_step"):
        nearkit.load(path)


def test_ivf_offsets_ids_and_count_are_checked(tmp_path):
    path = _ivf_file(tmp_path, "flat")
    f = io.read_index(path)
    ids = np.array(f.sections["ids"])
    dup = ids.copy()
    live = np.flatnonzero(dup >= 0)
    dup[live[1]] = dup[live[0]]
    _rewrite(path, {"ids": dup})
    with pytest.raises(FormatError, match="repeated"):
        nearkit.load(path)
    offsets = np.array(f.sections["offsets"])
    offsets[1], offsets[2] = offsets[2], offsets[1]
    _rewrite(path, {"ids": ids, "offsets": offsets})
    with pytest.raises(FormatError):
        nearkit.load(path)
    _rewrite(path, {"offsets": np.array(f.sections["offsets"])}, params={"count": 5})
    with pytest.raises(FormatError, match="counts 5"):
        nearkit.load(path)


def test_ivf_wrong_dtype_is_a_format_error(tmp_path):
    path = _ivf_file(tmp_path, "flat")
    f = io.read_index(path)
    _rewrite(path, {"centroids": np.array(f.sections["centroids"], np.float64)})
    with pytest.raises(FormatError, match="centroids"):
        nearkit.load(path)


# -- trees ----------------------------------------------------------------------------------

def test_trees_repeated_labels_and_bad_params_are_refused(tmp_path):
    ix = nearkit.Trees(DIM, "l2", n_trees=3)
    ix.add(_x(200))
    path = str(tmp_path / "t.nk")
    ix.save(path)
    labels = np.array(io.read_index(path).sections["labels"])
    labels[1] = labels[0]
    _rewrite(path, {"labels": labels})
    with pytest.raises(FormatError, match="repeated"):
        nearkit.load(path)
    labels[1] = labels[2] + 1000
    _rewrite(path, {"labels": labels}, params={"leaf_size": 10**9})
    with pytest.raises(FormatError):
        nearkit.load(path)
    _rewrite(path, params={"leaf_size": "big"})
    with pytest.raises(FormatError):
        nearkit.load(path)


# -- crafted headers: FormatError, never numpy/Overflow/Memory/TypeError ----------------------

def _raw_file(tmp_path, header: dict, payload: bytes = b"") -> str:
    text = json.dumps(header).encode()
    prefix = struct.pack("<8sII", io.MAGIC, io.FORMAT_VERSION, len(text)) + text
    data = prefix + struct.pack("<I", zlib.crc32(prefix[8:]))
    data += b"\0" * (-len(data) % 64) + payload
    path = str(tmp_path / "crafted.nk")
    with open(path, "wb") as f:
        f.write(data)
    return path


@pytest.mark.parametrize("params", [
    {"M": 2**70, "ef_construction": 10, "ef_search": 10, "seed": 0},
    {"M": "16", "ef_construction": 10, "ef_search": 10, "seed": 0},
    {"M": 16, "ef_construction": -1, "ef_search": 10, "seed": 0},
    {},
])
def test_crafted_hnsw_params_raise_format_error(tmp_path, params):
    path = _raw_file(tmp_path, {"kind": "hnsw", "dim": 8, "metric": "l2", "params": params,
                                "sections": []})
    with pytest.raises(FormatError):
        nearkit.load(path)


@pytest.mark.parametrize("header", [
    {"kind": "flat", "dim": 2**62, "metric": "l2", "params": {}, "sections": []},
    {"kind": "ivf", "dim": 8, "metric": "l2", "params": {"nlist": 2**80, "codec": "flat"},
     "sections": []},
    {"kind": "ivf", "dim": 8, "metric": "l2", "params": {"nlist": 4, "codec": 7}, "sections": []},
    {"kind": "trees", "dim": 8, "metric": "l2", "params": {"n_trees": [], "leaf_size": 1, "seed": 0},
     "sections": []},
    {"kind": "flat", "dim": 8, "metric": "bogus", "params": {}, "sections": []},
])
def test_crafted_headers_raise_format_error(tmp_path, header):
    path = _raw_file(tmp_path, header)
    with pytest.raises(FormatError):
        nearkit.load(path)


# -- compat.faiss.read_index trusts nothing --------------------------------------------------

def _faiss_file(tmp_path, index) -> str:
    path = str(tmp_path / "f.nk")
    faiss.write_index(index, path)
    return path


def test_faiss_read_index_refuses_a_foreign_class_name(tmp_path):
    index = faiss.IndexFlatL2(DIM)
    index.add(_x(20))
    path = _faiss_file(tmp_path, index)
    meta = io.read_index(path).params["faiss"]
    for name in ("Kmeans", "IndexHNSWFlat", "np", "IDSelectorRange", "FaissAssertionError"):
        _rewrite(path, params={"faiss": dict(meta, **{"class": name})})
        with pytest.raises(FormatError, match="does not fit"):
            faiss.read_index(path)
    _rewrite(path, params={"faiss": dict(meta, **{"class": "IndexFlatIP"})})
    with pytest.raises(FormatError, match="metric"):  # an IP class over an l2 index
        faiss.read_index(path)
    _rewrite(path, params={"faiss": dict(meta, **{"class": "IndexFlatL2"})})
    assert type(faiss.read_index(path)).__name__ == "IndexFlatL2"


def test_faiss_read_index_checks_the_id_map(tmp_path):
    index = faiss.IndexIDMap(faiss.IndexFlatL2(DIM))
    index.add_with_ids(_x(20), np.arange(100, 120))
    path = _faiss_file(tmp_path, index)
    f = io.read_index(path)
    tree = f.params["faiss_tree"]
    short = np.array(f.sections["id_map"])[:5]
    _rewrite(path, {"id_map": short}, params={"faiss_tree": dict(tree, next=5)})
    with pytest.raises(FormatError, match="id map"):
        faiss.read_index(path)
    _rewrite(path, {"id_map": np.arange(100, 120)}, params={"faiss_tree": dict(tree, next=20, **{"class": "Evil"})})
    with pytest.raises(FormatError, match="Evil"):
        faiss.read_index(path)
    _rewrite(path, {"id_map": np.arange(100, 120)}, params={"faiss_tree": dict(tree, next=20, **{"class": "os"})})
    with pytest.raises(FormatError):
        faiss.read_index(path)
    _rewrite(path, params={"faiss_tree": dict(tree, next=20)})
    D, I = faiss.read_index(path).search(_x(20)[:1], 1)
    assert I[0, 0] == 100


def test_faiss_read_index_unknown_kind(tmp_path):
    index = faiss.IndexFlatL2(DIM)
    path = _faiss_file(tmp_path, index)
    _rewrite(path, kind="nonesuch")
    with pytest.raises(FormatError):
        faiss.read_index(path)


def test_trees_forest_section_of_another_dtype_is_refused(tmp_path):
    # A float64 'planes' section was converted to a temporary that a memory-mapped
    # forest kept pointing into after the load (a use after free; found by ASan).
    ix = nearkit.Trees(DIM, "l2", n_trees=3)
    ix.add(_x(200))
    path = str(tmp_path / "t.nk")
    ix.save(path)
    planes = np.array(io.read_index(path).sections["planes"], np.float64)
    _rewrite(path, {"planes": planes})
    for mmap in (True, False):
        with pytest.raises(FormatError, match="planes"):
            nearkit.load(path, mmap=mmap)
