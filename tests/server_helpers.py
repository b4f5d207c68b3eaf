"""Start nearkit's server (in a thread or as a process) and the reference Redis, for tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The script that starts a real Redis with its search module (NEARKIT_REFERENCE_REDIS
# names another one).
REFERENCE_SCRIPT = os.environ.get("NEARKIT_REFERENCE_REDIS") or os.path.join(
    ROOT, "scripts", "start_reference_redis.sh")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 30.0, proc=None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port}")


class ThreadServer:
    """nearkit's server on its own event loop in a daemon thread of this process."""

    def __init__(self, **config):
        from nearkit.server import Config, Server

        self.server = Server(Config(port=0, **config))
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(30)
        self.port = self.server.port

    def _run(self):
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.start())
        self._ready.set()
        self.loop.run_forever()

    def stop(self):
        async def _close():
            self.server.close()
        fut = asyncio.run_coroutine_threadsafe(_close(), self.loop)
        fut.result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)


class ProcessServer:
    """``python -m nearkit.server`` as a child process (for kill -9 tests)."""

    def __init__(self, *args: str):
        import nearkit

        self.port = free_port()
        # The child imports the same nearkit as this process (in-place build or installed).
        parent = os.path.dirname(os.path.dirname(os.path.abspath(nearkit.__file__)))
        env = dict(os.environ, PYTHONPATH=parent + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nearkit.server", "--port", str(self.port), *args],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_port(self.port, 60, self.proc)

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_reference_redis():
    """(port, pid) of a real Redis 7.4 with the search module, or None if it cannot start here.

    Uses NEARKIT_REFERENCE_REDIS_PORT if a reference server is already running."""
    env_port = os.environ.get("NEARKIT_REFERENCE_REDIS_PORT")
    if env_port:
        return int(env_port), None
    script = os.path.abspath(REFERENCE_SCRIPT)
    if not os.path.exists(script):
        return None
    port = free_port()
    try:
        out = subprocess.run(["bash", script, "stack", str(port)], capture_output=True, text=True,
                             timeout=300)
        pid = int(out.stdout.strip().splitlines()[-1])
        wait_port(port, 30)
    except Exception:
        return None
    return port, pid


def scenario_registry():
    """(scenarios, decorator) for a module of differential tests: each decorated
    function takes a client and returns what it saw; the module runs every one on
    nearkit and on the reference Redis and compares the two."""
    scenarios = {}

    def scenario(fn):
        scenarios[fn.__name__] = fn
        return fn

    return scenarios, scenario
