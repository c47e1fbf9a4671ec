"""PyTorch adapter: lanes, lane resets, recurrent state and buckets for ``torch.utils.data``.

The public path ``statebatch.torch``; the code lives in :mod:`statebatch.adapters.torch` (see the
architecture page, docs/design.md).
"""

from .adapters.torch import *  # noqa: F401,F403  (the public names, listed in its __all__)
from .adapters.torch import __all__  # noqa: F401
