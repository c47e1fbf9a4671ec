"""Covariate tables of forecasting windows: one static vector per series (values or category codes) and
calendar features per row, read from a frame's columns and time stamps. :func:`~statebatch.materialise.
forecast.build_forecast` joins them with the series' own columns.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .._args import plain
from ..errors import DataValueError, DTypeError, ShapeError
from ..sources.series import SeriesSet

__all__ = ["TIME_FEATURES", "check_static_constant", "static_table", "time_table"]

#: Calendar features from ``time_col``, each scaled to [-0.5, 0.5] (as gluonts' time features).
TIME_FEATURES = {
    "minute": (lambda t: t.minute, 0, 59),
    "hour": (lambda t: t.hour, 0, 23),
    "dayofweek": (lambda t: t.day_of_week, 0, 6),
    "dayofmonth": (lambda t: t.day, 1, 31),
    "dayofyear": (lambda t: t.day_of_year, 1, 366),
    "month": (lambda t: t.month, 1, 12),
    "weekofyear": (lambda t: t.isocalendar().week.to_numpy(), 1, 53),
}

def check_static_constant(values: np.ndarray, offsets: np.ndarray, ids: list, column: Any,
                          labels: Sequence[Any] | None = None) -> np.ndarray:
    """One value per series from a row-aligned column; refuse a column that varies within a series.

    NaN counts as a value: a column that is NaN in some rows of a series and not in others varies.
    ``labels``: ``values`` are codes into them (a categorical's codes, -1 missing), named in the error.

    Examples
    --------
    >>> import numpy as np
    >>> check_static_constant(np.array([1, 1, 7, 7, 7]), np.array([0, 2, 5]), ["a", "b"], "store")
    array([1, 7])
    """
    firsts = values[offsets[:-1]]
    # neighbouring rows compared (no per-row copy of each series' first value): the first row that differs
    # from the row before it, other than a series' first row, is the first that differs from its series' first
    a, b = values[1:], values[:-1]
    changed = a != b
    if a.dtype.kind in "fcO":  # NaN next to NaN is no change
        changed &= ~(_isnan(a) & _isnan(b))
    rows = np.flatnonzero(changed) + 1
    rows = rows[~np.isin(rows, offsets)]
    if len(rows):
        row = int(rows[0])
        k = int(np.searchsorted(offsets, row, side="right") - 1)

        def shown(v: Any) -> Any:
            return v if labels is None else (labels[v] if v >= 0 else np.nan)
        raise DataValueError(
            f"static column {column!r} varies within series {plain(ids[k])!r} (step {row - int(offsets[k])} holds "
            f"{plain(shown(values[row]))!r}, its first step {plain(shown(firsts[k]))!r}); a static covariate has one "
            "value per series.",
            "pass columns that vary over time as known_cols (known in advance) or feature_cols (observed), "
            "or fix the data so each series holds one value.")
    return firsts


def _isnan(a: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "fc":
        return np.isnan(a)
    if a.dtype == object:
        import pandas as pd

        return pd.isna(a)
    return np.zeros(a.shape, dtype=bool)


def static_table(df: Any, cols: list, ss: SeriesSet, float_dtype: np.dtype,
                 categorical: Sequence[Any] = (), vocab_given: Any = None) -> tuple[np.ndarray, list, dict]:
    """``(n_series, S)``: numeric columns as values, the others as integer codes (vocabulary kept).

    ``categorical``: columns coded as categories even when numeric (the id column: a group id is a label,
    not a magnitude, as pytorch-forecasting's group ids among the static categoricals). ``vocab_given``:
    ``{column: categories}`` fitted elsewhere (the training windows), so that a frame with fewer series
    keeps the training codes; a value it lacks is refused.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from statebatch.sources.series import as_series
    >>> df = pd.DataFrame({"id": [1, 1, 2], "v": [0.5, 0.7, 0.1], "shop": ["b", "b", "a"], "size": [3, 3, 9]})
    >>> ss = as_series(df, id_col="id", feature_cols=["v"])
    >>> table, names, vocab = static_table(df, ["shop", "size"], ss, np.dtype("float32"))
    >>> table, names, vocab
    (array([[1., 3.],
           [0., 9.]], dtype=float32), ['shop', 'size'], {'shop': ['a', 'b']})
    """
    import pandas as pd

    order = ss.row_order
    n = ss.n_series
    if not cols:
        return np.zeros((n, 0), dtype=float_dtype), [], {}
    columns: list[np.ndarray] = []
    vocab: dict = {}
    numeric: list[bool] = []
    for c in cols:
        col = df[c]
        kind = getattr(col.dtype, "kind", "O")
        pd_cat = isinstance(col.dtype, pd.CategoricalDtype)
        is_cat = pd_cat or kind not in "iufb" or c in categorical
        # a pandas categorical is read as its codes (one small integer a row, no object per row)
        raw = col.cat.codes.to_numpy() if pd_cat else col.to_numpy() if not is_cat else col.astype(object).to_numpy()
        if order is not None:
            raw = raw[order]
        if len(raw) != int(ss.offsets[-1]):
            raise ShapeError(f"static column {c!r} has {len(raw)} rows for {int(ss.offsets[-1])} data rows.",
                             "pass static columns of the same frame as the data.")
        firsts = check_static_constant(raw, ss.offsets, ss.ids, c, labels=col.cat.categories if pd_cat else None)
        if pd_cat:
            if (firsts < 0).any():
                k = int(np.flatnonzero(firsts < 0)[0])
                raise DataValueError(f"static column {c!r} is missing for series {plain(ss.ids[k])!r}.",
                                     "fill it (e.g. with an 'unknown' category) or drop the series.")
            if vocab_given is not None and str(c) in vocab_given:  # the training codes, from the labels
                cats = list(vocab_given[str(c)])
                codes = _codes_in(np.asarray(col.cat.categories, dtype=object)[firsts], cats, c, ss)
            else:
                cats, codes = list(col.cat.categories), firsts.astype(np.int64)  # the categories' own codes
            vocab[str(c)] = cats
            columns.append(codes.astype(np.int64))
            numeric.append(False)
        elif is_cat:
            if pd.isna(firsts).any():
                k = int(np.flatnonzero(pd.isna(firsts))[0])
                raise DataValueError(f"static column {c!r} is missing for series {plain(ss.ids[k])!r}.",
                                     "fill it (e.g. with an 'unknown' category) or drop the series.")
            if vocab_given is not None and str(c) in vocab_given:
                cats = list(vocab_given[str(c)])
                codes = _codes_in(firsts, cats, c, ss)
            else:
                codes, uniq = pd.factorize(firsts, sort=True)
                cats = list(uniq)
            vocab[str(c)] = cats
            columns.append(codes.astype(np.int64))
            numeric.append(False)
        else:
            v = firsts.astype(np.float64)
            if not np.isfinite(v).all():
                k = int(np.flatnonzero(~np.isfinite(v))[0])
                raise DataValueError(f"static column {c!r} is NaN/inf for series {plain(ss.ids[k])!r}.",
                                     "fill it, or drop the series.")
            columns.append(v)
            numeric.append(True)
    # one array: integer codes when every column is categorical, else the float dtype (codes are exact
    # small integers in it)
    dt = np.int64 if not any(numeric) else float_dtype
    return np.stack(columns, axis=1).astype(dt), [str(c) for c in cols], vocab


def _codes_in(firsts: np.ndarray, cats: list, col: Any, ss: SeriesSet) -> np.ndarray:
    """Codes of each series' value in a given vocabulary; a value it lacks is refused, naming a series."""
    import pandas as pd

    codes = np.asarray(pd.Categorical(firsts, categories=cats).codes, dtype=np.int64)
    if (codes < 0).any():
        bad = np.flatnonzero(codes < 0)
        values = list(dict.fromkeys(plain(v) for v in firsts[bad]))[:5]
        raise DataValueError(f"static column {col!r} holds {values} (series {plain(ss.ids[int(bad[0])])!r}), not in "
                             "static_vocab: the model has no code for them.",
                             "drop those series, or build the windows without static_vocab (new codes for every value).")
    return codes


def time_table(ss: SeriesSet, names: list[str], float_dtype: np.dtype) -> np.ndarray:
    """Calendar features of every row, ``(rows, len(names))``, each scaled to [-0.5, 0.5].

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from statebatch.sources.series import as_series
    >>> ss = as_series(pd.Series([1.0, 2.0], index=pd.to_datetime(["2024-01-01", "2024-01-07"])))
    >>> time_table(ss, ["dayofweek"], np.dtype("float32"))[:, 0]  # Monday, Sunday
    array([-0.5,  0.5], dtype=float32)
    """
    import pandas as pd

    assert ss.index is not None  # time features were checked to have time stamps
    stamps = np.concatenate([np.asarray(ix) for ix in ss.index])
    t = None
    if stamps.dtype.kind == "M" or stamps.dtype == object:  # object: time zone aware stamps
        try:
            t = pd.DatetimeIndex(stamps)
        except (TypeError, ValueError):
            t = None
    if t is None:
        raise DTypeError(f"time_features need datetime time stamps, got {stamps.dtype} values.",
                         "convert the time column first: df[time_col] = pd.to_datetime(df[time_col]).")
    cols = []
    for n in names:
        fn, lo, hi = TIME_FEATURES[n]
        v = np.asarray(fn(t), dtype=np.float64)
        cols.append((v - lo) / (hi - lo) - 0.5)
    return np.stack(cols, axis=1).astype(float_dtype)
