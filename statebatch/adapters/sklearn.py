"""scikit-learn transformers: windowing and stateful arrangement inside preprocessing pipelines.

``make_pipeline(StandardScaler(), WindowTransformer(timesteps=24))`` scales then windows; fitted on the
training rows only, it transforms later rows without leaking their statistics. Pipelines cannot
transform ``y``: :meth:`WindowTransformer.transform_xy` (and :func:`transform_xy` for a whole
pipeline) return windows and their targets from one plan, so they cannot get out of step.

Model selection across windowing: :class:`WindowRegressor` windows inside ``fit`` and ``predict`` and
aligns the targets itself, so ``GridSearchCV`` tunes ``timesteps`` with the regressor's parameters;
:class:`WindowSplit` makes time-series folds whose test part brings its own history;
:func:`window_scorer` scores each window against its own target. :class:`SeriesScaler` scales each
series of a long frame by itself and brings predictions back to original units by id.

One target convention: the target of a window (or of a lane's step ``t``) is ``horizon`` steps after
its last input step, ``horizon=1`` by default, for ``y`` aligned row by row with ``X`` as for
``targets="next"`` (:func:`~statebatch.make_windows`).

``set_output``: the output of these transformers is a 3-D numpy array, which has no pandas or polars
form; ``set_output(transform="pandas")`` therefore leaves it unchanged (it still configures the other
steps of a pipeline, and these transformers accept the DataFrames such steps return).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, TransformerMixin
from sklearn.exceptions import NotFittedError as _SklearnNotFitted
from sklearn.utils.validation import check_is_fitted as _check_is_fitted
from sklearn.utils.validation import validate_data

from ..errors import (DataValueError, DTypeError, LengthMismatchError, OrderError, ParameterError, ShapeError,
                     StatebatchError)
from ..results.stateful import Arranged, arrange_stateful
from ..results.windows import make_windows

__all__ = ["WindowTransformer", "StatefulTransformer", "WindowRegressor", "WindowSplit", "SeriesScaler", "window_scorer",
           "transform_xy", "time_split", "NotFittedError", "INAPPLICABLE_CHECKS",
           "INAPPLICABLE_REGRESSOR_CHECKS"]

# scikit-learn's estimator checks assume one output row per input row, independent of the others.
# Windowing turns n time steps into n - timesteps + 1 windows (or lanes) and depends on row order
# by design, so these checks cannot apply; every other check passes (tests/test_sklearn.py).
# WindowRegressor predicts one value per window, not per row, for the same reason; and scikit-learn's
# wording for bad y ("Unknown label type", a DataConversionWarning for a column y) is not statebatch's.
INAPPLICABLE_REGRESSOR_CHECKS = {
    "check_regressors_train": "asserts predict returns n_samples values; windows are fewer than rows",
    "check_methods_sample_order_invariance": "rows are time steps: permuting them changes the windows",
    "check_methods_subset_invariance": "a subset of rows is a shorter series with other windows",
    "check_supervised_y_2d": "a column y is kept as (n_windows, 1) targets, as in make_windows, without a warning",
    "check_dtype_object": "object y is refused with a statebatch DTypeError, not scikit-learn's 'Unknown label type'",
}

INAPPLICABLE_CHECKS = {
    "check_transformer_general": "asserts transform returns n_samples rows; windows are fewer than steps",
    "check_transformer_data_not_an_array": "same n_samples assertion as check_transformer_general",
    "check_methods_sample_order_invariance": "rows are time steps: permuting them changes the windows",
    "check_methods_subset_invariance": "a subset of rows is a shorter series with other windows "
                                       "(a single row has none)",
}


def _is_frame(X: Any) -> bool:
    return type(X).__name__ == "DataFrame" and type(X).__module__.startswith("pandas")


def _check_column_args(X: Any, **cols: Any) -> None:
    """``id_col``/``time_col`` name one column each (a list or another unhashable value is refused before pandas
    raises TypeError), and, for a frame, an existing one."""
    for name, col in cols.items():
        if col is None:
            continue
        if isinstance(col, (bool, np.bool_)) or not isinstance(col, (str, int, np.integer, tuple)):
            raise ParameterError(f"{name}={col!r} must name one column.", f"pass {name}='column name'.")
        if _is_frame(X) and col not in X.columns:
            raise ParameterError(f"{name}={col!r} is not a column (columns: {list(X.columns)}).",
                                 f"pass the name of the column that holds the "
                                 f"{'series id' if name == 'id_col' else 'time'}.")


def _refuse_nested(X: Any, where: str) -> None:
    """A nested sktime panel holds one series per row: the scikit-learn adapters index rows as time steps, so
    they would window (or split) across instances. Refused with the conversion to a long frame."""
    from ..sources.frames import _is_nested_panel

    if _is_nested_panel(X):
        raise ParameterError(
            f"{where} got a nested sktime panel ({len(X)} instances, one series in each row); scikit-learn indexes "
            "rows as time steps, so it would mix instances.",
            "convert it to a long frame and name its columns: long = pd.concat({i: pd.DataFrame(row.to_dict()) for "
            "i, row in panel.iterrows()}, names=['id', 't']).reset_index(), then pass id_col='id', time_col='t'.")


class _SeriesInput:
    """Shared input handling: wide arrays/frames via sklearn's validate_data, long frames by id."""

    id_col: str | None
    time_col: str | None
    dtype: Any

    def _check_input(self, X: Any, reset: bool):
        from ..sources.frames import to_pandas_or_numpy

        if reset:
            _check_params(self)
        _refuse_nested(X, type(self).__name__)
        X = to_pandas_or_numpy(X, "X")
        if self.id_col is not None or self.time_col is not None:
            if not _is_frame(X):
                raise ParameterError(f"id_col/time_col need a pandas DataFrame, got {type(X).__name__}.",
                                     "pass the long frame, or drop id_col/time_col.")
            _check_column_args(X, id_col=self.id_col, time_col=self.time_col)
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
        if _is_pandas_rows(X):  # one series: a time index must be in time order (as make_windows requires)
            from ..sources.series import _check_time_index

            _check_time_index(X.index, "X")
        try:
            Xv = validate_data(self, X, reset=reset, dtype=self.dtype, ensure_min_samples=1)
        except StatebatchError:
            raise
        except TypeError as exc:  # scikit-learn's own checks, re-raised as statebatch errors of the same kind
            raise DTypeError(str(exc), "pass X as numbers (a numeric array or DataFrame).") from None
        except ValueError as exc:  # feature count, rank, NaN, empty: the message is scikit-learn's
            text = str(exc)
            if "could not convert" in text or "dtype" in text.lower() and "numeric" in text.lower():
                raise DTypeError(text, "pass X as numbers (a numeric array or DataFrame); encode text first.") from None
            if "NaN" in text or "infinity" in text:
                raise DataValueError(text.split("\n")[0], "fill or drop the missing values first (e.g. "
                                     "df.interpolate()); a recurrent network turns them into a NaN loss.") from None
            if "0 sample(s)" in text:
                raise DataValueError(text, "pass at least one row.") from None
            raise ShapeError(text, "pass X as a 2-D array (steps, features) with the features it was fitted "
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
        observed with the last step); up to statebatch 0.2.0 it was the default.
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
        span = (self.timesteps - 1) * self.sampling_rate + 1
        if y is not None and not isinstance(data, (str, list)) and len(data) - self.horizon < span:
            raise ShapeError(f"X has {len(data)} rows (n_samples = {len(data)}): no window of {self.timesteps} steps has a target "
                             f"{self.horizon} step(s) later.", "pass more rows, or use a smaller timesteps.")
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
        from ..sources.frames import to_pandas_or_numpy

        check_is_fitted(self)
        X, y = to_pandas_or_numpy(X, "X"), to_pandas_or_numpy(y, "y")
        X, y = (np.asarray(v) if not hasattr(v, "__len__") and hasattr(v, "__array__") else v for v in (X, y))
        y = _check_y(X, y)
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



