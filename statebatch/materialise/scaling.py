"""Target scaling of forecasting windows: center and scale per window or per series, and the per-series
scale as an object (:class:`SeriesScale`) that holdout windows reuse.

Why a separate fit: a per-series scale read over every step of a series would read the targets of
the windows themselves (and, for holdout windows built with ``start_index``/``end_index``, the held-out
targets). As pytorch-forecasting's ``GroupNormalizer`` is fitted on the training data, the series scale
here is fitted on the steps that are *inputs* of the windows: from the series' first usable step to
the last input step of its last window (:func:`fit_series_scale`); held-out windows reuse a training
scale with ``make_windows(..., scale=train_windows)`` (or ``scale=train_windows.forecast.series_scale``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import ParameterError

__all__ = ["SCALE_EPS", "SCALE_METHODS", "SeriesScale", "center_and_scale", "fit_series_scale"]

SCALE_METHODS = ("standard", "robust")
#: Added to every scale, as pytorch-forecasting's normalisers do (float16 machine epsilon): a constant
#: series or window gets a finite scale.
SCALE_EPS = float(np.finfo(np.float16).eps)


@dataclass(frozen=True, eq=False)
class SeriesScale:
    """Center and scale of each series' targets, fitted on the input steps of some windows.

    Attributes
    ----------
    ids : list
        Series ids, in the order of ``values``.
    values : ndarray ``(n_series, 2, targets)``
        Center (``[:, 0]``) and scale (``[:, 1]``) per series and target.
    method : str
        ``"standard"`` or ``"robust"``.
    target_names : list
    last_step : int64 ``(n_series,)``
        Last step (within its series) the scale read; -1 for a series without windows (center 0, scale 1).
    """

    ids: list
    values: np.ndarray
    method: str
    target_names: list
    last_step: np.ndarray

    def of(self, ids: Sequence[Any], target_names: Sequence[Any], method: str | None = None) -> SeriesScale:
        """The scales of series ``ids`` (another window set's series), in that order.

        Raises :class:`~statebatch.errors.ParameterError` when a series or target was not fitted, or
        ``method`` names another scale method.

        Examples
        --------
        >>> import numpy as np
        >>> sc = SeriesScale(["a", "b"], np.array([[[1.0], [2.0]], [[3.0], [4.0]]]), "standard", ["y"],
        ...                  np.array([5, 5]))
        >>> sc.of(["b"], ["y"]).values[:, :, 0]
        array([[3., 4.]])
        """
        if list(target_names) != list(self.target_names):
            raise ParameterError(f"the series scale was fitted for targets {self.target_names}, these windows have "
                                 f"{list(target_names)}.", "build both window sets with the same target columns.")
        if method is not None and method != self.method:
            raise ParameterError(f"scale_method={method!r}, but the series scale passed was fitted with "
                                 f"{self.method!r}.", "drop scale_method: a fitted scale keeps its own method.")
        where = {i: k for k, i in enumerate(self.ids)}
        absent = [i for i in ids if i not in where]
        if absent:
            raise ParameterError(f"series {absent[:5]} have no fitted scale (fitted series: {len(self.ids)}).",
                                 "fit the scale on windows of every series (e.g. the training windows of the "
                                 "same frame), or build these windows without those series.")
        rows = [where[i] for i in ids]
        return SeriesScale(list(ids), self.values[rows], self.method, list(self.target_names), self.last_step[rows])


def fit_series_scale(target: np.ndarray, offsets: np.ndarray, floor: np.ndarray, series: np.ndarray,
                     last_rows: np.ndarray, method: str, ids: Sequence[Any], target_names: Sequence[Any]) -> SeriesScale:
    """The scale of each series over its input steps: rows ``floor[k] .. max(last_rows of series k)``
    (absolute rows; ``series``/``last_rows`` per window), never a target after its last window's inputs.

    Parameters
    ----------
    target : ndarray ``(rows, targets)``
    offsets : int64 ``(n_series + 1,)``
    floor : int64 ``(n_series,)``
        First usable row of each series.
    series, last_rows : int64 ``(n_windows,)``
        Each window's series and its last input row.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.arange(10.0)[:, None]  # one series, windows whose inputs end at rows 3 and 5
    >>> sc = fit_series_scale(y, np.array([0, 10]), np.array([2]), np.array([0, 0]), np.array([3, 5]),
    ...                       "standard", ["a"], ["y"])
    >>> sc.values[0, 0], sc.last_step  # the mean of rows 2..5
    (array([3.5]), array([5]))
    """
    n_series = len(offsets) - 1
    last = np.full(n_series, -1, dtype=np.int64)
    np.maximum.at(last, np.asarray(series, dtype=np.int64), np.asarray(last_rows, dtype=np.int64))
    out = np.empty((n_series, 2, target.shape[1]), dtype=target.dtype)
    for k in range(n_series):
        lo, hi = int(floor[k]), int(last[k]) + 1  # hi <= lo: no window, nothing read (center 0, scale 1)
        vals = target[lo:max(lo, hi)].astype(np.float64)[None]  # (1, steps, targets)
        out[k] = center_and_scale(vals, axis=1, method=method)[0]
    steps = np.where(last >= 0, last - offsets[:-1], -1)
    return SeriesScale(list(ids), out, method, list(target_names), steps)


def center_and_scale(values: np.ndarray, axis: int, method: str) -> np.ndarray:
    """Center and scale of ``values`` along ``axis``, NaN ignored, stacked on a new axis 1 (after the
    leading axis): ``(lead, 2, ...)``.

    ``"standard"``: mean and standard deviation (``ddof=1``, as pandas' and torch's ``std`` in
    pytorch-forecasting's ``GroupNormalizer``/``EncoderNormalizer``); ``"robust"``: median and half the
    inter-quartile range. :data:`SCALE_EPS` is added to every scale. Fewer than two observed values:
    the standard deviation counts as 0; no observed value at all: center 0 and scale 1 (nothing to
    scale, so nothing is divided by almost zero).

    Examples
    --------
    >>> import numpy as np
    >>> center_and_scale(np.array([[1.0, 3.0, np.nan]]), axis=1, method="standard").round(3)
    array([[2.   , 1.415]])
    """
    n = np.sum(~np.isnan(values), axis=axis)
    if values.shape[axis] == 0:  # no step at all (a series too short for any window): nothing to scale
        shape = n.shape
        return np.stack([np.zeros(shape), np.ones(shape)], axis=1)
    with np.errstate(all="ignore"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN slices: handled below
            # NaN-aware reductions only where a value is missing (they are several times slower)
            full = bool((n == values.shape[axis]).all())
            if method == "standard":
                center = values.mean(axis=axis) if full else np.nanmean(values, axis=axis)
                sq = (values - np.expand_dims(center, axis)) ** 2
                var = (sq.sum(axis=axis) if full else np.nansum(sq, axis=axis)) / np.maximum(n - 1, 1)
                spread = np.sqrt(np.where(n >= 2, var, 0.0))
            else:
                q25, q50, q75 = (np.percentile if full else np.nanpercentile)(values, [25, 50, 75], axis=axis)
                center, spread = q50, (q75 - q25) / 2.0
                spread = np.where(n >= 1, spread, 0.0)
    center = np.where(n >= 1, center, 0.0)
    scale = np.where(n >= 1, spread + SCALE_EPS, 1.0)
    return np.stack([center, scale], axis=1)
