"""Windowing: raw series into ``[samples, timesteps, features]``.

Design: a *plan* (the absolute start row of every window in one base array) is computed from the
series lengths alone; the data is then exposed through a read-only strided view of the base, so a
window is never copied until a batch is materialised (one fancy-indexing gather per batch).
"""

from __future__ import annotations

import warnings
from typing import Any, Iterator, Sequence

import numpy as np

from ._series import SeriesSet, as_series
from .errors import DataValueError, LengthMismatchError, ParameterError, ShapeError, StatebatchWarning


def strided_windows(base: np.ndarray, length: int, step: int = 1) -> np.ndarray:
    """Read-only view of every window of ``length`` rows, ``step`` apart, along axis 0.

    Parameters
    ----------
    base : ndarray, shape ``(rows, *trailing)``
    length : int
        Rows per window.
    step : int
        Distance between the rows of one window (``sampling_rate``).

    Returns
    -------
    ndarray, shape ``(max(rows - (length - 1) * step, 0), length, *trailing)``
        Window ``i`` is ``base[i : i + (length - 1) * step + 1 : step]``; no data is copied.
    """
    if not isinstance(base, np.ndarray) and hasattr(base, "take_chunks"):  # an out-of-core store
        from .store import StoreWindows

        return StoreWindows(base, length, step)
    n = max(base.shape[0] - (length - 1) * step, 0)
    s0 = base.strides[0]
    return np.lib.stride_tricks.as_strided(
        base, shape=(n, length) + base.shape[1:], strides=(s0, step * s0) + base.strides[1:],
        writeable=False,
    )


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ParameterError(f"{name} must be an integer, got {value!r}.", f"pass {name}={minimum} or more.")
    if value < minimum:
        raise ParameterError(f"{name} must be >= {minimum}, got {value}.", f"pass {name}={minimum} or more.")
    return int(value)


