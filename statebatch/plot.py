"""Pictures of arrangements (matplotlib is imported here only).

The public path ``statebatch.plot``; the code lives in :mod:`statebatch.adapters.plot` (see the
architecture page, docs/design.md).
"""

from .adapters.plot import *  # noqa: F401,F403  (the public names, listed in its __all__)
from .adapters.plot import __all__  # noqa: F401
