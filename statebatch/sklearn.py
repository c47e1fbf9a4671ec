"""scikit-learn transformers: windowing and stateful arrangement inside preprocessing pipelines.

``make_pipeline(StandardScaler(), WindowTransformer(timesteps=24))`` scales then windows; fitted on the
training rows only, it transforms later rows without leaking their statistics. Pipelines cannot
transform ``y``: :meth:`WindowTransformer.transform_xy` (and :func:`transform_xy` for a whole
pipeline) return windows and their targets from one plan, so they cannot get out of step.

``set_output``: the output of these transformers is a 3-D numpy array, which has no pandas or polars
form; ``set_output(transform="pandas")`` therefore leaves it unchanged (it still configures the other
steps of a pipeline, and these transformers accept the DataFrames such steps return).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.exceptions import NotFittedError as _SklearnNotFitted
from sklearn.utils.validation import check_is_fitted as _check_is_fitted
from sklearn.utils.validation import validate_data

from .errors import DataValueError, DTypeError, LengthMismatchError, ParameterError, ShapeError, StatebatchError
from .stateful import Arranged, arrange_stateful
from .windows import make_windows

__all__ = ["WindowTransformer", "StatefulTransformer", "transform_xy", "time_split", "INAPPLICABLE_CHECKS"]

# scikit-learn's estimator checks assume one output row per input row, independent of the others.
# Windowing turns n time steps into n - timesteps + 1 windows (or lanes) and depends on row order
# by design, so these checks cannot apply; every other check passes (tests/test_sklearn.py).
INAPPLICABLE_CHECKS = {
    "check_transformer_general": "asserts transform returns n_samples rows; windows are fewer than steps",
    "check_transformer_data_not_an_array": "same n_samples assertion as check_transformer_general",
    "check_methods_sample_order_invariance": "rows are time steps: permuting them changes the windows",
    "check_methods_subset_invariance": "a subset of rows is a shorter series with other windows "
                                       "(a single row has none)",
}


def _is_frame(X: Any) -> bool:
    return type(X).__name__ == "DataFrame" and type(X).__module__.startswith("pandas")


class _SeriesInput:
    """Shared input handling: wide arrays/frames via sklearn's validate_data, long frames by id."""

    id_col: str | None
    time_col: str | None
    dtype: Any

    def _check_input(self, X: Any, reset: bool):
        if reset:
            _check_params(self)
        if self.id_col is not None or self.time_col is not None:
            if not _is_frame(X):
                raise ParameterError(f"id_col/time_col need a pandas DataFrame, got {type(X).__name__}.",
                                     "pass the long frame, or drop id_col/time_col.")
            cols = [c for c in X.columns if c not in (self.id_col, self.time_col)]
            if reset:
                self.feature_names_in_ = np.asarray(X.columns, dtype=object)
                self.n_features_in_ = X.shape[1]
                self._features = cols
            else:
                check_is_fitted(self)
                missing = [c for c in self._features if c not in X.columns]
                if missing:
                    raise ShapeError(f"columns {missing} seen in fit are missing.", "pass the same columns as in fit.")
            return X
        try:
            Xv = validate_data(self, X, reset=reset, dtype=self.dtype, ensure_min_samples=1)
        except StatebatchError:
            raise
        except TypeError as exc:  # scikit-learn's own checks, re-raised as statebatch errors of the same kind
            raise DTypeError(str(exc), "pass X as numbers (a numeric array or DataFrame).") from None
        except ValueError as exc:  # feature count, rank, NaN, empty: the message is scikit-learn's
            raise ShapeError(str(exc), "pass X as a 2-D array (steps, features) with the features it was fitted "
                             "on.") from None
        if reset:
            names = getattr(self, "feature_names_in_", None)
            self._features = list(names) if names is not None else [f"x{i}" for i in range(Xv.shape[1])]
        return Xv

    def _series_kwargs(self) -> dict:
        if self.id_col is None and self.time_col is None:
            return {}
        return {"id_col": self.id_col, "time_col": self.time_col, "feature_cols": self._features, "dtype": self.dtype}

    def set_output(self, *, transform: str | None = None):
        """Accepted so that ``Pipeline.set_output`` can configure the other steps; the output of this
        step stays a 3-D numpy array, which has no pandas/polars form."""
        if transform not in (None, "default", "pandas", "polars"):
            raise ParameterError(f"transform={transform!r} is not an output format.",
                                 "pass 'default', 'pandas' or 'polars'.")
        return self

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []  # the output dtype is the `dtype` parameter
        return tags

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        """Names of the last axis of the 3-D output (the features of each timestep)."""
        check_is_fitted(self)
        if input_features is not None:
            input_features = list(input_features)
            if len(input_features) != self.n_features_in_:
                raise ShapeError(f"input_features has {len(input_features)} names for {self.n_features_in_} features.",
                                 "pass one name per input column.")
            if self.id_col is None and self.time_col is None:
                return np.asarray(input_features, dtype=object)
        return np.asarray(self._features, dtype=object)