def _is_pandas_rows(v: Any) -> bool:
    """A pandas Series or DataFrame (rows that carry index labels)."""
    return type(v).__module__.startswith("pandas") and type(v).__name__ in ("Series", "DataFrame")


def align_y_index(X: Any, y: Any, what: str = "y") -> Any:
    """``y`` row-aligned with ``X`` by index label when both carry one (pandas).

    pandas pairs rows by label; scikit-learn by position. When ``X`` and ``y`` are both pandas and
    ``y``'s index holds ``X``'s labels in another order, ``y`` is reordered to ``X``'s order (what
    ``df.assign`` would do), so a shuffled ``y`` is never paired with the wrong rows. Other labels (or
    duplicated ones) are refused: no rule pairs them. When only ``y`` carries an index and it is out of
    order, ``X`` (an array, e.g. the output of a scaler) cannot be checked: a
    :class:`~statebatch.errors.StatebatchWarning` says that rows are paired by position.
    """
    import warnings

    from ..errors import StatebatchWarning

    if not _is_pandas_rows(y):
        return y
    if not _is_pandas_rows(X):
        idx = y.index
        if len(idx) > 1 and type(idx).__name__ != "RangeIndex" and not idx.is_monotonic_increasing:
            warnings.warn(f"{what} carries an index that is not in increasing order (first labels "
                          f"{idx[:3].tolist()}) but X is a {type(X).__name__} without one, so rows are paired by "
                          f"position. If {what} was reordered, pass X as the DataFrame it came from (or "
                          f"{what}.sort_index()).", StatebatchWarning, stacklevel=3)
        return y
    if y.index.equals(X.index):
        return y
    if len(y) != len(X):
        raise LengthMismatchError(f"X has {len(X)} rows but {what} has {len(y)}.",
                                  f"pass {what} aligned row by row with X (the same rows, before windowing).")
    if X.index.is_unique and y.index.is_unique and y.index.isin(X.index).all():
        return y.loc[X.index]  # the same labels in another order: pair by label, as pandas does
    extra = y.index[~y.index.isin(X.index)][:3].tolist()
    raise LengthMismatchError(
        f"{what}'s index does not hold X's row labels" + (f" (e.g. {extra} are not in X)" if extra else
                                                           " (duplicated labels)") + ", so its rows cannot be matched.",
        f"pass {what} taken from the same frame as X (e.g. df['y']), or {what}.to_numpy() to pair rows by position.")


def _check_y(X: Any, y: Any, what: str = "y") -> Any:
    """``y`` as a transformer's ``*_xy`` method takes it: column names of a frame ``X``, or values row-aligned
    with ``X`` (pandas ``y`` aligned by label, see :func:`align_y_index`)."""
    if y is None:
        raise ParameterError(f"{what} is None.", "pass targets aligned row by row with X (or call transform(X)).")
    if isinstance(y, (str, list)) and not isinstance(y, np.ndarray) and (
            isinstance(y, str) or (y and all(isinstance(c, str) for c in y))):
        if not _is_frame(X):
            raise ParameterError(f"{what}={y!r} names columns, but X is a {type(X).__name__}, which has none.",
                                 f"pass X as a DataFrame with those columns, or {what} as an array of targets.")
        missing = [c for c in ([y] if isinstance(y, str) else y) if c not in X.columns]
        if missing:
            raise ParameterError(f"{what} names columns {missing} that X does not have (columns: {list(X.columns)}).",
                                 "name existing columns of X, or pass the targets as an array.")
        return y
    if not _is_pandas_rows(y) and np.ndim(y) == 0:
        raise ShapeError(f"{what} is a scalar ({y!r}).", f"pass one target per row of X.")
    return align_y_index(X, y, what)


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
        from ..sources.frames import to_pandas_or_numpy

        check_is_fitted(self)
        data = self._check_input(X, reset=False)
        y = to_pandas_or_numpy(y, "y")
        if y is not None:
            y = _check_y(X if _is_frame(X) else data, y)
        kw = dict(horizon=self.horizon, tail=self.remainder, return_sequences=self.return_sequences)
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
                                tail=self.remainder, return_sequences=self.return_sequences)

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

    from ..errors import StatebatchWarning

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
    from .._args import check_choice as _choice
    from .._args import check_int as _int

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


