"""ShardedIndex: one nearkit index per Ray actor, routed by id, merged top-k.

    index = ShardedIndex("hnsw", dim=384, metric="cosine", shards=8, M=16)
    index.add(vectors)                  # ids route to shard mix64(id) % shards
    ids, dist = index.search(queries, k=10, ef=64)

Recovery: for every shard the driver keeps a *base* (a new empty index, a saved
file, or a snapshot image in the object store, which the driver owns so it
outlives the actor) and a *log* of the mutations applied since, whose arrays
are the object refs that were sent to the shard anyway. When a shard's actor
dies, a new actor starts from the base and replays the log, and the call that
met the dead actor is retried once. If the shard cannot be rebuilt (file gone,
object lost), the call raises :class:`ShardUnavailableError` naming the shard:
an answer from the other shards alone would be silently partial. The log is
folded into a fresh snapshot once it outgrows the last one (amortised O(n)
copying); ``save()`` makes the saved files the base.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field

import numpy as np
import ray
from ray.exceptions import RayActorError, RayTaskError

from .. import _validate
from ..errors import ShardUnavailableError
from .merge import merge_topk
from .routing import HASH_NAME, split_by_shard
from .shard import ShardActor, make_index

MANIFEST = "manifest.json"
MANIFEST_FORMAT = "nearkit-sharded"
MANIFEST_VERSION = 1
# A log smaller than this is never folded into a snapshot (snapshots copy the shard).
MIN_CHECKPOINT_BYTES = 64 << 20


@dataclass
class _ShardState:
    """What the driver knows about one shard: its actor and how to rebuild it."""

    actor: object
    base: tuple                      # the Shard source it was started from
    log: list = field(default_factory=list)
    log_bytes: int = 0
    base_bytes: int = 0              # size of the snapshot in base (0 for new/file)
    count: int = 0
    dirty: bool = False              # changed since base (matters when there is no log)


def _shard_file(i: int) -> str:
    return f"shard-{i:05d}.nearkit"


class ShardedIndex:
    """A nearkit index split over ``shards`` Ray actors (see the module docstring).

    ``kind``: "flat", "hnsw", "trees", "ivf" or a factory string ("IVF256,PQ16");
    ``index_kwargs`` go to every shard's index. ``metric=None`` takes the kind's
    default. ``actor_options`` go to ``ShardActor.options`` (resources,
    scheduling). ``recoverable=False`` keeps no log or snapshots (a dead shard
    then restarts only from a saved file). Not thread-safe: one caller at a time.
    """

    def __init__(self, kind, dim, metric=None, shards: int = 2, *, actor_options=None,
                 recoverable: bool = True, **index_kwargs):
        dim = _validate.check_positive_int(dim, "dim")
        shards = _validate.check_positive_int(shards, "shards")
        proto = make_index(kind, dim, metric, index_kwargs)  # checks the arguments here
        self._setup(kind, proto, index_kwargs, actor_options, recoverable, mmap=False)
        source = ("new", kind, dim, metric, dict(index_kwargs))
        self._start([source] * shards)

    # -- construction helpers -------------------------------------------------------
    def _setup(self, kind, proto, index_kwargs, actor_options, recoverable, mmap):
        self.kind = kind
        self._index_kind = proto.kind
        self._dim = proto.dim
        self._metric = proto.metric
        self._index_kwargs = dict(index_kwargs)
        self._actor_options = {"scheduling_strategy": "SPREAD", **(actor_options or {})}
        self._recoverable = bool(recoverable)
        self._mmap = mmap
        self._trainable = hasattr(proto, "train")
        self._buildable = hasattr(proto, "build")
        self._needs_training = self._trainable and not getattr(proto, "is_trained", True)
        self._needs_build = self._buildable and not getattr(proto, "is_built", True)
        self._replaces = proto.kind == "hnsw"  # HNSW re-add replaces; others refuse duplicates

    def _spawn(self, i: int, source: tuple):
        return ShardActor.options(**self._actor_options).remote(i, source)

    def _start(self, sources):
        actors = [self._spawn(i, s) for i, s in enumerate(sources)]
        self._shards = [_ShardState(a, s) for a, s in zip(actors, sources)]
        infos = self._call("info", lambda i: ())
        for st, info in zip(self._shards, infos):
            st.count = info["n"]
        return infos

    # -- properties --------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return self._dim

    @property
    def metric(self) -> str:
        return self._metric

    @property
    def shards(self) -> int:
        return len(self._shards)

    @property
    def actors(self) -> list:
        """The Ray actor handle of each shard (replaced when a shard is restored)."""
        return [st.actor for st in self._shards]

    def __len__(self) -> int:
        return sum(st.count for st in self._shards)

    def shard_sizes(self) -> list[int]:
        return [st.count for st in self._shards]

    def __repr__(self) -> str:
        return (f"ShardedIndex({self.kind!r}, dim={self._dim}, metric={self._metric!r}, "
                f"shards={self.shards}, n={len(self)})")

    # -- calling the shards --------------------------------------------------------------
    def _call(self, method: str, args_of, which=None) -> list:
        """Call ``method`` on the shards in ``which`` (all by default) in parallel.

        A dead actor is restored and its call retried once; an error raised by
        the index itself is re-raised naming the shard, after every call ended.
        """
        results, error = self._call_collect(method, args_of, which)
        if error is not None:
            raise error
        return [results[i] for i in results]

    def _call_collect(self, method: str, args_of, which=None) -> tuple[dict, Exception | None]:
        """As :meth:`_call`, returning ({shard: result} of the calls that succeeded,
        the first error or None): a mutation records what did happen before raising."""
        which = range(self.shards) if which is None else which
        refs = [(i, getattr(self._shards[i].actor, method).remote(*args_of(i))) for i in which]
        results, error = {}, None
        for i, ref in refs:
            try:
                results[i] = ray.get(ref)
            except RayActorError:
                self._restore(i)
                try:
                    results[i] = ray.get(getattr(self._shards[i].actor, method).remote(*args_of(i)))
                except RayActorError as exc:
                    raise ShardUnavailableError(i, f"died again right after being restored: {exc}") from None
                except RayTaskError as exc:
                    error = error or _shard_error(i, exc)
            except RayTaskError as exc:
                error = error or _shard_error(i, exc)
        return results, error

    def _restore(self, i: int) -> None:
        """Start a new actor for shard ``i`` from its base and replay its log."""
        st = self._shards[i]
        if st.dirty and not self._recoverable:
            raise ShardUnavailableError(
                i, "its actor died and the index was created with recoverable=False and "
                   "changed since it was last saved (or never saved), so its contents are lost")
        try:
            ray.kill(st.actor)
        except Exception:  # already gone
            pass
        actor = self._spawn(i, st.base)
        try:
            count = ray.get(actor.replay.remote(st.log))
        except Exception as exc:  # noqa: BLE001 - any failure means the shard is gone
            raise ShardUnavailableError(
                i, f"its actor died and it could not be restored from {_describe(st.base)}: "
                   f"{_cause(exc)}") from None
        st.actor, st.count = actor, count

    def _record(self, i: int, op: tuple, nbytes: int) -> None:
        """Append a mutation to shard i's log (when recoverable)."""
        st = self._shards[i]
        st.dirty = True
        if not self._recoverable:
            return
        st.log.append(op)
        st.log_bytes += nbytes

    def _maybe_checkpoint(self, which) -> None:
        """Fold long logs into snapshots: when a log outgrows the last snapshot."""
        if not self._recoverable:
            return
        due = [i for i in which
               if self._shards[i].log_bytes > max(MIN_CHECKPOINT_BYTES, self._shards[i].base_bytes)]
        if due:
            self.checkpoint(due)

    def checkpoint(self, which=None) -> None:
        """Snapshot shards into the object store (owned by this driver) and clear their logs."""
        which = list(range(self.shards)) if which is None else list(which)
        # The image stays in the object store (owned here); only its size comes back.
        refs = [(i, self._shards[i].actor.snapshot.options(num_returns=2).remote()) for i in which]
        for i, (image_ref, size_ref) in refs:
            try:
                nbytes = ray.get(size_ref)
            except RayActorError:
                self._restore(i)
                image_ref, size_ref = self._shards[i].actor.snapshot.options(num_returns=2).remote()
                nbytes = ray.get(size_ref)
            except RayTaskError as exc:
                raise _shard_error(i, exc) from None
            st = self._shards[i]
            st.base, st.log, st.log_bytes, st.base_bytes = ("image", image_ref), [], 0, nbytes
            st.dirty = False

    # -- training and building ------------------------------------------------------
    def train(self, sample) -> None:
        """Train the coarse quantiser (IVF kinds) once, here, and give it to every shard."""
        if not self._trainable:
            raise ValueError(f"a {self._index_kind!r} index needs no training")
        if len(self):
            raise ValueError("the index already holds vectors; training must come before add()")
        proto = make_index(self.kind, self._dim, self._metric, self._index_kwargs)
        proto.train(sample)
        image_ref = ray.put(proto.image())
        self._call("reset_to", lambda i: (image_ref,))
        for st in self._shards:
            st.base, st.log, st.log_bytes, st.base_bytes = ("image", image_ref), [], 0, 0
            st.dirty = False
        self._needs_training = False

    def build(self) -> None:
        """Build every shard's structure (Trees); later adds insert into it."""
        if self._buildable:
            self._call("build", lambda i: ())
            for i in range(self.shards):
                self._record(i, ("build",), 0)
        self._needs_build = False

    # -- public API -----------------------------------------------------------------------
    def add(self, vectors, ids=None, **params) -> None:
        """Add vectors; ``ids`` (int64) route to their shards; default: after the largest id.

        An untrained IVF is first trained on (a sample of up to 100k rows of) this batch.
        """
        x, _ = _validate.as_vectors(vectors, self._dim)
        if ids is not None:
            ids = _validate.as_ids(ids, x.shape[0])
        if x.shape[0] == 0:
            return
        if ids is None:
            infos = self._call("info", lambda i: ())
            start = max(info["max_id"] for info in infos) + 1
            ids = np.arange(start, start + x.shape[0], dtype=np.int64)
        if self._needs_training:
            rng = np.random.default_rng(0)
            sample = x if x.shape[0] <= 100_000 else x[rng.choice(x.shape[0], 100_000, replace=False)]
            self.train(sample)
        parts = split_by_shard(ids, self.shards)
        which = [i for i, rows in enumerate(parts) if rows.size]
        id_refs = {i: ray.put(ids[parts[i]]) for i in which}
        if not self._replaces:
            present = self._call("present", lambda i: (id_refs[i],), which)
            for i, dup in zip(which, present):
                if dup >= 0:
                    raise ValueError(f"id {dup} is already in the index (shard {i}); remove it first")
        vec_refs = {i: ray.put(x[parts[i]]) for i in which}
        params = dict(params)
        counts, error = self._call_collect("add", lambda i: (vec_refs[i], id_refs[i], params), which)
        for i, n in counts.items():
            self._shards[i].count = n
            self._record(i, ("add", vec_refs[i], id_refs[i], params), int(parts[i].size) * (4 * self._dim + 8))
        if error is not None:
            raise error
        self._maybe_checkpoint(which)

    def remove(self, ids) -> int:
        """Remove ids (each from the shard that owns it); returns how many were present."""
        ids = _validate.as_ids(ids, unique=False, name="ids")
        parts = split_by_shard(ids, self.shards)
        which = [i for i, rows in enumerate(parts) if rows.size]
        refs = {i: ray.put(ids[parts[i]]) for i in which}
        removed, error = self._call_collect("remove", lambda i: (refs[i],), which)
        for i, n in removed.items():
            self._shards[i].count -= n
            self._record(i, ("remove", refs[i]), int(parts[i].size) * 8)
        if error is not None:
            raise error
        return int(sum(removed.values()))

    def search(self, queries, k: int, *, filter=None, **params):
        """(ids int64, distances float32) of the k nearest over all shards, (nq, k).

        The queries go to the object store once and every shard searches them in
        parallel with ``params`` (ef=, nprobe=, search_k=, ...); the per-shard
        lists are merged by (distance, id). ``filter``: allowed ids or a boolean
        mask over ids, as for one index.
        """
        q, was_1d = _validate.as_vectors(queries, self._dim, "queries")
        k = _validate.check_k(k)
        if self._needs_build:
            self.build()
        if q.shape[0] == 0:
            ids, dist = np.empty((0, k), np.int64), np.empty((0, k), np.float32)
        else:
            q_ref = ray.put(q)
            params = dict(params)
            f_ref = None if filter is None else ray.put(np.asarray(filter))
            parts = self._call("search", lambda i: (q_ref, k, params, f_ref))
            ids, dist = merge_topk([p[0] for p in parts], [p[1] for p in parts], k)
        return (ids[0], dist[0]) if was_1d else (ids, dist)

    # -- files --------------------------------------------------------------------------
    def save(self, directory) -> None:
        """Write one nearkit file per shard and a manifest into ``directory``.

        On a cluster the directory must be shared storage: each actor writes its
        own file. The manifest is written last, so a directory with a manifest
        is complete. The files then become each shard's recovery base.
        """
        directory = os.path.abspath(os.fspath(directory))
        os.makedirs(directory, exist_ok=True)
        paths = [os.path.join(directory, _shard_file(i)) for i in range(self.shards)]
        counts = self._call("save", lambda i: (paths[i],))
        manifest = {
            "format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "kind": self.kind,
            "index_kind": self._index_kind, "dim": self._dim, "metric": self._metric,
            "shards": self.shards, "hash": HASH_NAME, "files": [_shard_file(i) for i in range(self.shards)],
            "counts": counts, "index_kwargs": self._index_kwargs, "trained": not self._needs_training,
        }
        tmp = os.path.join(directory, f".{MANIFEST}.{secrets.token_hex(6)}.tmp")
        with open(tmp, "w") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(directory, MANIFEST))
        for st, path in zip(self._shards, paths):
            st.base, st.log, st.log_bytes, st.base_bytes = ("file", path, self._mmap), [], 0, 0
            st.dirty = False

    @classmethod
    def load(cls, directory, mmap: bool = False, *, actor_options=None, recoverable: bool = True):
        """Open a directory written by :meth:`save`; ``mmap=True`` maps each shard
        file read-only (search only). Refuses a missing or mismatched shard file."""
        from ..io import read_index

        directory = os.path.abspath(os.fspath(directory))
        manifest = _read_manifest(directory)
        paths = [os.path.join(directory, name) for name in manifest["files"]]
        for i, path in enumerate(paths):
            if not os.path.isfile(path):
                raise FileNotFoundError(f"shard {i} of {directory}: file {path} is missing")
            head = read_index(path, mmap=True, verify=False)  # header only; pages are not read
            for field_, want in (("kind", manifest["index_kind"]), ("dim", manifest["dim"]),
                                 ("metric", manifest["metric"])):
                got = getattr(head, field_)
                if got != want:
                    raise ValueError(
                        f"shard {i} ({path}) has {field_} {got!r} but the manifest and the other "
                        f"shards have {want!r}: the directory mixes different indexes")
            del head
        self = cls.__new__(cls)
        proto = make_index(manifest["kind"], manifest["dim"], manifest["metric"], manifest["index_kwargs"])
        self._setup(manifest["kind"], proto, manifest["index_kwargs"], actor_options, recoverable, mmap)
        self._needs_training = not manifest.get("trained", True)
        infos = self._start([("file", p, mmap) for p in paths])
        self._needs_build = not all(info["built"] for info in infos)
        return self

    # -- Ray Data -------------------------------------------------------------------------
    @classmethod
    def from_dataset(cls, ds, kind, dim, shards: int = 2, metric=None, *, column: str = "vector",
                     id_column: str | None = "id", batch_size: int = 8192,
                     train_size: int = 100_000, train_sample=None, actor_options=None,
                     recoverable: bool = True, **index_kwargs):
        """Build from a ``ray.data.Dataset`` with a vector column and an id column.

        Batches stream through ``ds.iter_batches`` straight to their shards; the
        driver holds one batch at a time (plus, for IVF, the first ``train_size``
        rows, on which the shared quantiser is trained before they are added;
        ``train_sample=`` gives it a sample of your choice instead, e.g.
        ``ds.random_sample(0.01)`` as an array). ``id_column=None`` numbers the
        rows in stream order.
        """
        _check_columns(ds, column, id_column)  # before any actor starts
        index = cls(kind, dim=dim, metric=metric, shards=shards, actor_options=actor_options,
                    recoverable=recoverable, **index_kwargs)
        if train_sample is not None and index._needs_training:
            index.train(train_sample)
        pending: list[tuple[np.ndarray, np.ndarray | None]] = []
        pending_rows = 0
        next_id = 0
        for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy"):
            x, ids = _batch_arrays(batch, column, id_column)
            if ids is None:
                ids = np.arange(next_id, next_id + x.shape[0], dtype=np.int64)
                next_id += x.shape[0]
            if not index._needs_training:
                index.add(x, ids)
                continue
            pending.append((x, ids))
            pending_rows += x.shape[0]
            if pending_rows >= train_size:
                index._add_after_training(pending, train_size)
                pending = []
        if pending:
            index._add_after_training(pending, train_size)
        return index

    def _add_after_training(self, batches, train_size: int) -> None:
        x = np.concatenate([b[0] for b in batches])
        self.train(x[:train_size])
        for bx, bids in batches:
            self.add(bx, bids)