class WindowTransformer(_SeriesInput, TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Windows ``(steps, features)`` into ``(n_windows, timesteps, features)`` (see :func:`make_windows`).

    Parameters
    ----------
    timesteps : int
        Window length.
    stride, sampling_rate : int
    horizon : int
        Steps from a window's last row to its target: 1 (the default) is the next step, the same
        convention as :func:`~statebatch.make_windows` and :class:`StatefulTransformer`. 0 (the
        window's own last row) is allowed for a ``y`` that is not one of the inputs (e.g. a label
        observed with the last step); before statebatch 0.2 it was the default.
        Windows whose target would fall past the data are not produced, so :meth:`transform` and
        :meth:`transform_y` always agree.
    id_col, time_col : str, optional
        For a long DataFrame of many series (windows never cross series).
    dtype : numpy dtype
        Output dtype (float32 by default, what Keras uses).

    Attributes
    ----------
    n_features_in_ : int
    feature_names_in_ : ndarray of str (when fitted on a DataFrame)
    """

    def __init__(self, timesteps: int = 10, *, stride: int = 1, sampling_rate: int = 1, horizon: int = 1,
                 id_col: str | None = None, time_col: str | None = None, dtype: Any = np.float32):
        self.timesteps = timesteps
        self.stride = stride
        self.sampling_rate = sampling_rate
        self.horizon = horizon
        self.id_col = id_col
        self.time_col = time_col
        self.dtype = dtype

    def fit(self, X: Any, y: Any = None) -> "WindowTransformer":
        if isinstance(self.horizon, bool) or not isinstance(self.horizon, (int, np.integer)) or self.horizon < 0:
            raise ParameterError(f"horizon must be an integer >= 0, got {self.horizon!r}.", "pass horizon=0 or more.")
        self._check_input(X, reset=True)
        return self

    def _windows(self, X: Any, y: Any = None):
        data = self._check_input(X, reset=False)
        kw = dict(stride=self.stride, sampling_rate=self.sampling_rate, copy=False, **self._series_kwargs())
        if self.horizon == 0:
            targets = None if y is None else y
            return make_windows(data, self.timesteps, targets=targets, align="last", **kw)
        # horizon h: target = row (last + h); the same plan as targets="next"
        if y is None:
            return make_windows(data, self.timesteps, targets="next", horizon=self.horizon, **kw)
        return make_windows(data, self.timesteps, targets=_shift_targets(y, self.horizon), align="last",
                            end_index=None, **kw)

    def left_out(self, X: Any) -> list:
        """What :meth:`transform` leaves out of ``X`` (steps in no window), with the reasons."""
        check_is_fitted(self)
        return list(self._windows(X).left_out)

    def transform(self, X: Any) -> np.ndarray:
        """``(n_windows, timesteps, n_features)`` float array (a contiguous copy).

        Steps no window uses are announced with a :class:`~statebatch.errors.StatebatchWarning`;
        :meth:`left_out` lists them."""
        check_is_fitted(self)
        return np.ascontiguousarray(_report(self, self._windows(X)).X)

    def transform_y(self, X: Any, y: Any) -> np.ndarray:
        """The targets of the windows :meth:`transform` gives for ``X``: ``y[last row + horizon]``."""
        return self.transform_xy(X, y)[1]

    def transform_xy(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Windows of ``X`` and their targets from ``y`` (aligned row by row with ``X``), in one plan.

        ``y`` may be an array, or for a long DataFrame a column name / list of columns.
        """
        check_is_fitted(self)
        if _is_frame(X) and (self.id_col is not None or self.time_col is not None):
            # The frame is reordered (by series, by time): y travels with it as target columns, so
            # that the target of a window is read in time order, never in the input's row order.
            frame, cols = _with_target_columns(X, y)
            w = make_windows(frame, self.timesteps, stride=self.stride, sampling_rate=self.sampling_rate,
                             id_col=self.id_col, time_col=self.time_col, feature_cols=self._features,
                             target_cols=cols, targets="next" if self.horizon else "aligned",
                             horizon=max(self.horizon, 1), align="last", dtype=self.dtype)
            return np.ascontiguousarray(w.X), np.ascontiguousarray(w.y)
        if _is_frame(X) and isinstance(y, (str, list)) and not isinstance(y, np.ndarray):
            y = X[[y] if isinstance(y, str) else y].to_numpy()
        if hasattr(y, "to_numpy"):
            y = y.to_numpy()
        n_rows = len(X)
        if len(y) != n_rows:
            raise LengthMismatchError(f"X has {n_rows} rows but y has {len(y)}.",
                                      "pass y aligned row by row with X (before windowing).")
        w = self._windows(X, np.asarray(y))
        return np.ascontiguousarray(w.X), np.ascontiguousarray(w.y)



def _with_target_columns(X: Any, y: Any) -> tuple[Any, list]:
    """A long frame and the names of its target columns: ``y`` names columns of ``X``, or is row-aligned
    with ``X`` and travels with it as a column (so it is reordered with the frame, never misaligned)."""
    if isinstance(y, (str, list)) and not isinstance(y, np.ndarray):
        return X, ([y] if isinstance(y, str) else list(y))
    if hasattr(y, "index") and not y.index.equals(X.index):
        raise LengthMismatchError("y's index is not X's index, so its rows cannot be matched.",
                                  "pass y taken from the same frame (e.g. df['y']).")
    values = y.to_numpy() if hasattr(y, "to_numpy") else np.asarray(y)
    if len(values) != len(X):
        raise LengthMismatchError(f"X has {len(X)} rows but y has {len(values)}.",
                                  "pass y aligned row by row with X (before windowing).")
    return X.assign(__statebatch_target__=values if values.ndim == 1 else list(values)), ["__statebatch_target__"]


def _shift_targets(y: Any, horizon: int) -> np.ndarray:
    """Targets at row t + horizon, aligned with row t (the last ``horizon`` rows have none)."""
    return np.asarray(y)[horizon:]


class StatefulTransformer(_SeriesInput, TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Arranges series into lanes for a stateful RNN (see :func:`arrange_stateful`).

    :meth:`transform` returns X ``(n_batches * batch_size, timesteps, features)`` in lane order;
    :meth:`arrange` returns the full :class:`~statebatch.Arranged` result (targets, weights, resets,
    ``unbatch``), which a pipeline's last step cannot pass on.
    """

    def __init__(self, timesteps: int = 10, batch_size: int = 32, *, horizon: int = 1, remainder: str = "pad",
                 return_sequences: bool = True, id_col: str | None = None, time_col: str | None = None,
                 dtype: Any = np.float32):
        self.timesteps = timesteps
        self.batch_size = batch_size
        self.horizon = horizon
        self.remainder = remainder
        self.return_sequences = return_sequences
        self.id_col = id_col
        self.time_col = time_col
        self.dtype = dtype

    def fit(self, X: Any, y: Any = None) -> "StatefulTransformer":
        self._check_input(X, reset=True)
        return self

    def arrange(self, X: Any, y: Any = None) -> Arranged:
        """The :class:`~statebatch.Arranged` lanes of ``X``.

        The target of step ``t`` is ``horizon`` steps later (the convention of
        :func:`~statebatch.make_windows` and :class:`WindowTransformer`): of ``X`` itself when ``y``
        is None (``targets="next"``), else ``y[t + horizon]`` with ``y`` aligned row by row with ``X``.
        Either way the last ``horizon`` steps of each series have no target and are not arranged,
        so :meth:`transform`, :meth:`transform_xy` and this plan always have the same lanes.
        """
        check_is_fitted(self)
        data = self._check_input(X, reset=False)
        kw = dict(horizon=self.horizon, remainder=self.remainder, return_sequences=self.return_sequences)
        if y is None:
            return arrange_stateful(data, self.timesteps, self.batch_size, targets="next", **kw,
                                    **self._series_kwargs())
        if self.id_col is not None or self.time_col is not None:
            # y travels with the long frame as a target column, shifted per series in time order
            frame, cols = _with_target_columns(data, y)
            return arrange_stateful(frame, self.timesteps, self.batch_size, targets="next", target_cols=cols,
                                    **kw, **{**self._series_kwargs(), "feature_cols": self._features})
        values = y.to_numpy() if hasattr(y, "to_numpy") else np.asarray(y)
        if len(values) != len(data):
            raise LengthMismatchError(f"X has {len(data)} rows but y has {len(values)}.",
                                      "pass y aligned row by row with X (before arranging).")
        h = self.horizon
        return arrange_stateful(data[: len(data) - h], self.timesteps, self.batch_size, targets=values[h:],
                                remainder=self.remainder, return_sequences=self.return_sequences)

    def left_out(self, X: Any) -> list:
        """What :meth:`transform` leaves out of ``X`` (steps in no lane), with the reasons."""
        check_is_fitted(self)
        return list(self.arrange(X).left_out)

    def transform(self, X: Any) -> np.ndarray:
        """The arranged lanes of ``X`` ``(n_batches * batch_size, timesteps, n_features)``, the same
        lanes as :meth:`transform_xy` (the last ``horizon`` steps, which have no target, are left
        out); steps left out are announced with a warning (see :meth:`left_out`)."""
        check_is_fitted(self)
        return _report(self, self.arrange(X)).X

    def transform_xy(self, X: Any, y: Any = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(X, y, sample_weight)`` in lane order, ready for ``fit(..., batch_size, shuffle=False)``."""
        a = _report(self, self.arrange(X, y))
        return a.X, a.y, a.sample_weight


def _report(transformer: Any, result: Any) -> Any:
    """Keep what a transform leaves out visible inside a pipeline: a warning naming it (the estimator
    itself must not change in transform; ``transformer.left_out(X)`` lists the steps)."""
    import warnings

    from .errors import StatebatchWarning

    left = list(result.left_out)
    if left:
        steps = sum(lo.steps for lo in left)
        warnings.warn(f"{type(transformer).__name__}: {steps} step(s) in {len(left)} place(s) are in no window or lane "
                      f"(first: series {left[0].series!r}, {left[0].reason}); .left_out(X) lists them.",
                      StatebatchWarning, stacklevel=3)
    return result


class NotFittedError(StatebatchError, _SklearnNotFitted):
    """The transformer is used before ``fit`` (scikit-learn's NotFittedError, and a statebatch error)."""


def check_is_fitted(estimator: Any) -> None:
    try:
        _check_is_fitted(estimator)
    except _SklearnNotFitted:
        raise NotFittedError(f"this {type(estimator).__name__} is not fitted yet.",
                             "call fit(X) (or fit_transform) before transform.") from None


def _check_params(est: Any) -> None:
    """Constructor parameters are checked in fit (scikit-learn's convention), with statebatch errors."""
    from ._args import check_choice as _choice
    from ._args import check_int as _int

    _int("timesteps", est.timesteps, 1)
    if hasattr(est, "batch_size"):
        _int("batch_size", est.batch_size, 1)
        _choice("remainder", est.remainder, ("pad", "drop", "error"))
    if hasattr(est, "stride"):
        _int("stride", est.stride, 1)
        _int("sampling_rate", est.sampling_rate, 1)
    _int("horizon", est.horizon, 0 if not hasattr(est, "batch_size") else 1)
    try:
        np.dtype(est.dtype)
    except TypeError:
        raise ParameterError(f"dtype={est.dtype!r} is not a numpy dtype.", "pass e.g. dtype='float32'.") from None


def transform_xy(pipeline: Any, X: Any, y: Any):
    """Run a fitted pipeline whose last step windows/arranges, returning aligned ``(X, y[, w])``.

    The earlier steps transform X (e.g. a scaler fitted on the training rows); the last step
    windows it and its targets together, so X and y cannot be misaligned.
    """
    steps = getattr(pipeline, "steps", None)
    if steps is None:
        if not hasattr(pipeline, "transform_xy"):
            raise ParameterError(f"transform_xy needs a fitted pipeline or statebatch transformer, got "
                                 f"{type(pipeline).__name__}.", "pass make_pipeline(..., WindowTransformer(...)).fit(X).")
        return pipeline.transform_xy(X, y)
    last = steps[-1][1]
    if not hasattr(last, "transform_xy"):
        raise ParameterError(f"the pipeline's last step {type(last).__name__} does not window data.",
                             "end the pipeline with statebatch.sklearn.WindowTransformer or StatefulTransformer.")
    Xt = pipeline[:-1].transform(X) if len(steps) > 1 else X
    return last.transform_xy(Xt, y)


def time_split(data: Any, *, val: float = 0.15, test: float = 0.15, gap: int = 0,
               id_col: str | None = None, time_col: str | None = None):
    """Split rows by time into train / validation / test parts (earliest rows train).

    Window or arrange each part separately (fitting scalers on the training part only): then no
    validation window overlaps a training window and no training target lies in the validation
    period. ``gap`` leaves that many rows out between the parts (reported).

    Parameters
    ----------
    data : array or DataFrame ``(steps, features)``, or a long DataFrame with ``id_col`` (every series is
        split by its own time, sorted by ``time_col`` when given).

    Returns
    -------
    (train, val, test, left_out) : three row subsets of the same type as ``data``, and a dict
        ``{"rows_left_out_by_gap": n}``. With ``time_col`` (and no ``id_col``) the rows are ordered by
        that column first, so the earliest rows train whatever the input order.
    """
    from ._args import check_fraction
    from .series import _check_time_index

    val = check_fraction("val", val, low=0.0, high=1.0, inclusive=True)
    test = check_fraction("test", test, low=0.0, high=1.0, inclusive=True)
    for name, col in (("id_col", id_col), ("time_col", time_col)):
        if col is not None and _is_frame(data) and col not in data.columns:
            raise ParameterError(f"{name}={col!r} is not a column (columns: {list(data.columns)}).",
                                 f"pass the name of the column that holds the {'series id' if name == 'id_col' else 'time'}.")
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ParameterError(f"val={val} and test={test} must be fractions summing below 1.", "pass e.g. val=0.15, test=0.15.")
    if isinstance(gap, bool) or not isinstance(gap, (int, np.integer)) or gap < 0:
        raise ParameterError(f"gap must be an integer >= 0, got {gap!r}.", "pass gap=0 or more rows.")

    def cuts(n: int):
        n_test = int(round(n * test))
        n_val = int(round(n * val))
        n_train = n - n_val - n_test - (gap if n_val else 0) - (gap if n_test else 0)
        if n_train <= 0:
            raise ParameterError(f"{n} rows are too few for this split with gap={gap}.", "use smaller val/test or gap.")
        a = n_train
        b = a + (gap if n_val else 0) + n_val
        c = b + (gap if n_test else 0)
        return slice(0, a), slice(a + (gap if n_val else 0), b), slice(c, n)

    if id_col is not None:
        if not _is_frame(data):
            raise ParameterError("id_col needs a pandas DataFrame.", "pass the long frame.")
        if data[id_col].isna().any():
            raise DataValueError(f"data[{id_col!r}] has {int(data[id_col].isna().sum())} missing series ids.",
                                 "fill or drop those rows first.")
        if time_col is not None and data[time_col].isna().any():
            raise DataValueError(f"data[{time_col!r}] has missing time stamps.", "drop those rows or fill their times first.")
        frame = data.sort_values([id_col, time_col], kind="stable") if time_col else data
        parts: list[list[Any]] = [[], [], []]
        left = 0
        for _, g in frame.groupby(id_col, sort=False):
            tr, va, te = cuts(len(g))
            for p, sl in zip(parts, (tr, va, te)):
                p.append(g.iloc[sl])
            left += len(g) - sum(s.stop - s.start for s in (tr, va, te))
        import pandas as pd

        return tuple(pd.concat(p) for p in parts) + ({"rows_left_out_by_gap": left},)
    if time_col is not None:
        if not _is_frame(data):
            raise ParameterError("time_col needs a pandas DataFrame.", "pass the frame, or drop time_col for rows in time order.")
        if time_col not in data.columns:
            raise ParameterError(f"time_col={time_col!r} is not a column (columns: {list(data.columns)}).",
                                 "pass the name of the column that holds the time.")
        if data[time_col].isna().any():
            raise DataValueError(f"data[{time_col!r}] has missing time stamps.", "drop those rows or fill their times first.")
        data = data.sort_values(time_col, kind="stable")  # earliest rows train, whatever the row order
    elif _is_frame(data) or type(data).__name__ == "Series" and type(data).__module__.startswith("pandas"):
        _check_time_index(data.index, "data")  # rows in time order: an unsorted time index is refused
    n = len(data)
    tr, va, te = cuts(n)
    take = (lambda s: data.iloc[s]) if hasattr(data, "iloc") else (lambda s: data[s])
    left = n - sum(s.stop - s.start for s in (tr, va, te))
    return take(tr), take(va), take(te), {"rows_left_out_by_gap": left}
