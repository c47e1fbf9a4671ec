"""Targets of plain windows (``make_windows`` without forecasting inputs): the options checked, and where
each window's target rows are read (the data's own next values, or arrays aligned with the rows).
"""

from __future__ import annotations

from typing import Any, NamedTuple
import warnings

import numpy as np

from .._args import check_int, plural
from ..errors import LengthMismatchError, ParameterError, StatebatchWarning
from ..sources.base import RowSource
from ..sources.options import InputOptions
from ..sources.series import SeriesSet, aligned_targets, check_finite_series, source_of

__all__ = ["WindowTargets", "check_target_args", "window_targets"]


def check_target_args(targets: Any, target_cols: Any, horizon: int, n_ahead: int, return_sequences: bool,
                       target_features: Any) -> None:
    """Refuse target options that do not fit ``targets`` (they would silently do nothing).

    Examples
    --------
    >>> check_target_args("next", None, 2, 1, False, None)  # horizon with next-value targets: fine
    >>> check_target_args(None, None, 2, 1, False, None)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    statebatch.errors.ParameterError: horizon=2 applies to targets='next' only; ...
      Fix: shift the target arrays yourself (targets[h:]) or use targets='next'.
    """
    nxt = isinstance(targets, str) and targets == "next"
    if isinstance(targets, str) and targets not in ("next", "aligned"):
        raise ParameterError(f"targets={targets!r} is not understood.",
                             "pass None, 'next', 'aligned' (with target_cols) or an array aligned with the data.")
    if isinstance(targets, str) and targets == "aligned" and target_cols is None:
        raise ParameterError("targets='aligned' needs target_cols=[...] of a DataFrame.",
                             "name the target columns, or pass the target array itself.")
    if n_ahead > 1 and (return_sequences or not nxt):
        raise ParameterError(f"n_ahead={n_ahead} applies to next-value targets without return_sequences.",
                             "use targets='next' with return_sequences=False, or leave n_ahead=1.")
    if target_features is not None and not nxt:
        raise ParameterError("target_features selects which features are next-value targets; it has no meaning with "
                             f"targets={'an array' if not isinstance(targets, str) and targets is not None else repr(targets)}.",
                             "use targets='next', or drop target_features.")
    if horizon != 1 and not nxt:
        raise ParameterError(f"horizon={horizon} applies to targets='next' only; array targets are aligned with the "
                             "window's first or last step (align=...).",
                             "shift the target arrays yourself (targets[h:]) or use targets='next'.")


class WindowTargets(NamedTuple):
    """Where the windows' targets are read: ``source`` rows ``offset`` after each window's first row,
    ``length`` rows ``step`` apart (None: one row); ``extra`` steps after a window that its targets need;
    ``max_starts``: per series the last window start that has a target (targets that end early)."""

    source: RowSource | None = None
    offset: int = 0
    length: int | None = None
    step: int = 1
    extra: int = 0
    max_starts: np.ndarray | None = None


