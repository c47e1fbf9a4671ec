"""numpy arrays and lists of series: the last two registrations, ``"sequence"`` and ``"array"``.

A list (or tuple) of series, one item per series (arrays, nested lists, frames, row sources, any
registered kind), is read without concatenating them; a list of numpy arrays of one dtype is checked
once for the whole list. Anything else ``numpy.asarray`` reads (arrays and memmaps, zero-copy;
nested lists of numbers; objects with ``__array__`` such as tensors) is one series
``(steps,)``/``(steps, features)``; anything
else is left to other registrations (an input none accepts is refused by ``as_series``). """

from __future__ import annotations

import numbers
import operator
import warnings
from collections.abc import Sequence as SequenceABC
from itertools import repeat
from pathlib import Path
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..errors import DataValueError, DTypeError, ShapeError, StatebatchWarning
from .base import ArraySource, ConcatSource
from .registry import find_input, register_input
from .seriesset import SeriesSet, _array, _as_2d, _checked, _refuse_frame_args

if TYPE_CHECKING:  # pragma: no cover - types only
    from .options import InputOptions

def _is_series_like(a: Any) -> bool:
    """One series of a list: an array, a nested list of steps, or any other registered kind (a frame,
    a Zarr array, a row source, a user's kind); not a bare number."""
    if isinstance(a, np.ndarray):
        return True
    if isinstance(a, (list, tuple)):
        return len(a) > 0 and isinstance(a[0], (list, tuple, np.ndarray))
    kind = find_input(a)
    return kind is not None and kind.name not in ("array", "sequence")


def _from_list(data: Sequence[Any], dtype: Any, what: str) -> SeriesSet:
    fast = _plain_arrays(data) if dtype is None else None
    if fast is not None:
        return _checked(_from_plain(fast), what)
    arrays: list[Any] = []
    arr: Any
    feature_names = None
    for i, a in enumerate(data):
        name = f"{what}[{i}]"
        if isinstance(a, (np.ndarray, list, tuple)):
            arr = _as_2d(_array(a, name, dtype), name)
        else:  # a frame, an out-of-core source (read piece by piece), a user's kind: read by its registration
            from .series import as_series

            part = as_series(a, dtype=dtype, what=name)
            if part.n_series != 1:
                raise ShapeError(f"{name} holds {part.n_series} series; each item of a list is one series.",
                                 f"pass the series of {name} as items of the list, or pass {name} alone.")
            arr = part.source.array if part.source.array is not None else part.source
            feature_names = feature_names or part.feature_names
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


def _accepts_sequence(data: Any) -> bool:
    if not isinstance(data, (list, tuple)) or not data:
        return False
    if set(map(type, data)) == {np.ndarray}:  # the common case, one C-level pass: every array is a series
        return True
    return all(_is_series_like(a) for a in data)


def _sequence_to_series(data: Sequence[Any], options: "InputOptions", what: str) -> SeriesSet:
    """Many series, one per item: the common case of one-dtype numpy arrays checked once."""
    _refuse_frame_args(options, data, what)
    if options.dtype is None and (plain := _plain_arrays(data)) is not None:
        return _checked(_from_plain(plain), what)  # the common case for many series: no per-series check
    return _from_list(data, options.dtype, what)


def _accepts_array(data: Any) -> bool:
    return (isinstance(data, (np.ndarray, np.generic, numbers.Number, str, bytes, SequenceABC))
            or any(hasattr(data, a) for a in ("__array__", "__array_interface__", "__array_struct__")))


def _array_to_series(data: Any, options: "InputOptions", what: str) -> SeriesSet:
    """One series ``(steps,)``/``(steps, features)`` from anything ``numpy.asarray`` reads."""
    _refuse_frame_args(options, data, what)
    if isinstance(data, (list, tuple)) and len(data) > 1 and all(isinstance(a, (list, tuple)) for a in data):
        # [[1, 2, 3, 4], [5, 6, 7, 8]]: two series of 4 steps, or one series of 2 steps x 4 features?
        shape = np.shape(data) if len({len(a) for a in data}) == 1 else None
        raise ShapeError(
            f"{what} is a list of {len(data)} Python lists{f' (shape {shape})' if shape else ''}: it could be "
            f"{len(data)} series, or one series of {len(data)} steps with one value per feature.",
            f"say which: [np.asarray(s) for s in {what}] for {len(data)} series, or np.asarray({what}) for one series "
            "of (steps, features).")
    arr = _as_2d(_array(data, what, options.dtype), what)
    if arr.ndim == 2 and arr.shape[1] > arr.shape[0] > 0 and arr.shape[1] >= 16:
        warnings.warn(f"{what} has {arr.shape[0]} steps and {arr.shape[1]} features: rows are steps, columns are "
                      f"features. If each row is a series (or a feature) over {arr.shape[1]} steps, pass "
                      f"{what}.T (one series) or list({what}) (one series per row).", StatebatchWarning, stacklevel=4)
    return _checked(SeriesSet(ArraySource(arr), np.array([0, len(arr)], dtype=np.int64), [0]), what)


register_input(_accepts_sequence, _sequence_to_series, name="sequence", many=True, _rank=90, _native=True)
def _read_npy(path: Path) -> np.ndarray:
    """A ``.npy`` file (numpy's magic bytes checked first: a renamed or compressed file says so)."""
    with open(path, "rb") as f:
        if f.read(6) != b"\x93NUMPY":
            raise DataValueError(f"{path} is not a .npy file (it does not start with numpy's magic bytes; "
                                 "compressed, or another format?).", "save it with np.save(path, X).")
    return np.load(path, allow_pickle=False)


register_input(_accepts_array, _array_to_series, name="array", suffixes=(".npy",), read_file=_read_npy, _rank=100,
               _native=True)
