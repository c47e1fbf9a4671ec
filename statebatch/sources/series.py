"""Input normalisation: every supported input becomes a :class:`SeriesSet`.

:func:`as_series` asks the registered input kinds in turn (:mod:`statebatch.sources.registry`): numpy
arrays and memmaps (zero-copy), pandas Series and wide DataFrames (time order checked), lists of
arrays (many series, never concatenated), long DataFrames with a series-id column (and a time column
to sort by), polars and pyarrow frames, sktime's nested panels, row sources (statebatch stores, Zarr
arrays), :class:`~statebatch.sources.npy.StoredSeries`, Dask collections (prepared into a temporary
store by :mod:`statebatch.sources.dask`) and whatever users registered with
:func:`statebatch.register_input`. The dtype the user gave is kept on every path.

This module also holds the checks every entry point applies after reading: holes in the time stamps
(:func:`apply_gaps`), NaN and inf (:func:`check_finite_series`), and targets given alongside the data
(:func:`aligned_targets`).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from .._args import plain
from ..errors import DataValueError, DTypeError, ParameterError, ShapeError, StatebatchError
from .base import ArraySource, ConcatSource, RowSource
from .options import GAPS, InputOptions
from .registry import find_input, type_is
from .seriesset import (SeriesSet, _array, _as_2d, _cast, _check_numeric, checked_finite, dtype_error,
                        in_memory, source_of)
from .timeindex import find_gaps
# frames' private helpers, imported from here by older code and tests
from .pandas_frames import _check_time_index, _frame_values, _is_pandas, _time_values

__all__ = ["SeriesSet", "as_series", "apply_gaps", "check_finite_series", "aligned_targets", "dtype_error",
           "in_memory", "checked_finite", "source_of", "GAPS", "INPUT_CHECKS_DOC", "INPUT_CHECKS_STUB",
           "non_finite_found", "non_finite_effect"]

_REEXPORTED = (ArraySource, RowSource, _array, _as_2d, _cast, _check_numeric, _check_time_index, _time_values)


def _is_dask(obj: Any) -> bool:
    return type_is(obj, ("dask", "dask_expr"))


def _is_zarr(obj: Any) -> bool:
    return type_is(obj, "zarr")


# --------------------------------------------------------------------------- entry point
def as_series(
    data: Any,
    *,
    options: InputOptions | None = None,
    id_col: str | None = None,
    time_col: str | None = None,
    feature_cols: Sequence[str] | None = None,
    target_cols: Sequence[str] | None = None,
    dtype: Any = None,
    what: str = "data",
    gaps: str = "error",
) -> SeriesSet:
    """Turn any registered input into a :class:`SeriesSet`.

    Parameters
    ----------
    data : any registered input kind
        See the module docstring and :func:`statebatch.registered_inputs`.
    options : InputOptions, optional
        The input options together; the keywords below set the same names (a keyword that repeats
        one set in ``options`` with another value is refused).
    id_col, time_col, feature_cols, target_cols, dtype, gaps
        As in :class:`~statebatch.InputOptions` (``allow_nan``/``allow_inf`` are read by
        :func:`check_finite_series`, holes by :func:`apply_gaps`).
    what : str
        The name of the data in messages.

    Returns
    -------
    SeriesSet
        ``n_series`` series laid end to end in a row source ``(total_steps, features)``.

    Examples
    --------
    >>> import numpy as np
    >>> ss = as_series([np.zeros((3, 2)), np.ones((2, 2))])
    >>> ss.n_series, ss.lengths.tolist(), ss.n_features
    (2, [3, 2], 2)
    """
    opts = InputOptions.resolve(options, id_col=id_col, time_col=time_col, feature_cols=feature_cols,
                                target_cols=target_cols, dtype=dtype, gaps=gaps)
    steps, origin = 0, None
    while not isinstance(data, SeriesSet):
        kind = find_input(data)
        if kind is None:
            raise unknown_input(data, what)
        steps += 1
        if steps > 8:  # a registration that hands back what it accepts would loop for ever
            raise ParameterError(f"the input kind {kind.name!r} does not turn {what} into series (still a "
                                 f"{type(data).__name__} after {steps - 1} conversions).",
                                 "its to_series must return a SeriesSet or another input kind statebatch reads.")
        data = _read(kind, data, opts, what, origin)
        if kind.rank is None:  # a user's kind: its reading must have applied the column options it was given
            origin = origin or kind.name
            _check_options_applied(kind.name, data, opts, what)
    return data


def _read(kind: Any, data: Any, opts: InputOptions, what: str, origin: str | None = None) -> Any:
    """One registration's reading; a user's to_series that fails with a foreign error is named. ``origin``: the
    user's kind that turned the data into what ``kind`` reads (named when the column options cannot apply)."""
    if kind.rank is not None:  # built-in kinds raise statebatch errors themselves
        try:
            return kind.to_series(data, opts, what)
        except ParameterError as exc:
            if origin is None or not str(exc).startswith(_FRAME_ONLY):
                raise
            raise ParameterError(
                f"id_col/time_col/feature_cols/target_cols were given, but the input kind {origin!r} turned {what} "
                f"into a {type(data).__name__}, which has no columns to apply them to.",
                f"make the to_series registered as {origin!r} read those options (options.id_col, "
                "options.feature_cols...) and return a SeriesSet or a DataFrame, or drop those arguments.") from None
    try:
        return kind.to_series(data, opts, what)
    except StatebatchError:
        raise
    except Exception as exc:  # noqa: BLE001 - a user's reader: any error, named with the kind that raised it
        raise DataValueError(f"input kind {kind.name!r} could not read {what} ({type(exc).__name__}: {exc}).",
                             f"check the data, or the to_series registered as {kind.name!r}.") from exc