def _check_is_fitted_pipeline(pipeline: Any) -> None:
    """scikit-learn's NotFittedError of a pipeline, as statebatch's (which is also scikit-learn's)."""
    try:
        _check_is_fitted(pipeline)
    except _SklearnNotFitted:
        raise NotFittedError(f"this {type(pipeline).__name__} is not fitted yet.",
                             "call fit(X, y) on it before transforming or scoring.") from None


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
    _check_is_fitted_pipeline(pipeline)
    if len(steps) == 1:
        return last.transform_xy(X, y)
    from ..sources.frames import to_pandas_or_numpy

    X, y = to_pandas_or_numpy(X, "X"), to_pandas_or_numpy(y, "y")
    if y is not None and not isinstance(y, (str, list)):
        # pair y with X's rows by label before the earlier steps drop X's index (a scaler returns an array)
        y = align_y_index(X, y)
        if _is_pandas_rows(y) and _is_pandas_rows(X):
            y = y.to_numpy()
    Xt = pipeline[:-1].transform(X)
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
        ``{"rows_left_out_by_gap": n, "series_without_val": [...], "series_without_test": [...]}``.
        With ``time_col`` (and no ``id_col``) the rows are ordered by that column first, so the earliest
        rows train whatever the input order.

    A part asked for (``val > 0`` or ``test > 0``) that would get no row is never returned empty in
    silence: for one series, or when no series of a long frame has a row for it, a
    :class:`~statebatch.errors.ParameterError` says how many rows it needs; when only some series of a
    long frame are too short for it (a series of one row trains only), their ids are listed in
    ``series_without_val`` / ``series_without_test`` and a :class:`~statebatch.errors.StatebatchWarning`
    names them.
    """
    from .._args import check_fraction
    from ..sources.series import _check_time_index, _time_values

    from ..sources.frames import to_pandas_or_numpy

    _refuse_nested(data, "time_split")
    data = to_pandas_or_numpy(data)
    if isinstance(data, (list, tuple)) and len(data) and all(
            isinstance(a, np.ndarray) and a.ndim >= 1 or _is_pandas_rows(a) for a in data) and len(
            {len(a) for a in data}) > 1:
        raise ParameterError(f"time_split got a list of {len(data)} series of different lengths; it splits the rows of "
                             "one series, or of a long frame by id.",
                             "split each series by itself ([time_split(s) for s in series]), or build a long frame with "
                             "an id column and pass id_col=....")
    if data is None or isinstance(data, (str, bytes, dict)) or not hasattr(data, "__len__") or np.ndim(data) == 0:
        raise ParameterError(f"time_split splits rows, got {type(data).__name__}.",
                             "pass an array, a list of rows or a DataFrame (steps first).")
    val = check_fraction("val", val, low=0.0, high=1.0, inclusive=True)
    test = check_fraction("test", test, low=0.0, high=1.0, inclusive=True)
    _check_column_args(data, id_col=id_col, time_col=time_col)
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ParameterError(f"val={val} and test={test} must be fractions summing below 1.", "pass e.g. val=0.15, test=0.15.")
    if isinstance(gap, bool) or not isinstance(gap, (int, np.integer)) or gap < 0:
        raise ParameterError(f"gap must be an integer >= 0, got {gap!r}.", "pass gap=0 or more rows.")
    def rows_needed() -> int:
        """The fewest rows that give training and every part asked for at least one row."""
        for n in range(1, 1_000_000):
            n_val, n_test = int(round(n * val)), int(round(n * test))
            if ((n_val or not val) and (n_test or not test)
                    and n - n_val - n_test - (gap if n_val else 0) - (gap if n_test else 0) > 0):
                return n
        return 1_000_000

    def cuts(n: int, name: Any = None):
        n_test = int(round(n * test))
        n_val = int(round(n * val))
        n_train = n - n_val - n_test - (gap if n_val else 0) - (gap if n_test else 0)
        if n_train <= 0:
            where = "" if name is None else f"series {name!r} has "
            raise ParameterError(f"{where}{n} rows: too few for val={val}, test={test} with gap={gap} (training "
                                 "would get no row).",
                                 "use smaller val/test or gap" + (", or drop the short series." if name is not None
                                                                  else f", or pass at least {rows_needed()} rows."))
        a = n_train
        b = a + (gap if n_val else 0) + n_val
        c = b + (gap if n_test else 0)
        return slice(0, a), slice(a + (gap if n_val else 0), b), slice(c, n)

    def empty_parts(tr, va, te) -> list[str]:
        return [part for part, frac, sl in (("val", val, va), ("test", test, te)) if frac > 0 and sl.stop == sl.start]

    if id_col is not None:
        if not _is_frame(data):
            raise ParameterError("id_col needs a pandas DataFrame.", "pass the long frame.")
        if len(data) == 0:
            raise DataValueError("data has no rows.", "pass a frame with at least one row.")
        if data[id_col].isna().any():
            raise DataValueError(f"data[{id_col!r}] has {int(data[id_col].isna().sum())} missing series ids.",
                                 "fill or drop those rows first.")
        from ..sources.timeindex import check_id_kinds

        check_id_kinds(data[id_col], f"data[{id_col!r}]")
        if time_col is not None:
            t = _time_values(data, time_col, "data")  # numbers or datetimes, none missing: text would sort as text
            codes = data[id_col].factorize(sort=False)[0]
            order = np.lexsort((t, codes))
            same = (codes[order][1:] == codes[order][:-1]) & (t[order][1:] == t[order][:-1])
            if same.any():
                raise OrderError(f"data has duplicate ({id_col}, {time_col}) pairs, e.g. series "
                                 f"{data[id_col].iloc[order[1:][same][0]]!r}: the split point between them is "
                                 "undefined.", "aggregate or drop duplicates first.")
            frame = data.iloc[order]
        else:
            frame = data
        parts: list[list[Any]] = [[], [], []]
        left, missing = 0, {"val": [], "test": []}
        for name, g in frame.groupby(id_col, sort=False):
            tr, va, te = cuts(len(g), name)
            for p, sl in zip(parts, (tr, va, te)):
                p.append(g.iloc[sl])
            for part in empty_parts(tr, va, te):
                missing[part].append(name)
            left += len(g) - sum(s.stop - s.start for s in (tr, va, te))
        n_series = len(parts[0])
        for part, ids in missing.items():
            if ids and len(ids) == n_series:
                raise ParameterError(f"{part}={val if part == 'val' else test} gives no {part} row to any of the "
                                     f"{n_series} series (the longest has {max(len(p) for p in parts[0])} training "
                                     "rows).", f"pass series of at least {rows_needed()} rows, a larger {part} fraction, or "
                                     f"{part}=0 to skip that part.")
        if missing["val"] or missing["test"]:
            import warnings

            from ..errors import StatebatchWarning

            short = list(dict.fromkeys(missing["val"] + missing["test"]))
            warnings.warn(f"time_split: {len(short)} series are too short to give a row to every part asked for "
                          f"(e.g. {short[:5]}; series_without_val: {len(missing['val'])}, series_without_test: "
                          f"{len(missing['test'])}); their rows are in the earlier parts only. The fourth value "
                          "returned lists them.", StatebatchWarning, stacklevel=2)
        import pandas as pd

        return tuple(pd.concat(p) for p in parts) + ({"rows_left_out_by_gap": left,
                                                      "series_without_val": missing["val"],
                                                      "series_without_test": missing["test"]},)
    if time_col is not None:
        if not _is_frame(data):
            raise ParameterError("time_col needs a pandas DataFrame.", "pass the frame, or drop time_col for rows in time order.")
        t = _time_values(data, time_col, "data")
        order = np.argsort(t, kind="stable")  # earliest rows train, whatever the row order
        if np.any(t[order][1:] == t[order][:-1]):
            raise OrderError(f"data[{time_col!r}] has duplicate time stamps: the split point between them is undefined.",
                             "aggregate or drop duplicates first (or pass id_col= for many series).")
        data = data.iloc[order]
    elif _is_frame(data) or type(data).__name__ == "Series" and type(data).__module__.startswith("pandas"):
        _check_time_index(data.index, "data")  # rows in time order: an unsorted time index is refused
    n = len(data)
    if n == 0:
        raise DataValueError("data has no rows.", "pass at least one row.")
    tr, va, te = cuts(n)
    empty = empty_parts(tr, va, te)
    if empty:
        raise ParameterError(f"{n} rows give no {' and no '.join(empty)} row for val={val}, test={test}, gap={gap}.",
                             f"pass at least {rows_needed()} rows, larger fractions, or {'='.join(empty)}=0 to skip "
                             f"{'that part' if len(empty) == 1 else 'those parts'}.")
    take = (lambda s: data.iloc[s]) if hasattr(data, "iloc") else (lambda s: data[s])
    left = n - sum(s.stop - s.start for s in (tr, va, te))
    return take(tr), take(va), take(te), {"rows_left_out_by_gap": left, "series_without_val": [],
                                          "series_without_test": []}


# --------------------------------------------------------------------------- model selection
class WindowRegressor(RegressorMixin, BaseEstimator):
    """A regressor that windows its rows inside ``fit`` and ``predict`` and aligns the targets itself.

    In the spirit of :class:`sklearn.compose.TransformedTargetRegressor`: it takes rows
    ``(steps, features)`` and row-aligned ``y``, so scikit-learn's model selection (which indexes
    rows) works unchanged, and ``timesteps`` is a parameter like any other::

        GridSearchCV(make_pipeline(StandardScaler(), WindowRegressor(Ridge())),
                     {"windowregressor__timesteps": [8, 16],
                      "windowregressor__estimator__alpha": [0.1, 1.0]},
                     cv=WindowSplit(n_splits=4, history=16)).fit(X, y)

    The target of the window over rows ``t - timesteps + 1 .. t`` is ``y[t + horizon]`` (the
    convention of :func:`~statebatch.make_windows`). ``predict(X)`` therefore returns one prediction
    per row of ``X`` that has a full window before it, ``n - timesteps - horizon + 1`` of them for a
    series of ``n`` rows, in the order of :meth:`align_y`; :meth:`score` and :func:`window_scorer`
    compare them with exactly those targets. A search, ``cross_validate`` or ``cross_val_score`` given
    a plain scikit-learn scorer (``scoring="neg_mean_absolute_error"``), which would compare windows
    with rows and score ``nan``, is refused when it clones this estimator, with the
    ``window_scorer(...)`` fix; ``cross_val_predict`` (one prediction per row) is refused too.

    ``y`` and ``sample_weight`` are row-aligned with ``X``; given as pandas objects they are paired
    with a pandas ``X`` by index label (see :func:`align_y_index`). A window is weighted by the weight
    of its target row.

    Parameters
    ----------
    estimator : scikit-learn regressor, default ``Ridge()``
        Fitted on the windows, flattened to ``(n_windows, timesteps * features)`` unless
        ``flatten=False`` (3-D windows, e.g. for a Keras model wrapped by scikeras).
    timesteps, horizon, stride : int
        As in :class:`WindowTransformer` (``horizon >= 1``).
    target_cols : list of str or int, optional
        When ``fit``/``score`` get no ``y``: the features whose next values are the targets (default
        all features, i.e. ``targets="next"``).
    id_col, time_col : str, optional
        A long DataFrame of many series: windows never cross series (split it with
        ``WindowSplit(id_col=..., time_col=...)``).
    dtype : numpy dtype
        Dtype of the windows (float32 by default).

    Attributes
    ----------
    windower_ : WindowTransformer
    estimator_ : the fitted inner regressor
    n_features_in_ : int
    """

    def __init__(self, estimator: Any = None, *, timesteps: int = 10, horizon: int = 1, stride: int = 1,
                 flatten: bool = True, target_cols: Sequence[Any] | None = None, id_col: str | None = None,
                 time_col: str | None = None, dtype: Any = np.float32):
        self.estimator = estimator
        self.timesteps = timesteps
        self.horizon = horizon
        self.stride = stride
        self.flatten = flatten
        self.target_cols = target_cols
        self.id_col = id_col
        self.time_col = time_col
        self.dtype = dtype

    def __sklearn_clone__(self):
        _check_model_selection_caller(self)  # a search with a plain scorer: refused before any fit, with the fix
        return super().__sklearn_clone__()

    def _check_params(self) -> None:
        from .._args import check_bool

        check_bool("flatten", self.flatten)
        est = self.estimator
        if est is not None and (isinstance(est, type) or not all(callable(getattr(est, m, None))
                                                                  for m in ("fit", "predict", "get_params"))):
            raise ParameterError(f"estimator={est!r} is not a scikit-learn regressor instance (it needs fit, predict "
                                 "and get_params).", "pass e.g. estimator=Ridge() (an instance, not the class).")
        cols = self.target_cols
        if cols is not None:
            cols = [cols] if isinstance(cols, (str, int, np.integer)) else cols
            if not hasattr(cols, "__iter__") or not list(cols) or any(
                    isinstance(c, (bool, np.bool_)) or not isinstance(c, (str, int, np.integer)) for c in cols):
                raise ParameterError(f"target_cols={self.target_cols!r} must name features of X (column names or "
                                     "integer positions).", "pass e.g. target_cols=['value'] or target_cols=[0].")

    def _windower(self) -> WindowTransformer:
        if isinstance(self.horizon, bool) or not isinstance(self.horizon, (int, np.integer)) or self.horizon < 1:
            raise ParameterError(f"horizon must be an integer >= 1, got {self.horizon!r}.",
                                 "pass horizon=1 (the next step) or more.")
        return WindowTransformer(self.timesteps, stride=self.stride, horizon=self.horizon, id_col=self.id_col,
                                 time_col=self.time_col, dtype=self.dtype)

    def _inputs(self, windows: np.ndarray) -> np.ndarray:
        return windows.reshape(len(windows), -1) if self.flatten else windows

    def _xy(self, X: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        w = self.windower_
        if y is None:  # the next values of target_cols (default all features)
            win = w._windows(X)
            yw = win.y
            if self.target_cols is not None:
                names = [str(c) for c in w._features]
                wanted = [self.target_cols] if isinstance(self.target_cols, (str, int, np.integer)) else self.target_cols
                cols = [c if isinstance(c, (int, np.integer)) else names.index(str(c)) if str(c) in names else None
                        for c in wanted]
                if any(c is None or not 0 <= c < len(names) for c in cols):
                    raise ParameterError(f"target_cols={list(self.target_cols)} are not all features {names}.",
                                         "name features of X (or their positions).")
                yw = yw[:, cols]
            return np.ascontiguousarray(win.X), yw
        Xw, yw = w.transform_xy(X, y)
        if isinstance(y, str) or (not isinstance(y, list) and np.asarray(y).ndim == 1):
            yw = yw.reshape(len(yw))
        return Xw, yw

    def fit(self, X: Any, y: Any = None, **fit_params) -> "WindowRegressor":
        """Window ``X`` (and ``y`` row-aligned with it, or the next values of ``X``) and fit the estimator."""
        from sklearn.base import clone
        from sklearn.linear_model import Ridge

        _check_model_selection_caller(self)
        self._check_params()
        self.windower_ = self._windower().fit(X)
        Xw, yw = self._xy(X, y)
        if fit_params.get("sample_weight") is not None:  # one weight per row, as y: the weight of each window's target
            fit_params = {**fit_params, "sample_weight": self._window_weights(X, fit_params["sample_weight"])}
        if len(Xw) == 0:
            raise ShapeError(f"X has no window of {self.timesteps} steps with a target {self.horizon} step(s) later.",
                             "pass more rows, or use a smaller timesteps.")
        self.estimator_ = (Ridge() if self.estimator is None else clone(self.estimator)).fit(
            self._inputs(Xw), yw, **fit_params)
        self.n_features_in_ = self.windower_.n_features_in_
        if hasattr(self.windower_, "feature_names_in_"):
            self.feature_names_in_ = self.windower_.feature_names_in_
        return self

    def predict(self, X: Any) -> np.ndarray:
        """One prediction per window of ``X`` with a target inside ``X``: for the rows
        ``timesteps + horizon - 1 ..`` of each series, in the order of :meth:`align_y`."""
        check_is_fitted(self)
        _check_not_plain_scorer(self)
        return self.estimator_.predict(self._inputs(np.ascontiguousarray(self.windower_._windows(X).X)))

    def _window_weights(self, X: Any, sample_weight: Any) -> np.ndarray:
        """Row weights (aligned with ``X`` like ``y``) as window weights: the weight of each window's target row."""
        sw = np.asarray(sample_weight.to_numpy() if hasattr(sample_weight, "to_numpy") else sample_weight)
        if sw.ndim != 1 or len(sw) != len(X) or not (np.issubdtype(sw.dtype, np.number) or sw.dtype == bool):
            raise LengthMismatchError(f"sample_weight has shape {sw.shape} (dtype {sw.dtype}) for {len(X)} rows of X.",
                                      "pass one number per row of X, aligned with it like y (each window is weighted "
                                      "by the weight of its target row).")
        return self.windower_.transform_xy(X, align_y_index(X, sample_weight, "sample_weight") if _is_pandas_rows(
            sample_weight) else sw)[1].reshape(-1)

    def align_y(self, X: Any, y: Any = None) -> np.ndarray:
        """The targets of :meth:`predict`'s predictions: ``y[t + horizon]`` for each window ending at ``t``
        (the next values of ``target_cols`` when ``y`` is None)."""
        check_is_fitted(self)
        return self._xy(X, y)[1]

    def prediction_ids(self, X: Any) -> np.ndarray:
        """The series id of each prediction (for :meth:`SeriesScaler.inverse_transform_by_id`)."""
        check_is_fitted(self)
        win = self.windower_._windows(X)
        return np.asarray(win.series_ids, dtype=object)[win.series]

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """R² of :meth:`predict` against :meth:`align_y` (only windows inside ``X`` are scored)."""
        from sklearn.metrics import r2_score

        weights = None if sample_weight is None else self._window_weights(X, sample_weight)
        return float(r2_score(self.align_y(X, y), self.predict(X), sample_weight=weights))


