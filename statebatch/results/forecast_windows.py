"""The forecasting part of :func:`~statebatch.make_windows`: its arguments checked and its tables built.

When ``make_windows`` is given any forecasting input (``known_cols``, ``static_cols``, ``min_timesteps``,
``scale``, ``missing``, ``lags``, ``time_features``), :func:`forecast_inputs` checks the call, reads the
series (features and known columns together), finds the targets and builds the
:class:`~statebatch.materialise.forecast.ForecastSpec` whose tables every batch is gathered from;
``make_windows`` then binds it to a :class:`~statebatch.Windows`. The steps are separate functions
so that each check can be read (and named in an error) on its own.
"""

from __future__ import annotations

import sys
from typing import Any, Mapping

import numpy as np

from .._args import check_bool
from ..errors import DTypeError, ParameterError
from ..materialise.forecast import (ForecastSpec, _names, build_forecast, check_forecast_args, check_lags,
                                    check_time_features)
from ..materialise.gather import _in_memory
from ..materialise.scaling import SeriesScale
from ..plans.windows import check_min_timesteps
from ..sources.options import InputOptions
from ..sources.pandas_frames import _numeric_column
from ..sources.series import SeriesSet, _is_pandas, apply_gaps, as_series, in_memory

__all__ = ["forecast_inputs", "check_forecast_only_args", "fitted_scale", "wants_forecast"]


def wants_forecast(*, known_cols: Any, static_cols: Any, min_timesteps: Any, scale: Any, lags: Any,
                   time_features: Any, missing: Any, static_vocab: Any = None) -> bool:
    """Whether a ``make_windows`` call asks for forecasting inputs (its batches are then mappings).

    Examples
    --------
    >>> wants_forecast(known_cols=None, static_cols=None, min_timesteps=None, scale=None, lags=[1],
    ...                time_features=None, missing="error")
    True
    """
    return any(v is not None for v in (known_cols, static_cols, min_timesteps, scale, lags, time_features,
                                       static_vocab)) or \
        missing != "error"


def check_forecast_only_args(scale: Any, scale_method: Any, missing: Any, fill_value: Any) -> None:
    """Refuse options that only modify another one left out: ``scale_method`` without ``scale``,
    ``fill_value`` without ``missing="mask"`` (they would silently do nothing).

    Examples
    --------
    >>> check_forecast_only_args(None, "standard", "error", 0.0)  # the defaults: nothing to refuse
    >>> check_forecast_only_args(None, "robust", "error", 0.0)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    statebatch.errors.ParameterError: scale_method='robust' without scale: nothing is scaled.
      Fix: pass scale='series' or scale='window' with it, or drop scale_method.
    """
    if scale is None and not (isinstance(scale_method, str) and scale_method == "standard"):
        raise ParameterError(f"scale_method={scale_method!r} without scale: nothing is scaled.",
                             "pass scale='series' or scale='window' with it, or drop scale_method.")
    if not (isinstance(missing, str) and missing == "mask") and not (
            isinstance(fill_value, (int, float)) and not isinstance(fill_value, bool) and fill_value == 0):
        raise ParameterError(f"fill_value={fill_value!r} without missing='mask': nothing is filled.",
                             "pass missing='mask' with it, or drop fill_value.")


