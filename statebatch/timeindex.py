"""Time stamps: where a series' regular sampling has holes (pandas imported only when used)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np


def _time_steps(index: Any) -> np.ndarray | None:
    """Times of one series as int64 (ns for datetimes), or None when the index carries no time."""
    import pandas as pd

    if index is None or isinstance(index, pd.RangeIndex):
        return None
    if isinstance(index, pd.PeriodIndex):
        return index.asi8
    values = np.asarray(index)
    if np.issubdtype(values.dtype, np.datetime64) or np.issubdtype(values.dtype, np.timedelta64):
        return values.astype("datetime64[ns]" if values.dtype.kind == "M" else "timedelta64[ns]").view(np.int64)
    if np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating):
        return values.astype(np.float64)
    return None


def find_gaps(index: Any) -> tuple[np.ndarray, Any]:
    """Where a series' time stamps jump: positions ``i`` with a hole between steps ``i - 1`` and ``i``.

    The regular step is the index's ``freq`` (or the frequency pandas infers, e.g. business days),
    else the most common difference; without a known frequency a jump of more than 1.5 regular steps
    is a hole (monthly data, whose months differ by a few days, has none).
    """
    import pandas as pd

    t = _time_steps(index)
    if t is None or len(t) < 3:
        return np.empty(0, dtype=np.int64), None
    freq = getattr(index, "freq", None)
    if freq is None and isinstance(index, pd.DatetimeIndex) or (freq is None and np.asarray(index).dtype.kind == "M"):
        try:
            with warnings.catch_warnings():  # pandas 3 announces infer_freq's future return type; either serves
                warnings.simplefilter("ignore")
                freq = pd.infer_freq(pd.DatetimeIndex(index))
        except (TypeError, ValueError):
            freq = None
    if freq is not None and isinstance(index, pd.DatetimeIndex) or (freq is not None and np.asarray(index).dtype.kind == "M"):
        expected = pd.DatetimeIndex(index)[:-1] + pd.tseries.frequencies.to_offset(freq)
        return np.flatnonzero(np.asarray(pd.DatetimeIndex(index)[1:]) != np.asarray(expected)) + 1, freq
    diffs = np.diff(t)
    values, counts = np.unique(diffs, return_counts=True)
    step = values[np.argmax(counts)]
    shown = pd.Timedelta(int(step)) if np.asarray(index).dtype.kind in "mM" else step
    return np.flatnonzero(diffs > 1.5 * step) + 1, shown
