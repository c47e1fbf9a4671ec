"""Checks shared by the scikit-learn adapters: column arguments, ``y`` aligned with ``X``, fitted state,
constructor parameters (checked in ``fit``, scikit-learn's convention) and what a transform leaves out."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.exceptions import NotFittedError as _SklearnNotFitted
from sklearn.utils.validation import check_is_fitted as _check_is_fitted

from ...errors import DataValueError, LengthMismatchError, ParameterError, ShapeError, StatebatchError

__all__ = ["NotFittedError", "check_is_fitted", "align_y_index", "INAPPLICABLE_CHECKS", "INAPPLICABLE_REGRESSOR_CHECKS"]

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
    from ...sources.frames import _is_nested_panel

    if _is_nested_panel(X):
        raise ParameterError(
            f"{where} got a nested sktime panel ({len(X)} instances, one series in each row); scikit-learn indexes "
            "rows as time steps, so it would mix instances.",
            "convert it to a long frame and name its columns: long = pd.concat({i: pd.DataFrame(row.to_dict()) for "
            "i, row in panel.iterrows()}, names=['id', 't']).reset_index(), then pass id_col='id', time_col='t'.")



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

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"v": [1.0, 2.0, 3.0]}, index=[10, 11, 12])
    >>> y = pd.Series([3.0, 1.0, 2.0], index=[12, 10, 11])  # the same rows, shuffled
    >>> align_y_index(X, y).tolist()
    [1.0, 2.0, 3.0]
    """
    import warnings

    from ...errors import StatebatchWarning

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
        raise ShapeError(f"{what} is a scalar ({y!r}).", "pass one target per row of X.")
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


def _report(transformer: Any, result: Any) -> Any:
    """Keep what a transform leaves out visible inside a pipeline: a warning naming it (the estimator
    itself must not change in transform; ``transformer.left_out(X)`` lists the steps)."""
    import warnings

    from ...errors import StatebatchWarning

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
    """Refuse an estimator used before ``fit`` with :class:`NotFittedError` (scikit-learn's, and a statebatch
    error that says to fit first).

    Examples
    --------
    >>> from statebatch.sklearn import WindowTransformer
    >>> check_is_fitted(WindowTransformer())
    Traceback (most recent call last):
    statebatch.adapters.sklearn.validation.NotFittedError: this WindowTransformer is not fitted yet.
      Fix: call fit(X) (or fit_transform) before transform.
    """
    try:
        _check_is_fitted(estimator)
    except _SklearnNotFitted:
        raise NotFittedError(f"this {type(estimator).__name__} is not fitted yet.",
                             "call fit(X) (or fit_transform) before transform.") from None


def _check_params(est: Any) -> None:
    """Constructor parameters are checked in fit (scikit-learn's convention), with statebatch errors."""
    from ..._args import check_int as _int

    _int("timesteps", est.timesteps, 1)
    if hasattr(est, "batch_size"):
        _int("batch_size", est.batch_size, 1)
    if hasattr(est, "stride"):
        _int("stride", est.stride, 1)
        _int("sampling_rate", est.sampling_rate, 1)
    _int("horizon", est.horizon, 0 if not hasattr(est, "batch_size") else 1)


def _check_finite(values: Any, what: str, opts: Any) -> None:
    """NaN and inf let through apart, as ``opts`` (an :class:`~statebatch.InputOptions`) says.

    Only one allowed is checked here: ``make_windows``/``arrange_stateful`` take one ``allow_nan`` that
    covers both (refusing both, naming the first, when it is False), so with ``allow_nan=True`` and
    ``allow_inf=False`` an inf would pass them: a division by zero upstream, trained on in silence.
    """
    if bool(opts.allow_nan) == bool(opts.allow_inf):
        return  # both refused (downstream, with its message) or both allowed
    kind, found = ("inf", np.isinf) if opts.allow_nan else ("NaN", np.isnan)
    columns = ([(f"[{c!r}]", values[c].to_numpy()) for c in values.columns] if _is_frame(values)
               else [("", values.to_numpy() if hasattr(values, "to_numpy") else np.asarray(values))])
    for name, a in columns:
        if a.dtype.kind not in "fc" or a.ndim == 0:
            continue  # not numbers: refused downstream by dtype
        hit = found(a)
        if hit.any():
            row = int(np.flatnonzero(hit.reshape(len(a), -1).any(axis=1))[0])
            fix = ("replace the inf first (often a division by zero or a log of 0 upstream), or pass "
                   "options=InputOptions(allow_inf=True) if the model handles it." if kind == "inf" else
                   "fill or drop the NaN first (e.g. df.interpolate()), or pass options=InputOptions(allow_nan=True) "
                   "for a model that masks them.")
            raise DataValueError(f"{what}{name} holds {int(hit.sum())} {kind} value(s) (first in row {row}), and "
                                 f"allow_{'inf' if kind == 'inf' else 'nan'} is False "
                                 f"(allow_{'nan' if kind == 'inf' else 'inf'}=True lets only "
                                 f"{'NaN' if kind == 'inf' else 'inf'} through).", fix)


def _check_is_fitted_pipeline(pipeline: Any) -> None:
    """scikit-learn's NotFittedError of a pipeline, as statebatch's (which is also scikit-learn's)."""
    try:
        _check_is_fitted(pipeline)
    except _SklearnNotFitted:
        raise NotFittedError(f"this {type(pipeline).__name__} is not fitted yet.",
                             "call fit(X, y) on it before transforming or scoring.") from None

