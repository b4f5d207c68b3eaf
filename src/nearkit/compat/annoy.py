"""A drop-in for ``annoy.AnnoyIndex`` on nearkit's tree forest.

    from nearkit.compat.annoy import AnnoyIndex   # instead of: from annoy import AnnoyIndex

Same methods, arguments, return types, distances and exceptions as annoy 1.17.3
(see docs of ``annoy``), and the same file format both ways: ``load()`` opens
``.ann`` files written by annoy, and ``save()`` writes files annoy can open.

Loading maps the file and searches annoy's node array in place (C++,
``nearkit._core.AnnoyNodes``): O(1) in the file size, shared between processes,
and a query on an annoy file visits the nodes in annoy's own order, so the
answers are annoy's. An index built here searches nearkit's tree forest.

Deliberate differences (each one replaces a crash or a silent corruption in annoy):

- ``add_item`` on a built (unsaved) index is accepted, as in annoy 1.17.3: an
  existing id gets its new vector (scored with it, trees unchanged, as annoy);
  a new id is inserted into the trees (annoy overwrites a tree node with it).
- ``f <= 0`` raises ``ValueError`` (annoy aborts the interpreter on the first add);
  ``f`` is read-only.
- ``build(n_jobs=0)`` and ``build(n_trees < -1)`` raise ``ValueError``
  (annoy silently builds 0 trees / an odd count).
- The same seed gives the same forest whatever ``n_jobs`` is (annoy's forest
  depends on the thread count).
- ``load`` checks the roots, and searches check every node they visit: a file
  whose nodes do not form a forest for this ``f`` and metric raises ``OSError``
  on load or ``ValueError`` on the query that meets the damage (annoy answers
  garbage or crashes).
- ``on_disk_build`` keeps item vectors in a file beside ``fn`` until ``build()``
  writes the index into ``fn``.
"""

from __future__ import annotations

import errno as _errno
import mmap
import operator
import os
import stat
import sys
import warnings

import numpy as np

from .. import _core
from ..indexes.trees import TREE_METRIC_CODES, _DiskRows, pack_bits, unpack_bits

_METRICS = ("angular", "euclidean", "manhattan", "hamming", "dot")
_CORE_METRIC = {"angular": "cosine", "euclidean": "l2", "manhattan": "manhattan",
                "hamming": "hamming", "dot": "ip"}
_DEFAULT_SEED = 0
_INT_MAX = 2**31 - 1
_INT_MIN = -(2**31)
_MISSING = object()
# metric codes of cpp/index/annoy_nodes.h (4 = hamming, 3 = dot are tested below by number)
_NODE_CODES = {"angular": 0, "euclidean": 1, "manhattan": 2, "dot": 3, "hamming": 4}
_F32 = np.dtype(np.float32)


def _c_int(value) -> int:
    """Python's C-int conversion as annoy's argument parsing does it."""
    if type(value) is int and _INT_MIN <= value <= _INT_MAX:
        return value
    v = operator.index(value)  # TypeError: 'float' object cannot be interpreted as an integer
    if v > _INT_MAX:
        raise OverflowError("signed integer is greater than maximum")
    if v < _INT_MIN:
        raise OverflowError("signed integer is less than minimum")
    return v


def _report(msg: str) -> None:
    # annoy echoes every error to stderr before raising; scripts that grep logs keep working.
    print(msg, file=sys.stderr)


class _Layout:
    """Annoy 1.17.3's node layout for one metric and f (all offsets in 4-byte words)."""

    def __init__(self, metric: str, f: int):
        self.metric, self.f = metric, f
        self.words = (f + 63) // 64
        if metric == "angular":
            self.size, self.child, self.vec = 12 + 4 * f, 1, 3
        elif metric in ("euclidean", "manhattan"):
            self.size, self.child, self.vec = 16 + 4 * f, 2, 4
        elif metric == "dot":
            self.size, self.child, self.vec = 16 + 4 * f, 1, 4
        else:  # hamming: 4 pad bytes, then uint64 words
            self.size, self.child, self.vec = 16 + 8 * self.words, 1, 4
        self.K = (self.size - 4 * self.child) // 4  # items a bucket node can list


