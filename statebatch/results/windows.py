"""Windowing: raw series into ``[samples, timesteps, features]``.

Plan, then materialise: :func:`~statebatch.plans.windows.plan_windows` decides from the series
lengths which windows exist and how an epoch visits them; the data is exposed through a read-only
strided view of the row source, so a window is never copied until a batch is materialised (one
gather per batch).
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import numpy as np

from .._args import check_bool, check_choice, check_int, check_size, plural, resolve_seed
from ..errors import LengthMismatchError, ParameterError, ShapeError
from .provenance import NATURAL, SLIDING, Provenance, register_provenance
from ..materialise.gather import (WindowTables, _in_memory, _strided, gather_rows, gather_windows, sliced_batches,
                                  strided_windows, window_tables)
from ..plans.windows import REMAINDERS, WindowPlan, plan_windows
from .batched import Batched, Explanation, SizedResult, stack_outputs
from .forecast_windows import check_forecast_only_args, forecast_inputs, wants_forecast
from .window_targets import check_target_args, index_range, planning_only, warn_short, window_targets
from ..sources.options import InputOptions
from ..sources.series import (SeriesSet, apply_gaps, as_series, check_finite_series,
                              checked_finite, in_memory)
from ..sources.base import ArraySource, RowSource, readonly

__all__ = ["Windows", "make_windows", "strided_windows"]


class Windows(SizedResult, Batched):
    """Windows over one or many series, with their provenance, batched per epoch.

    Follows the result protocol (:mod:`statebatch.result`): ``plan()``, ``n_batches``, ``batch(k)``,
    ``batches()``, ``left_out``, ``padding_fraction`` (always 0), ``explain()``, ``unbatch()``.

    Attributes
    ----------
    X : ndarray, shape ``(n_windows, timesteps, features)``
        All windows in natural order. A read-only zero-copy view for evenly spaced windows of one
        in-memory series; otherwise gathered once on first access (``copy=True``: contiguous and
        writeable).
    y : ndarray or None
        ``(n_windows, *target_shape)`` many-to-one, ``(n_windows, n_ahead, target_features)`` for
        ``n_ahead > 1``, or ``(n_windows, timesteps, *target_shape)`` with ``return_sequences``.
    series, start : ndarray of int, shape ``(n_windows,)``
        Provenance: the series each window came from (position in ``series_ids``) and its first
        step within that series.
    """

    #: With ``lags``: steps after the user's ``start_index`` read as lag values only (see :attr:`left_out`).
    _lag_steps: int = 0
    #: :meth:`_tables` once made (False: not yet asked for).
    _window_tables: "WindowTables | None | bool" = False

    def __init__(self, ss: SeriesSet, *, timesteps: int, stride: int, sampling_rate: int, start_index: int,
                 end_index: int | None, ysource: RowSource | None, yoffset: int, ylength: int | None, ystep: int,
                 target_steps: int, max_starts: np.ndarray | None, batch_size: int, shuffle: bool, seed: int,
                 remainder: str, copy: bool, forecast: Any = None, min_timesteps: int | None = None):
        self._ss = ss
        #: Forecasting inputs (:class:`statebatch.forecast.ForecastSpec`: names, static vocabulary) or None.
        self.forecast = forecast
        self.min_timesteps = min_timesteps
        self._forecast_arrays: dict[str, np.ndarray] | None = None
        self.timesteps = timesteps
        self.stride = stride
        self.sampling_rate = sampling_rate
        self.start_index = start_index
        self.end_index = end_index
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.remainder = remainder
        self.series_ids = list(ss.ids)
        self.feature_names = ss.feature_names
        self._ysource = ysource
        self._yoffset = yoffset
        self._ylength = ylength
        self._ystep = ystep
        self._target_steps = target_steps
        self._max_starts = max_starts
        self._copy = copy
        self._X: np.ndarray | None = None
        self._y: np.ndarray | None = None
        self.epoch = 0
        self._base = self._make_plan(0, shuffle=False)  # raises when no window fits

    # ---------------------------------------------------------------- plan
    def _make_plan(self, epoch: int, shuffle: bool | None = None) -> WindowPlan:
        shuffle = self.shuffle if shuffle is None else shuffle
        base = None if shuffle else self.__dict__.get("_base")  # unshuffled epochs: the plan made at construction
        plan = None if base is None else base.at_epoch(epoch)
        if plan is not None:
            return plan
        return plan_windows(self._ss.lengths,
                            self.timesteps, stride=self.stride, sampling_rate=self.sampling_rate,
                            start_index=self.start_index, end_index=self.end_index, target_steps=self._target_steps,
                            max_starts=self._max_starts, batch_size=self.batch_size,
                            shuffle=shuffle, seed=self.seed, epoch=epoch,
                            remainder=self.remainder, min_timesteps=self.min_timesteps)

    # ---------------------------------------------------------------- sizes and provenance
    @property
    def n_windows(self) -> int:
        return self._base.n_windows

    @property
    def n_features(self) -> int:
        """Features per step of ``X`` (with forecasting inputs: the columns of ``"past"``)."""
        if self.forecast is not None:
            return len(self.forecast.past_names)
        return self._ss.n_features

    def _n_samples(self) -> int:  # shape: SizedResult
        return self.n_windows

    @property
    def starts(self) -> np.ndarray:
        """Absolute start row of every window in the row source (natural order)."""
        return self._base.starts()

    @property
    def series(self) -> np.ndarray:
        """Position in ``series_ids`` of the series each window came from, ``(n_windows,)``."""
        return self._base.series_of(np.arange(self.n_windows))

    @property
    def start(self) -> np.ndarray:
        """First step of each window within its series, ``(n_windows,)``."""
        return self.starts - self._ss.offsets[self.series]

    def provenance(self, i: int) -> dict[str, Any]:
        """Which series and steps window ``i`` (natural order) holds, and where its target is."""
        i = check_int("window index", i)
        if not 0 <= i < self.n_windows:
            raise ParameterError(f"window {i} is outside 0..{self.n_windows - 1}.", "pass a valid window index.")
        s = int(self._base.series_of(np.array([i]))[0])
        st = int(self._base.starts(np.array([i]))[0] - self._ss.offsets[s])
        span = (self.timesteps - 1) * self.sampling_rate + 1
        return {"series": self.series_ids[s], "steps": (st, st + span), "sampling_rate": self.sampling_rate}

    # ---------------------------------------------------------------- materialising
    def take(self, idx: Any) -> tuple[np.ndarray, ...]:
        """Windows ``idx`` (natural order) as new contiguous arrays: ``(X,)`` or ``(X, y)``.

        ``idx`` is a slice (any step), integer indices (negative ones count from the end) or a
        boolean mask over the windows. One gather from the strided view; nothing else is copied.
        """
        if self.forecast is not None:
            return self._forecast_take(self._base.window_indices(idx))
        tables = self._tables()
        if tables is not None:
            return tables.take(self._base.window_indices(idx))
        rows = self._base.starts(self._base.window_indices(idx))
        xb = gather_windows(self._ss.source, rows, self.timesteps, self.sampling_rate)
        if self._ysource is None:
            return (xb,)
        return xb, self._targets_at(rows)

    def _targets_at(self, rows: np.ndarray) -> np.ndarray:
        assert self._ysource is not None  # called only with targets
        yrows = rows + self._yoffset
        if self._ylength is None:
            return gather_rows(self._ysource, yrows)
        return gather_windows(self._ysource, yrows, self._ylength, self._ystep)

    def batch(self, k: int, epoch: int | None = None) -> tuple[np.ndarray, ...]:
        """Batch ``k`` of ``epoch`` (default: the current one): ``(X,)`` or ``(X, y)``, new arrays."""
        plan = self._serve(epoch)
        k = self._check_k(k, plan.n_batches)
        idx = plan.batch_indices(k)
        if self.forecast is not None:
            return self._forecast_take(self._base.window_indices(idx))
        if isinstance(idx, slice) and self._regular() and not self._copy:
            # natural order, one in-memory series: a slice of the strided view, copied once
            xb, y = np.ascontiguousarray(self.X[idx]), self.y
            return (xb,) if y is None else (xb, np.ascontiguousarray(y[idx]))
        return self._finite(self.take(idx), k)

    def batches(self, epoch: int | None = None):
        """Iterate over the batches of one epoch (default: the current one), as :meth:`batch` gives them."""
        epoch = self.epoch if epoch is None else check_int("epoch", epoch, 0)
        plan = self._serve(epoch)
        sliced = self._sliced(plan)
        if sliced is not None:
            yield from sliced
            return
        tables = self._tables()  # in memory, any order: rows found once, one gather a batch
        if tables is None:
            yield from super().batches(epoch)
            return
        x = self._ss.source
        check_size("the windows", (self.batch_size, self.timesteps) + tuple(x.shape[1:]), x.dtype.itemsize)
        yield from tables.batches(plan.order, self.batch_size, plan.n_batches)

    def __iter__(self) -> Iterator[tuple]:
        """The current epoch's batches, as :meth:`batches`; afterwards the result moves on to the next epoch."""
        epoch = self.epoch
        sliced = self._sliced(self._serve(epoch))  # in order: no generator in between (each costs per batch)
        yield from self.batches(epoch) if sliced is None else sliced
        self.epoch = epoch + 1

    def _sliced(self, plan: WindowPlan) -> Iterator[tuple] | None:
        """One in-memory series in natural order: the batches as slices of the strided view, each copied once."""
        if plan.order is None and self.forecast is None and self._regular() and not self._copy:
            return sliced_batches(self.X, self.y, self.batch_size, plan.n_batches)
        return None

    def __getstate__(self) -> dict[str, Any]:  # views are made again on first use; pickled, they would copy every window
        d = self.__dict__
        return {**d, "_window_tables": False, **{k: None for k in ("_X", "_y")
                                                 if isinstance(d.get(k), np.ndarray) and not d[k].flags.owndata}}

    def _tables(self) -> WindowTables | None:
        """Plain in-memory windows: the strided views and every window's start row, made once (shared by
        shuffled epochs, :meth:`take` and ``statebatch.torch.WindowDataset``); None for forecasting windows and
        out-of-core data (gathered by :meth:`take`, NaN/inf checked per batch)."""
        if self._window_tables is False:
            arr = None if self.forecast is not None or self._check_batches else _in_memory(self._ss.source)
            yarr = None if arr is None or self._ysource is None else _in_memory(self._ysource)
            targets = None if yarr is None else (yarr, self._yoffset, self._ylength, self._ystep)
            self._window_tables = None if arr is None or (yarr is None and self._ysource is not None) else \
                window_tables(arr, self._base.starts(), self.timesteps, self.sampling_rate, targets)
        return self._window_tables if isinstance(self._window_tables, WindowTables) else None

    def arrays(self) -> tuple[np.ndarray, ...] | dict[str, np.ndarray]:
        """All windows in natural order: ``(X,)`` or ``(X, y)`` (for ``model.fit(X, y)``); with forecasting
        inputs a mapping (``"past"``, ``"future"``, ``"static"``, ``"y"``, ...; see :meth:`batch`),
        gathered once and kept read-only."""
        if self.forecast is not None:
            return self._forecast_all()
        y = self.y
        return (self.X,) if y is None else (self.X, y)

    def _forecast_all(self) -> dict[str, np.ndarray]:
        if self._forecast_arrays is None:
            self._forecast_arrays = {k: readonly(v) for k, v in
                                     self._forecast_take(np.arange(self.n_windows, dtype=np.int64)).items()}
        return self._forecast_arrays

    def _regular(self) -> bool:
        return self._ss.n_series == 1 and self._ss.source.array is not None

    @property
    def X(self) -> np.ndarray:
        if self.forecast is not None:
            raise ParameterError("forecasting windows have no single X: their inputs are 'past', 'future' and 'static'.",
                                 "use windows.arrays() or windows.batch(k) (mappings), or statebatch.forecast.split_xy.")
        if self._X is None:
            arr = self._ss.source.array if self._regular() else None
            if arr is not None:
                first, n = self.start_index, self.n_windows
                view = _strided(arr, self.timesteps, self.sampling_rate)
                x = view[first: first + (n - 1) * self.stride + 1: self.stride]
            else:
                x = readonly(gather_windows(self._ss.source, self.starts, self.timesteps, self.sampling_rate))
            if self._copy:  # sliding windows repeat rows: the copy can be far larger than the data
                check_size("the windows' copy (copy=True)", x.shape, x.dtype.itemsize,
                           fix="leave copy=False (X is then a read-only view that repeats no data), use a larger "
                               "stride, or feed the windows batch by batch (windows.batches()).")
            self._X = np.ascontiguousarray(x).copy() if self._copy else x
            kind = SLIDING if self.stride != self.timesteps else NATURAL
            register_provenance(self._X, Provenance(kind, None, self.timesteps, stride=self.stride,
                                                    maker="make_windows", n_series=self._ss.n_series))
        return self._X

    @property
    def y(self) -> np.ndarray | None:
        if self.forecast is not None:
            return self._forecast_all()["y"]
        if self._ysource is None:
            return None
        if self._y is None:
            if self._regular() and self._ysource.array is not None:
                first, n, st = self.start_index + self._yoffset, self.n_windows, self.stride
                src = self._ysource.array
                if self._ylength is not None:
                    src = _strided(src, self._ylength, self._ystep)
                y = readonly(src[first: first + (n - 1) * st + 1: st])
            else:
                y = readonly(self._targets_at(self.starts))
            if self._copy:
                check_size("the targets' copy (copy=True)", y.shape, y.dtype.itemsize,
                           fix="leave copy=False, or feed the windows batch by batch (windows.batches()).")
            self._y = np.ascontiguousarray(y).copy() if self._copy else y
        return self._y

    # ---------------------------------------------------------------- forecasting inputs
    def _forecast_take(self, idx: np.ndarray) -> Any:
        """Windows ``idx`` (natural order) as a forecasting mapping: one gather per table (``Any``: returned
        where the protocol's batches are tuples; forecasting batches are mappings, as documented)."""
        s, starts = self._base.locate(idx)
        return self.forecast.gather(s, np.asarray(starts + (self.timesteps - 1), dtype=np.int64).reshape(-1))

    @property
    def left_out(self) -> list:
        """Data in no batch this epoch, with the reason (series ids, steps). With ``lags``, each series'
        ``max(lags)`` steps after ``start_index`` are read as lag values only: they are in the batches
        (as lags), not left out."""
        out = super().left_out
        lag = self._lag_steps
        if self.forecast is None or not lag:
            return out
        first = self.start_index - lag  # the start_index the user gave
        kept = []
        for lo in out:
            if lo.reason == "before start_index":
                if first > 0:  # the steps before the user's start_index are left out
                    kept.append(lo._replace(steps=min(lo.steps, first)))
                continue
            kept.append(lo)
        return kept

    def inverse(self, predictions: Any, scale: Any) -> np.ndarray:
        """Scaled predictions back on the data's scale: ``predictions * scale + center`` with the batch's
        ``"scale"`` ``(N, 2, targets)`` (see :func:`statebatch.forecast.inverse`)."""
        from ..materialise.forecast import inverse

        if self.forecast is None or self.forecast.scale is None:
            raise ParameterError("these windows are not scaled (scale=None): there is nothing to invert.",
                                 "build them with scale='series' or scale='window', or use the predictions as they are.")
        return inverse(predictions, scale)

    # ---------------------------------------------------------------- the way back
    def unbatch(self, outputs: Any, epoch: int | None = None) -> np.ndarray:
        """Outputs of the epoch's batches (in batch order) back in natural window order.

        Parameters
        ----------
        outputs : array ``(rows, ...)`` (e.g. ``model.predict`` over the batches) or a list of per-batch
            arrays.

        Returns
        -------
        ndarray ``(n_windows, ...)``: row ``i`` is the output for window ``i``; windows in no batch of
        the epoch (``remainder="drop"``) hold NaN.
        """
        plan = self._outputs_plan(epoch)
        out = stack_outputs(outputs)
        order = np.concatenate([self._base.window_indices(plan.batch_indices(k)) for k in range(plan.n_batches)] or
                               [np.empty(0, np.int64)])
        if len(out) != len(order):
            raise LengthMismatchError(
                f"outputs have {len(out)} rows but the epoch's batches hold {len(order)} windows.",
                "pass the outputs of model.predict on exactly these batches, in order.")
        # a per-step output's time axis is the window's (return_sequences) or the target's (n_ahead steps)
        lengths = {self.timesteps} | ({self._ylength} if self._ylength else set())
        if out.ndim >= 3 and out.shape[1] not in lengths:
            raise ShapeError(
                f"outputs {out.shape} have {out.shape[1]} steps per window, but the windows have {self.timesteps}"
                + (f" and the targets {self._ylength}" if self._ylength and self._ylength != self.timesteps else "")
                + ": these are not the outputs of these windows.",
                "pass model.predict on these windows' batches (outputs (n, timesteps, ...) with return_sequences, "
                "else (n, ...)).")
        res = np.full((self.n_windows,) + out.shape[1:], np.nan,
                      dtype=np.result_type(out.dtype, np.float32) if len(order) < self.n_windows else out.dtype)
        res[order] = out
        return res

    # ---------------------------------------------------------------- reporting
    def explain(self) -> Explanation:
        plan = self.plan()
        n, b = self.n_windows, self.batch_size
        last = n - (plan.n_batches - 1) * b if self.remainder == "keep" else b
        lines = [
            f"stateless use: every window starts from zero state; no state passes from one window to another, "
            f"inside a batch or across batches ({plural(plan.n_batches, 'batch')} per epoch of up to {b}).",
            f"{plural(n, 'window')} of {self.timesteps} steps x {self.n_features} feature(s) from "
            f"{plural(self._ss.n_series, 'series', 'series')}, stride {self.stride}"
            + (f", sampling_rate {self.sampling_rate}" if self.sampling_rate > 1 else "") + "; windows never cross series.",
            "sliding windows suit stateful=False models; for a stateful model arrange the series in lanes "
            "(statebatch.arrange_stateful).",
        ]
        if self.forecast is not None:
            f = self.forecast
            lines.append(f"forecasting batches (mappings): {', '.join(f.keys)}; past {len(f.past_names)} column(s), "
                         f"future {len(f.future_names)}, static {len(f.static_names)}, {plural(f.n_ahead, 'target step')}"
                         + (f"; history down to {self.min_timesteps} step(s), left-padded with mask False"
                            if self.min_timesteps is not None else "")
                         + (f"; targets scaled per {f.scale} ({f.scale_method})" if f.scale else "") + ".")
        if self.left_out:
            lost = sum(lo.steps for lo in self.left_out)
            lines.append(f"left out: {plural(lost, 'step')} in {plural(len(self.left_out), 'place')}; see .left_out.")
        return Explanation(shape=self.shape, batch_size=b, stateful=False, n_batches=plan.n_batches,
                           last_batch_size=last, parallel_states=b, resets_per_epoch=plan.n_batches, lines=lines,
                           layout="windows")

    def __repr__(self) -> str:
        yshape = None
        if self._ysource is not None:
            tail = tuple(self._ysource.shape[1:])
            yshape = (self.n_windows,) + (((self._ylength,) + tail) if self._ylength else tail)
        lo = sum(d.steps for d in self.left_out)
        return (f"Windows(X={self.shape}, y={yshape}, series={len(self.series_ids)}, timesteps={self.timesteps}, "
                f"stride={self.stride}, sampling_rate={self.sampling_rate}, batches={self.n_batches} of "
                f"{self.batch_size}, shuffle={self.shuffle}, left_out_steps={lo})")


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
    options: InputOptions | None = None,
    id_col: str | None = None,
    time_col: str | None = None,
    feature_cols: Sequence[str] | None = None,
    target_cols: Sequence[str] | None = None,
    dtype: Any = None,
    allow_nan: bool = False,
    allow_inf: bool = False,
    gaps: str = "error",
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int | None = None,
    remainder: str = "keep",
    copy: bool = False,
    known_cols: Sequence[str] | None = None,
    static_cols: Sequence[str] | None = None,
    min_timesteps: int | None = None,
    scale: str | None = None,
    scale_method: str = "standard",
    missing: str = "error",
    fill_value: float = 0.0,
    lags: Sequence[int] | None = None,
    time_features: Sequence[str] | None = None, static_vocab: Any = None,
) -> Windows:
    """Cut series into windows ``[samples, timesteps, features]`` that never cross a series boundary.

    Parameters
    ----------
    data : array ``(steps,)`` / ``(steps, features)``, pandas Series/DataFrame, list of arrays, a long
        DataFrame with ``id_col`` (and ``time_col`` to sort by), a row source (store, Zarr) or a Dask
        collection.
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
        value ``horizon`` steps later). An array aligned with the data rows (exactly one row per data
        row; Keras also takes shorter targets and keeps fewer windows, statebatch refuses them, except
        with ``align="last"`` on one series, where windows whose last step has no target are left out
        and reported): as in Keras,
        ``y[i] = targets[first step of window i]`` (``align="first"``) or of its last step
        (``align="last"``); with ``return_sequences`` the targets of every row of the window.
        ``"aligned"`` uses ``target_cols`` of a DataFrame as such an array.
    horizon, n_ahead : int
        For ``targets="next"``: steps ahead (>= 1) and consecutive values predicted.
    target_features : sequence of int, optional
        For ``targets="next"``: which features of the data are targets (default all).
    options, id_col, time_col, feature_cols, target_cols, dtype, allow_nan, allow_inf, gaps
        How the input is read: see :class:`~statebatch.InputOptions` (the keywords are its fields).
        ``target_cols`` alone means ``targets="next"`` on those columns; ``dtype`` converts the data
        (a copy; by default its own dtype is kept).
    batch_size, shuffle, seed, remainder
        How :meth:`Windows.batches` (and ``WindowDataset``) batch an epoch: ``batch_size`` windows per
        batch, visited in a new random order every epoch when ``shuffle`` (from ``seed``; drawn once
        when None), the last smaller batch kept (``"keep"``) or left out (``"drop"``, reported).
    copy : bool
        Return contiguous, writeable ``X``/``y`` instead of read-only views.
    known_cols, static_cols, min_timesteps, scale, scale_method, missing, fill_value, lags, time_features, static_vocab
        Forecasting inputs (next-value targets, ``sampling_rate=1``). When any is given, ``arrays()`` and
        every batch are a mapping: ``"past"`` ``(N, timesteps, F)`` (``feature_cols``, ``known_cols``,
        lags, time features over the input window), ``"future"`` ``(N, n_ahead, K)`` (``known_cols`` and
        time features over the target steps), ``"static"`` ``(N, S)``, ``"y"`` ``(N, n_ahead, targets)``,
        and ``"mask"`` ``(N, timesteps)`` (``min_timesteps``), ``"scale"`` ``(N, 2, targets)`` (``scale``),
        ``"past_observed"``/``"y_observed"`` (``missing="mask"``).

        - ``known_cols``: frame columns known in advance (calendar, prices), in ``past`` and ``future``.
        - ``static_cols``: frame columns with one value per series; numeric ones as values, others as
          integer codes (sorted categories; a pandas categorical keeps its order), vocabulary in
          ``windows.forecast.static_vocab``. A column that varies within a series is refused.
          ``static_vocab=train_windows``: the training codes on a frame of fewer series (a new value: refused).
        - ``min_timesteps``: variable history; windows with ``min_timesteps <= history < timesteps``
          steps (the start of every series, short series) are left-padded with 0 and ``mask`` False.
        - ``scale``: ``"series"`` (each series' input steps, up to its last window's last input: never a
          held-out target; reuse a training scale on holdout windows with ``scale=train_windows``) or
          ``"window"`` (the window's input steps) center and scale of the targets, ``scale_method`` ``"standard"`` (mean, std with ddof=1) or
          ``"robust"`` (median, half the inter-quartile range), plus float16 epsilon as
          pytorch-forecasting; applied to ``y`` and to the target values in ``past``;
          ``windows.inverse(pred, batch["scale"])`` undoes it.
        - ``missing``: ``"error"`` refuses NaN; ``"mask"`` fills it with ``fill_value`` and returns the
          observed-value masks (``known_cols`` must still be finite).
        - ``lags``: offsets ``k``: the targets ``k`` steps before each input step, as extra ``past``
          columns; each series' first ``max(lags)`` steps are inputs to lags only.
        - ``time_features``: calendar features from ``time_col`` (or a DatetimeIndex), each in
          [-0.5, 0.5]: some of ``statebatch.forecast.TIME_FEATURES``.

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

    Examples
    --------
    >>> import numpy as np
    >>> import statebatch as sb
    >>> w = sb.make_windows(np.arange(6.0), timesteps=3, targets="next")
    >>> w.shape, w.y.ravel()
    ((3, 3, 1), array([3., 4., 5.]))
    >>> w.X[1, :, 0], w.provenance(1)
    (array([1., 2., 3.]), {'series': 0, 'steps': (1, 4), 'sampling_rate': 1})
    """
    opts = InputOptions.resolve(options, id_col=id_col, time_col=time_col, feature_cols=feature_cols,
                                target_cols=target_cols, dtype=dtype, allow_nan=allow_nan, allow_inf=allow_inf,
                                gaps=gaps)
    timesteps = check_int("timesteps", timesteps, 1)
    stride = check_int("stride", stride, 1)
    sampling_rate = check_int("sampling_rate", sampling_rate, 1)
    horizon = check_int("horizon", horizon, 1)
    n_ahead = check_int("n_ahead", n_ahead, 1)
    start_index, end_index = index_range(start_index, end_index)
    align = check_choice("align", align, ("first", "last"))
    return_sequences = check_bool("return_sequences", return_sequences)
    batching = dict(batch_size=check_int("batch_size", batch_size, 1), shuffle=check_bool("shuffle", shuffle),
                    remainder=check_choice("remainder", remainder, REMAINDERS), copy=check_bool("copy", copy),
                    seed=resolve_seed(seed))
    targets = "next" if opts.target_cols is not None and targets is None else targets  # target columns alone
    check_forecast_only_args(scale, scale_method, missing, fill_value)
    if wants_forecast(known_cols=known_cols, static_cols=static_cols, min_timesteps=min_timesteps, scale=scale,
                      lags=lags, time_features=time_features, missing=missing, static_vocab=static_vocab):
        ss, spec, first, min_timesteps = forecast_inputs(
            data, timesteps, opts=opts, sampling_rate=sampling_rate, start_index=start_index, end_index=end_index,
            targets=targets, horizon=horizon, n_ahead=n_ahead, return_sequences=return_sequences,
            target_features=target_features, known_cols=known_cols, static_cols=static_cols,
            min_timesteps=min_timesteps, scale=scale, scale_method=scale_method, missing=missing,
            fill_value=fill_value, lags=lags, time_features=time_features, static_vocab=static_vocab)
        return _forecast_windows(ss, spec, timesteps=timesteps, stride=stride, first=first, start_index=start_index,
                                 end_index=end_index, horizon=horizon, n_ahead=n_ahead, min_timesteps=min_timesteps,
                                 batching=batching)
    check_target_args(targets, opts.target_cols, horizon, n_ahead, return_sequences, target_features)
    ss = as_series(data, id_col=opts.id_col, time_col=opts.time_col, feature_cols=opts.feature_cols,
                   target_cols=opts.target_cols, dtype=opts.dtype, gaps=opts.gaps)
    ss = apply_gaps(ss, opts.gaps)
    check_finite_series(ss, allow_nan=opts.allow_nan, allow_inf=opts.allow_inf)
    t = window_targets(ss, targets, opts, timesteps=timesteps, sampling_rate=sampling_rate, horizon=horizon,
                        n_ahead=n_ahead, align=align, return_sequences=return_sequences,
                        target_features=target_features)
    ss = planning_only(ss)
    w = Windows(ss, timesteps=timesteps, stride=stride, sampling_rate=sampling_rate, start_index=start_index,
                end_index=end_index, ysource=t.source, yoffset=t.offset, ylength=t.length, ystep=t.step,
                target_steps=t.extra, max_starts=t.max_starts, **batching)
    w._allow(opts.allow_nan, opts.allow_inf, checked=checked_finite(ss.source), lazy=not in_memory(ss.source))
    warn_short(w, "one window", "")
    return w


