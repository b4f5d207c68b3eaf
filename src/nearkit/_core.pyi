"""nearkit's C++ kernels"""

from typing import Annotated

import numpy
from numpy.typing import NDArray


def isa() -> str:
    """Instruction set whose kernels are in use."""

def best_isa() -> str: ...

def supported_isas() -> list[str]: ...

def set_isa(name: str) -> None:
    """Force the kernels of one instruction set (tests, benchmarks)."""

def pairwise(a: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], b: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], kind: str) -> Annotated[NDArray[numpy.float32], dict(shape=(None, None))]: ...

class AnnoyRows:
    """
    The raw vectors of an index built in memory: annoy's get_distance between two items.
    """

    def __init__(self, owner: object, raw_rows: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], n_items: int, metric: int) -> None:
        """
        owner: the array raw_rows is (kept alive); items 0..n_items-1 are valid.
        """

    def distance(self, i: object, j: object) -> float:
        """i, j: item indexes read as annoy reads a C int."""

def annoy_forest_query(forest: TreeForest, core_rows: Annotated[NDArray, dict(shape=(None, None), order='C', device='cpu', writable=False)], raw_rows: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], query: object, n_items: int, metric: int, n: int, search_k: int, include_distances: bool) -> object:
    """
    annoy's get_nns_by_vector on a TreeForest: lists of ids (and distances), annoy's order.
    """

class AnnoyNodes:
    """An annoy 1.17.3 node array searched in place (nearkit.compat.annoy)."""

    def __init__(self, owner: object, data: Annotated[NDArray[numpy.uint8], dict(shape=(None,), order='C', device='cpu', writable=False)], metric: int, f: int) -> None:
        """
        owner: the object that keeps data's memory alive; data: the file's bytes.
        """

    @property
    def n_items(self) -> int: ...

    @property
    def n_trees(self) -> int: ...

    @property
    def n_nodes(self) -> int: ...

    @property
    def node_size(self) -> int: ...

    @property
    def owner(self) -> object: ...

    def is_item(self, arg: int, /) -> bool: ...

    def search(self, query: object, f: int, n: int, search_k: int, include_distances: bool) -> object:
        """query: any sequence of f numbers, read as annoy reads it."""

    def search_item(self, i: int, n: int, search_k: int, include_distances: bool) -> object: ...

    def item(self, i: int, f: int) -> object: ...

    def distance(self, i: object, j: object) -> float:
        """i, j: item indexes read as annoy reads a C int."""

def flat_search(base: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], sqnorms: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], labels: Annotated[NDArray[numpy.int64], dict(shape=(None,), order='C', device='cpu', writable=False)] | None, queries: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], k: int, metric: int, mask: Annotated[NDArray[numpy.uint8], dict(shape=(None,), order='C', device='cpu', writable=False)] | None, threads: int = 1, exclude_self: bool = False) -> tuple:
    """
    Exact k-NN: (ids int64 (nq, k), distances float32 (nq, k)), padded with -1/inf.
    """

def flat_range(base: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], sqnorms: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], labels: Annotated[NDArray[numpy.int64], dict(shape=(None,), order='C', device='cpu', writable=False)] | None, queries: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], radius: float, metric: int, mask: Annotated[NDArray[numpy.uint8], dict(shape=(None,), order='C', device='cpu', writable=False)] | None, threads: int = 1) -> tuple:
    """
    Rows with distance < radius: (lims (nq + 1), ids, distances), sorted per query.
    """

def flat_tile() -> int:
    """Queries per tile of the active ISA's batch kernel."""

def fma_probe(iters: int) -> float:
    """
    Run a register-only multiply-add loop of the active ISA; returns the FLOPs done.
    """

