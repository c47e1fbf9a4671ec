"""pandas DataFrames (wide or long) and Series as series: one registration, ``"pandas"``.

A wide frame (no ``id_col``) is one series, in the order of its time column or of its index
(checked to increase); a long frame holds one series per value of ``id_col``, each sorted by
``time_col`` (or kept in row order). Column names become feature names; ``target_cols`` become
targets aligned row by row. pandas is imported only when a frame is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..errors import DataValueError, DTypeError, OrderError, ParameterError, ShapeError
from .base import ArraySource
from .registry import register_input, type_is
from .seriesset import SeriesSet, _array, _as_2d, _checked, _refuse_frame_args
from .timeindex import check_id_kinds

if TYPE_CHECKING:  # pragma: no cover - types only
    from .options import InputOptions

# --------------------------------------------------------------------------- type tests (no imports)
def _is_pandas(obj: Any, name: str) -> bool:
    mod = type(obj).__module__
    return mod.startswith("pandas") and type(obj).__name__ == name


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


def refuse_unordered(names: Any, param: str) -> None:
    """Refuse a set of column names: its order depends on the process's hash seed, so the columns of the
    batches would change order between the process that trains and the one that predicts.

    Examples
    --------
    >>> refuse_unordered(["b", "a"], "known_cols")  # a list keeps its order
    >>> refuse_unordered({"a"}, "known_cols")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    statebatch.errors.ParameterError: known_cols is a set ...
    """
    if isinstance(names, (set, frozenset)):
        raise ParameterError(f"{param} is a set {sorted(map(str, names))}: a set's order changes from one Python "
                             "process to the next, and so would the order of the columns in every batch.",
                             f"pass a list in the order the model reads them, e.g. {param}={sorted(map(str, names))}.")


def _frame_columns(df: Any, cols: Sequence[str] | None, exclude: Sequence[str], what: str,
                   param: str = "columns") -> list:
    if df.columns.has_duplicates:
        dup = list(dict.fromkeys(df.columns[df.columns.duplicated()]))[:5]
        raise ShapeError(f"{what} has duplicate column names {dup}: a column name must say which values it means.",
                         "rename them (df.columns = [...]) or drop the duplicates first.")
    if cols is None:
        cols = [c for c in df.columns if c not in exclude]
    else:
        if isinstance(cols, str):
            cols = [cols]
        refuse_unordered(cols, param)
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
    return np.issubdtype(dt, np.number) or dt == np.dtype(bool)


def _frame_values(df: Any, cols: list, what: str, dtype: Any) -> np.ndarray:
    """The numeric values of some frame columns (extension dtypes included), one array: a read-only view
    of the frame's memory where the columns allow it (:func:`_columns_view`), else a copy."""
    view = _columns_view(df, cols)
    if view is not None:
        return _array(view, what, dtype)
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


def _columns_view(df: Any, cols: list) -> np.ndarray | None:
    """``(rows, len(cols))``, a read-only view of the frame's own memory when the columns are numpy numbers of
    one dtype lying evenly spaced in one buffer (pandas keeps the columns of one dtype in one block, in
    order): pandas 2 copies them all for ``df[cols].to_numpy()`` (pandas 3 gives such a view itself).
    ``None`` otherwise. Nothing is read: the view is made from the columns' addresses and checked to lie
    inside the buffer that holds them."""
    arrs = []
    if not cols or not df.columns.is_unique:
        return None
    for c in cols:
        col = df[c]
        if not _is_pandas(col, "Series") or not isinstance(col.dtype, np.dtype) or col.dtype.kind not in "iufb":
            return None
        arrs.append(col.to_numpy())  # a view of the frame's block for a numpy dtype
    a0 = arrs[0]
    if any(a.ndim != 1 or a.dtype != a0.dtype or a.strides != a0.strides or len(a) != len(a0) for a in arrs):
        return None
    roots = [_root(a) for a in arrs]
    if any(r is not roots[0] for r in roots) or len(a0) == 0:
        return None  # not one buffer (copies, or columns of separate blocks)
    addr = [a.__array_interface__["data"][0] for a in arrs]
    step = addr[1] - addr[0] if len(arrs) > 1 else a0.itemsize
    if step == 0 or any(b - a != step for a, b in zip(addr, addr[1:])):
        return None
    view = np.lib.stride_tricks.as_strided(a0, shape=(len(a0), len(arrs)), strides=(a0.strides[0], step),
                                           writeable=False)
    lo, hi = _byte_bounds(view)
    rlo, rhi = _byte_bounds(roots[0])
    return view if rlo <= lo and hi <= rhi else None


