"""scikit-learn transformers: windowing and stateful arrangement inside preprocessing pipelines.

The public path ``statebatch.sklearn``; the code lives in :mod:`statebatch.adapters.sklearn` (see the
architecture page, docs/design.md).
"""

from .adapters.sklearn import *  # noqa: F401,F403  (the public names, listed in its __all__)
from .adapters.sklearn import __all__  # noqa: F401
