"""nearkit.distributed on a local Ray instance (2 CPUs): sharded answers equal or
match single-machine ones, routing, files, recovery of killed shard actors,
Ray Data ingestion, the distributed k-NN graph and bad input.

Starting an actor (a Python process importing Ray and nearkit) is most of this
file's time, so sharded indexes are module fixtures shared by the tests that
only read them or whose changes come last, and data are no larger than the
checks need."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

ray = pytest.importorskip("ray")

import nearkit  # noqa: E402
from nearkit import datasets  # noqa: E402
from nearkit.distributed import ShardedIndex, ShardUnavailableError, knn_graph  # noqa: E402
from nearkit.distributed.merge import merge_topk  # noqa: E402
from nearkit.distributed.routing import shard_of  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def ray_local():
    # No dashboard, no log forwarding, no usage-stats reporting, a small object
    # store: less to start and less running beside the actors.
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
             configure_logging=False, object_store_memory=128 * 2**20,
             _system_config={"enable_metrics_collection": False})
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    yield
    ray.shutdown()


def _data(n, d, seed, dup_every=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    if dup_every:  # exact duplicates: ties that must break the same way
        x[dup_every::dup_every] = x[0]
    return x


def _recall(found, truth):
    k = truth.shape[1]
    return np.mean([len(set(f) & set(t)) / k for f, t in zip(found, truth)])


# -- pure helpers (no actors) ------------------------------------------------------


def test_merge_topk_orders_by_distance_then_id_and_pads():
    ids = [np.array([[5, 9, -1]]), np.array([[2, 7, 8]])]
    dist = [np.array([[0.5, 1.0, np.inf]], np.float32), np.array([[0.5, 0.7, 2.0]], np.float32)]
    got_ids, got_dist = merge_topk(ids, dist, 5)
    assert got_ids.tolist() == [[2, 5, 7, 9, 8]]
    assert got_dist.dtype == np.float32 and got_ids.dtype == np.int64
    got_ids, got_dist = merge_topk([np.array([[3]])], [np.array([[0.1]], np.float32)], 3)
    assert got_ids.tolist() == [[3, -1, -1]] and np.isinf(got_dist[0, 1:]).all()


def test_routing_is_stable_and_balanced():
    ids = np.arange(100_000, dtype=np.int64)
    owner = shard_of(ids, 4)
    assert np.array_equal(owner, shard_of(ids.copy(), 4))  # a pure function of the id
    counts = np.bincount(owner, minlength=4)
    assert counts.min() > 0.97 * 25_000 and counts.max() < 1.03 * 25_000


def test_nearkit_imports_without_ray():
    code = ("import sys; sys.modules['ray'] = None\n"
            "import nearkit\n"
            "try:\n    import nearkit.distributed\nexcept ImportError as e:\n    print('hint:', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr
    assert "pip install 'nearkit[ray]'" in out.stdout


# -- exact search ------------------------------------------------------------------------


def _flat_pair(metric):
    """(metric, x, sharded index, one Flat) holding the same 3000 vectors."""
    x = _data(3000, 24, 1, dup_every=97)
    index = ShardedIndex("flat", dim=24, metric=metric, shards=2)
    index.add(x[:1000])
    index.add(x[1000:].astype(np.float64))  # default ids continue after the largest
    flat = nearkit.Flat(24, metric)
    flat.add(x)
    return metric, x, index, flat


@pytest.fixture(scope="module")
def flat_l2():
    """Also reused, and changed, by test_remove_and_replace_go_to_the_owner (later)."""
    return _flat_pair("l2")


@pytest.fixture(scope="module")
def flat_cosine():
    return _flat_pair("cosine")


@pytest.mark.parametrize("pair", ["flat_l2", "flat_cosine"])
def test_sharded_flat_equals_one_flat(pair, request):
    metric, x, index, flat = request.getfixturevalue(pair)
    q = np.concatenate([_data(40, 24, 2), x[:5]])  # some queries sit on duplicated rows
    assert len(index) == 3000 and sum(index.shard_sizes()) == 3000
    assert min(index.shard_sizes()) > 0.9 * 3000 / index.shards  # ids spread evenly
    ids, dist = index.search(q, 12)
    want_ids, want_dist = flat.search(q, 12)
    assert ids.dtype == np.int64 and dist.dtype == np.float32
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(dist, want_dist)
    one_ids, one_dist = index.search(q[0], 12)  # a 1-D query gives 1-D results
    np.testing.assert_array_equal(one_ids, want_ids[0])
    # fewer than k stored: padded with -1 / +inf, as one index pads
    ids, dist = index.search(q[:3], 3005)
    want_ids, want_dist = flat.search(q[:3], 3005)
    np.testing.assert_array_equal(ids, want_ids)
    assert (ids[:, 3000:] == -1).all() and np.isinf(dist[:, 3000:]).all()
    # a filter of allowed ids goes to every shard
    allowed = np.arange(0, 3000, 7)
    np.testing.assert_array_equal(index.search(q, 5, filter=allowed)[0],
                                  flat.search(q, 5, filter=allowed)[0])


# -- approximate kinds -----------------------------------------------------------------


def test_sharded_hnsw_keeps_the_recall_of_one_hnsw():
    x, q = _data(3000, 16, 3), _data(200, 16, 4)
    flat = nearkit.Flat(16)
    flat.add(x)
    truth = flat.search(q, 10)[0]
    one = nearkit.HNSW(16, M=8, ef_construction=40)
    one.add(x)
    index = ShardedIndex("hnsw", dim=16, shards=2, M=8, ef_construction=40)
    index.add(x)
    for ef in (10, 32):
        r_one = _recall(one.search(q, 10, ef=ef)[0], truth)
        r_sharded = _recall(index.search(q, 10, ef=ef)[0], truth)
        assert r_sharded >= r_one - 0.01, (ef, r_sharded, r_one)
    assert r_sharded > 0.9
    # re-adding an id replaces its vector, in its one shard
    new = _data(2, 16, 8) + 10
    index.add(new, [1, 2])
    assert len(index) == 3000
    assert index.search(new, 1)[0][:, 0].tolist() == [1, 2]


def test_sharded_ivf_shares_one_quantiser_and_matches_one_ivf():
    x, q = _data(2000, 16, 5), _data(100, 16, 6)
    one = nearkit.IVF(16, nlist=32, nprobe=4)
    one.train(x)
    one.add(x)
    index = ShardedIndex("IVF32,Flat", dim=16, shards=2, nprobe=4)  # kind "ivf" or a factory string
    index.add(x)  # trains once, on the driver, on this batch; every shard gets the result
    images = ray.get([a.image.remote() for a in index.actors])
    np.testing.assert_array_equal(images[0].sections["centroids"], images[1].sections["centroids"])
    np.testing.assert_array_equal(images[0].sections["centroids"], one.image().sections["centroids"])
    # Same centroids and the same lists probed: the merged answer is the single one.
    ids, dist = index.search(q, 10)
    want_ids, want_dist = one.search(q, 10)
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(dist, want_dist)


# -- routing: remove and replace ------------------------------------------------------


def test_remove_and_replace_go_to_the_owner(flat_l2):
    index = flat_l2[2]  # 3000 vectors, ids 0..2999, already checked above
    before = len(index)
    x = _data(1200, 24, 7)
    ids = 10**6 + np.arange(1200, dtype=np.int64) * 11 + 5
    index.add(x, ids)
    owner = shard_of(ids, 2)
    for s, actor in enumerate(index.actors):  # each id lives in exactly its owner shard
        held = np.array([ray.get(actor.present.remote(np.array([i]))) for i in ids[:30]])
        assert ((held >= 0) == (owner[:30] == s)).all()
    gone = ids[::4]
    assert index.remove(np.concatenate([gone, [10**12]])) == gone.size
    assert len(index) == before + 1200 - gone.size
    found = index.search(x[::4], 1)[0]
    assert not np.isin(found, gone).any()
    # duplicate add is refused naming the shard, and changes nothing
    with pytest.raises(ValueError, match=r"id \d+ is already in the index \(shard \d\)"):
        index.add(x[1:3], ids[1:3])
    assert len(index) == before + 1200 - gone.size
    # replace = remove + add with new vectors; the new vector is found under the old id
    new = _data(2, 24, 8) + 10
    index.remove(ids[[1, 2]])
    index.add(new, ids[[1, 2]])
    assert index.search(new, 1)[0][:, 0].tolist() == ids[[1, 2]].tolist()


# -- files -------------------------------------------------------------------------------


def test_save_and_load(tmp_path):
    x, q = _data(1000, 12, 9), _data(30, 12, 10)
    index = ShardedIndex("hnsw", dim=12, metric="cosine", shards=2, M=8, ef_construction=40)
    index.add(x)
    want = index.search(q, 10, ef=40)
    index.save(tmp_path / "ix")
    names = sorted(os.listdir(tmp_path / "ix"))
    assert names == ["manifest.json", "shard-00000.nearkit", "shard-00001.nearkit"]
    mapped = ShardedIndex.load(tmp_path / "ix", mmap=True)
    assert (len(mapped), mapped.metric, mapped.shards) == (1000, "cosine", 2)
    got = mapped.search(q, 10, ef=40)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    with pytest.raises(RuntimeError, match="shard .*read-only"):
        mapped.add(x[:2], [5000, 5001])
    writable = ShardedIndex.load(tmp_path / "ix")
    writable.add(x[:2] * 2, [5000, 5001])
    assert len(writable) == 1002


# -- faults -------------------------------------------------------------------------------


def test_killed_shard_is_restored_and_the_next_search_is_complete(tmp_path):
    x, q = _data(2000, 8, 11), _data(20, 8, 12)
    flat = nearkit.Flat(8)
    flat.add(x)
    want = flat.search(q, 10)
    index = ShardedIndex("flat", dim=8, shards=2)
    index.add(x[:1500])
    index.remove(np.arange(0, 1500, 50))
    index.add(x[1500:])
    flat.remove(np.arange(0, 1500, 50))
    want = flat.search(q, 10)
    # 1. never saved: rebuilt from the object store (empty index + replayed log)
    dead = index.actors[1]
    ray.kill(dead)
    got = index.search(q, 10)
    assert index.actors[1] is not dead
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    # a mutation that meets a dead actor: restored, then applied once
    ray.kill(index.actors[0])
    extra = _data(10, 8, 20)
    index.add(extra, np.arange(5000, 5010))
    flat.add(extra, np.arange(5000, 5010))
    assert len(index) == len(flat)
    np.testing.assert_array_equal(index.search(q, 10)[0], flat.search(q, 10)[0])
    # 2. snapshot in the object store, then more changes in the log
    index.checkpoint()
    index.remove([1999])
    flat.remove([1999])
    ray.kill(index.actors[0])
    ray.kill(index.actors[1])
    np.testing.assert_array_equal(index.search(q, 10)[0], flat.search(q, 10)[0])
    # 3. saved: restored from the shard's file
    index.save(tmp_path / "ix")
    ray.kill(index.actors[0])
    np.testing.assert_array_equal(index.search(q, 10)[0], flat.search(q, 10)[0])
    # 4. the file is gone too: an error naming the shard, not a partial answer
    os.remove(tmp_path / "ix" / "shard-00000.nearkit")
    ray.kill(index.actors[0])
    with pytest.raises(ShardUnavailableError, match=r"shard 0: .*could not be restored.*shard-00000"):
        index.search(q, 10)


# -- Ray Data --------------------------------------------------------------------------------


def test_from_dataset_streams_blocks_to_the_shards():
    x, q = _data(1500, 16, 15), _data(50, 16, 16)
    ids = np.arange(1500, dtype=np.int64) * 3 + 1
    import pandas as pd

    frames = [pd.DataFrame({"id": ids[a:a + 250], "vector": list(x[a:a + 250])}) for a in range(0, 1500, 250)]
    ds = ray.data.from_pandas(frames)  # 6 blocks
    flat = nearkit.Flat(16)
    flat.add(x, ids)
    with pytest.raises(KeyError, match="no column 'emb'"):
        ShardedIndex.from_dataset(ds, "flat", dim=16, shards=1, column="emb")
    # IVF: the quantiser is trained once on the first train_size rows of the stream
    ivf = ShardedIndex.from_dataset(ds, "ivf", dim=16, shards=2, batch_size=250, train_size=750,
                                    nlist=16, nprobe=16)
    assert len(ivf) == 1500
    # nprobe = nlist scans everything: the exact answer, with the dataset's ids
    np.testing.assert_array_equal(ivf.search(q, 10)[0], flat.search(q, 10)[0])


# -- the all-pairs graph -------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_distributed_knn_graph_equals_the_local_one(metric):
    x = _data(2500, 20, 17, dup_every=53)  # duplicates: ties broken by row number
    want = nearkit.knn_graph(x, 9, metric)
    got = knn_graph(x, 9, metric, shards=2, block_rows=600)  # 5 blocks, uneven ownership
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    small = x[:6]  # fewer rows than k + 1: padded
    np.testing.assert_array_equal(knn_graph(small, 8, metric, shards=3)[0],
                                  nearkit.knn_graph(small, 8, metric)[0])


def test_distributed_knn_graph_equals_the_local_one_on_near_ties():
    # 384-d clusters: squared norms in the hundreds, where a float32 selection score
    # (|x|^2 - 2 x.q) rounds by more than the gaps between neighbours. The local
    # graph is exact (the distance decides, not the score), and so is every block
    # of the distributed one, so both give the same ids and distances.
    x = datasets.synthetic_clustered(3000, 384, seed=7)
    want_ids, want_dist = nearkit.knn_graph(x, 10)
    got_ids, got_dist = knn_graph(x, 10, shards=2)
    np.testing.assert_array_equal(got_ids, want_ids)
    np.testing.assert_array_equal(got_dist, want_dist)


# -- bad input -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_flat():
    """A 4-d flat index with recoverable=False: checked for bad input first, then
    one of its shards is killed (test_unrecoverable_shard_raises_naming_it)."""
    return ShardedIndex("flat", dim=4, shards=2, recoverable=False)


def test_bad_input_gives_clear_errors(tmp_path, small_flat):
    with pytest.raises(ValueError, match="unknown metric"):
        ShardedIndex("flat", dim=4, metric="manhattan", shards=2)
    with pytest.raises(ValueError, match="could not parse"):
        ShardedIndex("IVF,Nope", dim=4, shards=2)
    with pytest.raises(ValueError, match="shards must be >= 1"):
        ShardedIndex("flat", dim=4, shards=0)
    index = small_flat
    with pytest.raises(ValueError, match="dimension 5, index expects 4"):
        index.add(np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="dimension 3, index expects 4"):
        index.search(np.zeros((1, 3)), 2)
    with pytest.raises(ValueError, match="NaN"):
        index.add(np.full((1, 4), np.nan))
    with pytest.raises(ValueError, match="k must be positive"):
        index.search(np.zeros(4), 0)
    with pytest.raises(ValueError, match="X must be 2-D"):
        knn_graph(np.zeros(4), 2)
    index.add(_data(50, 4, 18))
    index.save(tmp_path / "l2")
    # mixed metrics between shards: shard 1's file replaced by an "ip" index's
    shutil.copytree(tmp_path / "l2", tmp_path / "mixed")
    ip = nearkit.Flat(4, "ip")
    ip.add(_data(20, 4, 19))
    ip.save(tmp_path / "mixed" / "shard-00001.nearkit")
    with pytest.raises(ValueError, match=r"shard 1 .* metric 'ip' .* 'l2'"):
        ShardedIndex.load(tmp_path / "mixed")
    # a missing shard file
    shutil.copytree(tmp_path / "l2", tmp_path / "missing")
    os.remove(tmp_path / "missing" / "shard-00001.nearkit")
    with pytest.raises(FileNotFoundError, match="shard 1 .*is missing"):
        ShardedIndex.load(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no manifest.json"):
        ShardedIndex.load(tmp_path)
    assert len(ShardedIndex.load(tmp_path / "l2")) == 50  # the intact copy still loads


def test_unrecoverable_shard_raises_naming_it(small_flat):
    index = small_flat  # saved by the test above: the add below is what would be lost
    index.add(_data(100, 4, 13))
    ray.kill(index.actors[1])
    with pytest.raises(ShardUnavailableError, match="shard 1: .*recoverable=False"):
        index.search(_data(2, 4, 14), 3)
