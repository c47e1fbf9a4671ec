"""Splits in time: :func:`time_split` (train / validation / test rows, earliest rows train) and
:class:`WindowSplit` (time-series cross-validation folds whose test part brings its own history)."""

from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from ...errors import DataValueError, LengthMismatchError, OrderError, ParameterError
from .validation import _check_column_args, _is_frame, _is_pandas_rows, _refuse_nested

__all__ = ["time_split", "WindowSplit"]


def time_split(data: Any, *, val: float = 0.15, test: float = 0.15, gap: int = 0,
               id_col: str | None = None, time_col: str | None = None) -> tuple[Any, Any, Any, dict]:
    """Split rows by time into train / validation / test parts (earliest rows train).

    Window or arrange each part separately (fitting scalers on the training part only): then no
    validation window overlaps a training window and no training target lies in the validation
    period. ``gap`` leaves that many rows out between the parts (reported).

    Parameters
    ----------
    data : array or DataFrame ``(steps, features)``, or a long DataFrame with ``id_col`` (every series is
        split by its own time, sorted by ``time_col`` when given).

    Returns
    -------
    (train, val, test, left_out) : three row subsets of the same type as ``data``, and a dict
        ``{"rows_left_out_by_gap": n, "series_without_val": [...], "series_without_test": [...]}``.
        With ``time_col`` (and no ``id_col``) the rows are ordered by that column first, so the earliest
        rows train whatever the input order.

    A part asked for (``val > 0`` or ``test > 0``) that would get no row is never returned empty in
    silence: for one series, or when no series of a long frame has a row for it, a
    :class:`~statebatch.errors.ParameterError` says how many rows it needs; when only some series of a
    long frame are too short for it (a series of one row trains only), their ids are listed in
    ``series_without_val`` / ``series_without_test`` and a :class:`~statebatch.errors.StatebatchWarning`
    names them.

    Examples
    --------
    >>> import numpy as np
    >>> from statebatch.sklearn import time_split
    >>> train, val, test, left_out = time_split(np.arange(20), val=0.2, test=0.2, gap=1)
    >>> train, val, test
    (array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]), array([11, 12, 13, 14]), array([16, 17, 18, 19]))
    >>> left_out["rows_left_out_by_gap"]
    2
    """
    from ..._args import check_fraction
    from ...sources.frames import to_pandas_or_numpy

    _refuse_nested(data, "time_split")
    data = to_pandas_or_numpy(data)
    _check_rows_to_split(data)
    val = check_fraction("val", val, low=0.0, high=1.0, inclusive=True)
    test = check_fraction("test", test, low=0.0, high=1.0, inclusive=True)
    _check_column_args(data, id_col=id_col, time_col=time_col)
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ParameterError(f"val={val} and test={test} must be fractions summing below 1.", "pass e.g. val=0.15, test=0.15.")
    if isinstance(gap, bool) or not isinstance(gap, (int, np.integer)) or gap < 0:
        raise ParameterError(f"gap must be an integer >= 0, got {gap!r}.", "pass gap=0 or more rows.")
    parts = _Parts(val, test, int(gap))
    if id_col is not None:
        return _split_series(data, parts, id_col, time_col)
    return _split_rows(data, parts, time_col)


def _check_rows_to_split(data: Any) -> None:
    """``data`` holds rows: a list of series of different lengths (not one series) and things without rows
    are refused before any fraction is read."""
    if isinstance(data, (list, tuple)) and len(data) and all(
            isinstance(a, np.ndarray) and a.ndim >= 1 or _is_pandas_rows(a) for a in data) and len(
            {len(a) for a in data}) > 1:
        raise ParameterError(f"time_split got a list of {len(data)} series of different lengths; it splits the rows of "
                             "one series, or of a long frame by id.",
                             "split each series by itself ([time_split(s) for s in series]), or build a long frame with "
                             "an id column and pass id_col=....")
    if data is None or isinstance(data, (str, bytes, dict)) or not hasattr(data, "__len__") or np.ndim(data) == 0:
        raise ParameterError(f"time_split splits rows, got {type(data).__name__}.",
                             "pass an array, a list of rows or a DataFrame (steps first).")