class Windows:
    """Windows over one or many series, with their provenance.

    Unpacks as ``X, y`` when targets exist (``X, = windows`` otherwise).

    Attributes
    ----------
    X : ndarray, shape ``(n_windows, timesteps, features)``
        A read-only zero-copy view when the windows of a single series are evenly spaced;
        otherwise (many series) gathered once on first access. ``copy=True`` gives a contiguous,
        writeable array.
    y : ndarray or None
        ``(n_windows, *target_shape)`` many-to-one, ``(n_windows, n_ahead, target_features)`` for
        ``n_ahead > 1``, or ``(n_windows, timesteps, *target_shape)`` with ``return_sequences``.
    series, start : ndarray of int, shape ``(n_windows,)``
        Provenance: the series each window came from (position in ``series_ids``) and its first
        step within that series.
    starts : ndarray of int, shape ``(n_windows,)``
        The plan: each window's start row in the base array (computed on demand for one series).
    left_out : list of dict
        Steps of each series that no window (nor target) uses, e.g. a tail shorter than a stride.
    """

    def __init__(self, *, xbase, starts, timesteps, sampling_rate, stride, offsets, ids,
                 ybase=None, yoffset=0, ylength=None, ystep=1, regular=None, copy=False,
                 feature_names=None, left_out=None):
        self._xview = strided_windows(xbase, timesteps, sampling_rate)
        # The plan: absolute start rows of the windows in the base array. For evenly spaced windows
        # of one series only (first, stride, n) is kept, so the plan costs nothing for long series.
        self._starts = starts
        self._regular = regular  # (first, stride, n) when starts form an arithmetic progression
        self._offsets = offsets  # first row of each series in the base array
        self.timesteps = timesteps
        self.sampling_rate = sampling_rate
        self.stride = stride
        self.series_ids = ids
        self.feature_names = feature_names
        self.left_out = left_out or []
        self._copy = copy
        self._ybase = ybase
        self._yoffset = yoffset
        self._ylength = ylength
        self._yview = None if ybase is None or ylength is None else strided_windows(ybase, ylength, ystep)
        self._X = None
        self._y = None

    @property
    def starts(self) -> np.ndarray:
        """Absolute start row of every window in the (concatenated) base array: the plan."""
        if self._starts is None:
            first, step, n = self._regular
            return np.arange(first, first + n * step, step, dtype=np.int64)
        return self._starts

    @property
    def series(self) -> np.ndarray:
        """Position in ``series_ids`` of the series each window came from, ``(n_windows,)``."""
        return np.searchsorted(self._offsets, self.starts, side="right") - 1

    @property
    def start(self) -> np.ndarray:
        """First step of each window within its series, ``(n_windows,)``."""
        starts = self.starts
        return starts - self._offsets[np.searchsorted(self._offsets, starts, side="right") - 1]

    # ---------------------------------------------------------------- sizes
    @property
    def n_windows(self) -> int:
        return int(self._regular[2] if self._starts is None else len(self._starts))

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.n_windows,) + self._xview.shape[1:]

    @property
    def n_features(self) -> int:
        return int(self._xview.shape[2])

    @property
    def has_targets(self) -> bool:
        return self._ybase is not None

    # ---------------------------------------------------------------- data
    @property
    def X(self) -> np.ndarray:
        if self._X is None:
            if self._starts is None:
                first, step, n = self._regular
                x = self._xview[first: first + (n - 1) * step + 1: step]
            else:
                x = self._xview[self._starts]  # gather: many series cannot share one view
                x.flags.writeable = self._copy
            self._X = np.ascontiguousarray(x) if self._copy else x
        return self._X

    @property
    def y(self) -> np.ndarray | None:
        if self._ybase is None:
            return None
        if self._y is None:
            src = self._ybase if self._yview is None else self._yview
            if self._starts is None:
                first, step, n = self._regular
                f = first + self._yoffset
                y = src[f: f + (n - 1) * step + 1: step]
                if self._yview is None and not self._copy:
                    y = y.view()
                    y.flags.writeable = False
            else:
                y = src[self._starts + self._yoffset]
            self._y = np.ascontiguousarray(y) if self._copy else y
        return self._y

    def take(self, idx: np.ndarray | slice) -> tuple[np.ndarray, ...]:
        """Materialise the windows ``idx`` as contiguous arrays: ``(X_batch,)`` or ``(X_batch, y_batch)``.

        This is the per-batch primitive: one gather from the strided view, no other copy.
        """
        if isinstance(idx, slice) and self._starts is None:
            first, step, _ = self._regular
            lo, hi, _ = idx.indices(self.n_windows)
            rows = slice(first + lo * step, first + (hi - 1) * step + 1, step) if hi > lo else slice(0, 0)
            xb = np.ascontiguousarray(self._xview[rows])
            if self._ybase is None:
                return (xb,)
            ysrc = self._ybase if self._yview is None else self._yview
            yrows = slice(rows.start + self._yoffset, rows.stop + self._yoffset, step) if hi > lo else slice(0, 0)
            return xb, np.ascontiguousarray(ysrc[yrows])
        if self._starts is None:
            first, step, _ = self._regular
            rows = first + np.asarray(idx, dtype=np.int64) * step
        else:
            rows = self._starts[idx]
        xb = self._xview[rows]
        if self._ybase is None:
            return (xb,)
        ysrc = self._ybase if self._yview is None else self._yview
        return xb, ysrc[rows + self._yoffset]

    def batches(self, batch_size: int, *, shuffle: bool = False, seed: int | None = None,
                drop_remainder: bool = False) -> Iterator[tuple[np.ndarray, ...]]:
        """Yield contiguous batches ``(X_batch[, y_batch])`` for one epoch.

        Parameters
        ----------
        batch_size : int
        shuffle : bool
            Visit windows in a random order drawn from ``seed`` (deterministic for a given seed).
        drop_remainder : bool
            Skip the last, smaller batch. The number of windows skipped is in the warning emitted.
        """
        batch_size = _check_int("batch_size", batch_size, 1)
        n = self.n_windows
        order = np.random.default_rng(seed).permutation(n) if shuffle else None
        stop = n - n % batch_size if drop_remainder else n
        if drop_remainder and n % batch_size:
            warnings.warn(f"drop_remainder=True leaves out {n % batch_size} of {n} windows this epoch.",
                          StatebatchWarning, stacklevel=2)
        for lo in range(0, stop, batch_size):
            hi = min(lo + batch_size, n)
            yield self.take(slice(lo, hi) if order is None else order[lo:hi])

    def __iter__(self):
        return iter((self.X,) if self._ybase is None else (self.X, self.y))

    def __repr__(self) -> str:
        yshape = None if self._ybase is None else (self.n_windows,) + (
            self._ybase.shape[1:] if self._yview is None else self._yview.shape[1:])
        lo = sum(d["steps"] for d in self.left_out)
        return (f"Windows(X={self.shape}, y={yshape}, series={len(self.series_ids)}, "
                f"timesteps={self.timesteps}, stride={self.stride}, sampling_rate={self.sampling_rate}, "
                f"left_out_steps={lo})")


def _series_window_count(n: int, span: int, extra: int, stride: int, start_index: int,
                         end_index: int | None, n_targets: int | None) -> int:
    """Number of windows (starting at ``start_index``, ``stride`` apart) that fit one series."""
    end = n if end_index is None else min(end_index, n)
    last_start = end - span - extra  # inclusive
    if n_targets is not None:  # Keras: at most len(targets) windows, each with targets[start]
        last_start = min(last_start, n_targets - 1)
    if last_start < start_index:
        return 0
    return (last_start - start_index) // stride + 1