_FRAME_ONLY = "id_col/time_col/feature_cols/target_cols only apply"  # how the array kinds refuse column options


def _check_options_applied(name: str, ss: Any, opts: InputOptions, what: str) -> None:
    """Series a user's kind returned must show the targets and features asked for: a to_series that does not
    read ``options.target_cols``/``feature_cols`` would otherwise drop them without a word."""
    if not isinstance(ss, SeriesSet):
        return
    if opts.target_cols is not None and ss.targets is None:
        raise ParameterError(
            f"target_cols={list(opts.target_cols)} were given, but the input kind {name!r} returned {what} without "
            "targets: its to_series does not read options.target_cols, so the targets would be silently missing.",
            f"make the to_series registered as {name!r} build the targets (SeriesSet(..., targets=..., "
            "target_names=...)), or drop target_cols.")
    if opts.feature_cols is not None:
        want = [str(c) for c in opts.feature_cols]
        got = ss.feature_names if ss.feature_names is not None else [f"<{ss.n_features} unnamed>"]
        if got != want:
            raise ParameterError(
                f"feature_cols={want} were given, but the input kind {name!r} returned {what} with features {got}: "
                "its to_series does not read options.feature_cols.",
                f"make the to_series registered as {name!r} keep only options.feature_cols (and name them with "
                "feature_names=...), or drop feature_cols.")


def unknown_input(data: Any, what: str) -> DTypeError:
    """The error for an input no registration accepts: what it is, and how to teach statebatch to read it.

    Examples
    --------
    >>> print(unknown_input({"a": 1}, "data"))  # doctest: +ELLIPSIS
    data is a builtins.dict, which statebatch does not know how to read...
    """
    t = type(data)
    return DTypeError(
        f"{what} is a {t.__module__}.{t.__qualname__}, which statebatch does not know how to read (no registered "
        "input kind accepts it).",
        "convert it to a numpy array, a list of arrays (one per series) or a pandas DataFrame; or teach statebatch "
        "to read it once with statebatch.register_input(accepts, to_series, name=...).")


#: The parameters ``allow_nan`` and ``gaps``, documented once for every function that takes them.
# In the docstrings of make_windows, arrange_stateful and bucket_batches the short entry (what static
# documentation tools read) is replaced at import by the full text.
INPUT_CHECKS_STUB = ("    allow_nan, allow_inf, gaps\n"
                     "        The input checks every entry point shares: NaN refused unless ``allow_nan=True``, inf unless\n"
                     "        ``allow_inf=True``; holes in the time stamps refused, split or accepted (``gaps``).\n")
INPUT_CHECKS_DOC = """\
    allow_nan, allow_inf : bool
        NaN and inf in in-memory data or targets raise :class:`~statebatch.errors.DataValueError` by
        default (NaN turns into a NaN loss, inf into an inf or NaN loss); ``allow_nan=True`` accepts NaN
        (e.g. for a model that masks them), ``allow_inf=True`` accepts inf; each lets only its own kind through.
    gaps : "error", "split" or "accept"
        Holes in the time stamps of a frame's time column or DatetimeIndex (a step missing from the
        regular frequency): refused by default, ``"split"`` cuts the series there (pieces get ids
        ``(id, piece)``, with a warning), ``"accept"`` runs windows and lanes across them.
"""


