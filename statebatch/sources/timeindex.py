"""The columns that place rows of a long frame: where a series' time stamps have holes, and whether its
series ids are of one kind (pandas imported only when used)."""

from __future__ import annotations

from typing import Any

import numpy as np


def _time_steps(index: Any) -> np.ndarray | None:
    """Times of one series as int64 (ns for datetimes), or None when the index carries no time."""
    import pandas as pd

    if index is None or isinstance(index, pd.RangeIndex):
        return None
    if isinstance(index, pd.PeriodIndex):
        return index.asi8
    values = np.asarray(index)
    if np.issubdtype(values.dtype, np.datetime64) or np.issubdtype(values.dtype, np.timedelta64):
        return values.astype("datetime64[ns]" if values.dtype.kind == "M" else "timedelta64[ns]").view(np.int64)
    if np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating):
        return values.astype(np.float64)
    return None


def find_gaps(index: Any) -> tuple[np.ndarray, Any]:
    """Where a series' time stamps jump: positions ``i`` with a hole between steps ``i - 1`` and ``i``.

    The regular step is the index's ``freq`` (or the frequency pandas infers, e.g. business days),
    else the most common difference; without a known frequency a jump of more than 1.5 regular steps
    is a hole (monthly data, whose months differ by a few days, has none).

    Examples
    --------
    >>> import pandas as pd
    >>> find_gaps(pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-04"]))
    (array([2]), Timedelta('1 days 00:00:00'))
    """
    import pandas as pd

    t = _time_steps(index)
    if t is None or len(t) < 3:
        return np.empty(0, dtype=np.int64), None
    freq = getattr(index, "freq", None)
    if freq is None and isinstance(index, pd.DatetimeIndex) or (freq is None and np.asarray(index).dtype.kind == "M"):
        import warnings

        try:
            with warnings.catch_warnings():  # pandas 3 announces infer_freq's future return type; either serves
                warnings.simplefilter("ignore")
                freq = pd.infer_freq(pd.DatetimeIndex(index))
        except (TypeError, ValueError):
            freq = None
    if freq is not None and isinstance(index, pd.DatetimeIndex) or (freq is not None and np.asarray(index).dtype.kind == "M"):
        expected = pd.DatetimeIndex(index)[:-1] + pd.tseries.frequencies.to_offset(freq)
        return np.flatnonzero(np.asarray(pd.DatetimeIndex(index)[1:]) != np.asarray(expected)) + 1, freq
    diffs = np.diff(t)
    values, counts = np.unique(diffs, return_counts=True)
    step = values[np.argmax(counts)]
    if np.asarray(index).dtype.kind == "M" and step == pd.Timedelta(days=1).value:
        stamps = pd.DatetimeIndex(index)
        if stamps.normalize().equals(stamps) and (stamps.day_of_week < 5).all():
            # daily stamps that never fall on a weekend (trading days): weekends are not holes, a missing
            # weekday is (pandas infers no frequency once a holiday is missing, so it is not "B" above)
            expected = stamps[:-1] + pd.offsets.BDay(1)
            return np.flatnonzero(np.asarray(stamps[1:]) != np.asarray(expected)) + 1, "B"  # as infer_freq says
    shown = pd.Timedelta(int(step)) if np.asarray(index).dtype.kind in "mM" else step
    return np.flatnonzero(diffs > 1.5 * step) + 1, shown


_ONE_KIND = {"string": "str", "unicode": "str", "bytes": "bytes", "integer": "number", "floating": "number",
             "mixed-integer-float": "number", "decimal": "number", "complex": "number", "boolean": "bool"}


def _type_kind(t: type) -> str:
    if issubclass(t, (bool, np.bool_)):
        return "bool"
    if issubclass(t, (int, float, complex, np.number)):
        return "number"
    if issubclass(t, str):
        return "str"
    if t is type(None):
        return ""
    return t.__name__  # bytes, tuple, Timestamp, ...


def id_kind(values: Any) -> str:
    """The kinds of a column's values, ``"|"``-joined (``"number"``, ``"str"``, ``"number|str"``...), missing
    values skipped. ``pandas.api.types.infer_dtype`` answers at C speed for a column of one kind; only a
    mixed column (or numbers stored as objects) is looked at value by value, and a categorical by its categories.

    Examples
    --------
    >>> import pandas as pd
    >>> id_kind(pd.Series(["a", "b"])), id_kind(pd.Series([1, "a"]))
    ('str', 'number|str')
    """
    import pandas as pd

    if isinstance(getattr(values, "dtype", None), pd.CategoricalDtype):
        values = values.cat.categories
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if inferred == "empty":
        return ""
    if inferred in _ONE_KIND and not (_ONE_KIND[inferred] in ("number", "bool") and getattr(values, "dtype", None)
                                      == np.dtype(object)):
        return _ONE_KIND[inferred]  # a typed column, or text: one kind
    if inferred in _ONE_KIND:  # numbers as objects: 1 and True pass as "integer", so look at their types
        inferred = "mixed"
    if inferred not in ("mixed", "mixed-integer"):
        return inferred  # datetimes, periods, intervals...: one kind
    # the types of all values (not of the distinct ones: 1 == True, so unique() keeps only one of them)
    flat = np.asarray(values, dtype=object).ravel()
    types = set(map(type, flat[pd.notna(flat)]))
    return "|".join(sorted({_type_kind(t) for t in types} - {""}))


def check_id_kinds(values: Any, what: str, kinds: Any = None) -> None:
    """Refuse series ids that mix kinds (``1`` and ``"1"``; numbers and booleans; bytes and text): the same
    id written two ways is a classic result of joining tables, and whether they name one series or two is
    a guess (pandas keeps them apart, a Dask shuffle hashes them together). Ids of one kind, tuples
    included, pass. ``kinds``: :func:`id_kind` of each part already read (a Dask frame's partitions).

    Examples
    --------
    >>> import pandas as pd
    >>> check_id_kinds(pd.Series(["a", "b"]), "ids")  # one kind: passes
    >>> check_id_kinds(pd.Series([1, "1"]), "ids")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    statebatch.errors.DTypeError: ids ...
    """
    from ..errors import DTypeError

    parts = list(kinds) if kinds is not None else [id_kind(values)]
    found = sorted({k for part in parts for k in str(part).split("|") if k})
    if len(found) > 1:
        raise DTypeError(
            f"{what} mixes kinds of series ids ({', '.join(found)}; e.g. 1 and '1'), so whether two of them name the "
            "same series is a guess.",
            "give the id column one type first, e.g. df[id_col] = df[id_col].astype(str).")