def make_windows(
    data: Any,
    timesteps: int,
    *,
    stride: int = 1,
    sampling_rate: int = 1,
    start_index: int | None = None,
    end_index: int | None = None,
    targets: Any = None,
    horizon: int = 1,
    n_ahead: int = 1,
    align: str = "first",
    return_sequences: bool = False,
    target_features: Sequence[int] | None = None,
    id_col: str | None = None,
    time_col: str | None = None,
    feature_cols: Sequence[str] | None = None,
    target_cols: Sequence[str] | None = None,
    dtype: Any = None,
    copy: bool = False,
) -> Windows:
    """Cut series into windows ``[samples, timesteps, features]`` that never cross a series boundary.

    Parameters
    ----------
    data : array ``(steps,)`` / ``(steps, features)``, pandas Series/DataFrame, list of arrays, or
        a long DataFrame with ``id_col`` (and ``time_col`` to sort by).
    timesteps : int
        Window length (Keras ``sequence_length``).
    stride : int
        Steps between the starts of consecutive windows (Keras ``sequence_stride``).
    sampling_rate : int
        Steps between consecutive rows inside a window.
    start_index, end_index : int, optional
        Only steps ``start_index <= t < end_index`` of each series are used (inputs and targets).
    targets : None, "next", "aligned", array or list of arrays
        ``None``: no y. ``"next"``: the future of the data itself, ``horizon`` steps after the
        window's last row (``n_ahead`` consecutive values; with ``return_sequences`` every row's
        value ``horizon`` steps later). An array aligned with the data rows: as in Keras,
        ``y[i] = targets[first step of window i]`` (``align="first"``) or of its last step
        (``align="last"``); with ``return_sequences`` the targets of every row of the window.
        ``"aligned"`` uses ``target_cols`` of a DataFrame as such an array.
    horizon, n_ahead : int
        For ``targets="next"``.
    target_features : sequence of int, optional
        For ``targets="next"``: which features of the data are targets (default all).
    id_col, time_col, feature_cols, target_cols : str, optional
        For DataFrames. ``target_cols`` alone means ``targets="next"`` on those columns.
    dtype : optional
        Convert the data (this copies it).
    copy : bool
        Return contiguous, writeable ``X``/``y`` instead of read-only views.

    Returns
    -------
    Windows
        ``X`` of shape ``(n_windows, timesteps, features)``; see :class:`Windows`.

    Notes
    -----
    With ``targets`` an array and the Keras parameters only, ``X`` and ``y`` equal the batches of
    ``keras.utils.timeseries_dataset_from_array(data, targets, sequence_length=timesteps,
    sequence_stride=stride, sampling_rate=sampling_rate, start_index=..., end_index=...)``
    concatenated (tested). For many series, start/end apply to each series.
    """
    timesteps = _check_int("timesteps", timesteps, 1)
    stride = _check_int("stride", stride, 1)
    sampling_rate = _check_int("sampling_rate", sampling_rate, 1)
    horizon = _check_int("horizon", horizon, 1)
    n_ahead = _check_int("n_ahead", n_ahead, 1)
    start_index = 0 if start_index is None else _check_int("start_index", start_index, 0)
    if end_index is not None:
        end_index = _check_int("end_index", end_index, 1)
        if end_index <= start_index:
            raise ParameterError(f"end_index={end_index} must be greater than start_index={start_index}.",
                                 "pass end_index > start_index (end_index is exclusive).")
    if align not in ("first", "last"):
        raise ParameterError(f"align must be 'first' or 'last', got {align!r}.", "pass align='first' (Keras) or 'last'.")
    if target_cols is not None and targets is None:
        targets = "next"
    if isinstance(targets, str) and targets not in ("next", "aligned"):
        raise ParameterError(f"targets={targets!r} is not understood.",
                             "pass None, 'next', 'aligned' (with target_cols) or an array aligned with the data.")
    if isinstance(targets, str) and targets == "aligned" and target_cols is None:
        raise ParameterError("targets='aligned' needs target_cols=[...] of a DataFrame.",
                             "name the target columns, or pass the target array itself.")

    ss: SeriesSet = as_series(data, id_col=id_col, time_col=time_col, feature_cols=feature_cols,
                              target_cols=target_cols, dtype=dtype)
    base, offsets = ss.concatenated()
    span = (timesteps - 1) * sampling_rate + 1

    # Where the targets come from, and their offset from a window's start row.
    ybase, yoffset, ylength, ystep, extra = None, 0, None, 1, 0
    n_targets_per_series: list[int | None] = [None] * len(ss.arrays)
    if isinstance(targets, str) and targets == "next":
        ybase = ss.next_value_base(base, target_cols, target_features)
        if return_sequences:
            yoffset, ylength, ystep, extra = horizon, timesteps, sampling_rate, horizon
        else:
            yoffset = span - 1 + horizon
            extra = horizon + n_ahead - 1
            if n_ahead > 1:
                ylength = n_ahead
    elif targets is not None:
        if isinstance(targets, str):  # "aligned"
            tlist = ss.targets
        else:
            tlist = _target_arrays(targets, ss)
        n_targets_per_series = [len(t) for t in tlist]
        ybase = tlist[0] if len(tlist) == 1 else np.concatenate(tlist, axis=0)
        if return_sequences:
            ylength, ystep = timesteps, sampling_rate
            n_targets_per_series = [None if len(t) >= len(a) else len(t) - span + 1
                                    for t, a in zip(tlist, ss.arrays)]
        elif align == "last":
            yoffset = span - 1
            n_targets_per_series = [None if len(t) >= len(a) else len(t) - span + 1
                                    for t, a in zip(tlist, ss.arrays)]

    counts, left_out = [], []
    for k, arr in enumerate(ss.arrays):
        n = len(arr)
        count = _series_window_count(n, span, extra, stride, start_index, end_index, n_targets_per_series[k])
        counts.append(count)
        end = n if end_index is None else min(end_index, n)
        if count == 0:
            if n > 0:
                left_out.append({"series": ss.ids[k], "first_step": start_index, "steps": max(end - start_index, 0),
                                 "reason": f"shorter than one window ({span} steps) plus targets ({extra})"})
            continue
        used_end = start_index + (count - 1) * stride + span + extra  # exclusive
        if used_end < end:
            left_out.append({"series": ss.ids[k], "first_step": used_end, "steps": end - used_end,
                             "reason": "tail after the last full window (stride)"})
    if not any(counts):
        raise DataValueError(
            f"no window fits: every series is shorter than timesteps={timesteps} "
            f"(x sampling_rate={sampling_rate}) plus the target steps ({extra}); lengths: "
            f"{ss.lengths[:10].tolist()}.",
            "use fewer timesteps, a smaller horizon, or longer series.",
        )
    dropped_series = [d for d in left_out if d["reason"].startswith("shorter")]
    if dropped_series:
        warnings.warn(
            f"{len(dropped_series)} series are shorter than one window and give no window "
            f"(ids {[d['series'] for d in dropped_series[:5]]}...); see Windows.left_out.",
            StatebatchWarning, stacklevel=2)
    regular = starts = None
    if len(ss.arrays) == 1:
        regular = (start_index, stride, counts[0])
    else:
        # int32 halves the plan where the base allows it
        itype = np.int32 if len(base) < 2**31 else np.int64
        starts = np.concatenate([np.arange(start_index, start_index + c * stride, stride, dtype=itype) + offsets[k]
                                 for k, c in enumerate(counts) if c]).astype(itype, copy=False)
    return Windows(xbase=base, starts=starts, timesteps=timesteps, sampling_rate=sampling_rate, stride=stride,
                   offsets=offsets, ids=ss.ids, ybase=ybase, yoffset=yoffset, ylength=ylength, ystep=ystep,
                   regular=regular, copy=copy, feature_names=ss.feature_names, left_out=left_out)


