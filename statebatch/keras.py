"""Keras 3 adapter: statebatch results as PyDatasets, and a callback that resets state per lane.

The public path ``statebatch.keras``; the code lives in :mod:`statebatch.adapters.keras` (see the
architecture page, docs/design.md).
"""

from .adapters.keras import *  # noqa: F401,F403  (the public names, listed in its __all__)
from .adapters.keras import __all__  # noqa: F401