def _scorer_name(scorer: Any) -> str:
    """The name a plain scikit-learn scorer was made from (for the fix), else its repr."""
    from sklearn.metrics import get_scorer, get_scorer_names

    shown = repr(scorer)
    for name in get_scorer_names():
        try:
            if repr(get_scorer(name)) == shown:
                return repr(name)
        except Exception:  # noqa: BLE001 - a scorer whose optional dependency is missing
            continue
    return shown


def _row_scorers(scorer: Any) -> list:
    """The scikit-learn scorers inside ``scorer`` that compare ``predict(X)`` with ``y`` row by row."""
    from sklearn.metrics._scorer import _BaseScorer, _MultimetricScorer

    if isinstance(scorer, _MultimetricScorer):
        return [s for s in scorer._scorers.values() if isinstance(s, _BaseScorer)]
    return [scorer] if isinstance(scorer, _BaseScorer) else []


def _check_model_selection_caller(estimator: Any) -> None:
    """Refuse, from ``fit``, a scikit-learn search or cross-validation that would score per row.

    scikit-learn's ``_fit_and_score`` calls ``fit`` and then the scorer; a plain scorer (e.g.
    ``scoring="neg_mean_absolute_error"``) compares ``predict(X)``, one value per window, with ``y``,
    one value per row, fails on every fold and leaves ``nan`` scores behind warnings. The scorer is a
    local of the search's frames. Called from ``__sklearn_clone__`` (a search clones the estimator
    outside its error handling, before any fit) the error itself leaves ``GridSearchCV.fit`` /
    ``cross_validate``; from ``fit`` it is the fallback (inside the search's "fits failed" report).
    ``cross_val_predict`` needs one prediction per row and is refused the same way.
    """
    import sys

    frame = sys._getframe(1)
    for _ in range(40):
        frame = frame.f_back
        if frame is None:
            return
        module = frame.f_globals.get("__name__", "")
        if not module.startswith("sklearn.model_selection"):
            continue
        name, local = frame.f_code.co_name, frame.f_locals
        if name in ("_fit_and_predict", "cross_val_predict"):
            raise ParameterError(
                f"cross_val_predict needs one prediction per row of X, but {type(estimator).__name__} predicts one "
                "value per window (the first timesteps + horizon - 1 rows of a fold have none).",
                "loop over the folds yourself: for train, test in WindowSplit(...).split(X): fit on X[train], y[train] "
                "and compare predict(X[test]) with align_y(X[test], y[test]).")
        # the scorer: _fit_and_score's argument, a search's fit_and_score_kwargs, cross_validate's scorers
        kwargs = local.get("fit_and_score_kwargs")
        # (learning_curve and validation_curve hold it as scorer)
        scorer = (kwargs.get("scorer") if isinstance(kwargs, dict)
                  else local.get("scorer") if local.get("scorer") is not None else local.get("scorers"))
        if scorer is not None:
            plain = _row_scorers(scorer)
            if plain:
                shown = _scorer_name(plain[0])
                raise ParameterError(
                    f"scoring={shown} is a plain scikit-learn scorer: it compares predict(X), one value per window "
                    f"(n - timesteps - horizon + 1 for n rows), with y row by row, so every fold would fail and "
                    f"score nan.",
                    f"pass scoring=window_scorer({shown}) (from statebatch.sklearn), which scores each window "
                    "against its own target; or leave scoring out to use WindowRegressor.score (R²).")
            return


