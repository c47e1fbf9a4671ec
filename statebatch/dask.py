"""Data larger than memory: prepare Dask collections into sharded stores, as Dask tasks.

The public path ``statebatch.dask``; the code lives in :mod:`statebatch.sources.dask` (see the
architecture page, docs/design.md).
"""

from .sources.dask import *  # noqa: F401,F403  (the public names, listed in its __all__)
from .sources.dask import __all__  # noqa: F401