def _check_call(*, sampling_rate: int, return_sequences: bool, targets: Any, opts: InputOptions) -> None:
    """What forecasting inputs need of the rest of the call: one step per row, next-value targets, NaN
    handled by ``missing=`` (never let through) and no inf."""
    if sampling_rate != 1:
        raise ParameterError(f"forecasting inputs need sampling_rate=1, got {sampling_rate}.",
                             "resample the series first, or drop the forecasting inputs.")
    if return_sequences:
        raise ParameterError("forecasting inputs predict the n_ahead steps after each window; return_sequences "
                             "does not apply.", "drop return_sequences.")
    if not (isinstance(targets, str) and targets == "next"):
        given = 'an array' if targets is not None and not isinstance(targets, str) else repr(targets)
        raise ParameterError("forecasting inputs need next-value targets: y holds the n_ahead steps after each "
                             f"window, but targets={given}.",
                             "pass target_cols=[...] (frame columns) or targets='next' (with target_features=[...]).")
    if check_bool("allow_nan", opts.allow_nan):
        raise ParameterError("allow_nan=True with forecasting inputs: NaN is handled by missing=.",
                             "pass missing='mask' (NaN filled, with observed-value masks) instead of allow_nan.")
    if check_bool("allow_inf", opts.allow_inf):
        raise ParameterError("allow_inf=True with forecasting inputs: inf cannot be scaled, masked or lagged.",
                             "replace inf by NaN and pass missing='mask', or by a finite value.")


def fitted_scale(scale: Any, scale_method: Any) -> tuple[Any, SeriesScale | None]:
    """``scale=`` given as windows built with ``scale="series"`` (their series scale) or as a
    :class:`~statebatch.materialise.scaling.SeriesScale`: ``("series", that scale)``, to scale holdout
    windows with the training scale; any other value is returned as it is (checked later).

    Examples
    --------
    >>> fitted_scale("window", "standard")
    ('window', None)
    """
    if scale is None or isinstance(scale, str):
        return scale, None
    spec = getattr(scale, "forecast", None)
    fitted = getattr(spec, "series_scale", None) if spec is not None else scale
    if spec is not None and fitted is None:
        raise ParameterError("scale= was given windows without a series scale.",
                             "build those windows with scale='series' (the scale is fitted on their input steps).")
    if not isinstance(fitted, SeriesScale):
        raise ParameterError(f"scale must be None, 'series', 'window', windows built with scale='series' or their "
                             f"windows.forecast.series_scale, got {type(scale).__name__}.",
                             "pass scale='series', or scale=train_windows to reuse the training windows' scale.")
    if not (isinstance(scale_method, str) and scale_method in ("standard", fitted.method)):
        raise ParameterError(f"scale_method={scale_method!r}, but the series scale passed was fitted with "
                             f"{fitted.method!r}.", "drop scale_method: a fitted scale keeps its own method.")
    return "series", fitted


def given_vocab(static_vocab: Any, static: list) -> dict | None:
    """``static_vocab=`` as ``{column: categories}``: given as windows (their ``forecast.static_vocab``) or as
    such a mapping; every column it names must be one of ``static``.

    Examples
    --------
    >>> given_vocab({"shop": ["a", "b"]}, ["shop", "size"])
    {'shop': ['a', 'b']}
    """
    if static_vocab is None:
        return None
    spec = getattr(static_vocab, "forecast", None) or getattr(static_vocab, "covariates", None)  # Windows, Arranged
    vocab = getattr(spec, "static_vocab", None) if spec is not None else static_vocab
    if not isinstance(vocab, Mapping):
        raise ParameterError(f"static_vocab must be windows or lanes made with static_cols, or their static_vocab "
                             f"mapping, got {type(static_vocab).__name__}.",
                             "pass static_vocab=train_windows (the windows the model was trained on).")
    extra = [c for c in vocab if c not in [str(s) for s in static]]
    if extra:
        raise ParameterError(f"static_vocab has categories for {extra}, which are not static_cols {list(static)}.",
                             "pass the static_cols the vocabulary was fitted with, or drop static_vocab.")
    return {str(c): list(v) for c, v in vocab.items()}


