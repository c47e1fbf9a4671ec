"""Other DataFrame libraries as the pandas/numpy the rest of statebatch reads.

polars DataFrames (long or wide) and Series, pyarrow Tables, RecordBatches and arrays, and
sktime's nested panel format (a pandas DataFrame whose cells are pandas Series, one row per
instance) are converted once at the entry, so every function that accepts a pandas frame accepts
them and gives the same windows. polars and pyarrow are never imported here: a value is recognised
by the module of its type, and converted with its own ``to_pandas``/``to_numpy`` method.

sktime's other panel formats are not guessed: a MultiIndex frame (``pd-multiindex``) is refused by
:func:`statebatch.series.as_series` with the fix (``reset_index()`` and name ``id_col``/``time_col``),
and a 3-D array is read as ``(samples, timesteps, features)``, not sktime's ``numpy3D``
``(instances, variables, timepoints)``.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import DataValueError, DTypeError, OrderError, ParameterError, ShapeError
from .registry import register_input, type_is

__all__ = ["to_pandas_or_numpy", "is_foreign_frame"]



def _kind(obj: Any) -> tuple[str, str]:
    t = type(obj)
    return t.__module__.split(".")[0], t.__name__


def is_foreign_frame(obj: Any) -> bool:
    """True for a polars or pyarrow value that :func:`to_pandas_or_numpy` converts.

    Examples
    --------
    >>> import numpy as np
    >>> is_foreign_frame(np.zeros(2))
    False
    """
    mod, name = _kind(obj)
    return (mod == "polars" and name in ("DataFrame", "Series", "LazyFrame")
            or mod == "pyarrow" and name in ("Table", "RecordBatch", "Array", "ChunkedArray")
            or mod == "pyarrow" and name.endswith("Array"))


def _is_nested_panel(obj: Any) -> bool:
    """sktime's ``nested_univ``: a pandas DataFrame of object columns whose cells are pandas Series."""
    mod, name = _kind(obj)
    if mod != "pandas" or name != "DataFrame" or len(obj) == 0 or obj.shape[1] == 0:
        return False
    if not all(dt == np.dtype(object) for dt in obj.dtypes):
        return False
    first = obj.iloc[0]
    return all(type(v).__name__ == "Series" and type(v).__module__.startswith("pandas") for v in first)


def to_pandas_or_numpy(data: Any, what: str = "data", options: Any = None) -> Any:
    """``data`` as pandas (frames, series) or numpy (arrays), or unchanged when its registered kind is
    one that pandas/numpy consumers read as it is (arrays, lists, pandas, stores, Dask, Zarr).

    Any other registered kind is converted by its registration (see
    :func:`statebatch.register_input`): polars ``DataFrame``/``Series`` and pyarrow
    ``Table``/``RecordBatch`` become pandas with the same column names and row order (a polars
    ``LazyFrame`` is refused: collect it first); pyarrow arrays become numpy arrays; a nested sktime
    panel becomes a list of pandas DataFrames, one series per instance with one column per variable,
    each in time order: a cell whose time index (numbers, datetimes, periods) is decreasing or
    unsorted is sorted by it, as a long frame is sorted by ``time_col``; duplicated or missing time
    points, and variables of one instance with different time points, are refused. A kind whose
    registration reads straight to a ``SeriesSet`` gives its series as numpy arrays (one array for one
    series, a list for many); ``options`` (:class:`~statebatch.InputOptions`, default none set) is what
    such a registration reads the data with.

    Examples
    --------
    >>> import numpy as np
    >>> to_pandas_or_numpy(np.arange(3.0))
    array([0., 1., 2.])
    """
    from .options import InputOptions
    from .registry import find_input
    from .seriesset import SeriesSet, in_memory

    for _ in range(8):  # a conversion may hand over to another kind (polars -> pandas): a few steps at most
        kind = find_input(data)
        if kind is None or kind.native:
            return data
        data = kind.to_series(data, options if options is not None else InputOptions(), what)
        if isinstance(data, SeriesSet):
            if not in_memory(data.source):
                return data
            arrays = [data.series(i) for i in range(data.n_series)]
            return arrays[0] if data.n_series == 1 else arrays
    return data


def _polars_to_pandas(data: Any, options: Any, what: str) -> Any:
    """A polars DataFrame/Series as pandas (same columns and row order); a LazyFrame is refused."""
    if type(data).__name__ == "LazyFrame":
        raise ParameterError(f"{what} is a polars LazyFrame, which holds no rows until it is collected.",
                             f"pass {what}.collect().")
    return _convert(data, what, "polars", lambda: data.to_pandas())


