"""Data set readers: TEXMEX *vecs files, ann-benchmarks HDF5, GloVe, synthetic data."""

import numpy as np
import pytest

from nearkit import datasets


def write_vecs(path, x):
    """Write a *vecs file with plain numpy: int32 dimension, then the components."""
    x = np.asarray(x)
    dims = np.full((x.shape[0], 1), x.shape[1], dtype="<i4")
    with open(path, "wb") as f:
        for d, row in zip(dims, x):
            f.write(d.tobytes())
            f.write(row.tobytes())


CASES = [
    (".fvecs", np.float32, lambda rng, n, d: rng.standard_normal((n, d)).astype(np.float32)),
    (".ivecs", np.int32, lambda rng, n, d: rng.integers(-(2**31), 2**31 - 1, (n, d), np.int32)),
    (".bvecs", np.uint8, lambda rng, n, d: rng.integers(0, 256, (n, d), np.uint8)),
]


@pytest.mark.parametrize("ext, dtype, make", CASES)
@pytest.mark.parametrize("mmap", [False, True])
def test_vecs_round_trip_with_count_and_offset(tmp_path, rng, ext, dtype, make, mmap):
    x = make(rng, 37, 13)
    p = tmp_path / f"data{ext}"
    write_vecs(p, x)
    got = datasets.read_vecs(p, mmap=mmap)
    assert got.dtype == dtype and got.shape == (37, 13)
    np.testing.assert_array_equal(got, x)
    np.testing.assert_array_equal(datasets.read_vecs(p, count=5, offset=10, mmap=mmap), x[10:15])
    np.testing.assert_array_equal(datasets.read_vecs(p, offset=30, mmap=mmap), x[30:])
    np.testing.assert_array_equal(datasets.read_vecs(p, count=100, offset=35), x[35:])
    assert datasets.read_vecs(p, offset=37).shape == (0, 13)
    np.testing.assert_array_equal(datasets.load_vectors(p), x)


def test_named_readers(tmp_path, rng):
    x = rng.standard_normal((4, 3)).astype(np.float32)
    write_vecs(tmp_path / "a.fvecs", x)
    np.testing.assert_array_equal(datasets.read_fvecs(tmp_path / "a.fvecs", count=2), x[:2])
    b = rng.integers(0, 256, (4, 3), np.uint8)
    write_vecs(tmp_path / "a.bvecs", b)
    np.testing.assert_array_equal(datasets.read_bvecs(tmp_path / "a.bvecs"), b)
    i = rng.integers(0, 100, (4, 3), np.int32)
    write_vecs(tmp_path / "a.ivecs", i)
    np.testing.assert_array_equal(datasets.read_ivecs(tmp_path / "a.ivecs", offset=1), i[1:])


def test_vecs_damage_is_reported(tmp_path, rng):
    x = rng.standard_normal((5, 4)).astype(np.float32)
    p = tmp_path / "x.fvecs"
    write_vecs(p, x)
    data = p.read_bytes()

    p.write_bytes(data[:-3])
    with pytest.raises(ValueError, match="not a multiple"):
        datasets.read_fvecs(p)

    bad = bytearray(data)
    bad[2 * 20 : 2 * 20 + 4] = np.int32(3).tobytes()  # vector 2 (20-byte records) claims d=3
    p.write_bytes(bytes(bad))
    with pytest.raises(ValueError, match="vector 2 has dimension 3, the first has 4"):
        datasets.read_fvecs(p)

    p.write_bytes(np.int32(10**6).tobytes() + b"\0" * 12)
    with pytest.raises(ValueError, match="first record claims dimension 1000000"):
        datasets.read_fvecs(p)

    p.write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        datasets.read_fvecs(p)

    write_vecs(p, x)
    with pytest.raises(ValueError, match="offset 6 is past"):
        datasets.read_fvecs(p, offset=6)
    with pytest.raises(ValueError, match=r"\.fvecs, \.ivecs or \.bvecs"):
        datasets.read_vecs(tmp_path / "x.txt")


def test_load_vectors_npy_and_unknown_extension(tmp_path, rng):
    x = rng.standard_normal((6, 2))
    np.save(tmp_path / "x.npy", x)
    np.testing.assert_array_equal(datasets.load_vectors(tmp_path / "x.npy"), x)
    assert isinstance(datasets.load_vectors(tmp_path / "x.npy", mmap=True), np.memmap)
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(ValueError, match="unknown vector file type '.csv'"):
        datasets.load_vectors(tmp_path / "x.csv")
    with pytest.raises(FileNotFoundError):
        datasets.load_vectors(tmp_path / "missing.npy")
    with pytest.raises(IsADirectoryError):
        datasets.load_vectors(tmp_path)


def write_ann_benchmarks_file(path, rng, distance="angular"):
    h5py = pytest.importorskip("h5py")
    data = {
        "train": rng.standard_normal((50, 8)).astype(np.float32),
        "test": rng.standard_normal((5, 8)).astype(np.float32),
        "neighbors": rng.integers(0, 50, (5, 10)).astype(np.int32),
        "distances": rng.random((5, 10)).astype(np.float32),
    }
    with h5py.File(path, "w") as f:
        f.attrs["distance"] = distance
        for name, arr in data.items():
            f.create_dataset(name, data=arr)
    return data


def test_hdf5_reader(tmp_path, rng):
    p = tmp_path / "glove-25-angular.hdf5"
    data = write_ann_benchmarks_file(p, rng)
    got = datasets.read_hdf5(p)
    assert sorted(got) == sorted(data)
    for name in data:
        np.testing.assert_array_equal(got[name], data[name])
    assert datasets.hdf5_metric(p) == "cosine"
    np.testing.assert_array_equal(datasets.load_vectors(p), data["train"])
    np.testing.assert_array_equal(datasets.load_vectors(p, dataset="test"), data["test"])
    with pytest.raises(ValueError, match="no data set 'queries'"):
        datasets.load_vectors(p, dataset="queries")


def test_hdf5_metric_names(tmp_path, rng):
    p = tmp_path / "sift.h5"
    write_ann_benchmarks_file(p, rng, distance="euclidean")
    assert datasets.hdf5_metric(p) == "l2"


def test_hdf5_without_h5py_says_how_to_install(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_h5py(name, *args, **kwargs):
        if name == "h5py":
            raise ImportError("No module named 'h5py'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_h5py)
    with pytest.raises(datasets.DatasetUnavailable, match="pip install 'nearkit\\[hdf5\\]'"):
        datasets.read_hdf5(tmp_path / "x.hdf5")


def test_glove_split_shapes_and_disjointness():
    try:
        split = datasets.glove_split(n_base=3000, n_queries=100, seed=2)
    except datasets.DatasetUnavailable as exc:
        pytest.skip(str(exc))
    assert split.base.shape == (3000, 50) and split.queries.shape == (100, 50)
    assert split.base.dtype == np.float32
    assert not np.intersect1d(split.base_ids, split.query_ids).size
    full = datasets.glove_vectors()
    assert full.shape == (400_000, 50)
    np.testing.assert_array_equal(split.queries, full[split.query_ids])
    words = datasets.glove_words()
    assert len(words) == 400_000 and "king" in words[:5000]


def test_synthetic_is_seeded():
    a = datasets.synthetic_clustered(100, 8, seed=4)
    assert a.shape == (100, 8) and a.dtype == np.float32
    np.testing.assert_array_equal(a, datasets.synthetic_clustered(100, 8, seed=4))
    assert not np.array_equal(a, datasets.synthetic_clustered(100, 8, seed=5))
