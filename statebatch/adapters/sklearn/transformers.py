"""The transformers: :class:`WindowTransformer` (windows), :class:`StatefulTransformer` (lanes for a
stateful network) and :func:`transform_xy` (a fitted pipeline's windows with their targets, from one plan)."""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import validate_data

from ..._args import check_choice
from ...sources.options import InputOptions
from ...errors import DataValueError, DTypeError, LengthMismatchError, ParameterError, ShapeError, StatebatchError
from ...results.stateful import Arranged, arrange_stateful
from ...results.windows import make_windows
from .validation import (_check_column_args, _check_finite, _check_is_fitted_pipeline, _check_params, _check_y,
                         _is_frame,
                         _is_pandas_rows, _refuse_nested, _report, _shift_targets, _with_target_columns,
                         align_y_index, check_is_fitted)

__all__ = ["WindowTransformer", "StatefulTransformer", "transform_xy"]


class _SeriesInput:
    """Shared input handling: wide arrays/frames via sklearn's validate_data, long frames by id.

    The input options (``id_col``, ``time_col``, ``dtype`` as keywords, the rest in ``options``) are
    stored as given in ``__init__`` (scikit-learn's contract: ``get_params``/``clone`` see them) and
    resolved into one :class:`~statebatch.InputOptions` in ``fit`` (``input_options_``).
    """

    id_col: str | None
    time_col: str | None
    dtype: Any
    options: InputOptions | None
    input_options_: InputOptions

    def _keep_params(self, **params: Any) -> None:
        """Store the constructor's parameters as given, under their own names (scikit-learn's contract:
        ``get_params`` reads them back by the ``__init__`` signature; they are checked in ``fit``)."""
        for name, value in params.items():
            setattr(self, name, value)

    def _resolve_inputs(self) -> InputOptions:
        """``options`` with the keywords given; ``dtype`` left at its default (float32) defers to
        ``options.dtype``. Target columns are refused: a transformer's targets are its ``y``."""
        given: dict[str, Any] = {"id_col": self.id_col, "time_col": self.time_col}
        if self.dtype is not np.float32:
            given["dtype"] = self.dtype
        opts = InputOptions.resolve(self.options, **given)
        if opts.dtype is None:
            opts = opts.replace(dtype=np.float32)
        if opts.target_cols is not None:
            raise ParameterError(f"options.target_cols={list(opts.target_cols)} has no use here: the targets of "
                                 f"{type(self).__name__} are the y given to transform_xy/arrange.",
                                 "pass y=[column names] (or the targets) to transform_xy, and options without "
                                 "target_cols.")
        try:
            np.dtype(opts.dtype)
        except TypeError:
            raise ParameterError(f"dtype={opts.dtype!r} is not a numpy dtype.", "pass e.g. dtype='float32'.") from None
        return opts

    def _check_input(self, X: Any, reset: bool) -> Any:
        from ...sources.frames import to_pandas_or_numpy

        if reset:
            _check_params(self)
            self.input_options_ = self._resolve_inputs()
        else:
            check_is_fitted(self)
        opts = self.input_options_
        _refuse_nested(X, type(self).__name__)
        X = to_pandas_or_numpy(X, "X")
        if opts.id_col is not None or opts.time_col is not None:
            return self._check_long(X, opts, reset)
        if opts.feature_cols is not None:
            raise ParameterError(f"options.feature_cols={list(opts.feature_cols)} selects columns of a long frame "
                                 "(with id_col/time_col); this X is one series.",
                                 "select the columns first (X[cols]), or pass id_col/time_col for a long frame.")
        return self._check_wide(X, opts, reset)

    def _check_long(self, X: Any, opts: InputOptions, reset: bool) -> Any:
        """A long frame: its id/time columns exist, its feature columns are those of fit; NaN and inf
        checked separately (``make_windows`` gets ``allow_nan`` for both, see :func:`_check_finite`)."""
        if not _is_frame(X):
            raise ParameterError(f"id_col/time_col need a pandas DataFrame, got {type(X).__name__}.",
                                 "pass the long frame, or drop id_col/time_col.")
        _check_column_args(X, id_col=opts.id_col, time_col=opts.time_col)
        if reset:
            keep = (opts.id_col, opts.time_col)
            cols = ([c for c in X.columns if c not in keep] if opts.feature_cols is None
                    else list(opts.feature_cols))
            absent = [c for c in cols if c not in X.columns or c in keep]
            if absent:
                raise ParameterError(f"feature_cols {absent} are not value columns of X (columns: {list(X.columns)}).",
                                     "name columns of X other than the id and time columns.")
            self.feature_names_in_ = np.asarray(X.columns, dtype=object)
            self.n_features_in_ = X.shape[1]
            self._features = cols
        else:
            missing = [c for c in self._features if c not in X.columns]
            if missing:
                raise ShapeError(f"columns {missing} seen in fit are missing.", "pass the same columns as in fit.")
        _check_finite(X[self._features], "X", opts)
        return X

    def _check_wide(self, X: Any, opts: InputOptions, reset: bool) -> np.ndarray:
        """One series (an array or a wide frame): scikit-learn's ``validate_data``, its errors re-raised as
        statebatch errors of the same kind; NaN and inf let through only as the options say."""
        _check_one_series(X, type(self).__name__)
        if _is_pandas_rows(X):  # one series: a time index must be in time order (as make_windows requires)
            from ...sources.series import _check_time_index

            _check_time_index(X.index, "X")
        finite = not (opts.allow_nan or opts.allow_inf)  # else checked below, NaN and inf apart
        try:
            Xv = validate_data(self, X, reset=reset, dtype=opts.dtype, ensure_min_samples=1,
                               **({} if finite else {"ensure_all_finite": False}))
        except StatebatchError:
            raise
        except TypeError as exc:  # scikit-learn's own checks, re-raised as statebatch errors of the same kind
            raise DTypeError(str(exc), "pass X as numbers (a numeric array or DataFrame).") from None
        except ValueError as exc:  # feature count, rank, NaN, empty: the message is scikit-learn's
            text = str(exc)
            if "could not convert" in text or "dtype" in text.lower() and "numeric" in text.lower():
                raise DTypeError(text, "pass X as numbers (a numeric array or DataFrame); encode text first.") from None
            if "NaN" in text:
                raise DataValueError(text.split("\n")[0], "fill or drop the missing values first (e.g. "
                                     "df.interpolate()); a recurrent network turns them into a NaN loss.") from None
            if "infinity" in text:  # scikit-learn names inf "infinity"; an inf is no missing value
                raise DataValueError(text.split("\n")[0], "replace the infinities (a division by zero, a log of 0; e.g. "
                                     "np.clip or np.nan_to_num); a recurrent network turns them into an inf or NaN "
                                     "loss.") from None
            if "0 sample(s)" in text:
                raise DataValueError(text, "pass at least one row.") from None
            raise ShapeError(text, "pass X as a 2-D array (steps, features) with the features it was fitted "
                             "on.") from None
        if not finite:
            _check_finite(Xv, "X", opts)
        if reset:
            names = getattr(self, "feature_names_in_", None)
            self._features = list(names) if names is not None else [f"x{i}" for i in range(Xv.shape[1])]
        return Xv

    def _series_kwargs(self) -> dict:
        """What ``make_windows``/``arrange_stateful`` take of the input options (NaN and inf apart)."""
        opts = self.input_options_
        kw: dict[str, Any] = {"allow_nan": opts.allow_nan, "allow_inf": opts.allow_inf}
        if opts.id_col is None and opts.time_col is None:
            return kw
        return {**kw, "id_col": opts.id_col, "time_col": opts.time_col, "feature_cols": self._features,
                "dtype": opts.dtype, "gaps": opts.gaps}

    def _check_y_finite(self, X: Any, y: Any) -> None:
        """The targets (values, or columns of a frame ``X``) hold NaN/inf only as the options allow."""
        if isinstance(y, (str, list)) and not isinstance(y, np.ndarray) and _is_frame(X):
            y = X[[y] if isinstance(y, str) else y]
        _check_finite(y, "y", self.input_options_)

    @property
    def _long(self) -> bool:
        """Fitted on a long frame (many series by id and/or time column)."""
        return self.input_options_.id_col is not None or self.input_options_.time_col is not None

    def set_output(self, *, transform: str | None = None) -> Any:
        """Accepted so that ``Pipeline.set_output`` can configure the other steps; the output of this
        step stays a 3-D numpy array, which has no pandas/polars form."""
        if transform not in (None, "default", "pandas", "polars"):
            raise ParameterError(f"transform={transform!r} is not an output format.",
                                 "pass 'default', 'pandas' or 'polars'.")
        return self

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()  # type: ignore[misc]  # a mixin: BaseEstimator is next in the MRO
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
            if not self._long:
                return np.asarray(input_features, dtype=object)
        return np.asarray(self._features, dtype=object)