def _root(a: np.ndarray) -> np.ndarray:
    """The array that owns ``a``'s memory (the end of its chain of ``base`` arrays)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _byte_bounds(a: np.ndarray) -> tuple[int, int]:
    """First and one-past-last byte address an array may touch."""
    start = a.__array_interface__["data"][0]
    ends = [(n - 1) * st for n, st in zip(a.shape, a.strides)]  # a non-empty array (checked by the caller)
    return start + sum(e for e in ends if e < 0), start + sum(e for e in ends if e > 0) + a.itemsize


def _from_frame(df: Any, id_col: str | None, time_col: str | None, feature_cols: Sequence[str] | None,
                target_cols: Sequence[str] | None, dtype: Any, what: str) -> SeriesSet:
    """A pandas DataFrame, wide (one series) or long (``id_col``), as a SeriesSet."""
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
    # targets first: a misspelt target is the mistake to name, not a text column the default features would read
    tcols = _frame_columns(df, target_cols, exclude, what, "target_cols") if target_cols is not None else None
    cols = _frame_columns(df, feature_cols, exclude, what, "feature_cols")
    names = [str(c) for c in cols]
    tnames = None if tcols is None else [str(c) for c in tcols]

    if id_col is None:
        return _one_frame_series(df, time_col, cols, tcols, names, tnames, dtype, what)
    return _long_frame_series(df, id_col, time_col, cols, tcols, names, tnames, dtype, what)


def _one_frame_series(df: Any, time_col: str | None, cols: list, tcols: list | None, names: list[str],
                      tnames: list[str] | None, dtype: Any, what: str) -> SeriesSet:
    """A frame without an id column: one series, sorted by ``time_col`` (or in index order, checked)."""
    frame_index = df.index
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


def _long_frame_series(df: Any, id_col: str, time_col: str | None, cols: list, tcols: list | None,
                       names: list[str], tnames: list[str] | None, dtype: Any, what: str) -> SeriesSet:
    """A long frame: one series per id, grouped (one copy at most) and sorted by ``time_col`` in each."""
    frame_index = df.index
    grouped = None if time_col is None else _grouped_in_time(df, id_col, time_col, what)
    if grouped is None:
        uniques, counts, order = _series_order(df, id_col, time_col, what)
        # rows already grouped by series (and in time order): no reordering copy
        identity = bool((order[1:] > order[:-1]).all())  # a strictly increasing permutation is the identity
    else:  # already grouped and in time order: no sort, no per-row codes (a lower peak over the data)
        uniques, counts = grouped
        order, identity = None, True
    # the frame's values are read into one row-major array; ArraySource hands them out read-only
    values = _frame_values(df, cols, what, dtype)
    # row-major rows (one window = one run of memory): a frame's columns come back column-major, whose
    # windows gather about 2x slower and not contiguous (a second copy for torch). The reordering copy of
    # an unsorted frame is row-major already; a sorted one is copied once here.
    values = values[order] if not identity else np.ascontiguousarray(values)
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


def _series_order(df: Any, id_col: str, time_col: str | None, what: str) -> tuple[Any, np.ndarray, np.ndarray]:
    """The series ids (in order of appearance), rows per series and the row order that groups the rows by
    series (then by ``time_col``; stable), with the checks on ids and time stamps."""
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
    return uniques, np.bincount(codes, minlength=len(uniques)), order


#: Rows compared at a time by :func:`_grouped_in_time`: its temporaries stay small whatever the frame's size.
_CHUNK = 1 << 16


def _grouped_in_time(df: Any, id_col: str, time_col: str, what: str) -> tuple[Any, np.ndarray] | None:
    """``(ids, rows per series)`` of a long frame whose rows are already grouped by series and in strictly
    increasing time within each (the usual layout), found by comparing neighbouring rows a chunk at a
    time: no sort and no per-row codes. ``None`` for any other frame (and for ids that are not plain
    numbers or datetimes, or missing): :func:`_series_order` sorts it and names any problem."""
    import pandas as pd

    col = df[id_col]
    dt = col.dtype
    if isinstance(dt, pd.StringDtype):  # text (pyarrow or python storage): compared as stored, no objects made
        stored = col.array

        def ids(lo: int, hi: int) -> Any:
            return stored[lo:hi]
    elif isinstance(dt, np.dtype) and (dt.kind in "iufmMb" or dt.kind == "O" and
                                       pd.api.types.infer_dtype(col, skipna=False) == "string"):
        values = col.to_numpy()  # a view

        def ids(lo: int, hi: int) -> Any:
            return values[lo:hi]
    else:
        return None
    n = len(col)
    if n == 0:
        return None
    tvals = _time_values(df, time_col, what)
    cuts = [np.zeros(1, dtype=np.int64)]
    for lo in range(0, n - 1, _CHUNK):
        hi = min(lo + _CHUNK, n - 1)  # pairs (i, i + 1) for lo <= i < hi
        chunk = ids(lo, hi + 1)
        new = chunk[1:] != chunk[:-1]
        if not isinstance(new, np.ndarray):  # a pandas boolean array: a missing id starts a run of its own
            new = new.to_numpy(dtype=bool, na_value=True)
        if not (new | (tvals[lo + 1: hi + 1] > tvals[lo: hi])).all():
            return None  # not in time order within a series (or a duplicate time stamp)
        cuts.append(np.flatnonzero(new) + (lo + 1))
    starts = np.concatenate(cuts)
    codes, uniques = pd.factorize(col.iloc[starts], sort=False)  # as the whole column would give them
    if len(uniques) != len(starts) or (codes < 0).any():
        return None  # a series in more than one run of rows (not grouped), or missing ids (NaN, NaT)
    return uniques, np.diff(np.append(starts, n))


def _time_values(df: Any, time_col: str, what: str) -> np.ndarray:
    """The time column as sortable values: numbers or datetimes, none missing (text is refused)."""
    t = df[time_col]
    kind = getattr(t.dtype, "kind", "O")
    if type(t.dtype).__name__ == "PeriodDtype":  # Periods sort right, but have no timestamp to space steps by
        raise DTypeError(f"{what}[{time_col!r}] holds {t.dtype} values (pandas Periods); the steps are ordered and "
                         "spaced by datetimes or numbers.",
                         f"convert them: df[{time_col!r}] = df[{time_col!r}].dt.to_timestamp().")
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



def _pandas_to_series(data: Any, options: "InputOptions", what: str) -> SeriesSet:
    """A DataFrame with the frame options, or a Series (one series named after it)."""
    if _is_pandas(data, "DataFrame"):
        return _from_frame(data, options.id_col, options.time_col, options.feature_cols, options.target_cols,
                           options.dtype, what)
    _refuse_frame_args(options, data, what)
    _check_time_index(data.index, what)
    arr = _as_2d(_frame_values(data.to_frame(), [data.name if data.name is not None else 0], what, options.dtype),
                 what)
    name = data.name if data.name is not None else 0
    return _checked(SeriesSet(ArraySource(arr), np.array([0, len(arr)], dtype=np.int64), [name],
                              feature_names=[str(data.name)] if data.name is not None else None,
                              index=[data.index]), what)


def _read_table(path: Path) -> Any:
    """A ``.csv`` or ``.parquet`` table, one row per step (an empty table is refused)."""
    import pandas as pd

    df = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
    if df.empty:
        raise DataValueError(f"{path} holds no rows.", "pass a table with one row per time step.")
    return df


register_input(lambda d: type_is(d, "pandas", "DataFrame", "Series"), _pandas_to_series, name="pandas",
               suffixes=(".csv", ".parquet", ".pq"), read_file=_read_table, _rank=80, _native=True)