def _frame_features(data: Any, opts: InputOptions, known: list, static: list, feats: list | None) -> list | None:
    """The observed feature columns of a frame (``feature_cols``, or every column that is no id, time, known
    or static column, else the targets), after checking that known and static columns exist and that no
    column plays two parts."""
    cols = list(data.columns)
    for what, names in (("known_cols", known), ("static_cols", static)):
        absent = [c for c in names if c not in cols]
        if absent:
            raise ParameterError(f"{what} {absent} are not columns of the data (columns: {cols}).",
                                 f"pass existing column names in {what}.")
        if opts.time_col is not None and opts.time_col in names:
            raise ParameterError(f"{what} names the time column {opts.time_col!r}: it orders the steps and varies "
                                 "within every series.", "drop it from " + what + "; use time_features=[...] "
                                 "(calendar features of the time column) or add a column derived from it.")
        if what == "known_cols" and opts.id_col is not None and opts.id_col in names:
            raise ParameterError(f"known_cols names the id column {opts.id_col!r}: it is one value per series.",
                                 "pass it in static_cols (integer codes, vocabulary in windows.forecast.static_vocab).")
        text = [c for c in names if what == "known_cols" and not _numeric_column(data[c])]
        if text:  # named here: read as features, the generic message would point at feature_cols
            raise DTypeError(f"known_cols {text} are not numeric (dtypes {[str(data[c].dtype) for c in text]}); "
                             "known covariates enter past and future as numbers.",
                             "a category with one value per series goes in static_cols (integer codes); one that "
                             "changes over time must be encoded as numbers first (one column per category) and "
                             "passed in known_cols.")
    both = [c for c in known if c in static]
    if both:
        raise ParameterError(f"columns {both} are in both known_cols and static_cols.",
                             "a column is either known over time (known_cols) or one value per series (static_cols).")
    tnames = _names(opts.target_cols, "target_cols")
    covariate = [c for c in tnames if c in known or c in static]
    if covariate:  # said as the target: with default features the overlap would be blamed on feature_cols
        raise ParameterError(f"target_cols {covariate} are also in known_cols/static_cols: a target is what the "
                             "model forecasts, not a covariate known in advance.",
                             "drop it from known_cols/static_cols (by default its past values are inputs already, in past).")
    if feats is None:
        feats = [c for c in cols if c not in (opts.id_col, opts.time_col) and c not in known and c not in static]
        feats = feats or tnames
    twice = [c for c in feats if c in known or c in static]
    if twice:
        raise ParameterError(f"feature_cols {twice} are also in known_cols/static_cols.",
                             "list each column once: observed inputs in feature_cols, known ones in known_cols, "
                             "per-series ones in static_cols.")
    return feats


def _targets(ss: SeriesSet, nf: int, target_features: Any) -> tuple[np.ndarray, list[int]]:
    """The target rows and their positions among the ``nf`` observed features (-1: not a feature): a frame's
    target columns, some features (``target_features``), or every feature."""
    memory = "forecasting inputs need the series in memory.", "pass a DataFrame or numpy arrays."
    if ss.targets is not None:
        if target_features is not None:
            raise ParameterError("target_features selects features of the data, but target_cols were given too.",
                                 "pass either target_cols (frame columns) or target_features (positions).")
        tarr = _in_memory(ss.targets)
        if not in_memory(ss.targets) or tarr is None:
            raise ParameterError(*memory)
        fnames = list(ss.feature_names or [])[:nf]
        return tarr, [fnames.index(t) if t in fnames else -1 for t in (ss.target_names or [])]
    if target_features is None:
        positions = list(range(nf))
    else:
        if isinstance(target_features, (str, bytes)) or not hasattr(target_features, "__iter__"):
            raise ParameterError(f"target_features must be a list of feature positions, got {target_features!r}.",
                                 "pass e.g. target_features=[0].")
        positions = list(target_features)
        if any(isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)) or not -nf <= c < nf
               for c in positions):
            raise ParameterError(f"target_features {positions} are not feature positions 0..{nf - 1}.",
                                 f"pass positions between 0 and {nf - 1} (known_cols are not targets).")
        positions = [int(c) % nf for c in positions]
    data = _in_memory(ss.source)
    if not in_memory(ss.source) or data is None:
        raise ParameterError(*memory)
    return np.asarray(data)[:, positions], positions