def _check_one_series(X: Any, owner: str) -> None:
    """A list of several series (e.g. one array per id) is not one series: numpy would fail with "an
    inhomogeneous shape" (different lengths) or scikit-learn with "dim 3", neither saying what to do."""
    if not isinstance(X, (list, tuple)) or len(X) < 2:
        return
    dims, lengths = [], []
    for item in X:
        if isinstance(item, np.ndarray) or _is_frame(item) or _is_pandas_rows(item):
            shape = np.shape(item)
        elif isinstance(item, (list, tuple)):
            nested = bool(item) and isinstance(item[0], (list, tuple, np.ndarray))
            shape = (len(item), 1) if nested else (len(item),)
        else:
            return  # scalars: one univariate series given as a list
        dims.append(len(shape))
        lengths.append(shape[0] if shape else 1)
    many, ragged = max(dims) >= 2, len(set(lengths)) > 1
    if not (many or ragged):
        return
    shown = ", ".join(str(n) for n in lengths[:8]) + (", ..." if len(lengths) > 8 else "")
    what = (f"a list of {len(X)} series" if many else f"a list of {len(X)} sequences (several series, or rows of "
            "different widths)") + (f" of different lengths ({shown})" if ragged else f" ({lengths[0]} steps each)")
    raise ShapeError(f"X is {what}: {owner} takes one series per call, an array or wide DataFrame of shape "
                     "(steps, features).",
                     f"transform each series in its own call, or pass all series as one long DataFrame with an id "
                     f"and a time column: {owner}(..., id_col='id', time_col='time') (windows never cross series).")


