"""Zarr arrays as row sources (zarr is imported here only, when such an array is given).

A Zarr array ``(steps, features)`` is read chunk-wise on demand, like statebatch's own ``.npy``
stores: pass it (or a list of them, one per series) wherever statebatch takes a series.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import ParameterError, ShapeError, StoreError
from .base import RowSource
from .registry import register_input, type_is


class ZarrSource(RowSource):
    """Rows of a ``zarr.Array`` read with slicing; ``take`` reads the covering rows once."""

    def __init__(self, array: Any):
        if not hasattr(array, "shape") or not hasattr(array, "dtype"):
            raise ParameterError(f"ZarrSource needs a zarr array, got {type(array).__name__}.", "pass zarr.open(...)[...].")
        if len(array.shape) not in (1, 2):
            raise ShapeError(f"a Zarr series must be (steps,) or (steps, features), got shape {tuple(array.shape)}.",
                             "store each series as a 2-D array.")
        self.zarray = array
        self._one_feature = len(array.shape) == 1
        self.shape = (int(array.shape[0]), 1) if self._one_feature else tuple(int(d) for d in array.shape)
        self.dtype = np.dtype(array.dtype)

    def read(self, start: int, stop: int) -> np.ndarray:
        self._check_range(start, stop)
        try:
            out = np.asarray(self.zarray[start:stop])
        except Exception as exc:  # zarr raises its own errors for missing or corrupt chunks
            raise StoreError(f"reading rows {start}..{stop} of the Zarr array failed ({type(exc).__name__}: {exc}).",
                             "check the Zarr store (missing or corrupt chunks).") from None
        return out.reshape(-1, 1) if self._one_feature else out

    def take(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if not rows.size:
            return np.empty((0,) + self.shape[1:], dtype=self.dtype)
        lo, hi = int(rows.min()), int(rows.max()) + 1
        if lo < 0 or hi > len(self):
            raise ParameterError(f"row indices {lo}..{hi - 1} are outside 0..{len(self) - 1}.", "ask for rows inside the source.")
        return self.read(lo, hi)[rows - lo]

    def __repr__(self) -> str:
        return f"ZarrSource(shape={self.shape}, dtype={self.dtype})"


def _zarr_to_series(data: Any, options: Any, what: str) -> Any:
    """A Zarr array: one series read chunk-wise (a :class:`ZarrSource`)."""
    from .seriesset import series_of_source

    return series_of_source(ZarrSource(data), options, what)


register_input(lambda d: type_is(d, "zarr"), _zarr_to_series, name="zarr", _rank=40, _native=True)