def _target_arrays(targets: Any, ss: SeriesSet) -> list[np.ndarray]:
    """Target arrays aligned with each series (one array per series)."""
    many = len(ss.arrays) > 1
    if many:
        if not isinstance(targets, (list, tuple)) or len(targets) != len(ss.arrays):
            raise LengthMismatchError(
                f"data has {len(ss.arrays)} series, so targets must be a list of {len(ss.arrays)} arrays "
                f"(got {type(targets).__name__}).",
                "pass one target array per series, aligned row by row with it.",
            )
        tl = [np.asarray(t) for t in targets]
    else:
        t = targets.to_numpy() if hasattr(targets, "to_numpy") else np.asarray(targets)
        tl = [t]
    for i, (t, a) in enumerate(zip(tl, ss.arrays)):
        if t.ndim == 0:
            raise ShapeError(f"targets[{i}] is a scalar.", "pass one target per time step.")
        if t.dtype == object:
            raise ShapeError(f"targets[{i}] has dtype object (ragged?).", "pass a numeric array.")
        if len(t) > len(a):
            raise LengthMismatchError(
                f"targets{'[%d]' % i if many else ''} has {len(t)} rows but the series has {len(a)} steps.",
                "targets are aligned row by row with the data: trim them to the data's length.",
            )
    return tl
