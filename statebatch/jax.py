"""JAX without Keras: statebatch results as a grain data source, and a lane loop for Flax carries.

The public path ``statebatch.jax``; the code lives in :mod:`statebatch.adapters.jax` (see the
architecture page, docs/design.md).
"""

from .adapters.jax import *  # noqa: F401,F403  (the public names, listed in its __all__)
from .adapters.jax import __all__  # noqa: F401
