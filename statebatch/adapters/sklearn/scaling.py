"""Per-series scaling: :class:`SeriesScaler` standardises every series of a long frame by itself and
brings predictions back to original units by id."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin

from ...errors import DataValueError, DTypeError, ParameterError, ShapeError
from .validation import _is_frame, check_is_fitted

__all__ = ["SeriesScaler"]


# auto_wrap_output_keys=None goes to scikit-learn's _SetOutputMixin.__init_subclass__ (no pandas wrapping of a
# 3-D output); mypy, without scikit-learn stubs, sees object's __init_subclass__, hence the ignore.
class SeriesScaler(TransformerMixin, BaseEstimator,  # type: ignore[call-arg]
                   auto_wrap_output_keys=None):
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

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"id": ["a", "a", "b", "b"], "v": [1.0, 3.0, 10.0, 30.0]})
    >>> sc = SeriesScaler("id").fit(df)
    >>> sc.transform(df)["v"].tolist()  # each series by its own mean and standard deviation
    [-1.0, 1.0, -1.0, 1.0]
    >>> sc.inverse_transform_by_id([0.0, 1.0], ["a", "b"]).tolist()  # back in each series' units
    [2.0, 30.0]
    """

    def __init__(self, id_col: str = "id", *, time_col: str | None = None, columns: Sequence[str] | None = None,
                 with_mean: bool = True, with_std: bool = True):
        self.id_col = id_col
        self.time_col = time_col
        self.columns = columns
        self.with_mean = with_mean
        self.with_std = with_std

    def _frame(self, X: Any) -> Any:
        from ...sources.frames import to_pandas_or_numpy

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
        from ...sources.timeindex import check_id_kinds

        check_id_kinds(X[self.id_col], f"X[{self.id_col!r}]")
        return X

    def fit(self, X: Any, y: Any = None) -> "SeriesScaler":
        from ..._args import check_bool

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

    def set_output(self, *, transform: str | None = None) -> "SeriesScaler":
        """The output is already the (pandas) frame that came in; accepted for ``Pipeline.set_output``."""
        return self
