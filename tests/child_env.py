"""The environment for a child Python a test starts: it imports nearkit from the
same place as the test process (the installed package under CI, ``src`` in a dev
checkout), by passing this process's ``sys.path`` on as PYTHONPATH."""

import os
import sys


def child_env(**extra) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(os.path.abspath(p) for p in sys.path if p))
    env.update(extra)
    return env
