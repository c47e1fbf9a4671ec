"""Normalise every supported input into a list of 2-D ``(steps, features)`` series.

Accepted inputs: 1-D / 2-D numpy arrays, pandas Series and wide DataFrames (time-ordered index
checked), a list of arrays (many series), and a long DataFrame with a series-id column (and an
optional time column to sort by). Single arrays are never copied unless a dtype change is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from .errors import DataValueError, DTypeError, OrderError, ParameterError, ShapeError


@dataclass
class SeriesSet:
    """Series ready for planning.

    Attributes
    ----------
    arrays : list of ndarray, each ``(steps_i, features)``
    ids : identifiers of the series (list index, or the id column's values)
    feature_names : column names when the input was a DataFrame
    targets : optional list of target arrays, aligned row by row with ``arrays``
    """

    arrays: list[np.ndarray]
    ids: list[Any]
    feature_names: list[str] | None = None
    targets: list[np.ndarray] | None = None
    target_names: list[str] | None = None
    index: list[Any] | None = field(default=None, repr=False)  # time index per series, if any
    # When the series are consecutive slices of one array (a long frame sorted once), keep it so
    # that planning over all series needs no second concatenation.
    base: np.ndarray | None = field(default=None, repr=False)
    target_base: np.ndarray | None = field(default=None, repr=False)

    @property
    def lengths(self) -> np.ndarray:
        return np.array([len(a) for a in self.arrays], dtype=np.int64)

    @property
    def n_features(self) -> int:
        return int(self.arrays[0].shape[1])

    def concatenated(self) -> tuple[np.ndarray, np.ndarray]:
        """One base array and the row offset of each series in it (no copy for one series)."""
        offsets = np.concatenate([[0], np.cumsum(self.lengths)]).astype(np.int64)
        if self.base is not None:
            return self.base, offsets
        if len(self.arrays) == 1:
            return self.arrays[0], offsets
        return np.concatenate(self.arrays, axis=0), offsets

    def next_value_base(self, base: Any, target_cols: Any, target_features: Any) -> Any:
        """Where ``targets="next"`` reads from: the target columns, chosen features, or the data."""
        if target_cols is not None:
            return self.concatenated_targets()
        if target_features is not None:
            return base[:, list(target_features)]  # a copy of the target columns only
        return base

    def concatenated_targets(self) -> np.ndarray | None:
        if self.targets is None:
            return None
        if self.target_base is not None:
            return self.target_base
        if len(self.targets) == 1:
            return self.targets[0]
        return np.concatenate(self.targets, axis=0)


def _is_pandas(obj: Any, name: str) -> bool:
    mod = type(obj).__module__
    return mod.startswith("pandas") and type(obj).__name__ == name


def _is_dask(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] in ("dask", "dask_expr")


def dtype_error(arr: np.ndarray, what: str) -> DTypeError | None:
    """The error for an array a network cannot use (object/ragged, strings), else ``None``."""
    if arr.dtype == object:
        return DTypeError(
            f"{what} has dtype object (shape {arr.shape}): ragged rows or mixed types, which a network cannot use.",
            "build a numeric array; for sequences of different lengths pass a list of arrays (one per series) "
            "and pad or bucket them (statebatch.bucket_batches) instead of nesting lists.",
        )
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        return DTypeError(
            f"{what} has non-numeric dtype {arr.dtype} (shape {arr.shape}).",
            "encode text/categories as numbers (integers, one-hot columns) first.",
        )
    return None


def _check_numeric(arr: np.ndarray, what: str) -> None:
    problem = dtype_error(arr, what)
    if problem:
        raise problem


def _as_2d(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.ndim == 1:
        return arr.reshape(-1, 1)  # a view: one feature
    if arr.ndim == 2:
        return arr
    if arr.ndim == 0:
        raise ShapeError(
            f"{what} is a scalar; a series needs at least one time step.",
            "pass a 1-D array (steps,) or a 2-D array (steps, features).",
        )
    raise ShapeError(
        f"{what} has {arr.ndim} dimensions, shape {arr.shape}; a raw series is (steps,) or "
        "(steps, features).",
        "pass the raw series, not windows: if this is already [samples, timesteps, features], "
        "feed it to the model directly (or use statebatch.validate on it); for many series pass "
        "a list of 2-D arrays.",
    )


def _array(obj: Any, what: str, dtype: Any = None) -> np.ndarray:
    if isinstance(obj, np.ndarray):
        arr = obj if dtype is None else obj.astype(dtype, copy=False)
    else:
        try:
            arr = np.asarray(obj, dtype=dtype)
        except (ValueError, TypeError) as exc:  # ragged nested lists
            raise DTypeError(
                f"{what} could not be turned into one array ({exc}).",
                "for series of different lengths pass a list of numpy arrays, one per series.",
            ) from None
    _check_numeric(arr, what)
    return arr


def _check_time_index(index: Any, what: str) -> None:
    """A pandas index that carries time must be strictly increasing."""
    import pandas as pd

    if isinstance(index, pd.RangeIndex):
        return
    if not (isinstance(index, (pd.DatetimeIndex, pd.TimedeltaIndex, pd.PeriodIndex))
            or np.issubdtype(index.dtype, np.number)):
        return  # a label index carries no time order we can check
    if index.has_duplicates:
        dup = index[index.duplicated()][:3].tolist()
        raise OrderError(
            f"{what} has duplicate time stamps in its index (e.g. {dup}).",
            "aggregate or drop duplicates first, e.g. df.groupby(level=0).mean().",
        )
    if not index.is_monotonic_increasing:
        raise OrderError(
            f"{what} has an index that is not sorted in time; windows would mix past and future.",
            "sort it first: df = df.sort_index().",
        )


def _frame_columns(df: Any, cols: Sequence[str] | None, exclude: Sequence[str], what: str):
    if cols is None:
        cols = [c for c in df.columns if c not in exclude]
    else:
        cols = list(cols)
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise ParameterError(
                f"columns {missing} are not in {what} (columns: {list(df.columns)}).",
                "pass existing column names.",
            )
    bad = [c for c in cols if not (np.issubdtype(df[c].dtype, np.number) or df[c].dtype == bool)]
    if bad:
        raise DTypeError(
            f"{what} has non-numeric columns {bad} (dtypes {[str(df[c].dtype) for c in bad]}).",
            "drop them with feature_cols=[...] or encode them as numbers first.",
        )
    if not cols:
        raise DataValueError(f"{what} has no feature columns.", "pass feature_cols=[...].")
    return cols


def as_series(
    data: Any,
    *,
    id_col: str | None = None,
    time_col: str | None = None,
    feature_cols: Sequence[str] | None = None,
    target_cols: Sequence[str] | None = None,
    dtype: Any = None,
    what: str = "data",
) -> SeriesSet:
    """Turn any supported input into a :class:`SeriesSet` (see module docstring)."""
    import sys

    from .store import RowStore, StoredSeries

    if isinstance(data, StoredSeries):  # many series prepared out of core (statebatch.dask)
        return data.series_set()
    if isinstance(data, RowStore):  # one series out of core
        if data.ndim != 2:
            raise ShapeError(f"{what} store has shape {data.shape}; a series store is (steps, features).",
                             "store the raw series as a 2-D array.")
        _check_numeric(np.empty(0, dtype=data.dtype), what)
        return _checked(SeriesSet([data], [0], base=data), what)
    if _is_dask(data):  # prepared into a temporary sharded store by Dask tasks, then read batch by batch
        from .dask import as_stored

        prepared = as_stored(data, id_col=id_col, time_col=time_col, feature_cols=feature_cols,
                             target_cols=target_cols, dtype=dtype)
        return as_series(prepared, what=what)
    if "pandas" in sys.modules and _is_pandas(data, "DataFrame"):
        return _from_frame(data, id_col, time_col, feature_cols, target_cols, dtype, what)
    if id_col is not None or time_col is not None or target_cols is not None:
        raise ParameterError(
            f"id_col/time_col/target_cols only apply to a pandas DataFrame, got {type(data).__name__}.",
            "pass a DataFrame, or drop those arguments.",
        )
    if "pandas" in sys.modules and _is_pandas(data, "Series"):
        _check_time_index(data.index, what)
        arr = _as_2d(_array(data.to_numpy(), what, dtype), what)
        return _checked(SeriesSet([arr], [data.name if data.name is not None else 0],
                                  feature_names=[str(data.name)] if data.name is not None else None,
                                  index=[data.index]), what)
    if isinstance(data, (list, tuple)) and data and all(
        isinstance(a, np.ndarray) or _is_pandas(a, "DataFrame") or _is_pandas(a, "Series")
        or (isinstance(a, (list, tuple)) and a and isinstance(a[0], (list, tuple, np.ndarray)))
        for a in data
    ):
        parts = [as_series(a, feature_cols=feature_cols, dtype=dtype, what=f"{what}[{i}]")
                 if (_is_pandas(a, "DataFrame") or _is_pandas(a, "Series"))
                 else SeriesSet([_as_2d(_array(a, f"{what}[{i}]", dtype), f"{what}[{i}]")], [i])
                 for i, a in enumerate(data)]
        arrays = [p.arrays[0] for p in parts]
        nf = {a.shape[1] for a in arrays}
        if len(nf) > 1:
            raise ShapeError(
                f"the series in {what} have different feature counts {sorted(nf)}.",
                "give every series the same columns (features), in the same order.",
            )
        dts = {a.dtype for a in arrays}
        if len(dts) > 1 and dtype is None:
            common = np.result_type(*dts)
            arrays = [a.astype(common, copy=False) for a in arrays]
        return _checked(SeriesSet(arrays, list(range(len(arrays))),
                                  feature_names=parts[0].feature_names), what)
    arr = _as_2d(_array(data, what, dtype), what)
    return _checked(SeriesSet([arr], [0]), what)


def _checked(s: SeriesSet, what: str) -> SeriesSet:
    if not s.arrays or all(len(a) == 0 for a in s.arrays):
        raise DataValueError(f"{what} is empty (no time steps).", "pass at least one non-empty series.")
    return s


def _from_frame(df, id_col, time_col, feature_cols, target_cols, dtype, what) -> SeriesSet:
    for c, name in ((id_col, "id_col"), (time_col, "time_col")):
        if c is not None and c not in df.columns:
            raise ParameterError(
                f"{name}={c!r} is not a column of {what} (columns: {list(df.columns)}).",
                f"pass the name of the column that holds the {'series id' if name == 'id_col' else 'time'}.",
            )
    exclude = [c for c in (id_col, time_col) if c is not None]
    cols = _frame_columns(df, feature_cols, exclude, what)
    tcols = _frame_columns(df, target_cols, exclude, what) if target_cols is not None else None

    if id_col is None:
        if time_col is not None:
            t = df[time_col]
            if t.duplicated().any():
                raise OrderError(f"{what}[{time_col!r}] has duplicate time stamps.",
                                 "aggregate or drop duplicates first.")
            if not t.is_monotonic_increasing:
                df = df.sort_values(time_col, kind="stable")
        else:
            _check_time_index(df.index, what)
        arr = _as_2d(_array(df[cols].to_numpy(), what, dtype), what)
        targets = None if tcols is None else [_array(df[tcols].to_numpy(), what, dtype)]
        return _checked(SeriesSet([arr], [0], feature_names=[str(c) for c in cols], targets=targets,
                                  target_names=None if tcols is None else [str(c) for c in tcols],
                                  index=[df[time_col].to_numpy() if time_col else df.index]), what)

    import pandas as pd

    codes, uniques = pd.factorize(df[id_col], sort=False)
    if (codes < 0).any():
        raise DataValueError(f"{what}[{id_col!r}] has missing series ids.", "fill or drop those rows.")
    if time_col is not None:
        tvals = df[time_col].to_numpy()
        order = np.lexsort((tvals, codes))  # by series, then time; stable
        st, sc = tvals[order], codes[order]
        same = sc[1:] == sc[:-1]
        if np.any(same & (st[1:] == st[:-1])):
            raise OrderError(f"{what} has duplicate ({id_col}, {time_col}) pairs.",
                             "aggregate or drop duplicates first.")
    else:
        order = np.argsort(codes, kind="stable")  # keep row order within each series
        if not isinstance(df.index, pd.RangeIndex):
            idx = df.index.to_numpy()[order]
            sc = codes[order]
            if np.issubdtype(idx.dtype, np.number) or np.issubdtype(idx.dtype, np.datetime64):
                if np.any((sc[1:] == sc[:-1]) & (idx[1:] <= idx[:-1])):
                    raise OrderError(f"{what}'s index is not increasing within each series.",
                                     f"pass time_col=... or sort by [{id_col!r}, time] first.")
    values = _array(df[cols].to_numpy(), what, dtype)[order]  # one copy, sorted by series
    counts = np.bincount(codes, minlength=len(uniques))
    bounds = np.cumsum(counts)[:-1]
    arrays = np.split(values, bounds)
    targets = tbase = None
    if tcols is not None:
        tbase = _array(df[tcols].to_numpy(), what, dtype)[order]
        targets = np.split(tbase, bounds)
    tindex = None
    if time_col is not None:
        tindex = np.split(df[time_col].to_numpy()[order], bounds)
    return _checked(SeriesSet(arrays, list(uniques), feature_names=[str(c) for c in cols],
                              targets=targets,
                              target_names=None if tcols is None else [str(c) for c in tcols],
                              index=tindex, base=values, target_base=tbase), what)