def _check_not_plain_scorer(estimator: Any) -> None:
    """Refuse ``predict`` called by a plain scikit-learn scorer (outside a search, e.g. ``get_scorer(...)(reg, X,
    y)``), which would compare windows with rows: the same fix as :func:`_check_model_selection_caller`."""
    import sys

    frame = sys._getframe(1)
    for _ in range(12):
        frame = frame.f_back
        if frame is None:
            return
        if frame.f_code.co_name == "_score" and frame.f_globals.get("__name__") == "sklearn.metrics._scorer":
            plain = _row_scorers(frame.f_locals.get("self"))
            if plain:
                shown = _scorer_name(plain[0])
                raise ParameterError(
                    f"the scorer {shown} compares {type(estimator).__name__}.predict(X), one value per window, with y "
                    "row by row; the lengths differ.",
                    f"score with statebatch.sklearn.window_scorer({shown}) instead (or call .score(X, y)).")
            return


class _Fixed(RegressorMixin, BaseEstimator):
    """Predictions already made, in a form scikit-learn's scorers accept."""

    def __init__(self, predictions: Any = None):
        self.predictions = predictions

    def fit(self, X: Any = None, y: Any = None) -> "_Fixed":
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self.predictions


def window_scorer(scoring: Any = "r2"):
    """A scorer for :class:`WindowRegressor` (or a pipeline ending with one): scikit-learn's scorer
    ``scoring`` (a name such as ``"neg_mean_absolute_error"``, or :func:`sklearn.metrics.make_scorer`)
    applied to the predictions and their aligned targets.

    A plain scorer compares ``predict(X)`` with ``y`` row by row, but a window's prediction belongs
    to the row ``horizon`` steps after it and the first ``timesteps + horizon - 1`` rows have none,
    so the lengths differ; pass ``scoring=window_scorer("...")`` to ``GridSearchCV``.
    """
    from sklearn.metrics import check_scoring, get_scorer

    try:
        scorer = get_scorer(scoring) if isinstance(scoring, str) else check_scoring(_Fixed(), scoring=scoring)
    except (ValueError, TypeError) as exc:
        raise ParameterError(f"scoring={scoring!r} is not a scikit-learn scorer ({exc}).",
                             "pass a name from sklearn.metrics.get_scorer_names() or make_scorer(...).") from None

    def score(estimator: Any, X: Any, y: Any = None) -> float:
        last = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
        if not isinstance(last, WindowRegressor):
            raise ParameterError(f"window_scorer scores a WindowRegressor, got {type(last).__name__}.",
                                 "end the pipeline with statebatch.sklearn.WindowRegressor.")
        if hasattr(estimator, "steps"):
            _check_is_fitted_pipeline(estimator)
        Xt = estimator[:-1].transform(X) if hasattr(estimator, "steps") and len(estimator.steps) > 1 else X
        predictions = last.predict(Xt)
        return scorer(_Fixed(predictions), np.zeros((len(predictions), 1)), last.align_y(Xt, y))

    score.__name__ = f"window_scorer({scoring!r})"
    return score


