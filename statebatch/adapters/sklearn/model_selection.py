"""Model selection across windowing: :class:`WindowRegressor` windows inside ``fit`` and ``predict`` and
aligns the targets itself; :func:`window_scorer` scores each window against its own target; plain
scikit-learn scorers, which would compare windows with rows, are refused with that fix."""

from __future__ import annotations

from types import FrameType
from typing import Any, Callable, Sequence

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin

from ...sources.options import InputOptions
from ...errors import LengthMismatchError, ParameterError, ShapeError
from .transformers import WindowTransformer
from .validation import _check_is_fitted_pipeline, _is_pandas_rows, align_y_index, check_is_fitted

__all__ = ["WindowRegressor", "window_scorer"]


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
    options : InputOptions, optional
        The input options together, as in :class:`WindowTransformer` (``target_cols`` here is this
        estimator's own parameter: the features whose next values are the targets).

    Attributes
    ----------
    windower_ : WindowTransformer
    estimator_ : the fitted inner regressor
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import LinearRegression
    >>> x = np.arange(30.0)[:, None]
    >>> reg = WindowRegressor(LinearRegression(), timesteps=3).fit(x, x[:, 0])
    >>> reg.predict(x[:5]).round(4).tolist(), reg.align_y(x[:5], x[:5, 0]).tolist()  # per window, its target
    ([3.0, 4.0], [3.0, 4.0])
    """

    def __init__(self, estimator: Any = None, *, timesteps: int = 10, horizon: int = 1, stride: int = 1,
                 flatten: bool = True, target_cols: Sequence[Any] | None = None, id_col: str | None = None,
                 time_col: str | None = None, dtype: Any = np.float32, options: InputOptions | None = None):
        self.estimator = estimator
        self.timesteps = timesteps
        self.horizon = horizon
        self.stride = stride
        self.flatten = flatten
        self.target_cols = target_cols
        self.id_col = id_col
        self.time_col = time_col
        self.dtype = dtype
        self.options = options

    def __sklearn_clone__(self) -> "WindowRegressor":
        _check_model_selection_caller(self)  # a search with a plain scorer: refused before any fit, with the fix
        return super().__sklearn_clone__()

    def _check_params(self) -> None:
        from ..._args import check_bool

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
                                 time_col=self.time_col, dtype=self.dtype, options=self.options)

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

    def fit(self, X: Any, y: Any = None, **fit_params: Any) -> "WindowRegressor":
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

    frame: FrameType | None = sys._getframe(1)
    for _ in range(40):
        frame = frame.f_back if frame is not None else None
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

    frame: FrameType | None = sys._getframe(1)
    for _ in range(12):
        frame = frame.f_back if frame is not None else None
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

    def __init__(self, predictions: Any = None) -> None:
        self.predictions = predictions

    def fit(self, X: Any = None, y: Any = None) -> "_Fixed":
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self.predictions


def window_scorer(scoring: Any = "r2") -> Callable[..., float]:
    """A scorer for :class:`WindowRegressor` (or a pipeline ending with one): scikit-learn's scorer
    ``scoring`` (a name such as ``"neg_mean_absolute_error"``, or :func:`sklearn.metrics.make_scorer`)
    applied to the predictions and their aligned targets.

    A plain scorer compares ``predict(X)`` with ``y`` row by row, but a window's prediction belongs
    to the row ``horizon`` steps after it and the first ``timesteps + horizon - 1`` rows have none,
    so the lengths differ; pass ``scoring=window_scorer("...")`` to ``GridSearchCV``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import cross_val_score
    >>> from statebatch.sklearn import WindowRegressor, WindowSplit, window_scorer
    >>> X = np.sin(np.arange(60.0) / 3)[:, None]
    >>> cross_val_score(WindowRegressor(timesteps=4), X, X[:, 0], cv=WindowSplit(n_splits=3, history=4),
    ...                 scoring=window_scorer("r2")).round(2)
    array([0.83, 0.99, 0.99])
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