def apply_gaps(ss: SeriesSet, gaps: str, what: str = "data") -> SeriesSet:
    """Refuse (``"error"``), split at (``"split"``) or accept (``"accept"``) holes in the time stamps.

    Examples
    --------
    >>> import pandas as pd, warnings
    >>> days = pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-04", "2020-01-05"])
    >>> ss = as_series(pd.Series([1.0, 2.0, 3.0, 4.0], index=days))
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     apply_gaps(ss, "split").ids  # cut at the missing 3 January
    [(0, 0), (0, 1)]
    """
    import warnings

    from ..errors import StatebatchWarning

    if gaps == "accept" or ss.index is None:
        return ss
    scanned = [(i, find_gaps(idx)) for i, idx in enumerate(ss.index) if not _evenly_spaced(idx)]
    found = [(i, pos, step) for i, (pos, step) in scanned if len(pos)]
    if not found:
        return ss
    n_gaps = sum(len(pos) for _, pos, _ in found)
    i, pos, step = found[0]
    idx = ss.index[i]
    before, after = np.asarray(idx)[pos[0] - 1], np.asarray(idx)[pos[0]]
    if gaps == "error":
        raise DataValueError(
            f"{what} has {n_gaps} hole(s) in its time stamps (in {len(found)} series), the first in series "
            f"{plain(ss.ids[i])!r} between {before} and {after} (regular step {step}); windows and lanes would run across it "
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


_FINITE_BLOCK = 1 << 16  # values checked at a time: bounded extra memory (no copy of a large series)


def check_finite_series(ss: SeriesSet, what: str = "data", allow_nan: bool = False, allow_inf: bool = False) -> None:
    """Refuse NaN (unless ``allow_nan``) and +-inf (unless ``allow_inf``) in in-memory series, naming
    which kind of value was found, how many, and where the first one is.

    The scan is vectorised, block by block (bounded extra memory). Out-of-core sources are not read
    here (that would read the whole store up front); their batches are checked as they are read.

    Parameters
    ----------
    ss : SeriesSet
        The series (and its target columns, checked the same way).
    what : str
        The name of the data in messages.
    allow_nan, allow_inf : bool
        Let NaN (a model that masks missing values) or infinities through.

    Raises
    ------
    DataValueError
        Naming NaN or inf (or both), the count and the first position, with the fix for that kind.

    Examples
    --------
    >>> import numpy as np
    >>> ss = as_series(np.array([1.0, np.nan, 3.0]))
    >>> check_finite_series(ss, allow_nan=True)
    >>> check_finite_series(ss)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    statebatch.errors.DataValueError: data has 1 NaN value(s), the first at step 1; ...
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
    found = _scan_non_finite(pieces, starts, allow_nan, allow_inf)
    if found is None:
        return
    first, n_nan, n_inf = found
    k = int(np.searchsorted(ss.offsets, first, side="right") - 1)
    where = f"series {plain(ss.ids[k])!r} step {first - int(ss.offsets[k])}" if ss.n_series > 1 else f"step {first}"
    raise _non_finite_error(what, where, n_nan, n_inf)


def _bad_values(block: np.ndarray, allow_nan: bool, allow_inf: bool) -> np.ndarray:
    """The refused values of a block: NaN, infinities, or both."""
    if allow_nan:
        return np.isinf(block)
    if allow_inf:
        return np.isnan(block)
    return ~np.isfinite(block)


def _scan_non_finite(pieces: list[np.ndarray], starts: list[int], allow_nan: bool,
                     allow_inf: bool) -> tuple[int, int, int] | None:
    """The first refused row and the NaN and inf counts over in-memory pieces, or None when all pass."""
    first, n_nan, n_inf = None, 0, 0
    for arr, start in zip(pieces, starts):
        if arr.size <= _FINITE_BLOCK:  # the common case for many series: one call, no temporary index
            if np.isfinite(arr).all():
                continue
            rows_per_block = len(arr)
        else:
            # A finite sum means no NaN/inf: one pass without a temporary (NaN and inf propagate; an
            # overflow to inf of finite values only sends the block to the exact scan below). float32: the
            # sum of squares, one BLAS dot, about 0.6x np.add.reduce's time (squares are never negative, so
            # no inf - inf); float64 measured no faster that way on a loaded 2-core machine.
            if arr.flags.c_contiguous and _sum_finite(arr.reshape(-1)):
                continue
            rows_per_block = max(1, _FINITE_BLOCK // max(1, math.prod(arr.shape[1:])))
        for lo in range(0, len(arr), rows_per_block):
            block = arr[lo: lo + rows_per_block]
            bad = _bad_values(block, allow_nan, allow_inf)
            if bad.any():
                rows = np.flatnonzero(bad.reshape(len(bad), -1).any(axis=1))
                n_nan += 0 if allow_nan else int(np.isnan(block).sum())
                n_inf += 0 if allow_inf else int(np.isinf(block).sum())
                if first is None:
                    first = start + lo + int(rows[0])
    return None if first is None else (first, n_nan, n_inf)


def _sum_finite(flat: np.ndarray) -> bool:
    """Whether a sum over the 1-D ``flat`` is finite (False for any NaN/inf, or an overflow of finite values)."""
    with np.errstate(all="ignore"):
        if flat.dtype == np.float32:
            return math.isfinite(float(np.dot(flat, flat)))
        return math.isfinite(float(np.add.reduce(flat)))


def non_finite_found(n_nan: int, n_inf: int) -> str:
    """The non-finite values found, in words: only the kinds there are (NaN, inf or both).

    Examples
    --------
    >>> non_finite_found(0, 3), non_finite_found(2, 1)
    ('3 inf value(s)', '2 NaN value(s) and 1 inf value(s)')
    """
    return " and ".join(f"{n} {name} value(s)" for n, name in ((n_nan, "NaN"), (n_inf, "inf")) if n)


def non_finite_effect(n_nan: int, n_inf: int) -> str:
    """What such values do to a recurrent network's loss, said for the kinds found: an inf is not a NaN
    (``allow_nan`` and ``allow_inf`` let each through separately), so its message speaks of inf.

    Examples
    --------
    >>> non_finite_effect(1, 0)
    'a recurrent network turns them into a NaN loss'
    >>> non_finite_effect(0, 1)  # doctest: +ELLIPSIS
    'a recurrent network turns them into an inf or NaN loss (inf times a weight is inf; ...'
    """
    if not n_inf:
        return "a recurrent network turns them into a NaN loss"
    if not n_nan:
        return "a recurrent network turns them into an inf or NaN loss (inf times a weight is inf; inf - inf and " \
               "0 x inf are NaN)"
    return "a recurrent network turns them into a NaN (or inf) loss"


def _non_finite_error(what: str, where: str, n_nan: int, n_inf: int) -> DataValueError:
    """The message names what was found (NaN, inf or both) and the fix for each."""
    found = non_finite_found(n_nan, n_inf)
    fixes = []
    if n_nan:
        fixes.append("fill or drop the NaN first (e.g. df.interpolate() or df.dropna()), or pass allow_nan=True if "
                     "the model handles them (e.g. a masking layer)")
    if n_inf:
        fixes.append("find where the infinities come from (a division by zero, a log of 0) and replace them (e.g. "
                     "np.clip or np.nan_to_num), or pass allow_inf=True if the model is meant to see them")
    return DataValueError(f"{what} has {found}, the first at {where}; {non_finite_effect(n_nan, n_inf)}.",
                          "; ".join(fixes) + ".")


def aligned_targets(targets: Any, ss: SeriesSet, what: str = "targets") -> list[np.ndarray]:
    """Target arrays given alongside the data: one numeric array per series (same dtype and columns).

    Lengths are checked by the caller (Keras-style windows allow fewer targets than steps).

    Examples
    --------
    >>> import numpy as np
    >>> aligned_targets([np.zeros(3), np.ones(2)], as_series([np.zeros(3), np.ones(2)]))
    [array([0., 0., 0.]), array([1., 1.])]
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


def _target_array(t: Any, what: str) -> np.ndarray:
    if _is_pandas(t, "Series") or _is_pandas(t, "DataFrame"):
        frame = t.to_frame() if _is_pandas(t, "Series") else t
        return _frame_values(frame, list(frame.columns), what, None).reshape((len(frame),) + ((frame.shape[1],) if _is_pandas(t, "DataFrame") else ()))
    arr = _array(t, what)
    if arr.ndim == 0:
        raise ShapeError(f"{what} is a scalar.", "pass one target per time step.")
    return arr