def window_targets(ss: SeriesSet, targets: Any, opts: InputOptions, *, timesteps: int, sampling_rate: int,
                    horizon: int, n_ahead: int, align: str, return_sequences: bool, target_features: Any) -> WindowTargets:
    """The targets of plain windows: none, the data's own next values, or arrays aligned with the rows.

    Examples
    --------
    >>> import numpy as np
    >>> import statebatch as sb
    >>> from statebatch.sources.series import as_series
    >>> t = window_targets(as_series(np.arange(6.0)), "next", sb.InputOptions(), timesteps=3, sampling_rate=1,
    ...                    horizon=1, n_ahead=1, align="first", return_sequences=False, target_features=None)
    >>> t.offset, t.length, t.extra  # the row after each window's last one
    (3, None, 1)
    """
    span = (timesteps - 1) * sampling_rate + 1
    if targets is None:
        return WindowTargets()
    if isinstance(targets, str) and targets == "next":
        ysource = ss.next_value_source(target_features)
        if return_sequences:
            return WindowTargets(ysource, horizon, timesteps, sampling_rate, horizon)
        return WindowTargets(ysource, span - 1 + horizon, n_ahead if n_ahead > 1 else None, 1, horizon + n_ahead - 1)
    if isinstance(targets, str):  # "aligned": the target columns of the frame
        assert ss.targets is not None
        tlist = [ss.targets.read(int(a), int(b)) for a, b in zip(ss.offsets[:-1], ss.offsets[1:])]
    else:
        tlist = aligned_targets(targets, ss)
    _check_target_lengths(tlist, ss, ends_early=align == "last" and not return_sequences and ss.n_series == 1)
    short = [len(t) for t in tlist]
    check_finite_series(SeriesSet(source_of(tlist), np.concatenate([[0], np.cumsum(short)]).astype(np.int64),
                                  ss.ids), what="targets", allow_nan=opts.allow_nan, allow_inf=opts.allow_inf)
    max_starts = None
    if any(s < n for s, n in zip(short, ss.lengths)):  # align="last", one series: windows up to the last target
        tlist = [np.concatenate([t, np.zeros((n - len(t),) + t.shape[1:], t.dtype)]) if len(t) < n else t
                 for t, n in zip(tlist, ss.lengths)]
        max_starts = np.array([s - span for s in short], dtype=np.int64)
    if return_sequences:
        return WindowTargets(source_of(tlist), 0, timesteps, sampling_rate, 0, max_starts)
    return WindowTargets(source_of(tlist), span - 1 if align == "last" else 0, None, 1, 0, max_starts)


def _check_target_lengths(tlist: list[np.ndarray], ss: SeriesSet, ends_early: bool) -> None:
    """Aligned targets need one row per step of the data (fewer only when they may end early)."""
    for i, (t, n) in enumerate(zip(tlist, ss.lengths)):
        # Keras' timeseries_dataset_from_array silently keeps fewer windows for shorter targets; with the
        # first step's target (its default) one row short is almost always an off-by-one shift that pairs
        # every window with a wrong target, so it is refused. A window's *last* step's target is still its
        # own row's when the targets end early (y[h:] for the value h rows later, scikit-learn's
        # WindowTransformer): those windows are kept, and the rows without a target are in left_out.
        if len(t) > n or (len(t) < n and not ends_early):
            name = f"targets{f'[{i}]' if ss.n_series > 1 else ''}"
            raise LengthMismatchError(
                f"{name} has {len(t)} rows but the series has {n} steps: aligned targets need exactly one row "
                "per step of the data.",
                (f"trim {name} to the data's length ({name}[:{n}])" if len(t) > n else
                 f"for the value h steps after each window use targets='next' (horizon=h) instead of a shifted "
                 f"copy, or cut the data to the targets' length (data[:{len(t)}])") + ".")


def index_range(start_index: int | None, end_index: int | None) -> tuple[int, int | None]:
    """``start_index`` (default 0) and ``end_index`` checked: the steps ``start <= t < end`` of each series."""
    start_index = 0 if start_index is None else check_int("start_index", start_index, 0)
    if end_index is not None:
        end_index = check_int("end_index", end_index, 1)
        if end_index <= start_index:
            raise ParameterError(f"end_index={end_index} must be greater than start_index={start_index}.",
                                 "pass end_index > start_index (end_index is exclusive).")
    return start_index, end_index


def planning_only(ss: SeriesSet) -> SeriesSet:
    """The series without what only construction reads (the time stamps, for holes and calendar features;
    a long frame's row order, for targets given separately): windows keep the data, not 2 int64 per row."""
    import dataclasses

    if ss.index is None and ss.row_order is None:
        return ss
    return dataclasses.replace(ss, index=None, row_order=None)


def warn_short(w: Any, what: str, plus: str, stacklevel: int = 3) -> None:
    """Warn about series shorter than ``what`` (one window, ``min_timesteps``) that give no window."""
    short = [lo for lo in w.left_out if lo.reason.startswith("shorter")]
    if short:
        warnings.warn(f"{plural(len(short), 'series', 'series')} are shorter than {what}{plus} and give no window "
                      f"(ids {[lo.series for lo in short[:5]]}{'...' if len(short) > 5 else ''}); see "
                      "Windows.left_out.", StatebatchWarning, stacklevel=stacklevel)
