"""The asyncio server: connections, dispatch, group commit, worker threads.

One event loop thread parses requests (hiredis), runs commands against the
key space and search indexes, and writes replies. Heavy searches hand their
vector work to a thread pool (the C++ kernels release the GIL), so both cores
serve clients; replies on each connection still go out in request order.

With ``--data`` the server's durable record is a nearkit store (``persist.Durable``):
under ``always`` writes are committed before their replies leave, and all the
connections served in one loop tick share one commit.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..store import StoreLockedError
from . import acl as _acl  # (checks users' commands)
from . import handlers as _handlers  # noqa: F401  (registers every command)
from .commands import COMMANDS, NOAUTH, QUEUED_REPLY, CommandError, Offload, wrong_args
from .fdlimit import clients_within_fd_limit
from .cmd_scripting import Scripts
from .ft.fastpath import KnnJob, run_knn_batch
from .ft.state import FtState
from .keyspace import Keyspace
from .persist import Durable, OldDataError
from .protocol import Error, ProtocolError, RequestReader, encode_into
from .search import SearchEngine

log = logging.getLogger("nearkit.server")

_EXEC, _DISCARD, _MULTI, _QUIT, _RESET, _WATCH = (
    b"exec", b"discard", b"multi", b"quit", b"reset", b"watch")


@dataclass
class Config:
    host: str = "127.0.0.1"
    port: int = 6379
    data: str | None = None  # directory for the durable record; None = memory only
    requirepass: str | None = None
    durability: str = "always"
    max_clients: int = 10000  # lowered to the open-file limit minus a reserve, as Redis does
    timeout: int = 0  # seconds a client may stay idle before it is closed (0: never)
    max_request_bytes: int = 64 << 20  # one unfinished request (also caps a bulk string)
    max_pending_requests: int = 4096  # parsed but unanswered requests per connection
    threads: int | None = None  # search worker threads (default: number of CPUs)
    snapshot_every: int = 100_000  # key writes between HNSW graph snapshots (0: only at shutdown)
    uvloop: bool = True  # run on uvloop when it is installed


class Connection(asyncio.Protocol):
    """One client: protocol state, the MULTI queue, and in-order replies."""

    def __init__(self, server: "Server"):
        self.server = server
        self.id = server.next_client_id()
        self.resp3 = False
        self.authenticated = server.config.requirepass is None
        self.acl_user = None  # an ACL user's name after AUTH as one (None: the default user)
        self.name = b""
        self.lib_name = b""
        self.lib_ver = b""
        self.multi = None
        self.multi_error = False
        self.closing = False
        self.transport = None
        self.addr = ""
        self._reader = RequestReader(server.config.max_request_bytes)
        self._queue: deque = deque()  # parsed requests waiting their turn
        self._busy = False  # an offloaded request is in flight
        self._out: list = []  # encoded reply pieces not yet written
        self._paused = False
        self._write_paused = False  # the client is not reading its replies
        self.last_active = time.monotonic()  # the idle timeout counts from here

    # -- asyncio.Protocol ------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.addr = f"{peer[0]}:{peer[1]}" if peer else "?"
        if len(self.server.clients) >= self.server.config.max_clients:
            transport.write(b"-ERR max number of clients reached\r\n")
            transport.close()
            self.closing = True
            return
        self.server.clients.add(self)
        self.server.connections_received += 1
        transport.set_write_buffer_limits(high=8 << 20)

    def pause_writing(self):
        # The client stopped reading: stop answering (and reading) until it catches up,
        # so unread replies cannot pile up in memory.
        self._write_paused = True
        if not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def resume_writing(self):
        self._write_paused = False
        if not self._busy and not self.closing:
            self._run()

    def connection_lost(self, exc):
        self.server.clients.discard(self)
        self.closing = True

    def data_received(self, data: bytes):
        if self.closing:
            return
        self.last_active = time.monotonic()
        self._queue.extend(self._reader.feed(data))
        if not self._busy and not self._write_paused:
            self._run()
        if len(self._queue) > self.server.config.max_pending_requests and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    # -- processing ----------------------------------------------------------------------
    def _run(self):
        """Answer queued requests in order until the queue empties or one is offloaded."""
        server = self.server
        out = self._out
        resp3 = self.resp3
        while self._queue and not self.closing and not self._write_paused:
            req = self._queue.popleft()
            if isinstance(req, ProtocolError):
                encode_into(Error(f"ERR {req}"), self.resp3, out)
                self.closing = True
                break
            reply = self.execute(req)
            if type(reply) is KnnJob:
                if server.batch_knn:
                    # Answered with the other connections' KNN requests of this loop
                    # tick, in one graph search (Server._run_knn_jobs); the queue waits.
                    self._busy = True
                    self._flush_out()
                    server.queue_knn(self, reply)
                    return
                try:
                    reply = reply.run()
                except CommandError as exc:
                    reply = exc.reply
                except Exception as exc:  # never let one request take the server down
                    log.exception("search failed")
                    reply = Error(f"ERR internal error: {type(exc).__name__}: {exc}")
            if type(reply) is Offload:
                if not reply.heavy:
                    try:
                        reply = reply.finish(reply.inline())
                    except CommandError as exc:
                        reply = exc.reply
                    except Exception as exc:  # never let one request take the server down
                        log.exception("search failed")
                        reply = Error(f"ERR internal error: {type(exc).__name__}: {exc}")
                else:
                    self._flush_out()
                    self._start_offload(reply)
                    return
            if self.resp3 != resp3:  # HELLO switched protocol: this reply is already in the new one
                resp3 = self.resp3
            try:
                encode_into(reply, resp3, out)
            except Exception as exc:  # a reply we cannot encode must not wedge the connection
                log.exception("cannot encode the reply to %r", req[0])
                encode_into(Error(f"ERR internal error: {type(exc).__name__}"), resp3, out)
        self._flush_out()
        if (self._paused and not self.closing and not self._write_paused
                and len(self._queue) < self.server.config.max_pending_requests // 2):
            self._paused = False
            self.transport.resume_reading()
        if self.closing and self.transport is not None:
            server.after_commit(self.transport.close)

    def _flush_out(self):
        if self._out:
            data = b"".join(self._out)
            self._out = []
            self.server.send(self.transport, data)

    def _start_offload(self, job: Offload):
        self._busy = True
        if not job.heavy:
            # Cheap enough to run inline: a thread hop would cost more than the work.
            self._finish_offload(job, job.inline, None)
            return
        fut = self.server.loop.run_in_executor(self.server.pool, job.compute)
        fut.add_done_callback(lambda f: self._finish_offload(job, None, f))

    def _finish_offload(self, job: Offload, compute, fut):
        try:
            result = compute() if compute is not None else fut.result()
            reply = job.finish(result)
        except CommandError as exc:
            reply = exc.reply
        except Exception as exc:  # never let one request take the server down
            log.exception("search failed")
            reply = Error(f"ERR internal error: {type(exc).__name__}: {exc}")
        self._busy = False
        if self.closing:
            return
        encode_into(reply, self.resp3, self._out)
        if compute is not None:
            # Inline: carry on with the queue in this same call.
            self._run()
        else:
            self._run()

    def _knn_done(self, reply):
        """The reply to this connection's queued KnnJob: send it, go on with the queue."""
        self._busy = False
        if self.closing:
            return
        encode_into(reply, self.resp3, self._out)
        self._run()

    def execute(self, req: list):
        """Run one request; returns a reply value, an Offload or a KnnJob."""
        self.server.commands_processed += 1
        name = req[0].lower()
        cmd = COMMANDS.get(name)
        if self.multi is not None and name not in (_EXEC, _DISCARD, _MULTI, _QUIT, _RESET, _WATCH):
            err = self._check(cmd, req)
            if err is not None:
                self.multi_error = True
                return err
            self.multi.append((cmd, req))
            return QUEUED_REPLY
        err = self._check(cmd, req)
        if err is not None:
            return err
        if name == _EXEC:
            return self._exec()
        return self._call(cmd, req)

    def _check(self, cmd, req):
        if cmd is None:
            args = ""
            for a in req[1:]:
                if len(args) >= 128:
                    break
                args += "'%s' " % a[:128 - len(args)].decode("utf-8", "replace")
            name = req[0][:128].decode("utf-8", "replace")
            return Error(f"ERR unknown command '{name}', with args beginning with: {args}")
        if not self.authenticated and "noauth" not in cmd.flags:
            return NOAUTH
        if self.acl_user is not None:
            err = _acl.check(self, cmd, req)
            if err is not None:
                return err
        n = len(req)
        if (cmd.arity > 0 and n != cmd.arity) or (cmd.arity < 0 and n < -cmd.arity):
            return wrong_args(cmd.display)
        return None

    def _call(self, cmd, req):
        try:
            return cmd.handler(self, req[1:])
        except CommandError as exc:
            return exc.reply
        except RecursionError:  # a backstop: the parsers bound nesting themselves
            return Error("ERR Syntax error: the request is nested too deeply")
        except Exception as exc:
            log.exception("command %r failed", req[0])
            return Error(f"ERR internal error: {type(exc).__name__}: {exc}")

    def _exec(self):
        queued, failed = self.multi, self.multi_error
        self.multi, self.multi_error = None, False
        if failed:
            return Error("EXECABORT Transaction discarded because of previous errors.")
        replies = []
        for cmd, req in queued:
            reply = self._call(cmd, req)
            if type(reply) is KnnJob:
                try:
                    reply = reply.run()
                except CommandError as exc:
                    reply = exc.reply
            elif type(reply) is Offload:
                # Inside a transaction everything runs in order on the loop.
                try:
                    reply = reply.finish(reply.inline())
                except CommandError as exc:
                    reply = exc.reply
            replies.append(reply)
        return replies

    def describe(self) -> str:
        return (f"id={self.id} addr={self.addr} name={self.name.decode('utf-8', 'replace')} "
                f"db=0 resp={3 if self.resp3 else 2} "
                f"lib-name={self.lib_name.decode('utf-8', 'replace')} "
                f"lib-ver={self.lib_ver.decode('utf-8', 'replace')}")