class _Parts:
    """Where :func:`time_split` cuts a series of ``n`` rows: the rows of each part, given the fractions and
    the gap (one place for the arithmetic that one series and every series of a long frame share)."""

    def __init__(self, val: float, test: float, gap: int) -> None:
        self.val, self.test, self.gap = val, test, gap

    def rows_needed(self) -> int:
        """The fewest rows that give training and every part asked for at least one row."""
        val, test, gap = self.val, self.test, self.gap
        for n in range(1, 1_000_000):
            n_val, n_test = int(round(n * val)), int(round(n * test))
            if ((n_val or not val) and (n_test or not test)
                    and n - n_val - n_test - (gap if n_val else 0) - (gap if n_test else 0) > 0):
                return n
        return 1_000_000

    def cuts(self, n: int, name: Any = None) -> tuple[slice, slice, slice]:
        """The train, validation and test rows of a series of ``n`` rows (training must get one)."""
        val, test, gap = self.val, self.test, self.gap
        n_test = int(round(n * test))
        n_val = int(round(n * val))
        n_train = n - n_val - n_test - (gap if n_val else 0) - (gap if n_test else 0)
        if n_train <= 0:
            where = "" if name is None else f"series {name!r} has "
            raise ParameterError(f"{where}{n} rows: too few for val={val}, test={test} with gap={gap} (training "
                                 "would get no row).",
                                 "use smaller val/test or gap" + (", or drop the short series." if name is not None
                                                                  else f", or pass at least {self.rows_needed()} rows."))
        a = n_train
        b = a + (gap if n_val else 0) + n_val
        c = b + (gap if n_test else 0)
        return slice(0, a), slice(a + (gap if n_val else 0), b), slice(c, n)

    def empty(self, cuts: tuple[slice, slice, slice]) -> list[str]:
        """The parts asked for (fraction > 0) that these cuts leave without a row."""
        return [part for part, frac, sl in (("val", self.val, cuts[1]), ("test", self.test, cuts[2]))
                if frac > 0 and sl.stop == sl.start]

    @staticmethod
    def left(n: int, cuts: tuple[slice, slice, slice]) -> int:
        """Rows in no part (the gaps)."""
        return n - sum(s.stop - s.start for s in cuts)


def _in_series_time_order(data: Any, id_col: str, time_col: str | None) -> Any:
    """A long frame checked for ids, with each series' rows in time order (by ``time_col`` when given)."""
    from ...sources.series import _time_values
    from ...sources.timeindex import check_id_kinds

    if not _is_frame(data):
        raise ParameterError("id_col needs a pandas DataFrame.", "pass the long frame.")
    if len(data) == 0:
        raise DataValueError("data has no rows.", "pass a frame with at least one row.")
    if data[id_col].isna().any():
        raise DataValueError(f"data[{id_col!r}] has {int(data[id_col].isna().sum())} missing series ids.",
                             "fill or drop those rows first.")
    check_id_kinds(data[id_col], f"data[{id_col!r}]")
    if time_col is None:
        return data
    t = _time_values(data, time_col, "data")  # numbers or datetimes, none missing: text would sort as text
    codes = data[id_col].factorize(sort=False)[0]
    order = np.lexsort((t, codes))
    same = (codes[order][1:] == codes[order][:-1]) & (t[order][1:] == t[order][:-1])
    if same.any():
        raise OrderError(f"data has duplicate ({id_col}, {time_col}) pairs, e.g. series "
                         f"{data[id_col].iloc[order[1:][same][0]]!r}: the split point between them is "
                         "undefined.", "aggregate or drop duplicates first.")
    return data.iloc[order]


