"""``python -m nearkit`` is the ``nearkit`` command."""

import sys

from .cli import main

sys.exit(main())
