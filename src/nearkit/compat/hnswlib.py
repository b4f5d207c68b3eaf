"""A drop-in for the ``hnswlib`` module (0.8): ``Index`` and ``BFIndex`` on nearkit's indexes.

    import nearkit.compat.hnswlib as hnswlib    # instead of: import hnswlib

    p = hnswlib.Index(space="cosine", dim=128)
    p.init_index(max_elements=10_000, M=16, ef_construction=200)
    p.add_items(data, ids)
    p.set_ef(50)
    labels, distances = p.knn_query(queries, k=10)    # uint64 (nq, k), float32 (nq, k)

Same methods, properties, arguments, return dtypes, distances ('l2' squared,
'ip' 1 - dot, 'cosine' 1 - cos) and exception types as hnswlib 0.8, and the
same files: ``save_index`` writes hnswlib's binary format, ``load_index`` reads
files written by hnswlib. The graph itself is nearkit's HNSW; elements are
numbered 0..count-1 in insertion order, as hnswlib's internal ids.

Deliberate differences (each replaces a crash or a silent wrong answer in hnswlib):

- Methods called before ``init_index``/``load_index`` raise ``RuntimeError``
  (hnswlib segfaults); so does ``init_index(M < 2)``.
- ``knn_query`` checks the query width (hnswlib reads past the buffer).
- ``load_index`` refuses a file written for another ``dim`` (hnswlib answers garbage).
- ``save_index`` raises ``OSError`` when it cannot write (hnswlib is silent).
- ``BFIndex`` normalises cosine queries (hnswlib returns 1 - <q, x/|x|>), its
  filtered search is exact, and ``k`` above the number of matches raises
  ``RuntimeError`` as ``Index`` does (hnswlib returns uninitialised memory).
- Loading a file rebuilds nearkit's graph over the stored vectors (labels,
  deletions and capacity are kept); files written here carry a graph that
  hnswlib can search (each element linked to its nearest neighbours per level).
- A ``filter`` callable is called once per label and query batch (hnswlib calls
  it for every candidate it meets); it must be a pure function of the label.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

from ..indexes.flat import Flat
from ..indexes.hnsw import HNSW
from ..indexes import load as _load_nearkit
from . import hnswlib_format as fmt

_SPACES = ("l2", "ip", "cosine")
_NOT_INIT = "Index is not initialized: call init_index or load_index first"
_NO_RESULT = "Cannot return the results in a contiguous 2D array. Probably ef or M is too small"


def _hardware_threads() -> int:
    return os.cpu_count() or 1


def _threads(n) -> int:
    n = int(n)
    return n if n > 0 else _hardware_threads()


def _as_rows(data) -> np.ndarray:
    """hnswlib's input rule: anything numpy force-casts to float32, 1-D is one row."""
    x = np.asarray(data)
    if x.dtype != np.float32:
        x = x.astype(np.float32)  # ValueError for strings, as numpy says it
    if x.ndim not in (1, 2):
        raise RuntimeError(f"Input vector data wrong shape. Number of dimensions {x.ndim}. "
                           "Data must be a 1D or 2D array.")
    return np.ascontiguousarray(x.reshape(1, -1) if x.ndim == 1 else x)


def _as_labels(ids, rows: int) -> np.ndarray:
    a = np.asarray(ids)
    if a.dtype.kind in "iu" or a.dtype == object:
        if a.size and a.dtype.kind == "i" and (a < 0).any():
            raise OverflowError(f"Python integer {int(a[a < 0].flat[0])} out of bounds for uint64")
        labels = a.astype(np.uint64)
    else:
        labels = a.astype(np.float64).astype(np.uint64) if a.dtype.kind != "U" else a.astype(np.uint64)
    if not ((labels.ndim == 1 and labels.shape[0] == rows) or (labels.ndim == 0 and rows == 1)):
        raise RuntimeError(f"The input label shape {labels.ndim} does not match the input data vector shape {rows}")
    return labels.reshape(-1)


def _normalised(x: np.ndarray) -> np.ndarray:
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float32))
    return (x / (norms[:, None] + np.float32(1e-30))).astype(np.float32)


