"""statebatch: correct, fast, validated batches for recurrent networks, above all stateful ones.

The public API is small and light: importing statebatch imports numpy only. Keras, matplotlib and
scikit-learn are imported by the modules that use them (``statebatch.keras``, ``statebatch.plot``,
``statebatch.sklearn``).
"""

from __future__ import annotations

from .errors import (BatchSizeError, DataValueError, DTypeError, LengthMismatchError, ModelMismatchError,
                     OrderError, OverlappingWindowsError, ParameterError, RemainderError, ShapeError,
                     ShuffleError, StatebatchError, StatebatchWarning, StatefulLayoutError)
from .bucketing import Batch, Bucketing, bucket_batches, bucket_boundaries, padding_of
from .explain import Explanation, explain
from .stateful import Arranged, LanePlan, arrange_stateful, pack_lanes, plan_lanes
from .validate import ValidationReport, validate
from .windows import Windows, make_windows, strided_windows

__version__ = "0.1.0"

# Lazily imported so that `import statebatch` stays light (matplotlib is heavy).
_LAZY = {
    "plot_lanes": ("statebatch.plot", "plot_lanes"),
    "plot_buckets": ("statebatch.plot", "plot_buckets"),
    "load_co2": ("statebatch.datasets", "load_co2"),
    "load_japanese_vowels": ("statebatch.datasets", "load_japanese_vowels"),
    "load_us_macro": ("statebatch.datasets", "load_us_macro"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'statebatch' has no attribute {name!r}")


__all__ = [
    "bucket_batches", "bucket_boundaries", "padding_of", "Bucketing", "Batch",
    "make_windows", "Windows", "strided_windows", "arrange_stateful", "Arranged", "LanePlan", "pack_lanes", "plan_lanes", "validate", "ValidationReport", "explain", "Explanation",
    "StatebatchError", "ParameterError", "ShapeError", "LengthMismatchError", "ModelMismatchError",
    "DataValueError", "DTypeError", "OrderError", "StatefulLayoutError", "BatchSizeError", "ShuffleError",
    "OverlappingWindowsError", "RemainderError", "StatebatchWarning", *_LAZY,
]
