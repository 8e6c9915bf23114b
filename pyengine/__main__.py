"""`python -m pyengine`: the same command line as the `pyengine` script."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