def _split_series(data: Any, parts: _Parts, id_col: str, time_col: str | None) -> tuple[Any, Any, Any, dict]:
    """:func:`time_split` of a long frame: every series cut by its own time, the parts concatenated; a part
    no series gets is refused, series too short for a part are listed and warned about."""
    import pandas as pd

    frame = _in_series_time_order(data, id_col, time_col)
    out: list[list[Any]] = [[], [], []]
    left = 0
    missing: dict[str, list] = {"val": [], "test": []}
    for name, g in frame.groupby(id_col, sort=False):
        cuts = parts.cuts(len(g), name)
        for p, sl in zip(out, cuts):
            p.append(g.iloc[sl])
        for part in parts.empty(cuts):
            missing[part].append(name)
        left += parts.left(len(g), cuts)
    n_series = len(out[0])
    for part, ids in missing.items():
        if ids and len(ids) == n_series:
            raise ParameterError(f"{part}={parts.val if part == 'val' else parts.test} gives no {part} row to any of "
                                 f"the {n_series} series (the longest has {max(len(p) for p in out[0])} training "
                                 "rows).", f"pass series of at least {parts.rows_needed()} rows, a larger {part} "
                                 f"fraction, or {part}=0 to skip that part.")
    if missing["val"] or missing["test"]:
        import warnings

        from ...errors import StatebatchWarning

        short = list(dict.fromkeys(missing["val"] + missing["test"]))
        warnings.warn(f"time_split: {len(short)} series are too short to give a row to every part asked for "
                      f"(e.g. {short[:5]}; series_without_val: {len(missing['val'])}, series_without_test: "
                      f"{len(missing['test'])}); their rows are in the earlier parts only. The fourth value "
                      "returned lists them.", StatebatchWarning, stacklevel=3)
    train, val, test = (pd.concat(p) for p in out)
    return train, val, test, {"rows_left_out_by_gap": left, "series_without_val": missing["val"],
                              "series_without_test": missing["test"]}


def _split_rows(data: Any, parts: _Parts, time_col: str | None) -> tuple[Any, Any, Any, dict]:
    """:func:`time_split` of one series: rows in time order (sorted by ``time_col``, or a time index checked),
    cut once; a part asked for that gets no row is refused."""
    from ...sources.series import _check_time_index, _time_values

    if time_col is not None:
        if not _is_frame(data):
            raise ParameterError("time_col needs a pandas DataFrame.", "pass the frame, or drop time_col for rows in time order.")
        t = _time_values(data, time_col, "data")
        order = np.argsort(t, kind="stable")  # earliest rows train, whatever the row order
        if np.any(t[order][1:] == t[order][:-1]):
            raise OrderError(f"data[{time_col!r}] has duplicate time stamps: the split point between them is undefined.",
                             "aggregate or drop duplicates first (or pass id_col= for many series).")
        data = data.iloc[order]
    elif _is_frame(data) or type(data).__name__ == "Series" and type(data).__module__.startswith("pandas"):
        _check_time_index(data.index, "data")  # rows in time order: an unsorted time index is refused
    n = len(data)
    if n == 0:
        raise DataValueError("data has no rows.", "pass at least one row.")
    cuts = parts.cuts(n)
    empty = parts.empty(cuts)
    if empty:
        raise ParameterError(f"{n} rows give no {' and no '.join(empty)} row for val={parts.val}, test={parts.test}, "
                             f"gap={parts.gap}.",
                             f"pass at least {parts.rows_needed()} rows, larger fractions, or {'='.join(empty)}=0 to "
                             f"skip {'that part' if len(empty) == 1 else 'those parts'}.")
    take = (lambda s: data.iloc[s]) if hasattr(data, "iloc") else (lambda s: data[s])
    return take(cuts[0]), take(cuts[1]), take(cuts[2]), {"rows_left_out_by_gap": parts.left(n, cuts),
                                                         "series_without_val": [], "series_without_test": []}


