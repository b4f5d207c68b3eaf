"""EVAL / EVALSHA / SCRIPT on nearkit's server: Lua 5.1 from lupa, Redis's conversions."""

import pytest

redis = pytest.importorskip("redis")
pytest.importorskip("lupa")

from server_helpers import ThreadServer  # noqa: E402


@pytest.fixture(scope="module")
def r():
    s = ThreadServer()
    yield redis.Redis(port=s.port, protocol=2)
    s.stop()


def test_eval_runs_commands_and_converts_values(r):
    r.flushall()
    r.hset("h", "a", "1")
    # redisvl's update-if-exists script
    s = ("if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end "
         "redis.call('HSET', KEYS[1], unpack(ARGV)) return 1")
    assert r.eval(s, 1, "h", "b", "2", "c", "3") == 1
    assert r.hgetall("h") == {b"a": b"1", b"b": b"2", b"c": b"3"}
    assert r.eval(s, 1, "missing", "x", "1") == 0 and not r.exists("missing")
    # numbers truncate to integers, an array stops at its first nil, false is nil
    assert r.eval("return {1, 2.7, 'x', false, 'y'}", 0) == [1, 2, b"x", None, b"y"]
    assert r.eval("return redis.call('HGETALL', KEYS[1])", 1, "h") == [
        b"a", b"1", b"b", b"2", b"c", b"3"]
    assert r.eval("return redis.status_reply('FINE')", 0) == b"FINE"
    assert r.eval("return redis.call('JSON.SET', KEYS[1], '$', ARGV[1])", 1, "j", '{"a":1}') == b"OK"
    assert r.execute_command("JSON.GET", "j") == b'{"a":1}'


def test_eval_errors(r):
    for script, words in [("return redis.call('NOPE')", "unknown command"),
                          ("return redis.error_reply('MY err')", "MY err"),
                          ("return 1 +", "Error compiling script"),
                          ("return nil + 1", "arithmetic on a nil value"),
                          ("return redis.pcall('HGET', 'h')", "wrong number of arguments")]:
        with pytest.raises(redis.ResponseError, match=words):
            r.eval(script, 0)
    with pytest.raises(redis.ResponseError, match="greater than number of args"):
        r.eval("return 1", 2, "k")
    # the sandbox: no files, no processes
    with pytest.raises(redis.ResponseError):
        r.eval("return io.open('/etc/passwd')", 0)
    with pytest.raises(redis.ResponseError):
        r.eval("return os.execute('true')", 0)


def test_script_load_and_evalsha(r):
    sha = r.script_load("return ARGV[1]")
    assert r.evalsha(sha, 0, "hello") == b"hello"
    assert r.script_exists(sha, "0" * 40) == [True, False]
    with pytest.raises(redis.exceptions.NoScriptError):
        r.evalsha("0" * 40, 0)
    assert r.script_flush()
    assert r.script_exists(sha) == [False]