def _check_columns(ds, column: str, id_column) -> None:
    try:
        names = ds.columns()  # from the schema; may run the first block
    except Exception:  # noqa: BLE001 - schema unknown: each batch is checked instead
        return
    if names is not None:
        _batch_arrays(dict.fromkeys(names), column, id_column, check_only=True)


def _batch_arrays(batch: dict, column: str, id_column, check_only: bool = False):
    if column not in batch:
        raise KeyError(f"the dataset has no column {column!r} (columns: {sorted(batch)})")
    if check_only:
        if id_column is not None and id_column not in batch:
            raise KeyError(f"the dataset has no id column {id_column!r} (columns: {sorted(batch)}); "
                           "pass id_column=None to number rows in order")
        return None
    x = batch[column]
    if x.dtype == object:  # a list-typed column arrives as an array of arrays
        x = np.stack(x)
    ids = None
    if id_column is not None:
        if id_column not in batch:
            raise KeyError(f"the dataset has no id column {id_column!r} (columns: {sorted(batch)}); "
                           "pass id_column=None to number rows in order")
        ids = batch[id_column]
    return x, ids


def _read_manifest(directory: str) -> dict:
    path = os.path.join(directory, MANIFEST)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{directory} has no {MANIFEST}: not a saved ShardedIndex (or the save did not finish)")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable manifest: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ValueError(f"{path}: not a nearkit sharded-index manifest")
    if manifest.get("version") != MANIFEST_VERSION:
        raise ValueError(f"{path}: manifest version {manifest.get('version')!r} is not supported "
                         f"(this nearkit reads version {MANIFEST_VERSION})")
    if manifest.get("hash") != HASH_NAME:
        raise ValueError(f"{path}: ids were routed with {manifest.get('hash')!r}, this nearkit uses {HASH_NAME!r}")
    missing = [k for k in ("kind", "index_kind", "dim", "metric", "shards", "files", "index_kwargs")
               if k not in manifest]
    if missing or len(manifest["files"]) != manifest["shards"]:
        raise ValueError(f"{path}: manifest damaged (missing {missing} or file list of the wrong length)")
    return manifest


def _cause(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    return f"{type(cause).__name__}: {cause}" if cause is not None else f"{type(exc).__name__}: {exc}"


def _shard_error(i: int, exc: RayTaskError) -> Exception:
    """The index's own exception, re-raised with the shard named in the message."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, (ValueError, TypeError, KeyError, IndexError, RuntimeError)):
        try:
            err = type(cause)(f"shard {i}: {cause}")
            err.__cause__ = None
            return err
        except Exception:  # an exception type with a special constructor
            pass
    return ShardUnavailableError(i, _cause(exc))


def _describe(base: tuple) -> str:
    return {"new": "an empty index and its log", "file": f"file {base[1]}" if len(base) > 1 else "",
            "image": "its object-store snapshot"}.get(base[0], str(base[0]))
