"""Fixtures of the differential server tests: ``nk`` (nearkit in a thread) and ``ref``
(the reference Redis with the search module, skipped where it cannot start), each a
RESP2 client with decoded replies, one server per test module."""

import os
import signal

import pytest

redis = pytest.importorskip("redis")

from server_helpers import ThreadServer, start_reference_redis  # noqa: E402


@pytest.fixture(scope="module")
def nk():
    s = ThreadServer()
    yield redis.Redis(port=s.port, decode_responses=True, protocol=2)
    s.stop()


@pytest.fixture(scope="module")
def ref():
    started = start_reference_redis()
    if started is None:
        pytest.skip("reference Redis with the search module cannot be started here")
    port, pid = started
    yield redis.Redis(port=port, decode_responses=True, protocol=2)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
