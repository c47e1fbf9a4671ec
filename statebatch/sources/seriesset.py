"""The :class:`SeriesSet` every input becomes, and the checks every input kind shares.

A ``SeriesSet`` is a row source ``(total_steps, features)`` holding every series end to end, the row
offset of each series, their ids, feature names and (optionally) target columns aligned row by row.
Planners need only its ``lengths``; materialisers read from its ``source``. The numeric checks here
(dtype, rank, emptiness) are the ones every registered input kind applies, so that a new kind
refuses what the built-in ones refuse, with the same messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..errors import DataValueError, DTypeError, ParameterError, ShapeError
from .base import ArraySource, ColumnSource, ConcatSource, RowSource, as_source, is_source
from .registry import register_input

if TYPE_CHECKING:  # pragma: no cover - types only
    from .options import InputOptions

__all__ = ["SeriesSet", "dtype_error", "in_memory", "checked_finite", "source_of", "series_of_source"]

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

    @classmethod
    def from_arrays(cls, arrays: Sequence[Any], *, ids: Sequence[Any] | None = None,
                    feature_names: Sequence[str] | None = None, dtype: Any = None, what: str = "data") -> "SeriesSet":
        """Series from per-series arrays ``(steps,)``/``(steps, features)`` (no concatenation): what an input
        kind's ``to_series`` returns when it has read its own options (ids, columns).

        Parameters
        ----------
        arrays : sequence of array-like
            One per series, same number of features.
        ids : sequence, optional
            Series ids (default: positions).
        feature_names : sequence of str, optional
        dtype : numpy dtype, optional
            Cast on reading (default: kept; series of different dtypes get their common type).
        what : str
            The name of the data in messages.

        Examples
        --------
        >>> import numpy as np
        >>> ss = SeriesSet.from_arrays([np.zeros(3), np.ones(2)], ids=["a", "b"])
        >>> ss.ids, ss.lengths.tolist(), ss.n_features
        (['a', 'b'], [3, 2], 1)
        """
        parts = [_as_2d(_array(a, f"{what}[{i}]", dtype), f"{what}[{i}]") for i, a in enumerate(arrays)]
        if not parts:
            raise DataValueError(f"{what} holds no series.", "pass at least one non-empty series.")
        nf = {p.shape[1] for p in parts}
        if len(nf) > 1:
            raise ShapeError(f"the series in {what} have different feature counts {sorted(nf)}.",
                             "give every series the same columns (features), in the same order.")
        common = np.result_type(*{p.dtype for p in parts})
        parts = [p.astype(common, copy=False) for p in parts]
        ids = list(range(len(parts))) if ids is None else list(ids)
        if len(ids) != len(parts):
            raise ParameterError(f"{len(ids)} ids for {len(parts)} series in {what}.", "pass one id per series.")
        names = None if feature_names is None else [str(n) for n in feature_names]
        if names is not None and len(names) != parts[0].shape[1]:
            raise ParameterError(f"{len(names)} feature names for {parts[0].shape[1]} features in {what}.",
                                 "pass one name per feature.")
        offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
        src = ArraySource(parts[0]) if len(parts) == 1 else ConcatSource(parts)
        return _checked(cls(src, offsets, ids, feature_names=names), what)

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


# --------------------------------------------------------------------------- dtype checks
def dtype_error(arr: np.ndarray, what: str) -> DTypeError | None:
    """The error for an array a network cannot use (object/ragged, strings, complex...), else ``None``.

    Examples
    --------
    >>> import numpy as np
    >>> print(dtype_error(np.array(["a"]), "data"))
    data has non-numeric dtype <U1 (shape (1,)).
      Fix: encode text/categories as numbers (integers, one-hot columns) first.
    >>> dtype_error(np.zeros(2), "data") is None
    True
    """
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



def _checked(s: SeriesSet, what: str) -> SeriesSet:
    if s.n_series == 0 or int(s.offsets[-1]) == 0:
        raise DataValueError(f"{what} is empty (no time steps).", "pass at least one non-empty series.")
    if s.n_features == 0:
        raise DataValueError(f"{what} has no features (shape {s.source.shape}).", "pass at least one feature column.")
    return s


def in_memory(source: RowSource) -> bool:
    """Whether the rows are in memory (checked up front) rather than read lazily.

    Examples
    --------
    >>> import numpy as np
    >>> in_memory(ArraySource(np.zeros((2, 1))))
    True
    """
    return source.array is not None or (isinstance(source, ConcatSource) and source.in_memory)


def checked_finite(source: RowSource) -> bool:
    """Whether an out-of-core source was found free of NaN/inf when it was written (a store prepared by
    :func:`statebatch.dask.prepare`, whose manifest refuses shards changed since), so that its batches
    need no scan as they are read.

    Examples
    --------
    >>> import numpy as np
    >>> checked_finite(ArraySource(np.zeros((2, 1))))  # in memory: checked when read, not when written
    False
    """
    return bool(getattr(source, "finite_checked", False))


def source_of(arrays: list[np.ndarray]) -> RowSource:
    """One row source over per-series arrays (no copy).

    Examples
    --------
    >>> import numpy as np
    >>> source_of([np.zeros((2, 1)), np.ones((3, 1))])
    ConcatSource(shape=(5, 1), dtype=float64)
    """
    return ArraySource(arrays[0]) if len(arrays) == 1 else ConcatSource(arrays)


def _no_frame_args(frame_args: bool, data: Any, what: str) -> None:
    if frame_args:
        raise ParameterError(f"id_col/time_col/feature_cols/target_cols do not apply to {type(data).__name__} "
                             f"({what} is already prepared).", "drop those arguments.")


def series_of_source(data: Any, options: "InputOptions", what: str) -> SeriesSet:
    """One series out of core (a store, a Zarr array, a row-source protocol object) as a SeriesSet.

    Parameters
    ----------
    data : RowSource or an object with ``shape``, ``dtype`` and ``read(start, stop)``
        ``(steps, features)`` rows, read lazily.
    options : InputOptions
        Frame options do not apply (refused); ``dtype`` must be the source's own (no conversion
        without reading every row).
    what : str
        The name of the data in messages.

    Returns
    -------
    SeriesSet
        One series over ``data`` (nothing read).

    Examples
    --------
    >>> import numpy as np
    >>> from statebatch.sources.base import ArraySource
    >>> from statebatch.sources.options import InputOptions
    >>> series_of_source(ArraySource(np.zeros((4, 2))), InputOptions(), "data").lengths
    array([4])
    """
    _no_frame_args(_frame_args(options), data, what)
    src = as_source(data)
    if src.ndim == 1:
        raise ShapeError(f"{what} is a 1-D row source {src.shape}; a series source is (steps, features).",
                         "store the series as a 2-D array (steps, 1).")
    if src.ndim != 2:
        raise ShapeError(f"{what} has shape {src.shape}; a series source is (steps, features).",
                         "store the raw series as a 2-D array.")
    _check_numeric(np.empty(0, dtype=src.dtype), what)
    if options.dtype is not None and np.dtype(options.dtype) != src.dtype:
        raise ParameterError(f"dtype={options.dtype!r} cannot convert an out-of-core source ({src.dtype}) without "
                             "reading it.", "store the data in the dtype you want, or leave dtype out.")
    return _checked(SeriesSet(src, np.array([0, len(src)], dtype=np.int64), [0]), what)


def _frame_args(options: "InputOptions") -> bool:
    """Whether any of the frame-only options (id, time, feature and target columns) is set."""
    return (options.id_col is not None or options.time_col is not None or options.feature_cols is not None
            or options.target_cols is not None)


def _refuse_frame_args(options: "InputOptions", data: Any, what: str) -> None:
    """Frame options given with an input that has no columns."""
    if _frame_args(options):
        raise ParameterError(
            f"id_col/time_col/feature_cols/target_cols only apply to a DataFrame, got {type(data).__name__}.",
            "pass a DataFrame, or drop those arguments.",
        )


# A SeriesSet given by the caller is ready: nothing to read.
register_input(lambda d: isinstance(d, SeriesSet), lambda d, options, what: d, name="seriesset", many=True,
               _rank=10, _native=True)
# Row sources (statebatch stores, protocol objects): one series each, never read up front.
register_input(is_source, series_of_source, name="row_source", _rank=50, _native=True)