def forecast_inputs(data: Any, timesteps: int, *, opts: InputOptions, sampling_rate: int, start_index: int,
                    end_index: int | None, targets: Any, horizon: int, n_ahead: int, return_sequences: bool,
                    target_features: Any, known_cols: Any, static_cols: Any, min_timesteps: Any, scale: Any,
                    scale_method: Any, missing: Any, fill_value: Any, lags: Any,
                    time_features: Any, static_vocab: Any = None) -> tuple[SeriesSet, ForecastSpec, int, int | None]:
    """The series, the forecasting tables, the first input step (``start_index`` plus the largest lag) and
    ``min_timesteps`` (checked) of a ``make_windows`` call with forecasting inputs (see its docstring).

    Examples
    --------
    >>> import numpy as np
    >>> import statebatch as sb
    >>> ss, spec, first, _ = forecast_inputs(
    ...     np.arange(10.0), 3, opts=sb.InputOptions(), sampling_rate=1, start_index=0, end_index=None,
    ...     targets="next", horizon=1, n_ahead=2, return_sequences=False, target_features=None, known_cols=None,
    ...     static_cols=None, min_timesteps=None, scale=None, scale_method="standard", missing="error",
    ...     fill_value=0.0, lags=[1], time_features=None)
    >>> first, spec.past_names
    (1, ['feature 0', 'feature 0 lag 1'])
    """
    scale, fitted = fitted_scale(scale, scale_method)
    scale, scale_method, missing, fill_value = check_forecast_args(scale=scale, scale_method=scale_method,
                                                                   missing=missing, fill_value=fill_value)
    if min_timesteps is not None:
        min_timesteps = check_min_timesteps(min_timesteps, timesteps)
    lags = check_lags(lags)
    _check_call(sampling_rate=sampling_rate, return_sequences=return_sequences, targets=targets, opts=opts)
    known = _names(known_cols, "known_cols")
    static = _names(static_cols, "static_cols")
    vocab = given_vocab(static_vocab, static)
    if not isinstance(data, np.ndarray):
        from ..sources.frames import to_pandas_or_numpy

        data = to_pandas_or_numpy(data)
    is_frame = "pandas" in sys.modules and _is_pandas(data, "DataFrame")
    if (known or static) and not is_frame:
        raise ParameterError(f"known_cols/static_cols name DataFrame columns, but data is {type(data).__name__}.",
                             "pass a (long) DataFrame with those columns, with id_col=... and time_col=....")
    feats = None if opts.feature_cols is None else _names(opts.feature_cols, "feature_cols")
    if is_frame:
        feats = _frame_features(data, opts, known, static, feats)
    ss = as_series(data, id_col=opts.id_col, time_col=opts.time_col,
                   feature_cols=None if feats is None else list(feats) + known, target_cols=opts.target_cols,
                   dtype=opts.dtype, gaps=opts.gaps)
    ss = apply_gaps(ss, opts.gaps)
    times = check_time_features(time_features, opts.time_col, ss.index is not None)
    nf = ss.n_features - len(known)
    tarr, positions = _targets(ss, nf, target_features)
    spec = build_forecast(ss, frame=data if is_frame else None, n_features=nf, known_cols=known, static_cols=static,
                          target=tarr, target_positions=positions, timesteps=timesteps, horizon=horizon,
                          n_ahead=n_ahead, start_index=start_index, end_index=end_index, min_timesteps=min_timesteps,
                          scale=scale, scale_method=scale_method, missing=missing, fill_value=fill_value, lags=lags,
                          time_features=times, fitted_scale=fitted, id_col=opts.id_col,
                          static_vocab=vocab)
    first = start_index + (max(lags) if lags else 0)  # lags need max(lags) steps before the first input step
    if end_index is not None and end_index <= first:
        raise ParameterError(f"end_index={end_index} leaves no step after start_index plus the largest lag ({first}).",
                             "use smaller lags or a larger end_index.")
    return ss, spec, first, min_timesteps
