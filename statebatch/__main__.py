"""``python -m statebatch``: the command line (see :mod:`statebatch.cli`)."""

import sys

from .cli import main

# Guarded so that tools that import every module (documentation builders, test collectors) do not
# run the command line.
if __name__ == "__main__":
    sys.exit(main())