class AnnoyIndex:
    """Approximate nearest neighbours with annoy's interface. See the module docstring."""

    def __init__(self, f, metric=_MISSING):
        f = _c_int(f)
        if metric is _MISSING:
            warnings.warn(
                "The default argument for metric will be removed in future version of Annoy. "
                "Please pass metric='angular' explicitly.", FutureWarning, stacklevel=2)
            metric = "angular"
        if not isinstance(metric, str):
            raise TypeError(f"argument 2 must be str, not {type(metric).__name__}")
        if metric not in _METRICS:
            raise ValueError("No such metric")
        if f <= 0:
            raise ValueError(f"f must be a positive number of dimensions, got {f}")
        self._f = f
        self._shape = (f,)
        self._metric = metric
        self._code = _NODE_CODES[metric]
        self._layout = _Layout(metric, f)
        self._verbose = False
        self._on_disk_done = False
        self._reset()

    # -- state -----------------------------------------------------------------
    def _reset(self):
        self._vecs = np.zeros((0, self._f), np.float32)  # raw item vectors by id
        self._is_item = np.zeros(0, bool)
        self._n_items = 0
        self._forest = None
        self._core_rows = None
        self._n_trees = 0
        self._built = False
        self._nodes = None  # a loaded file: annoy's node array, searched in place
        self._seed = _DEFAULT_SEED
        self._disk: _DiskRows | None = None
        self._disk_path: str | None = None
        self._rows_changed()

    def _rows_changed(self):
        """Forget get_distance's view of the rows: items were added, the rows moved,
        or a file mapping is about to close (a view would keep it exported)."""
        self._distance = None

    @property
    def _loaded(self) -> bool:
        return self._nodes is not None

    @property
    def f(self) -> int:
        return self._f

    # -- items -------------------------------------------------------------------
    def _vector(self, vector) -> np.ndarray:
        """One vector as float32 (hamming: 0/1), with annoy's errors for bad input."""
        if type(vector) is np.ndarray and vector.ndim == 1 and vector.dtype.kind in "biuf":
            if vector.shape[0] != self._f:
                raise IndexError(f"Vector has wrong length (expected {self._f}, got {vector.shape[0]})")
            out = vector.astype(np.float32)
        else:
            n = len(vector)  # TypeError: object of type 'X' has no len()
            if n != self._f:
                raise IndexError(f"Vector has wrong length (expected {self._f}, got {n})")
            if type(vector) in (list, tuple) and all(type(x) is float or type(x) is int for x in vector):
                out = np.array(vector, dtype=np.float32)
            else:
                out = np.empty(self._f, np.float32)
                for z in range(self._f):
                    item = vector[z]  # TypeError: 'X' object is not subscriptable
                    if isinstance(item, (str, bytes)) or not hasattr(item, "__float__"):
                        raise TypeError(f"must be real number, not {type(item).__name__}")
                    out[z] = float(item)
        if self._metric == "hamming":
            out = (out > 0.5).astype(np.float32)
        return out

    def _check_item(self, i) -> int:
        i = _c_int(i)
        if i < 0:
            raise IndexError("Item index can not be negative")
        if i >= self._n_items:
            raise IndexError("Item index larger than the largest item index")
        return i

    def add_item(self, i, vector):
        """Add item ``i`` (a non-negative int) with ``vector`` of length f."""
        i = _c_int(i)
        if i < 0:
            raise IndexError("Item index can not be negative")
        if self._nodes is not None:
            _report("You can't add an item to a loaded index")
            raise Exception("You can't add an item to a loaded index")
        v = self._vector(vector)
        self._rows_changed()
        if i >= self._vecs.shape[0]:
            cap = max(i + 1, int(self._vecs.shape[0] * 1.5) + 16)
            if self._disk is not None:
                self._vecs = self._disk.reserve(cap)
            else:
                grown = np.zeros((cap, self._f), np.float32)
                grown[: self._n_items] = self._vecs[: self._n_items]
                self._vecs = grown
        if i >= self._is_item.shape[0]:
            flags = np.zeros(self._vecs.shape[0], bool)
            flags[: self._n_items] = self._is_item[: self._n_items]
            self._is_item = flags
        self._vecs[i] = v
        new = not self._is_item[i]
        self._is_item[i] = True
        self._n_items = max(self._n_items, i + 1)
        if self._built:
            self._add_after_build(i, new)

    def _add_after_build(self, i, new):
        """annoy 1.17.3 accepts add_item on a built index without an error. An
        existing item keeps its place in the trees and is scored with its new
        vector (as in annoy); a new item is inserted into the trees (annoy would
        overwrite a tree node with it and damage the forest)."""
        n = self._n_items
        if n > self._core_rows.shape[0]:
            grown = np.zeros((max(n, int(self._core_rows.shape[0] * 1.5) + 16),) + self._core_rows.shape[1:],
                             self._core_rows.dtype)
            grown[: self._core_rows.shape[0]] = self._core_rows
            self._core_rows = grown
        self._core_rows[i] = self._core_vectors(self._vecs[i: i + 1])[0]
        if new:
            self._forest.insert(self._core_rows[:n], np.array([i], np.int32))

    def get_item_vector(self, i, /):
        """The stored vector of item ``i`` as a list of floats."""
        if self._nodes is not None:
            return self._nodes.item(i if type(i) is int and 0 <= i <= _INT_MAX else _c_int(i), self._f)
        if type(i) is not int or not 0 <= i < self._n_items:
            i = self._check_item(i)
        return self._vecs[i].tolist()

    def get_n_items(self) -> int:
        return self._n_items

    def get_n_trees(self) -> int:
        return self._n_trees

    def _raw(self, ids: np.ndarray) -> np.ndarray:
        """float32 rows of the given ids as annoy stores them (hamming: 0/1)."""
        if self._nodes is not None:
            return np.array([self._nodes.item(int(i), self._f) for i in ids], np.float32).reshape(-1, self._f)
        return self._vecs[ids]

    def get_distance(self, i, j, /) -> float:
        """Distance between items i and j (angular: sqrt(2 - 2 cos); dot: the inner product)."""
        # One C++ call (it reads i and j as annoy does, TypeError / OverflowError /
        # IndexError included): the file's nodes, or a view of the rows built in memory
        # made once per state of the rows (see _rows_changed).
        distance = self._distance
        if distance is None:
            if self._nodes is not None:
                distance = self._nodes.distance
            else:
                distance = _core.AnnoyRows(self._vecs, self._vecs, self._n_items, self._code).distance
            self._distance = distance
        return distance(i, j)

    # -- building -------------------------------------------------------------------
    def _core_vectors(self, vecs: np.ndarray) -> np.ndarray:
        if self._metric == "angular":
            norms = np.linalg.norm(vecs, axis=1, keepdims=True)
            norms[norms == 0] = 1
            return np.ascontiguousarray(vecs / norms, dtype=np.float32)
        if self._metric == "hamming":
            return pack_bits(vecs.astype(np.uint8), self._f)
        return np.ascontiguousarray(vecs, dtype=np.float32)

    def _new_forest(self):
        code = TREE_METRIC_CODES[_CORE_METRIC[self._metric]]
        dim = self._layout.words if self._metric == "hamming" else self._f
        forest = _core.TreeForest(code, dim, self._layout.K, self._seed % 2**64)
        forest.origin_planes = self._metric in ("angular", "dot")  # annoy's planes have no offset
        return forest

    def build(self, n_trees, n_jobs=-1):
        """Build a forest of ``n_trees`` trees (-1: as many as fit in twice the item
        memory); ``n_jobs`` threads (-1: all cores). No items can be added afterwards."""
        n_trees, n_jobs = _c_int(n_trees), _c_int(n_jobs)
        if self._nodes is not None:
            _report("You can't build a loaded index")
            raise Exception("You can't build a loaded index")
        if self._built:
            _report("You can't build a built index")
            raise Exception("You can't build a built index")
        if n_trees < -1:
            raise ValueError(f"n_trees must be -1 (automatic) or >= 0, got {n_trees}")
        if n_jobs == 0 or n_jobs < -1:
            raise ValueError(f"n_jobs must be -1 (all cores) or a positive thread count, got {n_jobs}")
        threads = (os.cpu_count() or 1) if n_jobs == -1 else n_jobs
        self._rows_changed()
        n = self._n_items
        slots = np.flatnonzero(self._is_item[:n]).astype(np.int32)
        rows = self._core_vectors(self._vecs[:n])
        forest = self._new_forest()
        if n_trees == -1:
            # annoy adds trees until the tree nodes outnumber the items.
            forest.build(rows, slots, 1, 1)
            per_tree = max(1, forest.n_splits + forest.n_leaves)
            n_trees = -(-n // per_tree) if n else 0
        forest.build(rows, slots, n_trees, threads)
        if self._metric == "dot":
            # annoy 1.17.3 routes dot queries with plane . q + dot_factor**2
            planes = forest.packed()["planes"]
            forest.set_offsets(np.ascontiguousarray(np.square(planes[:, self._f]), np.float32))
        if self._verbose:
            _report(f"has {n + forest.n_splits + forest.n_leaves + n_trees} nodes")
        self._forest, self._core_rows, self._n_trees, self._built = forest, rows, n_trees, True
        if self._disk_path is not None:
            path, disk = self._disk_path, self._disk
            self._write(path)
            self._load_file(path, False, keep_seed=True)
            self._on_disk_done = True
            disk.close(remove=True)
        return True

    def unbuild(self):
        """Drop the trees (items stay) so that items can be added again."""
        if self._nodes is not None:
            _report("You can't unbuild a loaded index")
            raise Exception("You can't unbuild a loaded index")
        self._forest, self._core_rows, self._n_trees, self._built = None, None, 0, False
        return True

    def set_seed(self, seed, /):
        """Seed of the tree builder (the same seed gives the same forest for any n_jobs)."""
        self._seed = _c_int(seed)

    def verbose(self, v, /):
        self._verbose = bool(_c_int(v))
        return True

    # -- queries --------------------------------------------------------------------------
    @staticmethod
    def _query_args(n, search_k, include_distances):
        """annoy's reading of the query arguments (C ints; n unsigned)."""
        n = _c_int(n)
        if n < 0:  # annoy reads n as unsigned: "everything found"
            n = _INT_MAX
        search_k = _c_int(search_k)
        if search_k < -1:
            search_k = -2  # any other negative: unlimited
        if include_distances is not True and include_distances is not False:
            include_distances = bool(_c_int(include_distances))
        return n, search_k, include_distances

    def get_nns_by_item(self, i, n, search_k=-1, include_distances=False):
        """The n closest items to item i: a list, or (ids, distances) with include_distances."""
        n, search_k, include = self._query_args(n, search_k, include_distances)
        if self._nodes is not None:
            return self._nodes.search_item(_c_int(i), n, search_k, include)
        i = self._check_item(i)
        if not self._built:
            return ([], []) if include else []
        return _core.annoy_forest_query(self._forest, self._core_rows, self._vecs, self._vecs[i],
                                        self._n_items, self._code, n, search_k, include)

    def get_nns_by_vector(self, vector, n, search_k=-1, include_distances=False):
        """The n closest items to a vector: a list, or (ids, distances) with include_distances."""
        # the common call (small ints, a bool) goes straight to C++, which reads the
        # vector as annoy does; anything else is converted with annoy's rules first
        if (type(n) is not int or type(search_k) is not int or type(include_distances) is not bool
                or not (0 <= n <= _INT_MAX and -1 <= search_k <= _INT_MAX)):
            n, search_k, include_distances = self._query_args(n, search_k, include_distances)
        nodes = self._nodes
        if nodes is not None:
            return nodes.search(vector, self._f, n, search_k, include_distances)
        if not self._built:
            self._vector(vector)  # the same errors for a bad vector, then annoy's empty answer
            return ([], []) if include_distances else []
        return _core.annoy_forest_query(self._forest, self._core_rows, self._vecs, vector, self._n_items,
                                        self._code, n, search_k, include_distances)

    # -- files ----------------------------------------------------------------------------------
    def on_disk_build(self, fn):
        """Build into file ``fn``: call before adding items; build() writes the index there."""
        fn = os.fspath(fn)
        try:
            fd = os.open(fn, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            os.close(fd)
        except OSError as exc:
            msg = f"Unable to open: {exc.strerror} ({exc.errno})"
            _report(msg)
            raise OSError(msg) from None
        self._rows_changed()
        self._disk = _DiskRows(fn + ".items.tmp", self._f, np.float32)
        self._disk_path = fn
        self._vecs = self._disk.reserve(max(self._vecs.shape[0], 1))
        return True

    def save(self, fn, prefault=False):
        """Write the index to ``fn`` in annoy's format, then serve it from the file."""
        if not self._built and self._nodes is None:
            _report("You can't save an index that hasn't been built")
            raise OSError("You can't save an index that hasn't been built")
        if self._on_disk_done:
            return True
        fn = os.fspath(fn)
        try:
            os.unlink(fn)  # never rewrite a file other processes may have mapped
        except OSError:
            pass
        self._write(fn)
        seed = self._seed
        self.unload()
        self._load_file(fn, bool(prefault))
        self._seed = seed
        return True

    def load(self, fn, prefault=False):
        """Map an index file (written by annoy or by this class) read-only."""
        self._load_file(os.fspath(fn), bool(prefault))
        return True

    def unload(self):
        """Release the index and return to an empty one (the seed goes back to its default)."""
        self._reset()
        self._on_disk_done = False
        if self._verbose:
            _report("unloaded")
        return True

    def _fail(self, msg):
        _report(msg)
        raise OSError(msg)

    def _load_file(self, fn, prefault, keep_seed=False):
        L = self._layout
        try:
            fd = os.open(fn, os.O_RDONLY)
        except OSError as exc:
            self._fail(f"Unable to open: {exc.strerror} ({exc.errno})")
        try:
            size = os.fstat(fd).st_size
            if stat.S_ISDIR(os.fstat(fd).st_mode) or (size and size % L.size):
                self._fail("Index size is not a multiple of vector size. Ensure you are opening using "
                           "the same metric you used to create the index.: Success (0)")
            if size == 0:
                self._fail(f"Size of file is zero: {os.strerror(_errno.ENOTTY)} ({_errno.ENOTTY})")
            flags = mmap.MAP_SHARED | (getattr(mmap, "MAP_POPULATE", 0) if prefault else 0)
            mm = mmap.mmap(fd, size, flags=flags, prot=mmap.PROT_READ)
        finally:
            os.close(fd)
        data = np.frombuffer(mm, np.uint8)
        try:
            nodes = _core.AnnoyNodes(data, data, self._code, self._f)
        except ValueError as exc:
            self._fail(f"{fn}: {exc} (f={self._f}, metric={self._metric!r})")
        seed = self._seed
        self._reset()
        if keep_seed:
            self._seed = seed
        self._nodes = nodes
        self._n_items = nodes.n_items
        self._n_trees = nodes.n_trees
        self._built = True
        if self._verbose:
            _report(f"found {nodes.n_trees} roots with degree {nodes.n_items}")

    def _write(self, fn):
        # A loaded index is written back node for node, as annoy does: the node
        # order decides which of two equal priorities annoy's search takes first.
        data = self._nodes.owner if self._nodes is not None else _encode_annoy(self, self._layout)
        try:
            with open(fn, "wb") as fh:
                fh.write(memoryview(data).cast("B"))  # the node array itself, no bytes copy
        except OSError as exc:
            self._fail(f"Unable to open: {exc.strerror} ({exc.errno})")

    def __reduce__(self):
        raise TypeError("cannot pickle 'AnnoyIndex' object")



# -- annoy's file format ------------------------------------------------------------------


def _encode_annoy(index: AnnoyIndex, L: _Layout) -> np.ndarray:
    """Lay the forest out in annoy's node format: the items, then the split nodes,
    then the bucket nodes, then copies of the roots (annoy finds its roots by
    scanning back from the end of the file)."""
    n_items, f = index._n_items, index._f
    packed = index._forest.packed()
    planes, offsets = packed["planes"], packed["offsets"]
    children = packed["children"].reshape(-1, 2).astype(np.int64)
    leaf_off, leaf_cnt, leaf_items = packed["leaf_off"], packed["leaf_cnt"].astype(np.int64), packed["leaf_items"]
    roots = packed["roots"].astype(np.int64)
    n_splits, n_leaves = offsets.size, leaf_cnt.size

    # items under each split, deepest level first (levels found from the roots)
    levels, frontier = [], roots[roots >= 0]
    while frontier.size:
        levels.append(frontier)
        kids = children[frontier].reshape(-1)
        frontier = kids[kids >= 0]
    under = np.zeros(n_splits, np.int64)

    def size_of(refs):
        return np.where(refs >= 0, under[np.maximum(refs, 0)], leaf_cnt[np.maximum(-refs - 1, 0)])

    for lv in reversed(levels):
        under[lv] = size_of(children[lv, 0]) + size_of(children[lv, 1])

    root_leaves = -roots[roots < 0] - 1
    is_root_leaf = np.zeros(n_leaves, bool)
    is_root_leaf[root_leaves] = True
    # Only holes can leave a tree this small while annoy would split it: such a root
    # becomes a split with a zero plane whose two children are the bucket.
    fake = is_root_leaf & (n_items > L.K)
    needs_node = (leaf_cnt >= 2) | is_root_leaf
    fake_base = n_items + n_splits
    fake_nodes = np.full(n_leaves, -1, np.int64)
    fake_nodes[fake] = fake_base + np.arange(int(fake.sum()))
    leaf_base = fake_base + int(fake.sum())
    leaf_nodes = np.full(n_leaves, -1, np.int64)
    leaf_nodes[needs_node] = leaf_base + np.arange(int(needs_node.sum()))
    n_tree_nodes = leaf_base + int(needs_node.sum())

    def node_of(refs):  # a single item is referenced directly, as annoy does
        leaf = np.maximum(-refs - 1, 0)
        single = leaf_items[np.minimum(leaf_off[leaf], max(leaf_items.size - 1, 0))] if leaf_items.size else 0
        as_leaf = np.where(leaf_nodes[leaf] >= 0, leaf_nodes[leaf], single)
        return np.where(refs >= 0, n_items + refs, as_leaf)

    root_nodes = np.where(roots >= 0, n_items + roots,
                          np.where(fake_nodes[np.maximum(-roots - 1, 0)] >= 0,
                                   fake_nodes[np.maximum(-roots - 1, 0)],
                                   leaf_nodes[np.maximum(-roots - 1, 0)]))
    n_nodes = n_tree_nodes + roots.size
    buf = np.zeros((n_nodes, L.size), np.uint8)
    w = buf.view("<i4")
    fl = buf.view("<f4")
    u8 = buf.view("<u8") if L.metric == "hamming" else None

    # items
    live = np.flatnonzero(index._is_item[:n_items])
    w[live, 0] = 1
    if L.metric == "hamming":
        u8[live, 2: 2 + L.words] = pack_bits(index._raw(live).astype(np.uint8), f)
    else:
        vecs = np.asarray(index._raw(live), np.float32)
        fl[live, L.vec: L.vec + f] = vecs
        if L.metric == "angular":
            fl[live, 1] = np.einsum("ij,ij->i", vecs, vecs)
        elif L.metric == "dot" and live.size:
            norms2 = np.einsum("ij,ij->i", vecs, vecs)
            fl[live, 3] = np.sqrt(np.maximum(norms2.max() - norms2, 0))

    # split nodes
    sn = n_items + np.arange(n_splits)
    w[sn, 0] = under
    w[n_items + roots[roots >= 0], 0] = n_items
    w[sn, L.child] = node_of(children[:, 0])
    w[sn, L.child + 1] = node_of(children[:, 1])
    if L.metric == "hamming":
        bit = offsets.astype(np.int64)
        u8[sn, 2] = np.where(bit < 0, 0, (bit // 64) * 64 + (63 - bit % 64)).astype(np.uint64)
    elif n_splits:
        fl[sn, L.vec: L.vec + f] = planes[:, :f]
        if L.metric in ("euclidean", "manhattan"):
            fl[sn, 1] = offsets
        elif L.metric == "dot":
            fl[sn, 3] = planes[:, f]

    # fake roots, then buckets
    fk = np.flatnonzero(fake)
    w[fake_nodes[fk], 0] = n_items
    w[fake_nodes[fk], L.child] = leaf_nodes[fk]
    w[fake_nodes[fk], L.child + 1] = leaf_nodes[fk]
    lv = np.flatnonzero(needs_node)
    ln = leaf_nodes[lv]
    w[ln, 0] = np.where(is_root_leaf[lv] & ~fake[lv], n_items, leaf_cnt[lv])
    cnt = leaf_cnt[lv]
    within = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    w[np.repeat(ln, cnt), L.child + within] = leaf_items[np.repeat(leaf_off[lv], cnt) + within]

    buf[n_tree_nodes:] = buf[root_nodes]
    return buf
