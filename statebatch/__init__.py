"""statebatch: correct, fast, validated batches for recurrent networks, above all stateful ones.

The public API is small and light: importing statebatch imports numpy only. Keras, PyTorch,
matplotlib, scikit-learn, Dask and Zarr are imported by the modules that use them
(``statebatch.keras``, ``statebatch.torch``, ``statebatch.plot``, ``statebatch.sklearn``,
``statebatch.dask``, ``statebatch.zarr``, ``statebatch.inference``, ``statebatch.statestore``). ``docs/design.md`` maps the layers.
"""

from __future__ import annotations

from ._moved import install_moved_paths, moved_module
from .checking.explain import explain
from .checking.layout import LayoutVerdict, detect_layout
from .checking.validate import ValidationReport, validate
from .errors import (BatchIndexError, BatchSizeError, DataValueError, DTypeError, LengthMismatchError, ModelMismatchError,
                     OrderError, OverlappingWindowsError, ParameterError, RemainderError, ShapeError,
                     ShuffleError, StatebatchError, StatebatchWarning, StatefulLayoutError, StoreError,
                     UnknownSeriesError, UnsupportedModelError)
from .materialise.forecast import split_xy
from .plans.buckets import BucketPlan, plan_buckets, retention
from .plans.lanes import LanePlan, pack_lanes, plan_lanes
from .plans.windows import WindowPlan, plan_windows
from .results.batched import Explanation, LeftOut
from .results.bucketing import Batch, Bucketing, bucket_batches, bucket_boundaries, padding_of
from .results.stateful import Arranged, arrange_stateful
from .results.windows import Windows, make_windows, strided_windows
from .sources.base import ArraySource, ConcatSource, RowSource, as_source
from .sources.npy import open_prepared, write_batches
from .sources.options import InputOptions
from .sources.registry import register_input, registered_inputs, unregister_input
from .sources.seriesset import SeriesSet

# statebatch.windows, statebatch.store, ... (the modules before the layer folders) still import, with
# a FutureWarning naming the new place, for one release (CHANGELOG.md)
install_moved_paths(__name__)

__version__ = "0.2.0"

# Lazily imported so that `import statebatch` stays light (matplotlib and pandas are heavy).
_LAZY = {
    "plot_lanes": ("statebatch.adapters.plot", "plot_lanes"),
    "plot_buckets": ("statebatch.adapters.plot", "plot_buckets"),
    "load_co2": ("statebatch.datasets", "load_co2"),
    "load_japanese_vowels": ("statebatch.datasets", "load_japanese_vowels"),
    "load_us_macro": ("statebatch.datasets", "load_us_macro"),
    # serving a trained stateful model (these import keras)
    "inference_model": ("statebatch.serving.inference", "inference_model"),
    "state_spec": ("statebatch.serving.inference", "state_spec"),
    "StateStore": ("statebatch.serving.statestore", "StateStore"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    moved = moved_module(name)
    if moved is not None:
        return moved
    raise AttributeError(f"module 'statebatch' has no attribute {name!r}")


__all__ = [
    # results and the functions that build them
    "make_windows", "Windows", "arrange_stateful", "Arranged", "bucket_batches", "Bucketing", "Batch",
    # plans (pure, from lengths alone)
    "plan_windows", "WindowPlan", "plan_lanes", "LanePlan", "pack_lanes", "plan_buckets", "BucketPlan", "retention",
    "bucket_boundaries", "padding_of",
    # row sources
    "RowSource", "ArraySource", "ConcatSource", "as_source", "strided_windows", "open_prepared", "write_batches",
    # the input options every entry point shares
    "InputOptions",
    "register_input",
    "SeriesSet",
    "registered_inputs",
    "unregister_input",
    # forecasting batches (mappings) as Keras (x, y)
    "split_xy",
    # checking and explaining
    "validate", "ValidationReport", "explain", "Explanation", "LeftOut", "detect_layout", "LayoutVerdict",
    # errors
    "StatebatchError", "ParameterError", "BatchIndexError", "ShapeError", "LengthMismatchError", "ModelMismatchError",
    "DataValueError", "DTypeError", "OrderError", "StatefulLayoutError", "BatchSizeError", "ShuffleError",
    "OverlappingWindowsError", "RemainderError", "StoreError", "UnsupportedModelError", "UnknownSeriesError",
    "StatebatchWarning", *_LAZY,
]