def _filter_mask(filter, labels: np.ndarray) -> np.ndarray:
    """Call the filter once per label, as hnswlib would per candidate."""
    out = np.empty(labels.shape[0], bool)
    for i, label in enumerate(labels.tolist()):
        r = filter(label)
        if not isinstance(r, (bool, np.bool_)):
            raise RuntimeError(f"Unable to cast Python instance of type {type(r)} to C++ type 'bool'")
        out[i] = r
    return out


class Index:
    """hnswlib.Index look-alike. ``Index(space, dim)``, ``Index(params)`` (a pickled
    state dict) or ``Index(other_index)`` (a copy)."""

    def __init__(self, space=None, dim=None, *, params=None, index=None):
        if isinstance(space, Index) and dim is None:
            space, index = None, space
        elif isinstance(space, dict) and dim is None:
            space, params = None, space
        if index is not None:
            self.__setstate__(index.__getstate__())
            return
        if params is not None:
            self.__setstate__(params)
            return
        if space not in _SPACES:
            raise RuntimeError("Space name must be one of l2, ip, or cosine.")
        self._space, self._dim = space, int(dim)
        self._ef = 10
        self._num_threads = _hardware_threads()
        self._inited = False

    def __repr__(self) -> str:
        return f"<hnswlib.Index(space='{self._space}', dim={self._dim})>"

    # -- construction ------------------------------------------------------------------
    def _start(self, max_elements, M, ef_construction, random_seed, allow_replace_deleted):
        M, ef_construction = int(M), int(ef_construction)
        if M < 2:
            raise RuntimeError(f"M must be at least 2, got {M}")
        if self._dim <= 0:
            raise RuntimeError(f"dim must be positive, got {self._dim}")
        self._max_elements = int(max_elements)
        self._M = M
        self._ef_construction = max(ef_construction, M)
        self._seed = int(random_seed)
        self._allow_replace = bool(allow_replace_deleted)
        self._rng = np.random.default_rng(self._seed)
        self._graph = HNSW(self._dim, self._space, M=M, ef_construction=self._ef_construction,
                           ef_search=10, seed=self._seed % 2**63)
        self._count = 0
        self._cur_l = 0  # rows ever passed to add_items: the next default label
        self._labels = np.zeros(0, np.uint64)  # internal id -> label
        self._data = np.zeros((0, self._dim), np.float32)  # as stored (cosine: normalised)
        self._deleted = np.zeros(0, bool)
        self._levels = np.zeros(0, np.int32)
        self._id_of: dict[int, int] = {}
        self._inited = True

    def init_index(self, max_elements, M=16, ef_construction=200, random_seed=100, allow_replace_deleted=False):
        """Allocate an index for ``max_elements`` elements (``resize_index`` grows it)."""
        if self._inited:
            raise RuntimeError("The index is already initiated.")
        self._start(max_elements, M, ef_construction, random_seed, allow_replace_deleted)

    def _check(self):
        if not self._inited:
            raise RuntimeError(_NOT_INIT)

    def _workers(self, num_threads) -> int:
        """hnswlib's rule: num_threads <= 0 means the set_num_threads default
        (itself <= 0: every hardware thread)."""
        return _threads(num_threads if int(num_threads) > 0 else self._num_threads)

    def _grow(self, need: int) -> None:
        cap = self._labels.shape[0]
        if need <= cap:
            return
        cap = max(need, int(cap * 1.5) + 16)
        for name, fill in (("_labels", None), ("_data", None), ("_deleted", None), ("_levels", None)):
            old = getattr(self, name)
            new = np.zeros((cap,) + old.shape[1:], old.dtype)
            new[: self._count] = old[: self._count]
            setattr(self, name, new)

    # -- adding --------------------------------------------------------------------------
    def add_items(self, data, ids=None, num_threads=-1, replace_deleted=False):
        """Insert (or update, for labels already present) one row per label."""
        self._check()
        x = _as_rows(data)
        rows = x.shape[0]
        if x.shape[1] != self._dim:
            raise RuntimeError("Wrong dimensionality of the vectors")
        labels = (np.arange(self._cur_l, self._cur_l + rows, dtype=np.uint64) if ids is None
                  else _as_labels(ids, rows))
        if replace_deleted and not self._allow_replace:
            raise RuntimeError("Replacement of deleted elements is disabled in constructor")
        if self._space == "cosine":
            x = _normalised(x)
        slots = np.empty(rows, np.int64)
        error = None
        vacant = sorted(np.flatnonzero(self._deleted[: self._count]).tolist(), reverse=True) \
            if replace_deleted else []
        for r, label in enumerate(labels.tolist()):
            slot = None
            if replace_deleted and vacant:
                slot = vacant.pop()  # a deleted element's place goes to the new label
                del self._id_of[int(self._labels[slot])]
                self._labels[slot] = label
                self._deleted[slot] = False
                self._id_of[label] = slot
            elif label in self._id_of:
                slot = self._id_of[label]
                if self._deleted[slot]:
                    if self._allow_replace:
                        error = RuntimeError("Can't use addPoint to update deleted elements if replacement "
                                             "of deleted elements is enabled.")
                        break
                    self._deleted[slot] = False
            else:
                if self._count >= self._max_elements:
                    error = RuntimeError("The number of elements exceeds the specified limit")
                    break
                slot = self._count
                self._grow(slot + 1)
                self._labels[slot] = label
                self._levels[slot] = int(-np.log(1.0 - self._rng.random()) / np.log(self._M))
                self._id_of[label] = slot
                self._count += 1
            slots[r] = slot
        done = r if error is not None else rows
        if done:
            # the last row for a slot wins (as hnswlib with one thread)
            slot_list, rows_idx = slots[:done], np.arange(done)
            _, last = np.unique(slot_list[::-1], return_index=True)
            keep = rows_idx[::-1][last]
            self._data[slot_list[keep]] = x[keep]
            self._graph.add(x[keep], ids=slot_list[keep], threads=self._workers(num_threads))
        self._cur_l += rows
        if error is not None:
            raise error

    # -- queries ----------------------------------------------------------------------------
    def knn_query(self, data, k=1, num_threads=-1, filter=None):
        """(labels uint64 (nq, k), distances float32 (nq, k)), nearest first."""
        self._check()
        x = _as_rows(data)
        k = int(k)
        if k < 0:
            raise TypeError("knn_query(): incompatible function arguments (k must be non-negative)")
        nq = x.shape[0]
        if x.shape[1] != self._dim:
            raise RuntimeError("Wrong dimensionality of the vectors")
        if nq == 0 or k == 0:
            return np.zeros((nq, k), np.uint64), np.zeros((nq, k), np.float32)
        n = self._count
        allowed = ~self._deleted[:n]
        if filter is not None:
            allowed &= _filter_mask(filter, self._labels[:n])
        if int(allowed.sum()) < k:
            raise RuntimeError(_NO_RESULT)
        mask = None if allowed.all() else allowed
        workers = self._workers(num_threads)
        ids, dist = self._graph.search(x, k, ef=max(self._ef, k), filter=mask,
                                       threads=workers if nq > 4 * workers else 1)
        if (ids < 0).any():
            raise RuntimeError(_NO_RESULT)
        return self._labels[ids], np.ascontiguousarray(dist, np.float32)

    def set_ef(self, ef):
        self._ef = int(ef)

    @property
    def ef(self) -> int:
        return self._ef

    @ef.setter
    def ef(self, value) -> None:
        self._ef = int(value)

    def set_num_threads(self, num_threads):
        self._num_threads = int(num_threads)

    @property
    def num_threads(self) -> int:
        return self._num_threads

    @num_threads.setter
    def num_threads(self, value) -> None:
        self._num_threads = int(value)

    # -- elements -----------------------------------------------------------------------------
    def _slot(self, label) -> int:
        slot = self._id_of.get(int(label))
        if slot is None or self._deleted[slot]:
            raise RuntimeError("Label not found")
        return slot

    def get_items(self, ids=None, return_type="numpy"):
        """Stored vectors of the given labels (cosine: normalised, as hnswlib stores them)."""
        if return_type not in ("numpy", "list"):
            raise ValueError('return_type should be "numpy" or "list"')
        if ids is None:
            return np.zeros((0,), np.float32) if return_type == "numpy" else []
        a = np.asarray(ids)
        if a.ndim == 0:
            raise ValueError("get_items accepts a list of indices and returns a list of vectors")
        self._check()
        slots = [self._slot(label) for label in a.astype(np.uint64).reshape(-1).tolist()]
        out = self._data[slots]
        return out if return_type == "numpy" else out.tolist()

    def get_ids_list(self):
        """Every label in the index, deleted ones included."""
        self._check()
        return self._labels[: self._count].tolist()

    def mark_deleted(self, label):
        """Hide ``label`` from searches (it stays in the graph for navigation)."""
        self._check()
        slot = self._id_of.get(int(label))
        if slot is None:
            raise RuntimeError("Label not found")
        if self._deleted[slot]:
            raise RuntimeError("The requested to delete element is already deleted")
        self._deleted[slot] = True

    def unmark_deleted(self, label):
        self._check()
        slot = self._id_of.get(int(label))
        if slot is None:
            raise RuntimeError("Label not found")
        if not self._deleted[slot]:
            raise RuntimeError("The requested to undelete element is not deleted")
        self._deleted[slot] = False

    def resize_index(self, new_size):
        self._check()
        new_size = int(new_size)
        if new_size < self._count:
            raise RuntimeError("Cannot resize, max element is less than the current number of elements")
        self._max_elements = new_size

    # -- counts and parameters ------------------------------------------------------------------
    def get_max_elements(self) -> int:
        self._check()
        return self._max_elements

    def get_current_count(self) -> int:
        self._check()
        return self._count

    @property
    def space(self) -> str:
        return self._space

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def M(self) -> int:
        return self._M if self._inited else 0

    @property
    def ef_construction(self) -> int:
        return self._ef_construction if self._inited else 0

    @property
    def max_elements(self) -> int:
        return self._max_elements if self._inited else 0

    @property
    def element_count(self) -> int:
        return self._count if self._inited else 0

    # -- hnswlib's files --------------------------------------------------------------------------
    def _file_graph(self):
        """Neighbour lists for hnswlib's file: per level, each element's nearest
        neighbours among the elements of that level (level 0 from nearkit's graph)."""
        n, M = self._count, self._M
        maxM0 = 2 * M
        level0 = np.zeros((n, maxM0), np.uint32)
        level0_count = np.zeros(n, np.int64)
        if n > 1:
            k = min(maxM0 + 1, n)
            ids, _ = self._graph.search(self._data[:n], k, ef=max(2 * k, 64), threads=_hardware_threads())
            for i in range(n):
                nb = ids[i][(ids[i] >= 0) & (ids[i] != i)][:maxM0]
                level0[i, : nb.size] = nb
                level0_count[i] = nb.size
        levels = self._levels[:n]
        upper = [np.zeros((int(levels[i]), M + 1), np.uint32) if levels[i] else None for i in range(n)]
        for lv in range(1, int(levels.max()) + 1 if n else 1):
            members = np.flatnonzero(levels >= lv)
            if members.size < 2:
                continue
            flat = Flat(self._dim, self._space)
            flat.add(self._data[members])
            k = min(M + 1, members.size)
            found, _ = flat.search(self._data[members], k)
            for row, i in enumerate(members.tolist()):
                nb = found[row][(found[row] >= 0) & (found[row] != row)][:M]
                upper[i][lv - 1, 0] = nb.size
                upper[i][lv - 1, 1: 1 + nb.size] = members[nb]
        return level0, level0_count, upper

    def save_index(self, path_to_index):
        """Write the index in hnswlib's own binary format."""
        self._check()
        n = self._count
        levels = self._levels[:n]
        max_level = int(levels.max()) if n else -1
        entry = int(np.argmax(levels)) if n else -1
        level0, level0_count, upper = self._file_graph()
        parts = fmt.encode_index(vectors=self._data[:n], labels=self._labels[:n], deleted=self._deleted[:n],
                                 levels=levels, level0=level0, level0_count=level0_count, upper=upper,
                                 max_elements=self._max_elements, M=self._M,
                                 ef_construction=self._ef_construction, max_level=max_level, entry=entry)
        fmt.write_parts(path_to_index, parts)

    def load_index(self, path_to_index, max_elements=0, allow_replace_deleted=False):
        """Read an hnswlib index file (written by hnswlib or by save_index)."""
        f = fmt.read_index(path_to_index, self._dim)
        count = f.vectors.shape[0]
        capacity = int(max_elements) if int(max_elements) >= count else f.max_elements
        self._inited = False
        self._start(capacity, f.M, f.ef_construction, getattr(self, "_seed", 100), allow_replace_deleted)
        self._ef = 10  # hnswlib does not save ef
        self._grow(count)
        self._labels[:count] = f.labels
        self._data[:count] = f.vectors
        self._deleted[:count] = f.deleted
        self._levels[:count] = f.levels
        self._id_of = {label: i for i, label in enumerate(f.labels.tolist())}
        self._count = self._cur_l = count
        if count:
            self._graph.add(f.vectors, ids=np.arange(count, dtype=np.int64), threads=_threads(self._num_threads))

    def index_file_size(self) -> int:
        self._check()
        return fmt.file_size(self._count, self._dim, self._M, self._levels)

    # -- pickling ------------------------------------------------------------------------------
    def __getstate__(self):
        state = {"ser_version": 1, "space": self._space, "dim": self._dim, "index_inited": self._inited,
                 "ef": self._ef, "num_threads": self._num_threads}
        if self._inited:
            n = self._count
            with tempfile.TemporaryDirectory(prefix="nearkit-hnswlib-") as tmp:
                path = os.path.join(tmp, "graph.nk")
                self._graph.save(path)
                with open(path, "rb") as fh:
                    graph = fh.read()
            state.update(max_elements=self._max_elements, M=self._M, ef_construction=self._ef_construction,
                         random_seed=self._seed, allow_replace_deleted=self._allow_replace, cur_l=self._cur_l,
                         labels=self._labels[:n].copy(), data=self._data[:n].copy(),
                         deleted=self._deleted[:n].copy(), levels=self._levels[:n].copy(),
                         rng=self._rng.bit_generator.state, graph=graph)
        return state

    def __setstate__(self, state):
        if not isinstance(state, dict) or "space" not in state:
            raise RuntimeError("Unpickle Error: not a state of hnswlib.Index")
        self._space, self._dim = state["space"], int(state["dim"])
        self._ef, self._num_threads = int(state["ef"]), int(state["num_threads"])
        self._inited = False
        if not state["index_inited"]:
            return
        self._start(state["max_elements"], state["M"], state["ef_construction"], state["random_seed"],
                    state["allow_replace_deleted"])
        self._ef_construction = int(state["ef_construction"])
        n = len(state["labels"])
        self._grow(n)
        self._labels[:n], self._data[:n] = state["labels"], state["data"]
        self._deleted[:n], self._levels[:n] = state["deleted"], state["levels"]
        self._count, self._cur_l = n, int(state["cur_l"])
        self._id_of = {label: i for i, label in enumerate(self._labels[:n].tolist())}
        self._rng.bit_generator.state = state["rng"]
        with tempfile.TemporaryDirectory(prefix="nearkit-hnswlib-") as tmp:
            path = os.path.join(tmp, "graph.nk")
            with open(path, "wb") as fh:
                fh.write(state["graph"])
            self._graph = _load_nearkit(path)


