"""Module paths from before the layer folders (0.2), kept importable for one release with a warning.

``import statebatch.windows`` (or ``statebatch.store``, ``statebatch.layout``, ...) finds the module at
its new place (:data:`MOVED`), registers it under the old name too, and warns once with a
``FutureWarning`` that names the new path. Removed in 0.4 (CHANGELOG.md). The public paths
``statebatch``, ``statebatch.keras``, ``statebatch.torch``, ``statebatch.jax``, ``statebatch.sklearn``,
``statebatch.plot`` and ``statebatch.dask`` are not moved: they are thin modules over the folders.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType

# old module (under statebatch.) -> its place now
MOVED = {
    "source": "sources.base", "store": "sources.npy", "zarr": "sources.zarr", "frames": "sources.frames",
    "timeindex": "sources.timeindex", "series": "sources.series",
    "materialise": "materialise.gather", "forecast": "materialise.forecast",
    "result": "results.batched", "schedule": "results.schedule", "windows": "results.windows",
    "stateful": "results.stateful", "bucketing": "results.bucketing", "feed": "results.feed",
    "layout": "checking.layout", "checks": "checking.checks", "inference": "serving.inference", "statestore": "serving.statestore",
}
# not here: statebatch.validate and statebatch.explain are the functions; loading a module under those
# names would replace them on the package


def _warn(package: str, old: str) -> None:
    warnings.warn(f"{package}.{old} moved to {package}.{MOVED[old]} (the layer folders, docs/design.md); "
                  f"the old path is removed in 0.4: import from {package} (the public API) or "
                  f"{package}.{MOVED[old]}.", FutureWarning, stacklevel=3)


def moved_module(name: str, package: str = "statebatch") -> ModuleType | None:
    """The module an old attribute path ``statebatch.<name>`` means, with the warning; None if not moved."""
    if name not in MOVED:
        return None
    _warn(package, name)
    return importlib.import_module(f"{package}.{MOVED[name]}")


class _MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``statebatch.<old>`` and hands back the module at its new place (one object, two names)."""

    def __init__(self, package: str):
        self.package = package

    def find_spec(self, fullname, path=None, target=None):
        head, _, old = fullname.partition(".")
        if head != self.package or old not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        old = spec.name.partition(".")[2]
        _warn(self.package, old)
        return importlib.import_module(f"{self.package}.{MOVED[old]}")

    def exec_module(self, module):  # already executed under its new name
        pass


def install_moved_paths(package: str) -> None:
    """Put the finder for old paths on ``sys.meta_path`` once."""
    if not any(isinstance(f, _MovedFinder) and f.package == package for f in sys.meta_path):
        sys.meta_path.append(_MovedFinder(package))