class Server:
    def __init__(self, config: Config):
        from .. import __version__

        config.max_clients = clients_within_fd_limit(config.max_clients)
        self.config = config
        self.version = __version__
        self.keyspace = Keyspace()
        self.search = SearchEngine(self)
        self.ft = FtState()  # FT.* caches and cursors: this server's alone
        self.scripts = Scripts()  # SCRIPT LOAD / EVAL bodies and the Lua runtime
        self.clients: set = set()
        self.commands_processed = 0
        self.connections_received = 0
        self.pid = os.getpid()
        self.started = time.time()
        self.port = config.port
        self._client_ids = 0
        self.durable = Durable(config.data, config.durability) if config.data else None
        self.pool = ThreadPoolExecutor(max_workers=config.threads or os.cpu_count() or 2,
                                       thread_name_prefix="nearkit-search")
        self.loop = None
        self._pending_sends: list = []
        self._knn_jobs: list = []  # (connection, KnnJob) waiting for this tick's batch
        self.knn_batched_queries = 0  # KNN requests answered by a multi-query graph search
        self.knn_batches = 0  # such searches
        self._after: list = []
        self._tick_scheduled = False
        self._server = None
        self._snapshot_at = 0
        if self.durable is not None:
            try:
                self._load()
            except BaseException:
                self.durable.close()  # release the store's writer lock
                self.pool.shutdown(wait=False)
                raise

    def _load(self):
        for name, definition in self.durable.load_indexes():
            self.search.restore_index(name, definition)
        self.search.restore_meta(self.durable.load_dicts(), self.durable.load_skipped())
        # HNSW graphs start from their snapshots when usable; the keys then confirm
        # them (only vectors that differ are inserted again).
        self.search.restore_snapshots()
        self.search.loading = True
        try:
            for key, value, deadline in self.durable.load_keys():
                self.keyspace.load(key, value, deadline)
        finally:
            self.search.loading = False
        self.keyspace.expire_some(limit=1 << 62)
        self.search.finish_restore()
        self.search.flush_vectors()
        self._snapshot_at = self.durable.changes

    def maybe_snapshot(self, force: bool = False) -> None:
        """Snapshot the graphs once ``snapshot_every`` key writes have reached the durable
        record since the last time; with force (shutdown), every graph whose newest
        snapshot is older than the current change count."""
        d = self.durable
        if d is None:
            return
        every = self.config.snapshot_every
        if force or (every > 0 and d.changes - self._snapshot_at >= every):
            # A snapshot is named by the change count: never name one after writes
            # that are not committed yet (a crash would leave it newer than the record).
            d.flush(self.keyspace, force=True)
            self._snapshot_at = d.changes
            # Periodic snapshots are written in the background; the one at shutdown
            # is on disk before the server exits.
            self.search.save_snapshots(only_stale=force, background=not force)

    def next_client_id(self) -> int:
        self._client_ids += 1
        return self._client_ids

    # -- batched KNN -------------------------------------------------------------------
    def queue_knn(self, conn: Connection, job: KnnJob):
        """Answer ``job`` once this loop tick's reads are done, together with the KNN
        requests other connections send meanwhile (one graph search for all)."""
        self._knn_jobs.append((conn, job))
        if len(self._knn_jobs) == 1:
            self.loop.call_soon(self._run_knn_jobs)

    @property
    def batch_knn(self) -> bool:
        """Whether KNN requests wait for the end of the loop tick to run batched; with
        a single client there is nobody to batch with and waiting costs a loop turn."""
        return self.loop is not None and (len(self.clients) > 1 or bool(self._knn_jobs))

    def _run_knn_jobs(self):
        pending, self._knn_jobs = self._knn_jobs, []
        try:
            replies, batched = run_knn_batch([job for _, job in pending])
            if batched:
                self.knn_batched_queries += batched
                self.knn_batches += 1
        except Exception as exc:  # never let one batch take the server down
            log.exception("batched search failed")
            replies = [Error(f"ERR internal error: {type(exc).__name__}: {exc}")] * len(pending)
        for (conn, _), reply in zip(pending, replies):
            conn._knn_done(reply)

    # -- group commit ------------------------------------------------------------------
    def send(self, transport, data: bytes):
        """Write a reply, after the writes it acknowledges are durable."""
        if self.durable is None or self.durable.mode != "always" or (
                not self.keyspace.dirty and not self.keyspace.flushed_all
                and not self._pending_sends and not self.durable.indexes_pending):
            transport.write(data)
            return
        self._pending_sends.append((transport, data))
        if not self._tick_scheduled:
            self._tick_scheduled = True
            self.loop.call_soon(self._end_tick)

    def after_commit(self, fn):
        if self._tick_scheduled:
            self._after.append(fn)
        else:
            fn()

    def _end_tick(self):
        self._tick_scheduled = False
        try:
            self.durable_flush()
        except Exception:
            # The write did not become durable: do not acknowledge it, drop the clients.
            log.exception("durable write failed")
            for transport, _ in self._pending_sends:
                transport.write(b"-ERR durable write failed; see the server log\r\n")
                transport.close()
            self._pending_sends.clear()
            return
        sends, self._pending_sends = self._pending_sends, []
        for transport, data in sends:
            if not transport.is_closing():
                transport.write(data)
        after, self._after = self._after, []
        for fn in after:
            fn()

    def durable_flush(self, force: bool = False):
        if self.durable is not None:
            self.durable.flush(self.keyspace, force=force)

    def flush_all(self):
        self.search.drop_all()
        self.keyspace.flush()

    # -- lifecycle -------------------------------------------------------------------------
    def close_idle_clients(self) -> int:
        """Close the clients idle longer than ``config.timeout`` seconds (Redis's
        ``timeout``); a client waiting for its reply is not idle. Returns how many."""
        limit = self.config.timeout
        if limit <= 0:
            return 0
        deadline = time.monotonic() - limit
        idle = [c for c in self.clients
                if c.last_active < deadline and not c._busy and not c._queue and not c.closing]
        for c in idle:
            c.closing = True
            c.transport.close()
        return len(idle)

    async def _housekeeping(self):
        ticks = 0
        while True:
            await asyncio.sleep(0.1)
            ticks += 1
            try:
                self.keyspace.expire_some()
                if ticks % 10 == 0:
                    self.close_idle_clients()
                if self.durable is not None and not self._tick_scheduled:
                    self.durable_flush()
                    self.maybe_snapshot()
            except Exception:
                log.exception("housekeeping failed")

    async def start(self):
        self.loop = asyncio.get_running_loop()
        self._server = await self.loop.create_server(
            lambda: Connection(self), self.config.host, self.config.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        self._house = asyncio.ensure_future(self._housekeeping())
        return self.port

    async def serve_forever(self):
        await self.start()
        log.info("nearkit serving on %s:%d", self.config.host, self.port)
        try:
            await self._server.serve_forever()
        except asyncio.CancelledError:
            pass

    def close(self):
        if self._server is not None:
            self._server.close()
        if getattr(self, "_house", None) is not None:
            self._house.cancel()
        # The durable record first: whatever happens to the sockets, nothing is lost.
        if self.durable is not None:
            self.durable.flush(self.keyspace, force=True)
            try:
                self.maybe_snapshot(force=True)
            except Exception:
                log.exception("index snapshot at shutdown failed")
            self.search.snapshot_writer.close()
            self.durable.close(self.keyspace)
            self.durable = None
        for client in list(self.clients):
            if client.transport is not None:
                try:
                    client.transport.close()
                except RuntimeError:  # the loop is already closed
                    pass
        self.pool.shutdown(wait=True, cancel_futures=True)


def run(config: Config) -> int:
    """Run the server until SIGINT/SIGTERM; 1 if it cannot start on its data directory."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        server = Server(config)
    except (StoreLockedError, OldDataError) as exc:
        # Another server (or store writer) has --data, or it holds the old format.
        print(f"nearkit serve: error: {exc}", file=sys.stderr)
        return 1

    # Workers hand results back to a busy event loop: a short GIL switch interval
    # keeps them from waiting the default 5 ms for it.
    sys.setswitchinterval(0.0005)

    async def main():
        task = asyncio.ensure_future(server.serve_forever())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, task.cancel)
            except NotImplementedError:  # pragma: no cover - Windows
                pass
        try:
            await task
        finally:
            server.close()  # inside the loop: client transports can still be closed

    if config.uvloop:
        try:
            import uvloop  # a faster event loop, when installed (the `server` extra)
        except ImportError:
            uvloop = None
        if uvloop is not None:
            uvloop.run(main())
            return 0
    asyncio.run(main())
    return 0


REQUIREPASS_ENV = "NEARKIT_REQUIREPASS"


def add_serve_arguments(parser) -> None:
    # Flags the config file can also set default to None: flag, then file, then default.
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="Redis-style config file (requirepass, port, bind, maxclients, "
                             "timeout); flags override it")
    parser.add_argument("--host", default=None,
                        help="address to bind (default 127.0.0.1: loopback only)")
    parser.add_argument("--port", type=int, default=None, help="TCP port (default 6379; 0 = any free)")
    parser.add_argument("--data", default=None,
                        help="directory for the durable record (default: memory only, nothing kept)")
    parser.add_argument("--requirepass", default=None,
                        help="password clients must give (AUTH / HELLO ... AUTH) before any command; "
                             f"visible in the process list: prefer ${REQUIREPASS_ENV} or --config")
    parser.add_argument("--durability", choices=("always", "everysec", "off"), default="always",
                        help="when writes reach disk (default always: before the reply)")
    parser.add_argument("--max-clients", type=int, default=None,
                        help="most clients at once (default 10000; lowered to the open-file "
                             "limit minus 32 when that is smaller)")
    parser.add_argument("--timeout", type=int, default=None,
                        help="close a client after this many idle seconds (default 0: never)")
    parser.add_argument("--max-request-bytes", type=int, default=64 << 20)
    parser.add_argument("--threads", type=int, default=None, help="search worker threads")
    parser.add_argument("--snapshot-every", type=int, default=100_000,
                        help="key writes between HNSW graph snapshots (default 100000; "
                             "0: only at shutdown)")
    parser.add_argument("--no-uvloop", dest="uvloop", action="store_false",
                        help="use asyncio's own event loop even if uvloop is installed")


def config_from_args(ns) -> Config:
    """The Config for parsed flags: each setting from its flag, else the ``--config`` file,
    else (the password) ``$NEARKIT_REQUIREPASS``, else its default. Raises OSError or
    ValueError for an unreadable or bad config file."""
    from .conffile import read_config_file

    file = read_config_file(ns.config) if ns.config else {}
    given = {"host": ns.host, "port": ns.port, "requirepass": ns.requirepass,
             "max_clients": ns.max_clients, "timeout": ns.timeout}
    settings = {k: v if v is not None else file.get(k) for k, v in given.items()}
    if settings["requirepass"] is None:
        settings["requirepass"] = os.environ.get(REQUIREPASS_ENV) or None
    settings = {k: v for k, v in settings.items() if v is not None}
    return Config(data=ns.data, durability=ns.durability, max_request_bytes=ns.max_request_bytes,
                  threads=ns.threads, uvloop=ns.uvloop, snapshot_every=ns.snapshot_every,
                  **settings)


def run_from_args(ns) -> int:
    try:
        config = config_from_args(ns)
    except (OSError, ValueError) as exc:
        print(f"nearkit serve: error: config: {exc}", file=sys.stderr)
        return 1
    return run(config)


def add_serve_subcommand(subparsers):
    """Register ``nearkit serve`` on the CLI's subparsers."""
    p = subparsers.add_parser("serve", help="run the Redis-compatible vector search server")
    add_serve_arguments(p)
    p.set_defaults(func=run_from_args)
    return p


def main(argv=None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m nearkit.server",
                                     description="Redis-compatible vector search server")
    add_serve_arguments(parser)
    ns = parser.parse_args(argv)
    return run_from_args(ns)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