class Hnsw:
    """HNSW graph core (use nearkit.HNSW)"""

    def __init__(self, dim: int, metric: int, M: int, ef_construction: int, seed: int) -> None: ...

    def __len__(self) -> int: ...

    @property
    def n_slots(self) -> int: ...

    @property
    def capacity(self) -> int: ...

    @property
    def block_bytes(self) -> int: ...

    @property
    def header_offset(self) -> int: ...

    @property
    def readonly(self) -> bool: ...

    @property
    def memory_bytes(self) -> int: ...

    @property
    def max_label(self) -> int: ...

    @property
    def exact_threshold(self) -> int: ...

    @exact_threshold.setter
    def exact_threshold(self, arg: int, /) -> None: ...

    @property
    def rerank(self) -> int: ...

    @rerank.setter
    def rerank(self, arg: int, /) -> None: ...

    @property
    def exact_scale(self) -> float: ...

    @exact_scale.setter
    def exact_scale(self, arg: float, /) -> None: ...

    @property
    def float_walk(self) -> bool: ...

    def use_float_walk(self) -> None: ...

    @property
    def error_z(self) -> float: ...

    @property
    def n_centres(self) -> int: ...

    def guard_report(self) -> dict: ...

    def add(self, x: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], ids: Annotated[NDArray[numpy.int64], dict(shape=(None,), order='C', device='cpu', writable=False)], threads: int = 1) -> None: ...

    def remove(self, ids: Annotated[NDArray[numpy.int64], dict(shape=(None,), order='C', device='cpu', writable=False)]) -> int: ...

    def search(self, q: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], k: int, ef: int, mask: Annotated[NDArray[numpy.uint8], dict(shape=(None,), order='C', device='cpu', writable=False)] | None, threads: int = 1) -> tuple: ...

    def search_one(self, q: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], k: int, ef: int) -> tuple: ...

    def slot_labels(self) -> Annotated[NDArray[numpy.int64], dict(shape=(None,))]: ...

    def scan(self, q: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], k: int, mask: Annotated[NDArray[numpy.uint8], dict(shape=(None,), order='C', device='cpu', writable=False)]) -> tuple: ...

    def vectors_at(self, slots: Annotated[NDArray[numpy.int64], dict(shape=(None,), order='C', device='cpu', writable=False)]) -> Annotated[NDArray[numpy.float32], dict(shape=(None, None))]: ...

    def export_arrays(self) -> dict: ...

    def attach(self, blocks: Annotated[NDArray[numpy.uint8], dict(shape=(None, None), order='C', device='cpu', writable=False)], vectors: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], labels: Annotated[NDArray[numpy.int64], dict(shape=(None,), order='C', device='cpu', writable=False)], levels: Annotated[NDArray[numpy.uint8], dict(shape=(None,), order='C', device='cpu', writable=False)], upper_offsets: Annotated[NDArray[numpy.int64], dict(shape=(None,), order='C', device='cpu', writable=False)], upper_links: Annotated[NDArray[numpy.uint32], dict(shape=(None,), order='C', device='cpu', writable=False)], quant: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], entry: int, max_level: int, borrow: bool, legacy: bool = False) -> None: ...

class IvfSearcher:
    def __init__(self, codec: str, metric: int, centroids: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], offsets: Annotated[NDArray[numpy.int64], dict(shape=(None,), order='C', device='cpu', writable=False)], ids: Annotated[NDArray[numpy.int64], dict(shape=(None,), order='C', device='cpu', writable=False)], codes: Annotated[NDArray[numpy.uint8], dict(order='C', device='cpu', writable=False)], code_size: int, sq_vmin: Annotated[NDArray[numpy.float32], dict(order='C', device='cpu', writable=False)] | None, sq_step: Annotated[NDArray[numpy.float32], dict(order='C', device='cpu', writable=False)] | None, codebooks: Annotated[NDArray[numpy.float32], dict(shape=(None, None, None), order='C', device='cpu', writable=False)] | None, mpad: int, by_residual: bool, refine: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)] | None) -> None: ...

    def search(self, q: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], q_orig: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)] | None, k: int, nprobe: int, k_factor: int, mask: Annotated[NDArray[numpy.uint8], dict(shape=(None,), order='C', device='cpu', writable=False)] | None, threads: int) -> tuple[NDArray[numpy.int64], NDArray[numpy.float32]]: ...

def pq4_scan(codes: Annotated[NDArray[numpy.uint8], dict(shape=(None,), order='C', device='cpu', writable=False)], mpad: int, lut: Annotated[NDArray[numpy.uint8], dict(shape=(None,), order='C', device='cpu', writable=False)], isa: str) -> NDArray[numpy.uint16]:
    """Fast-scan kernel of one ISA (for tests): uint16 sums (nblocks, 32)."""