def _pyarrow_to_pandas_or_numpy(data: Any, options: Any, what: str) -> Any:
    """A pyarrow Table/RecordBatch as pandas, a pyarrow array as numpy."""
    if type(data).__name__ in ("Table", "RecordBatch"):
        return _convert(data, what, "pyarrow", lambda: data.to_pandas())
    return _convert(data, what, "pyarrow", lambda: data.to_numpy(zero_copy_only=False))


def _nested_to_frames(data: Any, options: Any, what: str) -> list:
    """An sktime nested panel as a list of pandas frames, one per instance."""
    return _from_nested(data, what)


def _convert(data: Any, what: str, library: str, convert: Callable[[], Any]) -> Any:
    try:
        return convert()
    except ImportError as exc:  # polars' to_pandas needs pandas and pyarrow installed
        raise ParameterError(f"{what} is a {library} {type(data).__name__}, whose conversion needs a library that "
                             f"is missing ({exc}).", "pip install pandas pyarrow.") from None
    except (TypeError, ValueError) as exc:  # a column type with no pandas/numpy form
        raise DTypeError(f"{what} ({library} {type(data).__name__}) cannot be converted to pandas/numpy: {exc}.",
                         "cast its columns to numbers (and the id/time columns to strings, integers or "
                         "datetimes) first.") from None


def _from_nested(df: Any, what: str) -> list:
    import pandas as pd

    out = []
    for i in range(len(df)):
        row = df.iloc[i]
        cells = list(row)
        if not all(type(c).__name__ == "Series" and type(c).__module__.startswith("pandas") for c in cells):
            raise DTypeError(f"{what} looks like a nested sktime panel but row {i} has a cell that is not a pandas "
                             "Series.", "make every cell a pandas Series, or pass a long frame with id_col/time_col.")
        lengths = {len(c) for c in cells}
        if len(lengths) > 1:
            raise DTypeError(f"{what} (nested panel) row {i} has variables of different lengths {sorted(lengths)}.",
                             "give every variable of an instance the same time points.")
        cells = [_in_time_order(c, f"{what} (nested panel) row {i}, column {col!r}") for col, c in zip(df.columns, cells)]
        first = cells[0].index
        for col, c in zip(df.columns[1:], cells[1:]):
            if not c.index.equals(first):
                raise ShapeError(f"{what} (nested panel) row {i}: column {col!r} has other time points than column "
                                 f"{df.columns[0]!r}, so its values cannot be paired step by step.",
                                 "give every variable of an instance the same time index (e.g. reindex them).")
        out.append(pd.DataFrame({col: c.to_numpy() for col, c in zip(df.columns, cells)}))
    return out


def _in_time_order(cell: Any, what: str) -> Any:
    """A nested cell in time order: sorted by its time index (as a long frame is sorted by ``time_col``);
    duplicated time points are refused (the order between them is a guess), as for long frames."""
    import pandas as pd

    index = cell.index
    if isinstance(index, pd.RangeIndex):
        return cell
    if not (isinstance(index, (pd.DatetimeIndex, pd.TimedeltaIndex, pd.PeriodIndex))
            or (pd.api.types.is_numeric_dtype(index.dtype) and not pd.api.types.is_bool_dtype(index.dtype))):
        return cell  # labels without a time order (text, objects): the stored order is the order
    if index.hasnans:
        raise DataValueError(f"{what} has missing time points in its index, which cannot be placed in time.",
                             "drop those steps or fill their times first.")
    if index.has_duplicates:
        raise OrderError(f"{what} has duplicate time points in its index (e.g. "
                         f"{index[index.duplicated()][:3].tolist()}).", "aggregate or drop duplicates first.")
    if index.is_monotonic_increasing:
        return cell
    return cell.sort_index(kind="stable")


register_input(lambda d: type_is(d, "polars", "DataFrame", "Series", "LazyFrame"), _polars_to_pandas, name="polars",
               _rank=60)
register_input(lambda d: type_is(d, "pyarrow") and (type(d).__name__ in ("Table", "RecordBatch")
                                                    or type(d).__name__.endswith("Array")),
               _pyarrow_to_pandas_or_numpy, name="pyarrow", _rank=61)
register_input(_is_nested_panel, _nested_to_frames, name="sktime_nested", _rank=70)
