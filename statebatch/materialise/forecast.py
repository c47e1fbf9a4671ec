"""Forecasting inputs for windows: known-future and static covariates, variable history, scaling,
missing-value masks, lags and calendar features.

:func:`build_forecast` turns a :class:`~statebatch.series.SeriesSet` (and, for a DataFrame, the frame's
known, static and time columns) into a :class:`ForecastSpec`: per-row tables in the series' row order
(``past`` columns, ``future`` columns, targets), one static vector per series and the per-series
scale. :meth:`ForecastSpec.gather` then materialises the windows of one batch from the last input row
of each window with one fancy-index gather per table. ``make_windows`` uses it when any forecasting
input is asked for; its batches are then mappings (see :data:`FORECAST_KEYS`).

Semantics (one window, last input step ``e`` of series ``s``; ``T`` = ``timesteps``, ``H`` =
``horizon``, ``n`` = ``n_ahead``):

- ``past[t]``: the row ``e - T + 1 + t`` (``feature_cols``, ``known_cols``, lags, time features); rows
  before the series' first usable step (``start_index`` plus the largest lag) are padding: 0 and
  ``mask`` False.
- ``future[j]`` and ``y[j]``: row ``e + H + j`` (``known_cols`` and time features; the targets).
- ``static``: the series' static vector. ``scale``: ``(2, targets)`` center and scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, Sequence

import numpy as np

from .._args import check_choice, check_int, plain
from ..errors import DataValueError, ParameterError, ShapeError
from .covariates import TIME_FEATURES, check_static_constant, static_table, time_table
from .gather import _in_memory, strided_windows
from .input_names import MODEL_INPUT_KEYS, _names, model_inputs, split_xy
from .scaling import SCALE_EPS, SCALE_METHODS, SeriesScale, center_and_scale, fit_series_scale
from ..sources.series import SeriesSet, non_finite_effect, non_finite_found

__all__ = [
    "FORECAST_KEYS",
    "MISSING",
    "MODEL_INPUT_KEYS",
    "SCALE_EPS",
    "SCALES",
    "SeriesScale",
    "TIME_FEATURES",
    "ForecastBatch",
    "ForecastSpec",
    "build_forecast",
    "check_static_constant",
    "inverse",
    "model_inputs",
    "split_xy",
]

#: Every key a forecasting batch may hold, in this order. ``past``, ``future``, ``static``, ``y`` are
#: always there (``future``/``static`` with 0 columns when no known/static columns were asked for);
#: ``mask`` with ``min_timesteps``; ``scale`` with ``scale``; ``past_observed``/``y_observed`` with
#: ``missing="mask"``.
FORECAST_KEYS = ("past", "future", "static", "y", "mask", "scale", "past_observed", "y_observed")

SCALES = (None, "series", "window")
MISSING = ("error", "mask")


class ForecastBatch(NamedTuple):
    """A forecasting batch as a named tuple (torch: :func:`statebatch.torch.forecast_batch` makes one of
    tensors). Fields not asked for are ``None``. Shapes as in :data:`FORECAST_KEYS`."""

    past: Any
    future: Any
    static: Any
    y: Any
    mask: Any = None
    scale: Any = None
    past_observed: Any = None
    y_observed: Any = None


@dataclass(frozen=True, eq=False)
class ForecastSpec:
    """Per-row tables and per-series vectors the forecasting windows are gathered from.

    Attributes
    ----------
    past_rows : ndarray ``(rows, F)``
        ``feature_cols``, ``known_cols``, lags, time features, in the row order of the series set.
    future_rows : ndarray ``(rows, K)``
        ``known_cols`` and time features.
    target_rows : ndarray ``(rows, targets)``
    floor : int64 ``(n_series,)``
        First row of each series a window may read (``offsets + start_index + max(lags)``).
    static : ndarray ``(n_series, S)``
    series_scale : :class:`~statebatch.materialise.scaling.SeriesScale` or None
        With ``scale="series"``: each series' center and scale, fitted on the input steps of these windows
        (:meth:`fit_series_scale`) or reused from other windows (``make_windows(..., scale=train)``).
    offsets : int64 ``(n_series + 1,)``
        First row of each series in the tables.
    past_target : int64 ``(P, 2)``
        Pairs (past column, target column): past columns that hold target values (the targets among the
        features, and their lags), scaled with the targets.
    """

    past_rows: np.ndarray
    future_rows: np.ndarray
    target_rows: np.ndarray
    floor: np.ndarray
    static: np.ndarray
    timesteps: int
    horizon: int
    n_ahead: int
    scale: str | None
    scale_method: str
    missing: str
    fill_value: float
    variable_history: bool
    past_target: np.ndarray
    series_scale: SeriesScale | None = None
    offsets: np.ndarray = field(default_factory=lambda: np.zeros(1, dtype=np.int64))
    series_ids: list = field(default_factory=list)
    past_names: list = field(default_factory=list)
    future_names: list = field(default_factory=list)
    static_names: list = field(default_factory=list)
    target_names: list = field(default_factory=list)
    static_vocab: dict = field(default_factory=dict)

    @property
    def keys(self) -> tuple[str, ...]:
        """The keys of every batch, in :data:`FORECAST_KEYS` order."""
        return tuple(k for k in FORECAST_KEYS if k in ("past", "future", "static", "y")
                     or (k == "mask" and self.variable_history) or (k == "scale" and self.scale is not None)
                     or (k in ("past_observed", "y_observed") and self.missing == "mask"))

    @property
    def empty_keys(self) -> tuple[str, ...]:
        """The keys every batch holds with 0 columns (``future`` without known columns or time features,
        ``static`` without static columns): no input for a model (:func:`model_inputs` refuses them)."""
        return tuple(k for k, width in (("future", self.future_rows.shape[1]), ("static", self.static.shape[1]))
                     if width == 0)

    def __getstate__(self) -> dict[str, Any]:
        # the strided views are made again on first use: pickled (e.g. for a DataLoader worker) they would be
        # copies of every window
        return {k: v for k, v in self.__dict__.items() if k != "_views"}

    def _windows(self, table: str, first: np.ndarray, length: int) -> np.ndarray:
        """:func:`_windows_of` one of the row tables, with its strided view made once per (table, length):
        read on every batch, the view's set-up showed next to the gather itself."""
        views = self.__dict__.setdefault("_views", {})  # the instance dict, not a field (the spec is frozen)
        key = (table, length)
        if key not in views:
            rows = getattr(self, table)
            views[key] = strided_windows(rows, length) if rows.shape[0] >= length else None
        return _windows_of(getattr(self, table), first, length, views[key])

    def gather(self, series: np.ndarray, last_rows: np.ndarray) -> dict[str, np.ndarray]:
        """The windows whose last input row is ``last_rows`` (absolute rows), of series ``series``.

        Returns
        -------
        dict with :attr:`keys`: ``past (N, T, F)``, ``future (N, n_ahead, K)``, ``static (N, S)``,
        ``y (N, n_ahead, targets)``, ``mask (N, T)`` bool, ``scale (N, 2, targets)``,
        ``past_observed (N, T, F)`` / ``y_observed (N, n_ahead, targets)`` bool. New arrays.
        """
        series = np.asarray(series, dtype=np.int64)
        last_rows = np.asarray(last_rows, dtype=np.int64)
        T = self.timesteps
        first = last_rows - (T - 1)
        # mask: rows before the series' first usable step are padding (they may hold another series'
        # rows or, before row 0, the first rows: read, then zeroed)
        # (without variable history every window starts at or after its series' floor: no arithmetic)
        valid = (first[:, None] + np.arange(T, dtype=np.int64)) >= self.floor[series][:, None] \
            if self.variable_history else None  # None: every step real (read only with variable history)
        past = self._windows("past_rows", first, T)
        frows = last_rows + self.horizon
        y = self._windows("target_rows", frows, self.n_ahead)
        out: dict[str, np.ndarray] = {}
        if self.missing == "mask":
            past_obs = ~np.isnan(past)
            y_obs = ~np.isnan(y)
            if valid is not None:
                past_obs &= valid[:, :, None]
        if self.scale is not None:
            center_scale = self._scale_of(series, first, valid)  # (N, 2, targets)
            c, s = center_scale[:, 0][:, None, :], center_scale[:, 1][:, None, :]
            y = (y - c) / s
            if len(self.past_target):
                pc, tc = self.past_target[:, 0], self.past_target[:, 1]
                past[:, :, pc] = (past[:, :, pc] - c[:, :, tc]) / s[:, :, tc]
            out_scale = center_scale
        if valid is not None:  # variable history
            padded = np.flatnonzero(~valid[:, 0])  # only windows with padding (valid steps are a suffix)
            if len(padded):
                past[padded] = np.where(valid[padded][:, :, None], past[padded], 0)  # not a product: NaN * 0 is NaN
        if self.missing == "mask":
            past[~past_obs if valid is None else ~past_obs & valid[:, :, None]] = self.fill_value
            y[~y_obs] = self.fill_value
        out["past"] = past
        out["future"] = self._windows("future_rows", frows, self.n_ahead)
        out["static"] = self.static[series]
        out["y"] = y
        if valid is not None:
            out["mask"] = valid
        if self.scale is not None:
            out["scale"] = out_scale
        if self.missing == "mask":
            out["past_observed"] = past_obs
            out["y_observed"] = y_obs
        return out

    def fit_series_scale(self, series: np.ndarray, last_rows: np.ndarray) -> ForecastSpec:
        """This spec with its series scale fitted on the windows' input steps (``series``, ``last_rows``:
        each window's series and last input row): from each series' first usable row to the last input
        row of its last window, so no window's scale reads a target after its series' last input.
        Unchanged when not ``scale="series"`` or when a fitted scale was given.

        Examples
        --------
        >>> import numpy as np
        >>> from statebatch.sources.series import as_series
        >>> spec = build_forecast(as_series(np.arange(8.0)), frame=None, n_features=1, known_cols=[], static_cols=[],
        ...                       target=np.arange(8.0), target_positions=[0], timesteps=3, horizon=1, n_ahead=1,
        ...                       start_index=0, end_index=None, min_timesteps=None, scale="series",
        ...                       scale_method="standard", missing="error", fill_value=0.0, lags=[], time_features=[])
        >>> spec.fit_series_scale(np.array([0, 0]), np.array([2, 3])).series_scale.values[0, 0]  # rows 0..3
        array([1.5])
        """
        if self.scale != "series" or self.series_scale is not None:
            return self
        fitted = fit_series_scale(self.target_rows, self.offsets, self.floor, series, last_rows, self.scale_method,
                                  self.series_ids, self.target_names)
        return replace(self, series_scale=fitted)

    def _scale_of(self, series: np.ndarray, first: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
        if self.scale == "series":
            assert self.series_scale is not None  # fitted when the windows were planned
            return self.series_scale.values[series]
        # "window": the window's own input steps of the targets (real and observed ones only)
        values = self._windows("target_rows", first, self.timesteps).astype(np.float64)  # (N, T, targets)
        if valid is not None:  # variable history: padded steps are no data
            values[~np.broadcast_to(valid[:, :, None], values.shape)] = np.nan
        return center_and_scale(values, axis=1, method=self.scale_method).astype(self.target_rows.dtype)


def _future_table(past_rows: np.ndarray, data: np.ndarray, n_features: int, tf: np.ndarray | None,
                  fdt: np.dtype, lagged: bool) -> np.ndarray:
    """The known-future table ``(rows, K)``: without lags, the known and calendar columns are the last
    columns of ``past_rows`` in the same order, so it is a view of them (the covariates are stored once);
    lag columns sit between them, so with lags it is its own array."""
    if not lagged:
        return past_rows[:, n_features:]
    known = data[:, n_features:].astype(fdt)
    return known if tf is None else np.concatenate([known, tf], axis=1)


def _target_table(past_rows: np.ndarray, target: np.ndarray, positions: Sequence[int]) -> np.ndarray:
    """The targets ``(rows, targets)`` as a view of their input columns when they are consecutive input
    columns with the same values (the common case: a target that is also an input), else as given."""
    p = list(positions)
    if not p or min(p) < 0 or p != list(range(p[0], p[0] + len(p))) or past_rows.dtype != target.dtype:
        return target
    view = past_rows[:, p[0]: p[0] + len(p)]
    return view if _same_memory(view, target) or _equal_rows(view, target) else target


def _equal_rows(a: np.ndarray, b: np.ndarray, chunk: int = 1 << 16) -> bool:
    """``np.array_equal(a, b, equal_nan=True)`` of two arrays of rows, a chunk of rows at a time: its
    temporaries (masks, compressed copies) stay small whatever the number of rows."""
    if a.shape != b.shape:
        return False
    return all(np.array_equal(a[i: i + chunk], b[i: i + chunk], equal_nan=True) for i in range(0, len(a), chunk))


def _same_memory(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether ``a`` and ``b`` are the same elements of the same buffer (so equal, NaN included): a frame's
    target column read twice is, and comparing it value by value would copy it a few times over."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.size == 0:
        return True
    return a.__array_interface__["data"][0] == b.__array_interface__["data"][0] and all(
        sa == sb for sa, sb, n in zip(a.strides, b.strides, a.shape) if n > 1)


def _windows_of(table: np.ndarray, first: np.ndarray, length: int, view: np.ndarray | None = None) -> np.ndarray:
    """Rows ``first .. first + length - 1`` of ``table`` per window, ``(N, length, columns)``: one gather
    from a strided view (as plain windows; ``view``: ``strided_windows(table, length)``, made by the caller).
    Rows before row 0 (variable history of the first series) read row 0; they are padding, zeroed or left
    out by the caller."""
    if table.shape[0] < length:  # fewer rows in all than one window (a short first series): gather directly
        return table[np.maximum(first[:, None] + np.arange(length, dtype=np.int64), 0)]
    if view is None:
        view = strided_windows(table, length)
    if len(first) and first.min() < 0:
        out = view[np.maximum(first, 0)]
        for i in np.flatnonzero(first < 0):  # rare: at most the first few windows of the first series
            rows = np.maximum(np.arange(first[i], first[i] + length), 0)
            out[i] = table[rows]
        return out
    return view[first]


def inverse(predictions: Any, scale: Any) -> np.ndarray:
    """Predictions on the scale of the data: ``predictions * scale + center``.

    Parameters
    ----------
    predictions : array ``(N, n_ahead, targets)`` or ``(N, targets)`` (or ``(N, n_ahead)`` for one target)
        Model outputs on the scaled targets.
    scale : array ``(N, 2, targets)``
        The batch's ``"scale"`` (center, scale), same windows in the same order.

    Examples
    --------
    >>> import numpy as np
    >>> scale = np.array([[[10.0], [2.0]]])  # one window: center 10, scale 2, one target
    >>> inverse(np.array([[[0.5], [-1.0]]]), scale)[0, :, 0]
    array([11.,  8.])
    """
    p = np.asarray(predictions)
    s = np.asarray(scale)
    if s.ndim != 3 or s.shape[1] != 2:
        raise ShapeError(f"scale has shape {s.shape}; a forecasting batch's scale is (N, 2, targets).",
                         "pass the batch's 'scale' array for the same windows.")
    if p.ndim == 0 or len(p) != len(s):
        raise ShapeError(f"predictions have shape {p.shape} for the scales of {len(s)} windows.",
                         "pass one prediction row per window of the batch the scale came from.")
    c, sc = s[:, 0], s[:, 1]  # (N, targets)
    nt = s.shape[2]
    if p.ndim == 3 and p.shape[2] == nt:
        return p * sc[:, None, :] + c[:, None, :]
    if p.ndim == 2 and p.shape[1] == nt:
        return p * sc + c
    if p.ndim == 2 and nt == 1:  # (N, n_ahead) for one target
        return p * sc + c
    raise ShapeError(f"predictions have shape {p.shape}, which does not end in the {nt} target(s) of the scale.",
                     "pass predictions of shape (N, n_ahead, targets) or (N, targets).")


# --------------------------------------------------------------------------- building the tables
def check_lags(lags: Any) -> list[int]:
    """Lag offsets: positive integers, each once."""
    if lags is None:
        return []
    if isinstance(lags, (str, bytes)):  # the generic "pass lags=1 or more" would not say what was wrong
        raise ParameterError(f"lags must be integers, got {lags!r} (str).",
                             f"pass lag offsets as integers, e.g. lags=[{lags.strip() if isinstance(lags, str) else 7}].")
    if not hasattr(lags, "__iter__"):
        lags = [lags]
    out = [check_int("lags", lag, 1) for lag in lags]
    if len(set(out)) != len(out):
        raise ParameterError(f"lags lists an offset twice: {out}.", "list each lag offset once, e.g. lags=[1, 7].")
    return out


def check_time_features(names: Any, time_col: Any, has_index: bool) -> list[str]:
    """Calendar feature names from :data:`TIME_FEATURES`; they need time stamps."""
    if names is None:
        return []
    names = _names(names, "time_features")
    bad = [n for n in names if n not in TIME_FEATURES]
    if bad:
        raise ParameterError(f"time_features {bad} are not known.", f"use some of {list(TIME_FEATURES)}.")
    if names and not has_index:
        raise ParameterError("time_features are derived from time stamps, and the data has none.",
                             "pass a DataFrame with time_col=... (datetimes), or a frame/Series with a DatetimeIndex.")
    return names


def _first_bad(arr: np.ndarray, ss: SeriesSet, names: list) -> tuple[str, int]:
    bad = ~np.isfinite(arr)
    row, col = (int(a[0]) for a in np.nonzero(bad))
    k = int(np.searchsorted(ss.offsets, row, side="right") - 1)
    name = names[col] if col < len(names) else col
    return f"series {plain(ss.ids[k])!r} step {row - int(ss.offsets[k])} column {name!r}", int(bad.sum())


def build_forecast(
    ss: SeriesSet,
    *,
    frame: Any,
    n_features: int,
    known_cols: list,
    static_cols: list,
    target: np.ndarray,
    target_positions: list[int],
    timesteps: int,
    horizon: int,
    n_ahead: int,
    start_index: int,
    end_index: int | None,
    min_timesteps: int | None,
    scale: str | None,
    scale_method: str,
    missing: str,
    fill_value: float,
    lags: list[int],
    time_features: list[str],
    fitted_scale: SeriesScale | None = None,
    id_col: Any = None,
    static_vocab: dict | None = None,
) -> ForecastSpec:
    """The tables of :class:`ForecastSpec` from a series set whose last ``len(known_cols)`` feature
    columns are the known columns (``make_windows`` reads them with the features).

    ``target_positions``: feature columns (of the first ``n_features``) that hold the targets, in target
    order (-1 where a target is not among the features). ``fitted_scale``: a series scale fitted on other
    windows, reused (``scale="series"``); otherwise a series scale is fitted when the windows are planned
    (:meth:`ForecastSpec.fit_series_scale`). ``id_col`` among ``static_cols``: coded as a category.
    ``static_vocab``: categories of static columns fitted on other windows, reused.

    Examples
    --------
    >>> import numpy as np
    >>> from statebatch.sources.series import as_series
    >>> ss = as_series(np.arange(8.0))
    >>> spec = build_forecast(ss, frame=None, n_features=1, known_cols=[], static_cols=[], target=np.arange(8.0),
    ...                       target_positions=[0], timesteps=3, horizon=1, n_ahead=2, start_index=0, end_index=None,
    ...                       min_timesteps=None, scale=None, scale_method="standard", missing="error",
    ...                       fill_value=0.0, lags=[], time_features=[])
    >>> batch = spec.gather(np.array([0]), np.array([2]))  # the window whose last input step is row 2
    >>> batch["past"][0, :, 0], batch["y"][0, :, 0]
    (array([0., 1., 2.]), array([3., 4.]))
    """
    data = _in_memory(ss.source)
    if data is None:
        raise ParameterError("forecasting inputs (known_cols, static_cols, min_timesteps, scale, missing, lags, "
                             "time_features) need the series in memory.",
                             "pass a DataFrame or numpy arrays; for out-of-core data, windows without them.")
    fdt = np.result_type(ss.dtype, np.float32)
    data = np.asarray(data)
    names = list(ss.feature_names) if ss.feature_names else [f"feature {i}" for i in range(ss.n_features)]
    target = np.asarray(target, dtype=fdt).reshape(len(target), -1)
    tnames = list(ss.target_names) if ss.target_names else [names[p] if p >= 0 else f"target {j}"
                                                            for j, p in enumerate(target_positions)]
    nk = len(known_cols)
    offsets = ss.offsets
    _check_values(data, target, ss, names, tnames, n_features, nk, missing)
    # lags of the targets: row r holds target[r - lag] (rows before a series' first usable step are padding)
    max_lag = max(lags) if lags else 0
    parts = [data]
    past_names = names[:n_features] + names[n_features:]
    lag_pairs = []
    for lag in lags:
        shifted = np.full_like(target, np.nan)
        shifted[lag:] = target[:-lag]
        parts.append(shifted)
        for j, tn in enumerate(tnames):
            lag_pairs.append((len(past_names), j))
            past_names.append(f"{tn} lag {lag}")
    future_names = names[n_features:]
    tf = time_table(ss, time_features, fdt) if time_features else None
    if tf is not None:
        parts.append(tf)
        past_names = past_names + list(time_features)
        future_names = future_names + list(time_features)
    # the tables may be the user's own array (no lag, time feature or cast): only read, batches are
    # gathered copies
    past_rows = np.concatenate([np.asarray(p, dtype=fdt) for p in parts], axis=1) if len(parts) > 1 \
        else np.asarray(data, dtype=fdt)
    future_rows = _future_table(past_rows, data, n_features, tf, fdt, lagged=bool(lags))
    target = _target_table(past_rows, target, target_positions)
    past_target = [(p, j) for j, p in enumerate(target_positions) if p >= 0] + lag_pairs
    floor = offsets[:-1] + start_index + max_lag
    static, static_names, vocab = static_table(frame, static_cols, ss, fdt, categorical=[id_col],
                                                vocab_given=static_vocab) if static_cols else (
        np.zeros((ss.n_series, 0), dtype=fdt), [], {})
    series_scale = None if fitted_scale is None else fitted_scale.of(ss.ids, tnames)
    return ForecastSpec(past_rows=past_rows, future_rows=future_rows, target_rows=target, floor=floor.astype(np.int64),
                        static=static, timesteps=timesteps, horizon=horizon, n_ahead=n_ahead, scale=scale,
                        scale_method=scale_method if fitted_scale is None else fitted_scale.method, missing=missing, fill_value=fill_value,
                        variable_history=min_timesteps is not None,
                        past_target=np.asarray(past_target, dtype=np.int64).reshape(-1, 2), series_scale=series_scale,
                        past_names=past_names, future_names=list(future_names), static_names=static_names,
                        target_names=tnames, static_vocab=vocab, offsets=np.asarray(offsets, dtype=np.int64),
                        series_ids=list(ss.ids))


def _check_values(data: np.ndarray, target: np.ndarray, ss: SeriesSet, names: list, tnames: list, n_features: int,
                  nk: int, missing: str) -> None:
    """Refuse NaN/inf in known covariates (always), and in the data and targets: all non-finite values with
    ``missing="error"``, inf with ``missing="mask"`` (which masks NaN only)."""
    # known covariates must be known: NaN there is never a "missing observation"
    if nk:
        known = data[:, n_features:]
        if known.dtype.kind in "fc" and not np.isfinite(known).all():
            where, count = _first_bad(known, ss, names[n_features:])
            raise DataValueError(f"known_cols have {count} NaN/inf value(s), the first at {where}; known covariates "
                                 "must be known at every step, inputs and horizon.",
                                 "fill them (they are known in advance: e.g. a calendar or a price list), or pass that "
                                 "column as feature_cols (observed, may be missing with missing='mask').")
    if missing == "error":
        for arr, what, nm in ((data[:, :n_features], "data", names), (target, "targets", tnames)):
            if arr.dtype.kind in "fc" and not np.isfinite(arr).all():
                where, count = _first_bad(arr, ss, nm)
                n_nan = int(np.isnan(arr).sum())
                # missing='mask' masks NaN only (inf is refused there too), so it is the fix for NaN alone
                fix = ("fill or drop them first, or pass missing='mask': NaN becomes fill_value with an observed-value "
                       "mask (past_observed, y_observed) in every batch") if n_nan else ""
                if count > n_nan:
                    fix += ("; " if fix else "") + "replace the inf (a division by zero, a log of 0) by a value, or " \
                        "by NaN for missing='mask' (df.replace([np.inf, -np.inf], np.nan))"
                raise DataValueError(f"{what} has {non_finite_found(n_nan, count - n_nan)}, the first at {where}; "
                                     f"{non_finite_effect(n_nan, count - n_nan)}.", fix + ".")
    else:
        for arr, what, nm in ((data[:, :n_features], "data", names), (target, "targets", tnames)):
            if arr.dtype.kind in "fc" and np.isinf(arr).any():
                where, count = _first_bad(np.where(np.isnan(arr), 0, arr), ss, nm)
                raise DataValueError(f"{what} has {count} infinite value(s), the first at {where}; missing='mask' "
                                     "masks NaN (missing observations), not inf.",
                                     "replace inf by NaN (df.replace([np.inf, -np.inf], np.nan)) or by a value.")


def check_forecast_args(*, scale: Any, scale_method: Any, missing: Any, fill_value: Any) -> tuple:
    """``scale``, ``scale_method``, ``missing``, ``fill_value`` checked (statebatch errors with fixes)."""
    scale = check_choice("scale", scale, SCALES)
    scale_method = check_choice("scale_method", scale_method, SCALE_METHODS)
    missing = check_choice("missing", missing, MISSING)
    if isinstance(fill_value, (bool, np.bool_)) or not isinstance(fill_value, (int, float, np.integer, np.floating)):
        raise ParameterError(f"fill_value must be a number, got {fill_value!r}.", "pass e.g. fill_value=0.0.")
    if not np.isfinite(fill_value):
        raise ParameterError(f"fill_value={fill_value} is not finite.", "pass a finite number, e.g. 0.0.")
    return scale, scale_method, missing, float(fill_value)