def _forecast_windows(ss: SeriesSet, spec: Any, *, timesteps: int, stride: int, first: int, start_index: int,
                      end_index: int | None, horizon: int, n_ahead: int, min_timesteps: int | None,
                      batching: dict[str, Any]) -> Windows:
    """Windows over forecasting tables (:func:`~statebatch.results.forecast_windows.forecast_inputs`): inputs
    from ``first`` (``start_index`` plus the largest lag), targets the ``n_ahead`` rows ``horizon`` on."""
    w = Windows(planning_only(ss), timesteps=timesteps, stride=stride, sampling_rate=1, start_index=first,
                end_index=end_index, ysource=ArraySource(spec.target_rows), yoffset=timesteps - 1 + horizon,
                ylength=n_ahead, ystep=1, target_steps=horizon + n_ahead - 1, max_starts=None,
                forecast=spec, min_timesteps=min_timesteps, **batching)
    w._lag_steps = first - start_index
    # the series scale reads the windows' input steps only (never a target after a series' last input);
    # every window's series and start row (three int64 arrays of n_windows) are built only for it
    if spec.scale == "series" and spec.series_scale is None:
        w.forecast = spec.fit_series_scale(w.series, w.starts + (timesteps - 1))
    warn_short(w, "min_timesteps" if min_timesteps else "one window", " plus the target steps", stacklevel=4)
    return w