# auto_wrap_output_keys=None goes to scikit-learn's _SetOutputMixin.__init_subclass__ (no pandas wrapping of a
# 3-D output); mypy, without scikit-learn stubs, sees object's __init_subclass__, hence the ignore.
class WindowTransformer(_SeriesInput, TransformerMixin, BaseEstimator,  # type: ignore[call-arg]
                        auto_wrap_output_keys=None):
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
    options : InputOptions, optional
        The input options together (:class:`~statebatch.InputOptions`: ``id_col``, ``time_col``,
        ``feature_cols`` of a long frame, ``dtype``, ``allow_nan``, ``allow_inf``, ``gaps``); a keyword
        given as well must not repeat one with another value (``dtype`` left at float32 defers to
        ``options.dtype``). ``target_cols`` is refused: the targets are the ``y`` of ``transform_xy``.

    Attributes
    ----------
    n_features_in_ : int
    feature_names_in_ : ndarray of str (when fitted on a DataFrame)
    input_options_ : InputOptions
        The input options in effect (the keywords and ``options`` resolved in ``fit``).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(20.0).reshape(10, 2)  # 10 steps, 2 features
    >>> wt = WindowTransformer(timesteps=3).fit(X)
    >>> wt.transform(X).shape  # the last step has no next-step target: 7 windows
    (7, 3, 2)
    >>> wt.transform_y(X, np.arange(10.0)).tolist()  # y one step after each window's last row
    [3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0]
    """

    def __init__(self, timesteps: int = 10, *, stride: int = 1, sampling_rate: int = 1, horizon: int = 1,
                 id_col: str | None = None, time_col: str | None = None, dtype: Any = np.float32,
                 options: InputOptions | None = None):
        self._keep_params(timesteps=timesteps, stride=stride, sampling_rate=sampling_rate, horizon=horizon,
                          id_col=id_col, time_col=time_col, dtype=dtype, options=options)

    def fit(self, X: Any, y: Any = None) -> "WindowTransformer":
        if isinstance(self.horizon, bool) or not isinstance(self.horizon, (int, np.integer)) or self.horizon < 0:
            raise ParameterError(f"horizon must be an integer >= 0, got {self.horizon!r}.", "pass horizon=0 or more.")
        self._check_input(X, reset=True)
        return self

    def _windows(self, X: Any, y: Any = None) -> Any:
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
        from ...sources.frames import to_pandas_or_numpy

        check_is_fitted(self)
        X, y = to_pandas_or_numpy(X, "X"), to_pandas_or_numpy(y, "y")
        X, y = (np.asarray(v) if not hasattr(v, "__len__") and hasattr(v, "__array__") else v for v in (X, y))
        y = _check_y(X, y)
        self._check_y_finite(X, y)
        if _is_frame(X) and self._long:
            # The frame is reordered (by series, by time): y travels with it as target columns, so
            # that the target of a window is read in time order, never in the input's row order.
            frame, cols = _with_target_columns(X, y)
            w = make_windows(frame, self.timesteps, stride=self.stride, sampling_rate=self.sampling_rate,
                             target_cols=cols, targets="next" if self.horizon else "aligned",
                             horizon=max(self.horizon, 1), align="last", **self._series_kwargs())
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


class StatefulTransformer(_SeriesInput, TransformerMixin, BaseEstimator,  # type: ignore[call-arg]
                        auto_wrap_output_keys=None):
    """Arranges series into lanes for a stateful RNN (see :func:`arrange_stateful`).

    :meth:`transform` returns X ``(n_batches * batch_size, timesteps, features)`` in lane order;
    :meth:`arrange` returns the full :class:`~statebatch.Arranged` result (targets, weights, resets,
    ``unbatch``), which a pipeline's last step cannot pass on.

    Parameters
    ----------
    timesteps, batch_size : int
        Chunk length and lanes per batch (see :func:`~statebatch.arrange_stateful`).
    horizon : int
        Steps from an input step to its target (>= 1; see :meth:`arrange`).
    tail, return_sequences
        As in :func:`~statebatch.arrange_stateful` (``tail``: the last chunk of a lane shorter than
        ``timesteps`` is padded, dropped or refused).
    remainder : deprecated
        The old name of ``tail`` (a FutureWarning in ``fit``; removed in 0.4).
    id_col, time_col, dtype, options
        The input options, as in :class:`WindowTransformer` (resolved in ``fit`` into
        ``input_options_``).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(20.0).reshape(10, 2)
    >>> st = StatefulTransformer(timesteps=2, batch_size=2).fit(X)
    >>> Xs, ys, weights = st.transform_xy(X, np.arange(10.0))
    >>> Xs.shape, ys.shape, weights.shape  # 3 batches of 2 lanes, chunks of 2 steps
    ((6, 2, 2), (6, 2, 1), (6, 2))
    """

    def __init__(self, timesteps: int = 10, batch_size: int = 32, *, horizon: int = 1, tail: str = "pad",
                 return_sequences: bool = True, id_col: str | None = None, time_col: str | None = None,
                 dtype: Any = np.float32, options: InputOptions | None = None, remainder: str = "deprecated"):
        self._keep_params(timesteps=timesteps, batch_size=batch_size, horizon=horizon, tail=tail,
                          return_sequences=return_sequences, id_col=id_col, time_col=time_col, dtype=dtype,
                          options=options, remainder=remainder)

    def fit(self, X: Any, y: Any = None) -> "StatefulTransformer":
        self._check_input(X, reset=True)
        self.tail_ = self.tail
        if self.remainder != "deprecated":  # the old name, for one release
            warnings.warn("StatefulTransformer(remainder=...) is now tail=... (the same values); remainder is "
                          "removed in 0.4.", FutureWarning, stacklevel=2)
            if self.tail != "pad" and self.tail != self.remainder:
                raise ParameterError(f"tail={self.tail!r} and remainder={self.remainder!r} disagree.",
                                     "pass tail only (remainder is its old name).")
            self.tail_ = self.remainder
        check_choice("tail", self.tail_, ("pad", "drop", "error"))
        return self

    def arrange(self, X: Any, y: Any = None) -> Arranged:
        """The :class:`~statebatch.Arranged` lanes of ``X``.

        The target of step ``t`` is ``horizon`` steps later (the convention of
        :func:`~statebatch.make_windows` and :class:`WindowTransformer`): of ``X`` itself when ``y``
        is None (``targets="next"``), else ``y[t + horizon]`` with ``y`` aligned row by row with ``X``.
        Either way the last ``horizon`` steps of each series have no target and are not arranged,
        so :meth:`transform`, :meth:`transform_xy` and this plan always have the same lanes.
        """
        from ...sources.frames import to_pandas_or_numpy

        check_is_fitted(self)
        data = self._check_input(X, reset=False)
        y = to_pandas_or_numpy(y, "y")
        if y is not None:
            y = _check_y(X if _is_frame(X) else data, y)
            self._check_y_finite(X if _is_frame(X) else data, y)
        kw: dict[str, Any] = dict(horizon=self.horizon, tail=self.tail_,
                                  return_sequences=self.return_sequences)
        if y is None:
            return arrange_stateful(data, self.timesteps, self.batch_size, targets="next", **kw,
                                    **self._series_kwargs())
        if self._long:
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
                                tail=self.tail_, return_sequences=self.return_sequences,
                                **self._series_kwargs())

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


def transform_xy(pipeline: Any, X: Any, y: Any) -> tuple[np.ndarray, ...]:
    """Run a fitted pipeline whose last step windows/arranges, returning aligned ``(X, y[, w])``.

    The earlier steps transform X (e.g. a scaler fitted on the training rows); the last step
    windows it and its targets together, so X and y cannot be misaligned.

    Returns
    -------
    ``(X, y)`` from a :class:`WindowTransformer` (``(n_windows, timesteps, features)`` and the target of
    each window), ``(X, y, sample_weight)`` in lane order from a :class:`StatefulTransformer`.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from statebatch.sklearn import WindowTransformer, transform_xy
    >>> X, y = np.arange(12.0).reshape(6, 2), np.arange(6.0) * 10
    >>> pipe = make_pipeline(StandardScaler(), WindowTransformer(timesteps=3)).fit(X)
    >>> Xw, yw = transform_xy(pipe, X, y)
    >>> Xw.shape, yw.tolist()  # the target of each window is y one step after its last row
    ((3, 3, 2), [30.0, 40.0, 50.0])
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
    from ...sources.frames import to_pandas_or_numpy

    X, y = to_pandas_or_numpy(X, "X"), to_pandas_or_numpy(y, "y")
    if y is not None and not isinstance(y, (str, list)):
        # pair y with X's rows by label before the earlier steps drop X's index (a scaler returns an array)
        y = align_y_index(X, y)
        if _is_pandas_rows(y) and _is_pandas_rows(X):
            y = y.to_numpy()
    Xt = pipeline[:-1].transform(X)
    return last.transform_xy(Xt, y)
