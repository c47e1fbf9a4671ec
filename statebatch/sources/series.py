"""Input normalisation: every supported input becomes a :class:`SeriesSet`.

A ``SeriesSet`` is a row source ``(total_steps, features)`` holding every series end to end, the row
offset of each series, their ids, feature names and (optionally) target columns aligned row by row.
Planners need only its ``lengths``; materialisers read from its ``source``.

Accepted inputs: 1-D / 2-D numpy arrays and memmaps (zero-copy), pandas Series and wide DataFrames
(time order checked), lists of arrays (many series, never concatenated), long DataFrames with a
series-id column (and a time column to sort by), row sources (statebatch stores, Zarr arrays through
:mod:`statebatch.zarr`), :class:`~statebatch.store.StoredSeries`, and Dask collections (prepared into a
temporary store by :mod:`statebatch.dask`). The dtype the user gave is kept on every path.
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from itertools import repeat
from operator import attrgetter, itemgetter
from typing import Any, Sequence

import numpy as np

from ..errors import DataValueError, DTypeError, OrderError, ParameterError, ShapeError
from .base import ArraySource, ColumnSource, ConcatSource, RowSource, as_source, is_source
from .npy import StoredSeries
from .timeindex import check_id_kinds, find_gaps


@dataclass(frozen=True, eq=False)
class SeriesSet:
    """Series ready for planning.

    Attributes
    ----------
    source : RowSource ``(total_steps, features)``
        Every series end to end, in the order of ``ids``.
    offsets : ndarray of int64 ``(n_series + 1,)``
        Series ``i`` is rows ``offsets[i]:offsets[i+1]`` of ``source``.
    ids : list
        Series identifiers (list position, or the id column's values).
    feature_names : list of str, optional
    targets : RowSource, optional
        Target columns aligned row by row with ``source`` (``target_cols`` of a frame).
    index : list of arrays, optional
        The time stamps of each series, when the input had them.
    row_order : int64 array ``(total_steps,)``, optional
        For a long frame that was reordered (sorted by time or grouped by id): the input row of each
        row of ``source``. Row-aligned targets given separately are reordered with it.
    frame_index : pandas Index, optional
        The input frame's index (to check that a target Series belongs to the same rows).
    """

    source: RowSource
    offsets: np.ndarray
    ids: list
    feature_names: list[str] | None = None
    targets: RowSource | None = None
    target_names: list[str] | None = None
    index: list[Any] | None = field(default=None, repr=False)
    row_order: np.ndarray | None = field(default=None, repr=False)
    frame_index: Any = field(default=None, repr=False)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def n_series(self) -> int:
        return len(self.ids)

    @property
    def n_features(self) -> int:
        return int(self.source.shape[1])

    @property
    def dtype(self) -> np.dtype:
        return self.source.dtype

    def series(self, i: int) -> np.ndarray:
        """The rows of series ``i`` ``(steps, features)`` (a read-only view for in-memory data)."""
        return self.source.read(int(self.offsets[i]), int(self.offsets[i + 1]))

    def next_value_source(self, target_features: Sequence[int] | None = None) -> RowSource:
        """Where next-step targets are read: the target columns, some features, or the data itself."""
        if self.targets is not None:
            if target_features is not None:
                raise ParameterError("target_features selects features of the data, but target_cols were given too.",
                                     "pass either target_cols (frame columns) or target_features (positions).")
            return self.targets
        if target_features is not None:
            if isinstance(target_features, (str, bytes)) or not hasattr(target_features, "__iter__"):
                raise ParameterError(f"target_features must be a list of feature positions, got {target_features!r}.",
                                     "pass e.g. target_features=[0].")
            cols = list(target_features)
            if any(isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)) for c in cols):
                raise ParameterError(f"target_features must be feature positions (integers), got {cols}.",
                                     "pass e.g. target_features=[0] (not booleans).")
            if isinstance(self.source, ConcatSource):  # keep the per-series fast path: copy those columns only
                nf = self.n_features
                if not all(isinstance(c, (int, np.integer)) and -nf <= c < nf for c in cols):
                    raise ParameterError(f"target_features {cols} do not exist: the data has {nf} feature(s).",
                                         f"pass feature positions between 0 and {nf - 1}.")
                return ConcatSource([np.ascontiguousarray(p[:, cols]) for p in self.source.raw_pieces])
            return ColumnSource(self.source, cols)
        return self.source


# --------------------------------------------------------------------------- type tests (no imports)
def _is_pandas(obj: Any, name: str) -> bool:
    mod = type(obj).__module__
    return mod.startswith("pandas") and type(obj).__name__ == name


def _module_root(obj: Any) -> str:
    return type(obj).__module__.split(".")[0]


def _is_dask(obj: Any) -> bool:
    return _module_root(obj) in ("dask", "dask_expr")


def _is_zarr(obj: Any) -> bool:
    return _module_root(obj) == "zarr"


# --------------------------------------------------------------------------- dtype checks
def dtype_error(arr: np.ndarray, what: str) -> DTypeError | None:
    """The error for an array a network cannot use (object/ragged, strings, complex...), else ``None``."""
    if arr.dtype == object:
        return DTypeError(
            f"{what} has dtype object (shape {arr.shape}): ragged rows or mixed types, which a network cannot use.",
            "build a numeric array; for sequences of different lengths pass a list of arrays (one per series) "
            "and pad or bucket them (statebatch.bucket_batches) instead of nesting lists.",
        )
    if np.issubdtype(arr.dtype, np.complexfloating):
        return DTypeError(f"{what} has complex dtype {arr.dtype}; recurrent layers take real numbers.",
                          "split it into real and imaginary features: np.stack([x.real, x.imag], axis=-1).")
    if np.issubdtype(arr.dtype, np.datetime64) or np.issubdtype(arr.dtype, np.timedelta64):
        return DTypeError(f"{what} has dtype {arr.dtype} (times, not values).",
                          "use the times to order the data (time_col=...) and pass numeric feature columns; "
                          "convert durations to numbers first, e.g. td / np.timedelta64(1, 's').")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        return DTypeError(
            f"{what} has non-numeric dtype {arr.dtype} (shape {arr.shape}).",
            "encode text/categories as numbers (integers, one-hot columns) first.",
        )
    return None


_NUMERIC_DTYPES: set = set()  # dtypes already found usable: many series of one dtype are checked once


def _check_numeric(arr: np.ndarray, what: str) -> None:
    if arr.dtype in _NUMERIC_DTYPES:
        return
    problem = dtype_error(arr, what)
    if problem:
        raise problem
    _NUMERIC_DTYPES.add(arr.dtype)


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
        arr = obj
    else:
        try:
            arr = np.asarray(obj)
        except (ValueError, TypeError) as exc:  # ragged nested lists
            raise DTypeError(
                f"{what} could not be turned into one array ({exc}).",
                "for series of different lengths pass a list of numpy arrays, one per series.",
            ) from None
    _check_numeric(arr, what)
    if dtype is not None:
        arr = _cast(arr, dtype, what)
    return arr


def _cast(arr: np.ndarray, dtype: Any, what: str) -> np.ndarray:
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ParameterError(f"dtype={dtype!r} is not a numpy dtype.", "pass e.g. dtype='float32'.") from None
    _check_numeric(np.empty(0, dtype=dt), f"dtype={dtype!r}")
    return arr.astype(dt, copy=False)


# --------------------------------------------------------------------------- frames
def _check_time_index(index: Any, what: str) -> None:
    """A pandas index that carries time must be strictly increasing."""
    import pandas as pd

    if isinstance(index, pd.RangeIndex):
        return
    if not (isinstance(index, (pd.DatetimeIndex, pd.TimedeltaIndex, pd.PeriodIndex))
            or (pd.api.types.is_numeric_dtype(index.dtype) and not pd.api.types.is_bool_dtype(index.dtype))):
        return  # a label index (text, objects, extension types) carries no time order we can check
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
    if df.columns.has_duplicates:
        dup = list(dict.fromkeys(df.columns[df.columns.duplicated()]))[:5]
        raise ShapeError(f"{what} has duplicate column names {dup}: a column name must say which values it means.",
                         "rename them (df.columns = [...]) or drop the duplicates first.")
    if cols is None:
        cols = [c for c in df.columns if c not in exclude]
    else:
        if isinstance(cols, str):
            cols = [cols]
        cols = list(cols)
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise ParameterError(
                f"columns {missing} are not in {what} (columns: {list(df.columns)}).",
                "pass existing column names.",
            )
    bad = [c for c in cols if not _numeric_column(df[c])]
    if bad:
        raise DTypeError(
            f"{what} has non-numeric columns {bad} (dtypes {[str(df[c].dtype) for c in bad]}).",
            "drop them with feature_cols=[...] or encode them as numbers first.",
        )
    if not cols:
        raise DataValueError(f"{what} has no feature columns.", "pass feature_cols=[...].")
    return cols


_TIME_NAMES = ("t", "time", "timestamp", "date", "datetime", "ds", "time_idx", "when")


def _refuse_unnamed_time(df: Any, exclude: list, what: str) -> None:
    """A non-numeric column of time stamps (datetimes, or date text) among the would-be features is the
    series' time, not a feature: name time_col (the generic "drop it with feature_cols" would lose the order)."""
    if not df.columns.is_unique:  # refused by _frame_columns, with its own message
        return
    for c in df.columns:
        if c in exclude or _numeric_column(df[c]):
            continue
        kind = getattr(df[c].dtype, "kind", "O")
        timelike = kind in "mM" or type(df[c].dtype).__name__ in ("PeriodDtype", "DatetimeTZDtype") or \
            str(c).lower() in _TIME_NAMES
        if not timelike and kind in "OU" or type(df[c].dtype).__name__ == "StringDtype":
            timelike = timelike or _looks_like_dates(df[c])
        if timelike:
            raise DTypeError(
                f"{what} column {c!r} ({df[c].dtype}) looks like the time stamps of the steps, and no time_col was "
                "given: read as a feature it is not a number, and the steps would stay in row order.",
                f"pass time_col={c!r} to order each series by it"
                + (f" (text: parse it first, df[{c!r}] = pd.to_datetime(df[{c!r}]))" if kind not in "mM" else "")
                + ", and feature_cols=[...] if other columns are not features.")


def _looks_like_dates(col: Any) -> bool:
    import pandas as pd

    head = col.dropna().astype(str).head(5)
    if not len(head):
        return False
    try:
        pd.to_datetime(head, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        return False
    return True


def _numeric_column(col: Any) -> bool:
    try:
        dt = np.dtype(col.dtype)
    except TypeError:  # pandas extension dtypes: nullable Int64/Float64, pyarrow numbers
        kind = getattr(col.dtype, "kind", "O")
        return kind in "iufb"
    return np.issubdtype(dt, np.number) or dt == bool


def _frame_values(df: Any, cols: list, what: str, dtype: Any) -> np.ndarray:
    """The numeric values of some frame columns (extension dtypes included), one array."""
    sub = df[cols]
    try:
        values = sub.to_numpy()
    except (TypeError, ValueError) as exc:
        raise DTypeError(f"{what} columns {cols} cannot be read as numbers ({exc}).", "convert them to float first.") from None
    if values.dtype == object:  # nullable / pyarrow columns with missing values come back as objects
        try:
            values = sub.astype("float64").to_numpy()
        except (TypeError, ValueError) as exc:
            raise DTypeError(f"{what} columns {cols} cannot be read as numbers ({exc}).",
                             "convert them to float first.") from None
    return _array(values, what, dtype)


def _from_frame(df, id_col, time_col, feature_cols, target_cols, dtype, what) -> SeriesSet:
    import pandas as pd

    if isinstance(df.index, pd.MultiIndex):
        raise ShapeError(
            f"{what} has a MultiIndex {list(df.index.names)}: statebatch does not guess which level is the series "
            "and which the time.",
            "move the levels into columns and name them: df.reset_index(), then id_col=... and time_col=....")
    for c, name in ((id_col, "id_col"), (time_col, "time_col")):
        if c is not None and c not in df.columns:
            raise ParameterError(
                f"{name}={c!r} is not a column of {what} (columns: {list(df.columns)}).",
                f"pass the name of the column that holds the {'series id' if name == 'id_col' else 'time'}.",
            )
    exclude = [c for c in (id_col, time_col) if c is not None]
    if time_col is None and feature_cols is None:
        _refuse_unnamed_time(df, exclude + list(target_cols or []), what)
    cols = _frame_columns(df, feature_cols, exclude, what)
    tcols = _frame_columns(df, target_cols, exclude, what) if target_cols is not None else None
    names = [str(c) for c in cols]
    tnames = None if tcols is None else [str(c) for c in tcols]

    frame_index = df.index
    if id_col is None:
        row_order = None
        if time_col is not None:
            t = _time_values(df, time_col, what)
            row_order = np.argsort(t, kind="stable")
            if np.any(t[row_order][1:] == t[row_order][:-1]):
                raise OrderError(f"{what}[{time_col!r}] has duplicate time stamps.", "aggregate or drop duplicates first.")
            if np.all(row_order == np.arange(len(t))):
                row_order = None
            else:  # target columns move with the rows; targets given separately follow row_order
                df = df.iloc[row_order]
        else:
            _check_time_index(df.index, what)
        arr = _as_2d(_frame_values(df, cols, what, dtype), what)
        targets = None if tcols is None else ArraySource(_as_2d(_frame_values(df, tcols, what, dtype), what))
        return _checked(SeriesSet(ArraySource(arr), np.array([0, len(arr)], dtype=np.int64), [0],
                                  feature_names=names, targets=targets, target_names=tnames,
                                  index=[df[time_col].to_numpy() if time_col else df.index], row_order=row_order,
                                  frame_index=frame_index), what)

    import pandas as pd

    try:
        codes, uniques = pd.factorize(df[id_col], sort=False)
    except TypeError as exc:  # unhashable ids (dicts, lists)
        raise DTypeError(f"{what}[{id_col!r}] holds values that cannot name a series ({exc}).",
                         "use strings, numbers or tuples as series ids.") from None
    if (codes < 0).any():
        raise DataValueError(f"{what}[{id_col!r}] has missing series ids.", "fill or drop those rows.")
    check_id_kinds(df[id_col], f"{what}[{id_col!r}]")  # 1 and "1": one series or two is a guess (Dask too)
    if time_col is not None:
        tvals = _time_values(df, time_col, what)
        order = np.lexsort((tvals, codes))  # by series, then time; stable
        st, sc = tvals[order], codes[order]
        same = sc[1:] == sc[:-1]
        if np.any(same & (st[1:] == st[:-1])):
            raise OrderError(f"{what} has duplicate ({id_col}, {time_col}) pairs.", "aggregate or drop duplicates first.")
        del st, sc, same, tvals  # freed before the values are copied: a lower peak over the data
    else:
        order = np.argsort(codes, kind="stable")  # keep row order within each series
        if not isinstance(df.index, pd.RangeIndex):
            idx = df.index.to_numpy()[order]
            sc = codes[order]
            if np.issubdtype(idx.dtype, np.number) or np.issubdtype(idx.dtype, np.datetime64):
                if np.any((sc[1:] == sc[:-1]) & (idx[1:] <= idx[:-1])):
                    raise OrderError(f"{what}'s index is not increasing within each series.",
                                     f"pass time_col=... or sort by [{id_col!r}, time] first.")
    # rows already grouped by series (and in time order): no reordering copy (the frame's values are read
    # once into one array; ArraySource hands them out read-only)
    identity = bool((order[1:] > order[:-1]).all())  # a strictly increasing permutation is the identity
    values = _frame_values(df, cols, what, dtype)
    if not identity:
        values = values[order]  # one copy, sorted by series
    counts = np.bincount(codes, minlength=len(uniques))
    del codes
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    targets = None
    if tcols is not None:
        tv = _frame_values(df, tcols, what, dtype)
        targets = ArraySource(tv if identity else tv[order])
    tindex = None
    if time_col is not None:
        tcol = df[time_col].to_numpy()
        tindex = np.split(tcol if identity else tcol[order], offsets[1:-1])
    return _checked(SeriesSet(ArraySource(values), offsets, list(uniques), feature_names=names, targets=targets,
                              target_names=tnames, index=tindex, row_order=None if identity else order,
                              frame_index=frame_index), what)


def _time_values(df, time_col: str, what: str) -> np.ndarray:
    """The time column as sortable values: numbers or datetimes, none missing (text is refused)."""
    t = df[time_col]
    kind = getattr(t.dtype, "kind", "O")
    if kind not in "iufmM":
        raise DTypeError(
            f"{what}[{time_col!r}] holds {t.dtype} values, which would sort as text (\"1/12/2020\" before "
            f"\"1/2/2020\").", f"parse it first: df[{time_col!r}] = pd.to_datetime(df[{time_col!r}], format=...).")
    if t.isna().any():
        bad = np.flatnonzero(t.isna().to_numpy())
        raise DataValueError(f"{what}[{time_col!r}] has {len(bad)} missing time stamps (rows {bad[:5].tolist()}), which "
                             "cannot be placed in time.", "drop those rows or fill their times first.")
    values = t.to_numpy()
    if getattr(values.dtype, "tz", None) is not None or kind == "M" and values.dtype == object:
        values = t.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy()
    return values


# --------------------------------------------------------------------------- entry point
def as_series(
    data: Any,
    *,
    id_col: str | None = None,
    time_col: str | None = None,
    feature_cols: Sequence[str] | None = None,
    target_cols: Sequence[str] | None = None,
    dtype: Any = None,
    what: str = "data",
    gaps: str = "error",
) -> SeriesSet:
    """Turn any supported input into a :class:`SeriesSet` (see the module docstring)."""
    import sys

    frame_args = id_col is not None or time_col is not None or target_cols is not None or feature_cols is not None
    if not isinstance(data, (np.ndarray, SeriesSet)):  # polars, pyarrow, sktime nested: as pandas/numpy
        from .frames import to_pandas_or_numpy

        data = to_pandas_or_numpy(data, what)
    if isinstance(data, SeriesSet):
        return data
    if isinstance(data, StoredSeries):  # many series prepared out of core (statebatch.dask)
        if target_cols is not None:  # naming the prepared target columns again is fine
            wanted = [str(c) for c in ([target_cols] if isinstance(target_cols, str) else target_cols)]
            if data.target_store is None or wanted != list(data.target_names or []):
                raise ParameterError(f"target_cols={wanted} but the stored series were prepared with target columns "
                                     f"{data.target_names}.", "prepare them with these target_cols, or drop target_cols.")
        _no_frame_args(id_col is not None or time_col is not None or feature_cols is not None, data, what)
        _check_numeric(np.empty(0, dtype=data.store.dtype), what)
        offsets = np.concatenate([[0], np.cumsum(data.lengths)]).astype(np.int64)
        return _checked(SeriesSet(data.store, offsets, list(data.ids), feature_names=data.feature_names,
                                  targets=data.target_store, target_names=data.target_names), what)
    if _is_dask(data):  # prepared into a temporary sharded store by Dask tasks, read batch by batch
        from .dask import as_stored

        prepared = as_stored(data, gaps=gaps, id_col=id_col, time_col=time_col, feature_cols=feature_cols,
                             target_cols=target_cols, dtype=dtype)
        return as_series(prepared, what=what)
    if _is_zarr(data):
        from .zarr import ZarrSource

        data = ZarrSource(data)
    if is_source(data):  # one series out of core (a store, a Zarr array, a protocol object)
        _no_frame_args(frame_args, data, what)
        src = as_source(data)
        if src.ndim == 1:
            raise ShapeError(f"{what} is a 1-D row source {src.shape}; a series source is (steps, features).",
                             "store the series as a 2-D array (steps, 1).")
        if src.ndim != 2:
            raise ShapeError(f"{what} has shape {src.shape}; a series source is (steps, features).",
                             "store the raw series as a 2-D array.")
        _check_numeric(np.empty(0, dtype=src.dtype), what)
        if dtype is not None and np.dtype(dtype) != src.dtype:
            raise ParameterError(f"dtype={dtype!r} cannot convert an out-of-core source ({src.dtype}) without reading it.",
                                 "store the data in the dtype you want, or leave dtype out.")
        return _checked(SeriesSet(src, np.array([0, len(src)], dtype=np.int64), [0]), what)
    if "pandas" in sys.modules and _is_pandas(data, "DataFrame"):
        return _from_frame(data, id_col, time_col, feature_cols, target_cols, dtype, what)
    if frame_args:
        raise ParameterError(
            f"id_col/time_col/feature_cols/target_cols only apply to a DataFrame, got {type(data).__name__}.",
            "pass a DataFrame, or drop those arguments.",
        )
    if "pandas" in sys.modules and _is_pandas(data, "Series"):
        _check_time_index(data.index, what)
        arr = _as_2d(_frame_values(data.to_frame(), [data.name if data.name is not None else 0], what, dtype), what)
        name = data.name if data.name is not None else 0
        return _checked(SeriesSet(ArraySource(arr), np.array([0, len(arr)], dtype=np.int64), [name],
                                  feature_names=[str(data.name)] if data.name is not None else None,
                                  index=[data.index]), what)
    if isinstance(data, (list, tuple)) and data and dtype is None and (plain := _plain_arrays(data)) is not None:
        return _checked(_from_plain(plain), what)  # the common case for many series: no per-series check
    if isinstance(data, (list, tuple)) and data and all(_is_series_like(a) for a in data):
        return _from_list(data, dtype, what)
    if isinstance(data, (list, tuple)) and len(data) > 1 and all(isinstance(a, (list, tuple)) for a in data):
        # [[1, 2, 3, 4], [5, 6, 7, 8]]: two series of 4 steps, or one series of 2 steps x 4 features?
        shape = np.shape(data) if len({len(a) for a in data}) == 1 else None
        raise ShapeError(
            f"{what} is a list of {len(data)} Python lists{f' (shape {shape})' if shape else ''}: it could be "
            f"{len(data)} series, or one series of {len(data)} steps with one value per feature.",
            f"say which: [np.asarray(s) for s in {what}] for {len(data)} series, or np.asarray({what}) for one series "
            "of (steps, features).")
    arr = _as_2d(_array(data, what, dtype), what)
    if arr.ndim == 2 and arr.shape[1] > arr.shape[0] > 0 and arr.shape[1] >= 16:
        import warnings

        from ..errors import StatebatchWarning

        warnings.warn(f"{what} has {arr.shape[0]} steps and {arr.shape[1]} features: rows are steps, columns are "
                      f"features. If each row is a series (or a feature) over {arr.shape[1]} steps, pass "
                      f"{what}.T (one series) or list({what}) (one series per row).", StatebatchWarning, stacklevel=3)
    return _checked(SeriesSet(ArraySource(arr), np.array([0, len(arr)], dtype=np.int64), [0]), what)


def _no_frame_args(frame_args: bool, data: Any, what: str) -> None:
    if frame_args:
        raise ParameterError(f"id_col/time_col/feature_cols/target_cols do not apply to {type(data).__name__} "
                             f"({what} is already prepared).", "drop those arguments.")


def _is_series_like(a: Any) -> bool:
    return (isinstance(a, np.ndarray) or _is_pandas(a, "DataFrame") or _is_pandas(a, "Series") or _is_zarr(a)
            or isinstance(a, RowSource)
            or (isinstance(a, (list, tuple)) and len(a) > 0 and isinstance(a[0], (list, tuple, np.ndarray))))


def _from_list(data: Sequence[Any], dtype: Any, what: str) -> SeriesSet:
    fast = _plain_arrays(data) if dtype is None else None
    if fast is not None:
        return _checked(_from_plain(fast), what)
    arrays, feature_names = [], None
    for i, a in enumerate(data):
        name = f"{what}[{i}]"
        if _is_pandas(a, "DataFrame") or _is_pandas(a, "Series"):
            part = as_series(a, dtype=dtype, what=name)
            arr = part.source.array
            feature_names = feature_names or part.feature_names
        elif _is_zarr(a) or isinstance(a, RowSource):  # out of core: read piece by piece
            arr = as_series(a, dtype=dtype, what=name).source
        else:
            arr = _as_2d(_array(a, name, dtype), name)
        arrays.append(arr)
    nf = {a.shape[1] for a in arrays}
    if len(nf) > 1:
        raise ShapeError(f"the series in {what} have different feature counts {sorted(nf)}.",
                         "give every series the same columns (features), in the same order.")
    dts = {np.dtype(a.dtype) for a in arrays}
    if len(dts) > 1:  # one source needs one dtype: the common type of all series
        if not all(isinstance(a, np.ndarray) for a in arrays):
            raise DTypeError(f"the series in {what} have different dtypes {sorted(map(str, dts))} and some are out of "
                             "core, so they cannot be converted on the fly.", "store every series with one dtype.")
        common = np.result_type(*dts)
        arrays = [a.astype(common, copy=False) for a in arrays]
    offsets = np.concatenate([[0], np.cumsum([len(a) for a in arrays])]).astype(np.int64)
    return _checked(SeriesSet(ConcatSource(arrays), offsets, list(range(len(arrays))), feature_names=feature_names), what)


def _plain_arrays(data: Sequence[Any]) -> list[np.ndarray] | None:
    """Many numpy arrays of one numeric dtype and rank 1 or 2 (the common case for many series):
    checked once for the whole list instead of once per series; None for anything else."""
    first = data[0]
    if type(first) is not np.ndarray:
        return None
    dt, tail = first.dtype, first.shape[1:]
    if dt.kind not in "iuf" or dt.hasobject or len(tail) > 1:
        return None
    # C-level passes (map/attrgetter, no Python code per series); dtypes by identity first (numpy shares one
    # dtype object per builtin type), by equality only when that fails.
    if set(map(type, data)) != {np.ndarray} or set(map(attrgetter("ndim"), data)) != {first.ndim}:
        return None
    dtypes = map(attrgetter("dtype"), data)
    if not all(map(operator.is_, dtypes, repeat(dt))) and set(map(attrgetter("dtype"), data)) != {dt}:
        return None
    if tail and set(map(itemgetter(1), map(attrgetter("shape"), data))) != {tail[0]}:
        return None
    if not tail:
        return [a[:, None] for a in data]
    return list(data)


def _from_plain(arrays: list[np.ndarray]) -> SeriesSet:
    """Series from :func:`_plain_arrays` (one dtype, 2-D, one feature count: checked already)."""
    src = ConcatSource(arrays, checked=True)
    return SeriesSet(src, src.offsets, list(range(len(arrays))))


GAPS = ("error", "split", "accept")

#: The parameters ``allow_nan`` and ``gaps``, documented once for every function that takes them.
# In the docstrings of make_windows, arrange_stateful and bucket_batches the short entry (what static
# documentation tools read) is replaced at import by the full text.
INPUT_CHECKS_STUB = ("    allow_nan, gaps\n"
                     "        The input checks every entry point shares: NaN/inf refused unless ``allow_nan=True``; holes in\n"
                     "        the time stamps refused, split or accepted (``gaps``).\n")
INPUT_CHECKS_DOC = """\
    allow_nan : bool
        NaN/inf in in-memory data or targets raise :class:`~statebatch.errors.DataValueError` by
        default (they turn into a NaN loss); ``True`` accepts them (e.g. for a model that masks them).
    gaps : "error", "split" or "accept"
        Holes in the time stamps of a frame's time column or DatetimeIndex (a step missing from the
        regular frequency): refused by default, ``"split"`` cuts the series there (pieces get ids
        ``(id, piece)``, with a warning), ``"accept"`` runs windows and lanes across them.
"""


def apply_gaps(ss: SeriesSet, gaps: str, what: str = "data") -> SeriesSet:
    """Refuse (``"error"``), split at (``"split"``) or accept (``"accept"``) holes in the time stamps."""
    import warnings

    from ..errors import StatebatchWarning

    if gaps == "accept" or ss.index is None:
        return ss
    found = [(i, find_gaps(idx)) for i, idx in enumerate(ss.index) if not _evenly_spaced(idx)]
    found = [(i, pos, step) for i, (pos, step) in found if len(pos)]
    if not found:
        return ss
    n_gaps = sum(len(pos) for _, pos, _ in found)
    i, pos, step = found[0]
    idx = ss.index[i]
    before, after = np.asarray(idx)[pos[0] - 1], np.asarray(idx)[pos[0]]
    if gaps == "error":
        raise DataValueError(
            f"{what} has {n_gaps} hole(s) in its time stamps (in {len(found)} series), the first in series "
            f"{ss.ids[i]!r} between {before} and {after} (regular step {step}); windows and lanes would run across it "
            "as if the steps were consecutive.",
            "fill the missing steps (e.g. df.resample(freq).interpolate()), or pass gaps='split' to cut the series at "
            "its holes (each piece becomes a series), or gaps='accept' if the holes are expected.")
    # split: every piece becomes a series with id (id, piece number)
    cuts = {i: pos for i, pos, _ in found}
    offsets, ids, index = [0], [], []
    for k in range(ss.n_series):
        lo, hi = int(ss.offsets[k]), int(ss.offsets[k + 1])
        bounds = [0] + [int(p) for p in cuts.get(k, [])] + [hi - lo]
        for piece, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
            offsets.append(lo + b)
            ids.append(ss.ids[k] if k not in cuts else (ss.ids[k], piece))
            index.append(ss.index[k][a:b])
    warnings.warn(f"{what}: split {len(found)} series at {n_gaps} hole(s) in their time stamps (gaps='split'); the "
                  "pieces have ids (id, piece).", StatebatchWarning, stacklevel=3)
    return SeriesSet(ss.source, np.asarray(offsets, dtype=np.int64), ids, feature_names=ss.feature_names,
                     targets=ss.targets, target_names=ss.target_names, index=index, row_order=ss.row_order,
                     frame_index=ss.frame_index)


def _evenly_spaced(idx: Any) -> bool:
    """Time stamps (a numpy array of numbers or datetimes, as a long frame's time column gives them)
    whose steps are all equal: no hole whatever the regular step is, so ``find_gaps`` (pandas' frequency
    inference, about 0.7 ms a series) need not look. Anything else: False (``find_gaps`` decides)."""
    if not isinstance(idx, np.ndarray) or idx.dtype.kind not in "iufmM" or idx.ndim != 1:
        return False
    if len(idx) < 3:
        return True  # find_gaps finds no hole in fewer than 3 stamps either
    d = np.diff(idx)
    return bool((d == d[0]).all())


def _checked(s: SeriesSet, what: str) -> SeriesSet:
    if s.n_series == 0 or int(s.offsets[-1]) == 0:
        raise DataValueError(f"{what} is empty (no time steps).", "pass at least one non-empty series.")
    if s.n_features == 0:
        raise DataValueError(f"{what} has no features (shape {s.source.shape}).", "pass at least one feature column.")
    return s


_FINITE_BLOCK = 1 << 16  # values checked at a time: bounded extra memory (no copy of a large series)


def in_memory(source: RowSource) -> bool:
    """Whether the rows are in memory (checked up front) rather than read lazily."""
    return source.array is not None or (isinstance(source, ConcatSource) and source.in_memory)


def checked_finite(source: RowSource) -> bool:
    """Whether an out-of-core source was found free of NaN/inf when it was written (a store prepared by
    :func:`statebatch.dask.prepare`, whose manifest refuses shards changed since), so that its batches
    need no scan as they are read."""
    return bool(getattr(source, "finite_checked", False))


def check_finite_series(ss: SeriesSet, what: str = "data", allow_nan: bool = False, allow_inf: bool = False) -> None:
    """Refuse NaN (unless ``allow_nan``) and +-inf (unless ``allow_inf``) in in-memory series (vectorised,
    block by block), naming where the first one is.

    Out-of-core sources are not read here (that would read the whole store up front).
    """
    if allow_nan and allow_inf:
        return
    if ss.targets is not None and what != "target columns":  # target columns of a frame: checked the same way
        check_finite_series(SeriesSet(ss.targets, ss.offsets, ss.ids), "target columns", allow_nan, allow_inf)
    src = ss.source
    if src.dtype.kind not in "fc":
        return
    if src.array is not None:
        pieces, starts = [src.array], [0]
    elif isinstance(src, ConcatSource) and src.in_memory:  # many in-memory series: each piece, no concatenation
        pieces, starts = list(src.raw_pieces), src.offsets[:-1].tolist()  # only read
    else:
        return
    refused = np.isinf if allow_nan else np.isnan if allow_inf else lambda a: ~np.isfinite(a)
    first, count = None, 0
    for arr, start in zip(pieces, starts):
        if arr.size <= _FINITE_BLOCK:  # the common case for many series: one call, no temporary index
            if np.isfinite(arr).all():
                continue
            rows_per_block = len(arr)
        else:
            # A finite sum means no NaN/inf: one pass without a temporary (NaN and inf propagate; an
            # overflow to inf of finite values only sends the block to the exact scan below).
            with np.errstate(all="ignore"):
                if arr.flags.c_contiguous and math.isfinite(float(np.add.reduce(arr.reshape(-1)))):
                    continue
            rows_per_block = max(1, _FINITE_BLOCK // max(1, math.prod(arr.shape[1:])))
        for lo in range(0, len(arr), rows_per_block):
            bad = refused(arr[lo: lo + rows_per_block])
            if bad.any():
                rows = np.flatnonzero(bad.reshape(len(bad), -1).any(axis=1))
                count += int(bad.sum())
                if first is None:
                    first = start + lo + int(rows[0])
    if first is None:
        return
    k = int(np.searchsorted(ss.offsets, first, side="right") - 1)
    where = f"series {ss.ids[k]!r} step {first - int(ss.offsets[k])}" if ss.n_series > 1 else f"step {first}"
    kind, allow = ("inf", "allow_inf") if allow_nan else ("NaN", "allow_nan") if allow_inf else ("NaN/inf", "allow_nan")
    raise DataValueError(
        f"{what} has {count} {kind} value(s), the first at {where}; a recurrent network turns them into a NaN loss.",
        f"fill or drop them first (e.g. df.interpolate() or df.dropna()), or pass {allow}=True if the model handles "
        "them (e.g. a masking layer)" + ("" if allow_nan or allow_inf else "; allow_inf=True for +-inf") + ".")


def aligned_targets(targets: Any, ss: SeriesSet, what: str = "targets") -> list[np.ndarray]:
    """Target arrays given alongside the data: one numeric array per series (same dtype and columns).

    Lengths are checked by the caller (Keras-style windows allow fewer targets than steps).
    """
    from ..errors import LengthMismatchError

    if (ss.row_order is not None or ss.frame_index is not None) and not isinstance(targets, (list, tuple)):
        return _reordered_targets(targets, ss, what)  # a frame's rows, whether or not they were reordered
    many = ss.n_series > 1
    if ss.row_order is not None:
        raise LengthMismatchError(
            f"the data was reordered (sorted by time, or grouped by series id), so a list of per-series {what} "
            "cannot be matched to the rows.",
            f"pass {what} as a column of the frame (target_cols=[...]) or as one array/Series aligned with the frame's rows.")
    if not many and isinstance(targets, (list, tuple)) and len(targets) and all(
            np.ndim(t) >= 1 for t in targets) and len(targets) != len(ss.source):
        raise LengthMismatchError(
            f"data is one series of {len(ss.source)} steps, but {what} is a list of {len(targets)} arrays.",
            f"pass one {what} array aligned with the series ({what}=a), or the data as a list of series.")
    if many:
        if not isinstance(targets, (list, tuple)) or len(targets) != ss.n_series:
            raise LengthMismatchError(
                f"data has {ss.n_series} series, so targets must be a list of {ss.n_series} arrays "
                f"(got {type(targets).__name__}{'' if not hasattr(targets, '__len__') else f' of length {len(targets)}'}).",
                "pass one target array per series, aligned row by row with it.")
        tl = [_target_array(t, f"{what}[{i}]") for i, t in enumerate(targets)]
    else:
        tl = [_target_array(targets, what)]
    ndims = {t.shape[1:] for t in tl}
    if len(ndims) > 1:
        raise ShapeError(f"{what} have different shapes per step {sorted(ndims)}.", "give every target array the same columns.")
    dts = {t.dtype for t in tl}
    if len(dts) > 1:
        common = np.result_type(*dts)
        tl = [t.astype(common, copy=False) for t in tl]
    return tl


def _reordered_targets(targets: Any, ss: SeriesSet, what: str) -> list[np.ndarray]:
    """Row-aligned targets of a reordered long frame, put in the frame's new row order, split per series."""
    from ..errors import LengthMismatchError

    n = int(ss.offsets[-1])
    if _is_pandas(targets, "Series") or _is_pandas(targets, "DataFrame"):
        if ss.frame_index is not None and not targets.index.equals(ss.frame_index):
            raise LengthMismatchError(f"{what}' index is not the data frame's index, so its rows cannot be matched.",
                                      f"pass {what} taken from the same frame (e.g. df['y']), or a column via target_cols.")
    arr = _target_array(targets, what)
    if ss.row_order is None and ss.n_series == 1 and len(arr) < n:
        return [arr]  # one series in its own order: fewer targets than steps, as Keras allows
    if len(arr) != n:
        raise LengthMismatchError(f"{what} has {len(arr)} rows but the data frame has {n}.",
                                  f"pass one {what} row per data row (or a column via target_cols).")
    if ss.row_order is not None:
        arr = arr[ss.row_order]
    return [arr[ss.offsets[i]: ss.offsets[i + 1]] for i in range(ss.n_series)]


def source_of(arrays: list[np.ndarray]) -> RowSource:
    """One row source over per-series arrays (no copy)."""
    return ArraySource(arrays[0]) if len(arrays) == 1 else ConcatSource(arrays)


def _target_array(t: Any, what: str) -> np.ndarray:
    if _is_pandas(t, "Series") or _is_pandas(t, "DataFrame"):
        frame = t.to_frame() if _is_pandas(t, "Series") else t
        return _frame_values(frame, list(frame.columns), what, None).reshape((len(frame),) + ((frame.shape[1],) if _is_pandas(t, "DataFrame") else ()))
    arr = _array(t, what)
    if arr.ndim == 0:
        raise ShapeError(f"{what} is a scalar.", "pass one target per time step.")
    return arr