class WindowSplit:
    """Time-series cross-validation for windows: each test fold brings its own history.

    Like :class:`sklearn.model_selection.TimeSeriesSplit`, fold ``k`` trains on the earliest rows and
    tests on later ones. Windows need ``timesteps + horizon - 1`` rows of inputs before their first
    target; those rows (``history``) open every test fold and belong to no training fold of that
    split, so no test window's target is a training row and no training window reads a test row,
    for every ``timesteps <= history - horizon + 1`` a search tries. ``gap`` rows more are left out
    between the training rows and the history (against autocorrelation leaking across the cut).

    Per series of ``n`` rows, with ``m = test_size`` (default ``(n - history - gap) // (n_splits + 1)``)::

        fold k (of K):   train [0, s - history - gap)   test [s - history, s + m),   s = n - (K - k) * m

    Parameters
    ----------
    n_splits : int
    history : int
        Rows at the start of each test fold that are inputs only: the largest ``timesteps + horizon - 1``
        the search uses.
    gap : int
        Rows in neither part between a fold's training rows and its test fold.
    test_size : int, optional
        Targets per test fold (per series).
    max_train_size : int, optional
        Keep at most this many of the latest training rows (per series).
    id_col, time_col : str, optional
        A long DataFrame: every series is split by its own time (sorted by ``time_col`` when given),
        and a fold is the union of those row positions.
    """

    def __init__(self, n_splits: int = 5, *, history: int = 10, gap: int = 0, test_size: int | None = None,
                 max_train_size: int | None = None, id_col: str | None = None, time_col: str | None = None):
        self.n_splits = n_splits
        self.history = history
        self.gap = gap
        self.test_size = test_size
        self.max_train_size = max_train_size
        self.id_col = id_col
        self.time_col = time_col

    def __repr__(self) -> str:
        return (f"WindowSplit(n_splits={self.n_splits}, history={self.history}, gap={self.gap}, "
                f"test_size={self.test_size}, max_train_size={self.max_train_size}, id_col={self.id_col!r}, "
                f"time_col={self.time_col!r})")

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        from .._args import check_int as _int

        return _int("n_splits", self.n_splits, 1)

    def _cuts(self, n: int, name: Any) -> list[tuple[int, int, int, int]]:
        """(train_start, train_stop, test_start, test_stop) per fold for one series of n rows."""
        from .._args import check_int as _int

        k = self.get_n_splits()
        history, gap = _int("history", self.history, 0), _int("gap", self.gap, 0)
        m = (n - history - gap) // (k + 1) if self.test_size is None else _int("test_size", self.test_size, 1)
        if self.max_train_size is not None and _int("max_train_size", self.max_train_size, 1) <= history:
            raise ParameterError(f"max_train_size={self.max_train_size} leaves no training window after {history} rows "
                                 "of history.", f"pass max_train_size > history ({history}), or None.")
        first_test = n - k * m
        if m < 1 or first_test - history - gap < history + 1:
            raise ParameterError(
                f"series {name!r} has {n} rows: too few for {k} folds of {max(m, 1)} targets after {history} rows of "
                f"history and a gap of {gap} (its first training part needs more than {history} rows).",
                "use fewer n_splits, a smaller test_size/history/gap, or drop the short series.")
        folds = []
        for i in range(k):
            s = first_test + i * m
            stop = s - history - gap
            start = 0 if self.max_train_size is None else max(0, stop - _int("max_train_size", self.max_train_size, 1))
            folds.append((start, stop, s - history, s + m))
        return folds

    def split(self, X: Any, y: Any = None, groups: Any = None):
        """Yield ``(train, test)`` arrays of row positions of ``X``."""
        from ..sources.frames import to_pandas_or_numpy

        _refuse_nested(X, "WindowSplit.split")
        X = to_pandas_or_numpy(X)
        if X is None or isinstance(X, (str, bytes, dict)) or not hasattr(X, "__len__") or np.ndim(X) == 0:
            raise ParameterError(f"WindowSplit.split splits the rows of X, got {type(X).__name__}.",
                                 "pass X as an array or DataFrame (steps first).")
        if y is not None:
            y = to_pandas_or_numpy(y, "y")
            if not hasattr(y, "__len__") or np.ndim(y) == 0 or len(y) != len(X):
                raise LengthMismatchError(f"X has {len(X)} rows but y has "
                                          f"{len(y) if hasattr(y, '__len__') and np.ndim(y) else 'none (a scalar)'}.",
                                          "pass y aligned row by row with X.")
            if _is_pandas_rows(X) and _is_pandas_rows(y) and not y.index.equals(X.index):
                # folds are row positions, taken from X and y alike: a y in another row order would pair wrong rows
                raise LengthMismatchError("y's index is not X's index, so the folds' row positions would take other "
                                          "rows of y than of X.",
                                          "pass y = y.loc[X.index] (the same rows in X's order), or y.to_numpy().")
        if self.id_col is None and self.time_col is None:
            if _is_pandas_rows(X):  # folds are cut by position: a time index must be in time order
                from ..sources.series import _check_time_index

                _check_time_index(X.index, "X")
            n = len(X)
            for a, b, c, d in self._cuts(n, 0):
                yield np.arange(a, b), np.arange(c, d)
            return
        if not _is_frame(X):
            raise ParameterError(f"id_col/time_col need a DataFrame, got {type(X).__name__}.",
                                 "pass the long frame, or drop id_col/time_col.")
        _check_column_args(X, id_col=self.id_col, time_col=self.time_col)
        from ..sources.series import _time_values
        from ..sources.timeindex import check_id_kinds

        positions = np.arange(len(X))
        if self.id_col is not None:
            if X[self.id_col].isna().any():
                raise DataValueError(f"X[{self.id_col!r}] has {int(X[self.id_col].isna().sum())} missing series ids.",
                                     "fill or drop those rows first.")
            check_id_kinds(X[self.id_col], f"X[{self.id_col!r}]")
            codes, uniques = X[self.id_col].factorize(sort=False)
        else:
            codes, uniques = np.zeros(len(X), dtype=np.int64), [0]
        if self.time_col is not None:
            t = _time_values(X, self.time_col, "X")  # numbers or datetimes, none missing (text would sort as text)
            positions = np.lexsort((t, codes))
            same = (codes[positions][1:] == codes[positions][:-1]) & (t[positions][1:] == t[positions][:-1])
            if same.any():
                raise OrderError(f"X has duplicate ({self.id_col}, {self.time_col}) pairs: the order of those rows, "
                                 "and so the folds, would be a guess.", "aggregate or drop duplicates first.")
        else:
            positions = np.argsort(codes, kind="stable")  # each series in the frame's row order
        sorted_codes = codes[positions]
        bounds = np.searchsorted(sorted_codes, np.arange(len(uniques) + 1))
        per_series = []
        for k, name in enumerate(list(uniques)):
            rows = positions[bounds[k]:bounds[k + 1]]  # this series' row positions in time order
            per_series.append((rows, self._cuts(len(rows), name)))
        for f in range(self.get_n_splits()):
            train = np.concatenate([rows[cuts[f][0]:cuts[f][1]] for rows, cuts in per_series])
            test = np.concatenate([rows[cuts[f][2]:cuts[f][3]] for rows, cuts in per_series])
            yield np.sort(train), np.sort(test)