class BFIndex:
    """hnswlib.BFIndex look-alike: exact search over up to ``max_elements`` vectors."""

    def __init__(self, space, dim):
        if space not in _SPACES:
            raise RuntimeError("Space name must be one of l2, ip, or cosine.")
        self.space, self.dim = space, int(dim)
        self._num_threads = _hardware_threads()
        self._inited = False

    def __repr__(self) -> str:
        return f"<hnswlib.BFIndex(space='{self.space}', dim={self.dim})>"

    def init_index(self, max_elements):
        if self._inited:
            raise RuntimeError("The index is already initiated.")
        self._reset(int(max_elements))

    def _reset(self, max_elements):
        self._max_elements = max_elements
        self._flat = Flat(self.dim, self.space)  # ids are the slots 0..count-1
        self._data = np.zeros((0, self.dim), np.float32)
        self._labels = np.zeros(0, np.uint64)
        self._slot_of: dict[int, int] = {}
        self._count = 0
        self._inited = True

    def _check(self):
        if not self._inited:
            raise RuntimeError(_NOT_INIT)

    def add_items(self, data, ids=None):
        self._check()
        x = _as_rows(data)
        rows = x.shape[0]
        if x.shape[1] != self.dim:
            raise RuntimeError("Wrong dimensionality of the vectors")
        labels = (np.arange(self._count, self._count + rows, dtype=np.uint64) if ids is None
                  else _as_labels(ids, rows))
        if self.space == "cosine":
            x = _normalised(x)
        new_slots, new_rows, updates = [], [], []
        error = None
        for r, label in enumerate(labels.tolist()):
            slot = self._slot_of.get(label)
            if slot is not None:
                updates.append((slot, r))
                continue
            if self._count + len(new_slots) >= self._max_elements:
                error = RuntimeError("The number of elements exceeds the specified limit")
                break
            self._slot_of[label] = self._count + len(new_slots)
            new_slots.append(self._count + len(new_slots))
            new_rows.append(r)
        if new_rows:
            self._data = np.concatenate([self._data, x[new_rows]])
            self._labels = np.concatenate([self._labels, labels[new_rows]])
            self._flat.add(x[new_rows], ids=np.asarray(new_slots, np.int64))
            self._count += len(new_rows)
        for slot, r in updates:
            self._data[slot] = x[r]
            self._flat.remove([slot])
            self._flat.add(x[r: r + 1], ids=[slot])
        if error is not None:
            raise error

    def delete_vector(self, label):
        """Remove ``label`` (the last element moves into its place); unknown labels are ignored."""
        self._check()
        slot = self._slot_of.pop(int(label), None)
        if slot is None:
            return
        last = self._count - 1
        self._flat.remove([slot, last])
        if slot != last:
            self._data[slot] = self._data[last]
            self._labels[slot] = self._labels[last]
            self._slot_of[int(self._labels[slot])] = slot
            self._flat.add(self._data[slot: slot + 1], ids=[slot])
        self._count = last
        self._data, self._labels = self._data[:last], self._labels[:last]

    def knn_query(self, data, k=1, num_threads=-1, filter=None):
        self._check()
        x = _as_rows(data)
        k = int(k)
        if k < 0:
            raise TypeError("knn_query(): incompatible function arguments (k must be non-negative)")
        if x.shape[1] != self.dim:
            raise RuntimeError("Wrong dimensionality of the vectors")
        nq = x.shape[0]
        if nq == 0 or k == 0:
            return np.zeros((nq, k), np.uint64), np.zeros((nq, k), np.float32)
        mask = None
        if filter is not None:
            mask = _filter_mask(filter, self._labels[: self._count])
            allowed = int(mask.sum())
        else:
            allowed = self._count
        if allowed < k:
            raise RuntimeError(_NO_RESULT)
        threads = _threads(num_threads if int(num_threads) > 0 else self._num_threads)
        ids, dist = self._flat.search(x, k, filter=mask, threads=threads)
        return self._labels[ids], np.ascontiguousarray(dist, np.float32)

    def set_num_threads(self, num_threads):
        self._num_threads = int(num_threads)

    @property
    def num_threads(self) -> int:
        return self._num_threads

    @num_threads.setter
    def num_threads(self, value) -> None:
        self._num_threads = int(value)

    def get_max_elements(self) -> int:
        self._check()
        return self._max_elements

    def get_current_count(self) -> int:
        self._check()
        return self._count

    def save_index(self, path_to_index):
        self._check()
        fmt.write_parts(path_to_index, fmt.encode_bf(self._data, self._labels, self._max_elements))

    def load_index(self, path_to_index, max_elements=0):
        """Read a BFIndex file (hnswlib's format); the saved capacity is kept, as in hnswlib."""
        cap, vectors, labels = fmt.read_bf(path_to_index, self.dim)
        self._reset(cap)
        if len(labels):
            self._data, self._labels = vectors, labels
            self._slot_of = {label: i for i, label in enumerate(labels.tolist())}
            self._flat.add(vectors, ids=np.arange(len(labels), dtype=np.int64))
            self._count = len(labels)

    def __reduce__(self):
        raise TypeError("cannot pickle 'hnswlib.BFIndex' object")