def assign_blocked(x: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], centroids: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)]) -> tuple[NDArray[numpy.int64], NDArray[numpy.float32]]:
    """
    Nearest centroid (labels, squared distances) by direct scan; for small dimensions.
    """

def normalized_rows(x: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)]) -> NDArray[numpy.float32]:
    """Unit-normalised copy of the rows (zero rows stay zero)."""

def half_to_float(h: Annotated[NDArray[numpy.uint16], dict(shape=(None,), order='C', device='cpu', writable=False)]) -> NDArray[numpy.float32]: ...

def argmax_bias(prod: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], bias: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)], threads: int = 1) -> tuple[NDArray[numpy.int64], NDArray[numpy.float32]]:
    """Row-wise argmax of prod - bias: (labels int64, max values float32)."""

def kmeans_sums(x: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], labels: Annotated[NDArray[numpy.int64], dict(shape=(None,), order='C', device='cpu', writable=False)], k: int) -> tuple[NDArray[numpy.float64], NDArray[numpy.int64]]: ...

def resp2_knn_replies(ids: Annotated[NDArray[numpy.int64], dict(shape=(None, None), order='C', device='cpu', writable=False)], dist: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], lo: int, hi: int, slot_key: list, live: dict, row_tail: bytes) -> list:
    """
    RESP2 replies [total, key, [label, score], ...] of KNN results (one per row of ids/dist;
    id -1 ends a row), keeping rows lo..hi whose slot_key entry is a key present in live.
    """

def tree_l1(rows: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu', writable=False)], query: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)]) -> NDArray[numpy.float32]: ...

def tree_hamming(rows: Annotated[NDArray[numpy.uint64], dict(shape=(None, None), order='C', device='cpu', writable=False)], query: Annotated[NDArray[numpy.uint64], dict(shape=(None,), order='C', device='cpu', writable=False)]) -> NDArray[numpy.float32]: ...

class TreeForest:
    """Random-projection forest over caller-owned vectors."""

    def __init__(self, metric: int, dim: int, leaf_size: int, seed: int) -> None: ...

    @property
    def metric(self) -> int: ...

    @property
    def dim(self) -> int: ...

    @property
    def plane_dim(self) -> int: ...

    @property
    def leaf_size(self) -> int: ...

    @property
    def max_norm(self) -> float: ...

    @property
    def frozen(self) -> bool: ...

    @property
    def n_trees(self) -> int: ...

    @property
    def n_splits(self) -> int: ...

    @property
    def n_leaves(self) -> int: ...

    def build(self, vectors: Annotated[NDArray, dict(order='C', device='cpu', writable=False)], slots: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], n_trees: int, threads: int) -> None: ...

    def insert(self, vectors: Annotated[NDArray, dict(order='C', device='cpu', writable=False)], slots: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)]) -> None: ...

    def erase(self, slots: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], n_rows: int) -> int: ...

    def search(self, vectors: Annotated[NDArray, dict(order='C', device='cpu', writable=False)], queries: Annotated[NDArray, dict(order='C', device='cpu', writable=False)], k: int, search_k: int, mask: Annotated[NDArray[numpy.uint8], dict(shape=(None,), order='C', device='cpu', writable=False)] | None, threads: int) -> tuple: ...

    def attach(self, planes: Annotated[NDArray[numpy.float32], dict(order='C', device='cpu', writable=False)], offsets: Annotated[NDArray[numpy.float32], dict(order='C', device='cpu', writable=False)], children: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], leaf_off: Annotated[NDArray[numpy.int64], dict(shape=(None,), order='C', device='cpu', writable=False)], leaf_cnt: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], leaf_items: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], roots: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], max_norm: float, frozen: bool) -> None:
        """
        Adopt saved arrays; frozen=True searches them in place (keep them alive).
        """

    @property
    def origin_planes(self) -> bool: ...

    @origin_planes.setter
    def origin_planes(self, arg: bool, /) -> None: ...

    def set_offsets(self, offsets: Annotated[NDArray[numpy.float32], dict(shape=(None,), order='C', device='cpu', writable=False)]) -> None: ...

    def set_tie_keys(self, split_keys: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)], leaf_keys: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)]) -> None: ...

    def packed(self) -> dict: ...
