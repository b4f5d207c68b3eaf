"""Run a writer script in a child process and SIGKILL it mid-stream.

The child reports over a pipe, one JSON object per line (each line one atomic
write): ``{"ready": 1}`` once set up, then ``{"begin": op, ...}`` before each
operation and ``{"ack": op, "t": time}`` after the call returned. The pipe's
file descriptor is the child's last command-line argument.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time


def run_and_kill(tmp_path, script: str, args: list, kill_after: float, name: str = "writer.py"):
    """Start ``script`` with ``args`` (+ the pipe fd), kill it ``kill_after`` s after it
    is ready; returns (begun records, {op: ack time}, kill time)."""
    path = tmp_path / name
    path.write_text(script)
    r, w = os.pipe()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    proc = subprocess.Popen([sys.executable, str(path), *map(str, args), str(w)],
                            pass_fds=(w,), env=env, stderr=subprocess.PIPE)
    os.close(w)
    lines, ready = [], threading.Event()

    def pump():
        with os.fdopen(r, "rb") as f:
            for line in f:
                lines.append(json.loads(line))
                if "ready" in lines[-1]:
                    ready.set()

    t = threading.Thread(target=pump)
    t.start()
    if not ready.wait(60):
        proc.kill()
        t.join()
        raise AssertionError("writer never became ready: " + proc.stderr.read().decode()[-2000:])
    time.sleep(kill_after)
    proc.send_signal(signal.SIGKILL)
    t_kill = time.time()
    proc.wait()
    t.join()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    begun = [x for x in lines if "begin" in x]
    acks = {x["ack"]: x["t"] for x in lines if "ack" in x}
    return begun, acks, t_kill