# --------------------------------------------------------------------------- per-series scaling
class SeriesScaler(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Standardises every series of a long DataFrame with its own mean and standard deviation.

    Series of a long frame often live on different scales (sales of a big and a small shop);
    one ``StandardScaler`` over all of them leaves the small ones flat and chokes on the id column.
    ``fit`` learns per id, ``transform`` returns the frame with the value columns scaled (id and time
    columns untouched, so a :class:`WindowTransformer`/:class:`WindowRegressor` with the same
    ``id_col`` can follow it in a pipeline), ``inverse_transform`` undoes it, and
    :meth:`inverse_transform_by_id` brings predictions back to original units by the id of each.

    Parameters
    ----------
    id_col : str
    time_col : str, optional
        Left unscaled.
    columns : list of str, optional
        Columns to scale (default every other numeric column).
    with_mean, with_std : bool

    Attributes
    ----------
    mean_, scale_ : pandas DataFrame, one row per id, one column per scaled column
        (``scale_`` is 1 where a series is constant, as in ``StandardScaler``).
    """

    def __init__(self, id_col: str = "id", *, time_col: str | None = None, columns: Sequence[str] | None = None,
                 with_mean: bool = True, with_std: bool = True):
        self.id_col = id_col
        self.time_col = time_col
        self.columns = columns
        self.with_mean = with_mean
        self.with_std = with_std

    def _frame(self, X: Any) -> Any:
        from ..sources.frames import to_pandas_or_numpy

        X = to_pandas_or_numpy(X)
        if not _is_frame(X):
            raise ParameterError(f"SeriesScaler scales a long DataFrame, got {type(X).__name__}.",
                                 "pass a DataFrame with an id column (or use StandardScaler for one series).")
        if self.id_col not in X.columns:
            raise ParameterError(f"id_col={self.id_col!r} is not a column (columns: {list(X.columns)}).",
                                 "pass the name of the column that holds the series id.")
        if X[self.id_col].isna().any():
            raise DataValueError(f"X[{self.id_col!r}] has missing series ids.", "fill or drop those rows first.")
        if len(X) == 0:
            raise DataValueError("X has no rows.", "pass a frame with at least one row.")
        from ..sources.timeindex import check_id_kinds

        check_id_kinds(X[self.id_col], f"X[{self.id_col!r}]")
        return X

    def fit(self, X: Any, y: Any = None) -> "SeriesScaler":
        from .._args import check_bool

        check_bool("with_mean", self.with_mean)
        check_bool("with_std", self.with_std)
        X = self._frame(X)
        keep = (self.id_col, self.time_col)
        if self.columns is None:
            cols = [c for c in X.columns if c not in keep and np.issubdtype(np.asarray(X[c]).dtype, np.number)]
        else:
            cols = [self.columns] if isinstance(self.columns, str) else list(self.columns)
            missing = [c for c in cols if c not in X.columns or c in keep]
            if missing:
                raise ParameterError(f"columns {missing} are not value columns of X.",
                                     f"name columns of X other than {self.id_col!r}/{self.time_col!r}.")
        if not cols:
            raise ParameterError("X has no numeric value column to scale.", "pass columns=[...] of numbers.")
        try:
            g = X[cols].astype(np.float64).groupby(X[self.id_col], sort=False)
        except (TypeError, ValueError) as exc:
            raise DTypeError(f"columns {cols} are not all numeric ({exc}).", "pass columns=[...] of numbers.") from None
        mean = g.mean()
        std = g.std(ddof=0)
        self.mean_ = mean if self.with_mean else mean * 0.0
        self.scale_ = std.where(std > 0, 1.0) if self.with_std else std * 0.0 + 1.0
        self.columns_ = cols
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.n_features_in_ = X.shape[1]
        return self

    def _stats(self, ids: Any, what: str) -> tuple[np.ndarray, np.ndarray]:
        import pandas as pd

        ids = pd.Index(np.asarray(ids, dtype=object) if not hasattr(ids, "dtype") else ids)
        pos = self.mean_.index.get_indexer(ids)
        if (pos < 0).any():
            unknown = list(dict.fromkeys(ids[pos < 0].tolist()))[:5]
            raise DataValueError(f"{what} has series ids {unknown} that fit never saw, so they have no scale.",
                                 "fit the scaler on every series (or drop the new ones).")
        return self.mean_.to_numpy()[pos], self.scale_.to_numpy()[pos]

    def _apply(self, X: Any, inverse: bool) -> Any:
        check_is_fitted(self)
        X = self._frame(X)
        missing = [c for c in self.columns_ if c not in X.columns]
        if missing:
            raise ShapeError(f"columns {missing} seen in fit are missing.", "pass the same columns as in fit.")
        mean, scale = self._stats(X[self.id_col], "X")
        values = X[self.columns_].to_numpy(dtype=np.float64)
        out = X.copy()
        out[self.columns_] = values * scale + mean if inverse else (values - mean) / scale
        return out

    def transform(self, X: Any) -> Any:
        """X with each value column standardised by its own series' statistics (a new frame)."""
        return self._apply(X, inverse=False)

    def inverse_transform(self, X: Any) -> Any:
        """The scaled frame back in original units."""
        return self._apply(X, inverse=True)

    def inverse_transform_by_id(self, values: Any, ids: Any, columns: Sequence[str] | None = None) -> np.ndarray:
        """Predictions ``(n,)`` or ``(n, len(columns))`` in scaled units back to original units, row ``i``
        with the statistics of series ``ids[i]`` (e.g. ``WindowRegressor.prediction_ids(X)``)."""
        check_is_fitted(self)
        cols = list(self.columns_ if columns is None else ([columns] if isinstance(columns, str) else columns))
        unknown = [c for c in cols if c not in self.columns_]
        if unknown:
            raise ParameterError(f"columns {unknown} were not scaled (scaled: {self.columns_}).",
                                 "name the scaled columns the values are in.")
        if ids is None or isinstance(ids, (str, bytes)) or not hasattr(ids, "__len__"):
            raise ParameterError(f"ids must hold one series id per value, got {type(ids).__name__}.",
                                 "pass e.g. WindowRegressor.prediction_ids(X).")
        try:
            v = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DTypeError(f"values cannot be read as numbers ({exc}).", "pass the numeric predictions.") from None
        flat = v.ndim == 1
        v2 = v[:, None] if flat else v
        if v2.ndim != 2 or v2.shape[1] != len(cols) or len(v2) != len(ids):
            raise ShapeError(f"values have shape {v.shape} for {len(ids)} ids and columns {cols}.",
                             "pass (n,) values for one column, or (n, len(columns)), with one id per row.")
        mean, scale = self._stats(ids, "ids")
        idx = [self.columns_.index(c) for c in cols]
        out = v2 * scale[:, idx] + mean[:, idx]
        return out[:, 0] if flat else out

    def get_feature_names_out(self, input_features: Sequence[str] | None = None) -> np.ndarray:
        check_is_fitted(self)
        return np.asarray(self.feature_names_in_, dtype=object)

    def set_output(self, *, transform: str | None = None):
        """The output is already the (pandas) frame that came in; accepted for ``Pipeline.set_output``."""
        return self
