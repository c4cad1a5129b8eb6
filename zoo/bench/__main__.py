"""``python -m zoo.bench``: see :mod:`zoo.bench`."""

import sys

from zoo.bench.cli import main

if __name__ == "__main__":
    sys.exit(main())