class WindowSplit:
    """Time-series cross-validation for windows: each test fold brings its own history.

    Like :class:`sklearn.model_selection.TimeSeriesSplit`, fold ``k`` trains on the earliest rows and
    tests on later ones. Windows need ``timesteps + horizon - 1`` rows of inputs before their first
    target; those rows (``history``) open every test fold and belong to no training fold of that
    split, so no test window's target is a training row and no training window reads a test row,
    for every ``timesteps <= history - horizon + 1`` a search tries. ``gap`` rows more are left out
    between the training rows and the history (against autocorrelation leaking across the cut).

    Per series of ``n`` rows, with ``m = test_size`` (default ``(n - history - gap) // (n_splits + 1)``)::

        fold k (of K):   train [0, s - history - gap)   test [s - history, s + m),   s = n - (K - k) * m

    Parameters
    ----------
    n_splits : int
    history : int
        Rows at the start of each test fold that are inputs only: the largest ``timesteps + horizon - 1``
        the search uses.
    gap : int
        Rows in neither part between a fold's training rows and its test fold.
    test_size : int, optional
        Targets per test fold (per series).
    max_train_size : int, optional
        Keep at most this many of the latest training rows (per series).
    id_col, time_col : str, optional
        A long DataFrame: every series is split by its own time (sorted by ``time_col`` when given),
        and a fold is the union of those row positions.

    Examples
    --------
    >>> import numpy as np
    >>> for train, test in WindowSplit(n_splits=2, history=2).split(np.zeros(14)):
    ...     print(train, test)  # each test fold opens with 2 rows of history, in no training part
    [0 1 2 3] [4 5 6 7 8 9]
    [0 1 2 3 4 5 6 7] [ 8  9 10 11 12 13]
    """

    def __init__(self, n_splits: int = 5, *, history: int = 10, gap: int = 0, test_size: int | None = None,
                 max_train_size: int | None = None, id_col: str | None = None, time_col: str | None = None):
        self.n_splits = n_splits
        self.history = history
        self.gap = gap
        self.test_size = test_size
        self.max_train_size = max_train_size
        self.id_col = id_col
        self.time_col = time_col

    def __repr__(self) -> str:
        return (f"WindowSplit(n_splits={self.n_splits}, history={self.history}, gap={self.gap}, "
                f"test_size={self.test_size}, max_train_size={self.max_train_size}, id_col={self.id_col!r}, "
                f"time_col={self.time_col!r})")

    def get_n_splits(self, X: Any = None, y: Any = None, groups: Any = None) -> int:
        from ..._args import check_int as _int

        return _int("n_splits", self.n_splits, 1)

    def _cuts(self, n: int, name: Any) -> list[tuple[int, int, int, int]]:
        """(train_start, train_stop, test_start, test_stop) per fold for one series of n rows."""
        from ..._args import check_int as _int

        k = self.get_n_splits()
        history, gap = _int("history", self.history, 0), _int("gap", self.gap, 0)
        m = (n - history - gap) // (k + 1) if self.test_size is None else _int("test_size", self.test_size, 1)
        if self.max_train_size is not None and _int("max_train_size", self.max_train_size, 1) <= history:
            raise ParameterError(f"max_train_size={self.max_train_size} leaves no training window after {history} rows "
                                 "of history.", f"pass max_train_size > history ({history}), or None.")
        first_test = n - k * m
        if m < 1 or first_test - history - gap < history + 1:
            raise ParameterError(
                f"series {name!r} has {n} rows: too few for {k} folds of {max(m, 1)} targets after {history} rows of "
                f"history and a gap of {gap} (its first training part needs more than {history} rows).",
                "use fewer n_splits, a smaller test_size/history/gap, or drop the short series.")
        folds = []
        for i in range(k):
            s = first_test + i * m
            stop = s - history - gap
            start = 0 if self.max_train_size is None else max(0, stop - _int("max_train_size", self.max_train_size, 1))
            folds.append((start, stop, s - history, s + m))
        return folds

    def split(self, X: Any, y: Any = None, groups: Any = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield ``(train, test)`` arrays of row positions of ``X``."""
        from ...sources.frames import to_pandas_or_numpy

        _refuse_nested(X, "WindowSplit.split")
        X = to_pandas_or_numpy(X)
        if X is None or isinstance(X, (str, bytes, dict)) or not hasattr(X, "__len__") or np.ndim(X) == 0:
            raise ParameterError(f"WindowSplit.split splits the rows of X, got {type(X).__name__}.",
                                 "pass X as an array or DataFrame (steps first).")
        if y is not None:
            y = to_pandas_or_numpy(y, "y")
            if not hasattr(y, "__len__") or np.ndim(y) == 0 or len(y) != len(X):
                raise LengthMismatchError(f"X has {len(X)} rows but y has "
                                          f"{len(y) if hasattr(y, '__len__') and np.ndim(y) else 'none (a scalar)'}.",
                                          "pass y aligned row by row with X.")
            if _is_pandas_rows(X) and _is_pandas_rows(y) and not y.index.equals(X.index):
                # folds are row positions, taken from X and y alike: a y in another row order would pair wrong rows
                raise LengthMismatchError("y's index is not X's index, so the folds' row positions would take other "
                                          "rows of y than of X.",
                                          "pass y = y.loc[X.index] (the same rows in X's order), or y.to_numpy().")
        if self.id_col is None and self.time_col is None:
            if _is_pandas_rows(X):  # folds are cut by position: a time index must be in time order
                from ...sources.series import _check_time_index

                _check_time_index(X.index, "X")
            n = len(X)
            for a, b, c, d in self._cuts(n, 0):
                yield np.arange(a, b), np.arange(c, d)
            return
        if not _is_frame(X):
            raise ParameterError(f"id_col/time_col need a DataFrame, got {type(X).__name__}.",
                                 "pass the long frame, or drop id_col/time_col.")
        _check_column_args(X, id_col=self.id_col, time_col=self.time_col)
        from ...sources.series import _time_values
        from ...sources.timeindex import check_id_kinds

        positions = np.arange(len(X))
        if self.id_col is not None:
            if X[self.id_col].isna().any():
                raise DataValueError(f"X[{self.id_col!r}] has {int(X[self.id_col].isna().sum())} missing series ids.",
                                     "fill or drop those rows first.")
            check_id_kinds(X[self.id_col], f"X[{self.id_col!r}]")
            codes, uniques = X[self.id_col].factorize(sort=False)
        else:
            codes, uniques = np.zeros(len(X), dtype=np.int64), [0]
        if self.time_col is not None:
            t = _time_values(X, self.time_col, "X")  # numbers or datetimes, none missing (text would sort as text)
            positions = np.lexsort((t, codes))
            same = (codes[positions][1:] == codes[positions][:-1]) & (t[positions][1:] == t[positions][:-1])
            if same.any():
                raise OrderError(f"X has duplicate ({self.id_col}, {self.time_col}) pairs: the order of those rows, "
                                 "and so the folds, would be a guess.", "aggregate or drop duplicates first.")
        else:
            positions = np.argsort(codes, kind="stable")  # each series in the frame's row order
        sorted_codes = codes[positions]
        bounds = np.searchsorted(sorted_codes, np.arange(len(uniques) + 1))
        per_series = []
        for k, name in enumerate(list(uniques)):
            rows = positions[bounds[k]:bounds[k + 1]]  # this series' row positions in time order
            per_series.append((rows, self._cuts(len(rows), name)))
        for f in range(self.get_n_splits()):
            train = np.concatenate([rows[cuts[f][0]:cuts[f][1]] for rows, cuts in per_series])
            test = np.concatenate([rows[cuts[f][2]:cuts[f][3]] for rows, cuts in per_series])
            yield np.sort(train), np.sort(test)
