"""statebatch: correct, fast, validated batches for recurrent networks, above all stateful ones.

The public API is small and light: importing statebatch imports numpy only. Keras, PyTorch,
matplotlib, scikit-learn, Dask and Zarr are imported by the modules that use them
(``statebatch.keras``, ``statebatch.torch``, ``statebatch.plot``, ``statebatch.sklearn``,
``statebatch.dask``, ``statebatch.zarr``, ``statebatch.inference``, ``statebatch.statestore``). ``docs/design.md`` maps the layers.
"""

from __future__ import annotations

from .bucketing import Batch, Bucketing, bucket_batches, bucket_boundaries, padding_of
from .errors import (BatchIndexError, BatchSizeError, DataValueError, DTypeError, LengthMismatchError, ModelMismatchError,
                     OrderError, OverlappingWindowsError, ParameterError, RemainderError, ShapeError,
                     ShuffleError, StatebatchError, StatebatchWarning, StatefulLayoutError, StoreError,
                     UnknownSeriesError, UnsupportedModelError)
from .explain import explain
from .layout import LayoutVerdict, detect_layout
from .plans.buckets import BucketPlan, plan_buckets, retention
from .plans.lanes import LanePlan, pack_lanes, plan_lanes
from .plans.windows import WindowPlan, plan_windows
from .result import Explanation, LeftOut
from .source import ArraySource, ConcatSource, RowSource, as_source
from .stateful import Arranged, arrange_stateful
from .validate import ValidationReport, validate
from .windows import Windows, make_windows, strided_windows

__version__ = "0.2.0"

# Lazily imported so that `import statebatch` stays light (matplotlib and pandas are heavy).
_LAZY = {
    "plot_lanes": ("statebatch.plot", "plot_lanes"),
    "plot_buckets": ("statebatch.plot", "plot_buckets"),
    "load_co2": ("statebatch.datasets", "load_co2"),
    "load_japanese_vowels": ("statebatch.datasets", "load_japanese_vowels"),
    "load_us_macro": ("statebatch.datasets", "load_us_macro"),
    # serving a trained stateful model (these import keras)
    "inference_model": ("statebatch.inference", "inference_model"),
    "state_spec": ("statebatch.inference", "state_spec"),
    "StateStore": ("statebatch.statestore", "StateStore"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'statebatch' has no attribute {name!r}")


__all__ = [
    # results and the functions that build them
    "make_windows", "Windows", "arrange_stateful", "Arranged", "bucket_batches", "Bucketing", "Batch",
    # plans (pure, from lengths alone)
    "plan_windows", "WindowPlan", "plan_lanes", "LanePlan", "pack_lanes", "plan_buckets", "BucketPlan", "retention",
    "bucket_boundaries", "padding_of",
    # row sources
    "RowSource", "ArraySource", "ConcatSource", "as_source", "strided_windows",
    # checking and explaining
    "validate", "ValidationReport", "explain", "Explanation", "LeftOut", "detect_layout", "LayoutVerdict",
    # errors
    "StatebatchError", "ParameterError", "BatchIndexError", "ShapeError", "LengthMismatchError", "ModelMismatchError",
    "DataValueError", "DTypeError", "OrderError", "StatefulLayoutError", "BatchSizeError", "ShuffleError",
    "OverlappingWindowsError", "RemainderError", "StoreError", "UnsupportedModelError", "UnknownSeriesError",
    "StatebatchWarning", *_LAZY,
]
