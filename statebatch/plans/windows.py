"""The window plan: which windows exist, and in which order and batches an epoch visits them.

A window is ``timesteps`` rows, ``sampling_rate`` apart, starting ``stride`` steps after the previous
window of the same series; windows never cross a series boundary. The plan keeps, per series, where
its windows start and how many there are, so a million windows of one series cost nothing until a
batch asks for its start rows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .._args import check_bool, check_choice, check_int, check_seed, plural, rng_for
from ..errors import DataValueError, ParameterError
from .base import LeftOut, check_lengths

REMAINDERS = ("keep", "drop")


@dataclass(frozen=True, eq=False)
class WindowPlan:
    """The windows of every series and one epoch's batches.

    Attributes
    ----------
    offsets : int64 ``(n_series + 1,)``
        First row of each series in the row source.
    first : int
        Start of the first window within each series (``start_index - lead``; negative with variable
        history: such a window's rows before ``start_index`` are padding, never read).
    counts : int64 ``(n_series,)``
        Windows per series.
    stride : int
        Steps between the starts of consecutive windows of one series.
    span : int
        Rows a window's inputs cover: ``(timesteps - 1) * sampling_rate + 1``.
    batch_size : int
    order : int64 ``(n_windows,)`` or None
        The epoch's visiting order of window indices (``None``: natural order).
    remainder : "keep" or "drop"
        Whether a last, smaller batch is kept or its windows left out this epoch.
    epoch : int
    left_out : tuple of LeftOut
    """

    offsets: np.ndarray
    first: int
    counts: np.ndarray
    stride: int
    span: int
    batch_size: int
    order: np.ndarray | None = None
    remainder: str = "keep"
    epoch: int = 0
    left_out: tuple = field(default=())
    #: Variable history (``min_timesteps``): windows may start up to ``lead`` steps before
    #: ``first + lead`` (= ``start_index``); their rows before it are padding. 0: every window is full.
    lead: int = 0

    @property
    def n_windows(self) -> int:
        n = self.__dict__.get("_n_windows")
        if n is None:  # asked for on every batch: computed once (the plan is immutable)
            n = int(self.counts.sum())
            object.__setattr__(self, "_n_windows", n)
        return n

    @property
    def n_batches(self) -> int:
        n, b = self.n_windows, self.batch_size
        return n // b if self.remainder == "drop" else -(-n // b)

    @property
    def padding_fraction(self) -> float:
        return 0.0

    def _cum(self) -> np.ndarray:
        cum = self.__dict__.get("_cum_counts")
        if cum is None:  # read on every batch (starts, series_of): computed once (the plan is immutable)
            cum = np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)
            object.__setattr__(self, "_cum_counts", cum)
        return cum

    def starts(self, idx: np.ndarray | slice | None = None) -> np.ndarray:
        """Absolute start rows (in the row source) of the windows ``idx`` (all windows when None)."""
        if idx is None:
            idx = np.arange(self.n_windows, dtype=np.int64)
        elif isinstance(idx, slice):
            idx = np.arange(*idx.indices(self.n_windows), dtype=np.int64)
        return self.locate(idx)[1]

    def locate(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Series position and absolute start row of the windows ``idx`` (one search for both)."""
        idx = np.asarray(idx, dtype=np.int64)
        if len(self.counts) == 1:
            return np.zeros(idx.shape, dtype=np.int64), int(self.offsets[0]) + self.first + idx * self.stride
        cum = self._cum()
        s = np.searchsorted(cum, idx, side="right") - 1
        return s, self.offsets[s] + self.first + (idx - cum[s]) * self.stride

    def series_of(self, idx: np.ndarray) -> np.ndarray:
        """Series position of each window ``idx``."""
        return self.locate(idx)[0]

    def at_epoch(self, epoch: int) -> "WindowPlan | None":
        """This unshuffled plan for ``epoch``, as :func:`plan_windows` would make it, or None (plan anew).

        Unshuffled epochs visit the same windows in the same batches, so only the epoch differs, except
        for a ``remainder="drop"`` plan with a dropped batch: its left-out entries name their epoch.
        Saves planning each epoch again (checks, counts, left-out steps: a tenth of a millisecond).
        """
        if self.order is not None:
            return None
        if epoch == self.epoch:
            return self
        if self.remainder == "drop" and self.n_windows % self.batch_size:
            return None
        return dataclasses.replace(self, epoch=epoch)

    def window_indices(self, idx: Any) -> np.ndarray:
        """Window indices (int64, natural order) of ``idx``: a slice, integer indices (negative ones count
        from the end) or a boolean mask over the windows; anything else refused."""
        n = self.n_windows
        if isinstance(idx, slice):
            return np.arange(*idx.indices(n), dtype=np.int64)
        arr = np.asarray(idx)
        if arr.dtype == bool:
            if arr.shape != (n,):
                raise ParameterError(f"a boolean window mask needs shape ({n},), got {arr.shape}.", "pass one flag per window.")
            return np.flatnonzero(arr)
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            raise ParameterError(f"window indices must be integers, got dtype {arr.dtype}.", "pass integer indices.")
        if arr.ndim > 1:
            raise ParameterError(f"window indices must be 1-D, got shape {arr.shape}.", "pass a flat list of indices.")
        arr = arr.astype(np.int64).reshape(-1)
        if arr.size and (arr.min() < -n or arr.max() >= n):
            bad = arr[(arr < -n) | (arr >= n)][:5].tolist()
            raise ParameterError(f"window indices {bad} are outside 0..{n - 1} ({n} windows).",
                                 "pass indices between 0 and n_windows - 1.")
        return arr % n if arr.size else arr

    def batch_indices(self, k: int) -> np.ndarray | slice:
        """Window indices of batch ``k`` (a slice in natural order)."""
        lo, hi = k * self.batch_size, min((k + 1) * self.batch_size, self.n_windows)
        return slice(lo, hi) if self.order is None else self.order[lo:hi]

    def __repr__(self) -> str:
        return (f"WindowPlan({self.n_windows} windows in {len(self.counts)} series, {self.n_batches} batches of "
                f"{self.batch_size}, stride={self.stride}, span={self.span}, "
                f"{'shuffled' if self.order is not None else 'in order'}, epoch={self.epoch}, "
                f"left_out={len(self.left_out)})")


def window_counts(lengths: np.ndarray, span: int, target_steps: int, stride: int, start_index: int,
                  end_index: int | None, max_starts: np.ndarray | None = None, lead: int = 0) -> np.ndarray:
    """Windows per series: starts ``start_index - lead, +stride, ...`` whose inputs and targets fit.

    Examples
    --------
    >>> import numpy as np
    >>> window_counts(np.array([5, 3]), span=3, target_steps=0, stride=1, start_index=0, end_index=None)
    array([3, 1])
    """
    end = lengths if end_index is None else np.minimum(end_index, lengths)
    last = end - span - target_steps  # last allowed start, inclusive
    if max_starts is not None:
        last = np.minimum(last, max_starts)
    first = start_index - lead
    return np.where(last >= first, (last - first) // stride + 1, 0).astype(np.int64)


def history_lead(timesteps: int, min_timesteps: int | None, stride: int) -> int:
    """How many steps before ``start_index`` a window may start with variable history.

    Window starts stay on the grid ``start_index + k * stride`` (k may be negative) and keep at least
    ``min_timesteps`` real steps: ``k * stride >= min_timesteps - timesteps``.

    Examples
    --------
    >>> history_lead(4, 2, 1)  # windows of at least 2 steps may start 2 steps early
    2
    """
    if min_timesteps is None or min_timesteps >= timesteps:
        return 0
    return ((timesteps - min_timesteps) // stride) * stride



def check_min_timesteps(min_timesteps: Any, timesteps: int) -> int:
    """The shortest history a window may have (variable history): an int in ``1 .. timesteps``.

    Examples
    --------
    >>> check_min_timesteps(2, 4)
    2
    """
    min_timesteps = check_int("min_timesteps", min_timesteps, 1)
    if min_timesteps > timesteps:
        raise ParameterError(f"min_timesteps={min_timesteps} is more than timesteps={timesteps}.",
                             "pass min_timesteps <= timesteps (the shortest history a window may have).")
    return min_timesteps

def plan_windows(
    lengths: npt.ArrayLike,
    timesteps: int,
    *,
    stride: int = 1,
    sampling_rate: int = 1,
    start_index: int = 0,
    end_index: int | None = None,
    target_steps: int = 0,
    max_starts: npt.ArrayLike | None = None,
    batch_size: int = 32,
    shuffle: bool = False,
    seed: int | None = None,
    epoch: int = 0,
    remainder: str = "keep",
    min_timesteps: int | None = None,
) -> WindowPlan:
    """The window plan of one epoch, from the series lengths alone.

    Parameters
    ----------
    lengths : sequence of int
        Steps per series.
    timesteps, stride, sampling_rate : int
        Window length, steps between window starts, steps between rows inside a window.
    start_index, end_index : int
        Only steps ``start_index <= t < end_index`` of each series are used (inputs and targets).
    target_steps : int
        Steps after a window's inputs that its targets need (``horizon + n_ahead - 1`` for next-value
        targets; 0 otherwise).
    max_starts : sequence of int, optional
        Per series, the last start a window may have (e.g. fewer target rows than data rows).
    batch_size : int
    shuffle, seed, epoch
        Visit the windows in a random order drawn from ``(seed, epoch)``.
    remainder : "keep" or "drop"
        Keep a last, smaller batch, or leave its windows out of this epoch (reported).
    min_timesteps : int, optional
        Variable history (``sampling_rate=1`` only): windows with fewer than ``timesteps`` steps after
        ``start_index``, down to ``min_timesteps``, exist too (their starts lie before ``start_index``
        on the same stride grid; the rows before it are padding). ``None``: full windows only.

    Returns
    -------
    WindowPlan

    Examples
    --------
    >>> plan_windows([5, 3], 3)
    WindowPlan(4 windows in 2 series, 1 batches of 32, stride=1, span=3, in order, epoch=0, left_out=0)
    """
    lengths = check_lengths(lengths)
    if max_starts is not None:
        max_starts = check_lengths(max_starts, "max_starts")
        if len(max_starts) != len(lengths):
            raise ParameterError(f"max_starts has {len(max_starts)} entries for {len(lengths)} series.",
                                 "pass one maximum start per series.")
    timesteps = check_int("timesteps", timesteps, 1)
    stride = check_int("stride", stride, 1)
    sampling_rate = check_int("sampling_rate", sampling_rate, 1)
    start_index = check_int("start_index", start_index, 0)
    if end_index is not None:
        end_index = check_int("end_index", end_index, 1)
        if end_index <= start_index:
            raise ParameterError(f"end_index={end_index} must be greater than start_index={start_index}.",
                                 "pass end_index > start_index (end_index is exclusive).")
    target_steps = check_int("target_steps", target_steps, 0)
    batch_size = check_int("batch_size", batch_size, 1)
    shuffle = check_bool("shuffle", shuffle)
    seed = check_seed("seed", seed)
    epoch = check_int("epoch", epoch, 0)
    remainder = check_choice("remainder", remainder, REMAINDERS)
    if min_timesteps is not None:
        min_timesteps = check_min_timesteps(min_timesteps, timesteps)
        if sampling_rate != 1:
            raise ParameterError(f"min_timesteps needs sampling_rate=1, got {sampling_rate}.",
                                 "drop min_timesteps, or resample the series first.")
    if shuffle and seed is None:
        raise ParameterError("a shuffled plan needs a seed to be a pure function of its arguments.",
                             "pass seed=0 (or any integer); make_windows draws one for you.")
    span = (timesteps - 1) * sampling_rate + 1
    ms = None if max_starts is None else np.asarray(max_starts, dtype=np.int64)
    lead = history_lead(timesteps, min_timesteps, stride)
    counts = window_counts(lengths, span, target_steps, stride, start_index, end_index, ms, lead)
    if not counts.any():
        raise DataValueError(
            f"no window fits: every series is shorter than timesteps={timesteps} (x sampling_rate={sampling_rate}) "
            f"plus the target steps ({target_steps}) from start_index={start_index}"
            f"{'' if end_index is None else f' up to end_index={end_index}'}; lengths: "
            f"{lengths[:10].tolist()}{'...' if len(lengths) > 10 else ''}.",
            "use fewer timesteps (or a smaller min_timesteps), a smaller horizon, "
            + ("or longer series." if end_index is None else "a later end_index, or longer series."))
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    left = _left_out(lengths, counts, span, target_steps, stride, start_index, end_index, lead)
    order = rng_for(seed, epoch).permutation(int(counts.sum())) if shuffle else None
    first = start_index - lead
    plan = WindowPlan(offsets, first, counts, stride, span, batch_size, order, remainder, epoch, tuple(left), lead)
    n = plan.n_windows
    if remainder == "drop" and n % batch_size:
        if n < batch_size:
            raise DataValueError(f"only {plural(n, 'window')} for batch_size={batch_size}: remainder='drop' would leave "
                                 "every window out.", "use a smaller batch_size or remainder='keep'.")
        dropped = np.arange(n - n % batch_size, n) if order is None else order[n - n % batch_size:]
        s = plan.series_of(dropped)
        st = plan.starts(dropped) - offsets[s]
        # a variable-history window's padded rows are no data: it holds steps max(start, start_index)...
        st_real = np.maximum(st, start_index)
        extra = tuple(LeftOut(int(a), int(b), int(span + target_steps - (b - c)),
                              f"remainder='drop': this window is in no batch of epoch {epoch}")
                      for a, b, c in zip(s.tolist(), st_real.tolist(), st.tolist()))
        plan = WindowPlan(offsets, first, counts, stride, span, batch_size, order, remainder, epoch,
                          tuple(left) + extra, lead)
    return plan


def _left_out(lengths, counts, span, target_steps, stride, start_index, end_index, lead=0) -> list[LeftOut]:
    """Steps no window (nor its target) uses, per series."""
    out: list[LeftOut] = []
    used_len = span + target_steps
    first = start_index - lead
    for k in range(len(lengths)):
        n, c = int(lengths[k]), int(counts[k])
        if n == 0:
            continue
        end = n if end_index is None else min(end_index, n)
        if start_index > 0:
            out.append(LeftOut(k, 0, min(start_index, n), "before start_index"))
        if end < n:
            out.append(LeftOut(k, end, n - end, "at or after end_index"))
        if c == 0:
            if end > start_index:
                out.append(LeftOut(k, start_index, end - start_index,
                                   f"shorter than one window ({span - lead} steps) plus targets ({target_steps})"))
            continue
        if stride > used_len and c > 1:  # never with variable history: lead > 0 needs stride <= timesteps
            # one entry per gap, so that every left-out step can be located (first_step, steps) exactly
            gap = stride - used_len
            reason = f"between windows: stride {stride} > window plus targets ({used_len} steps)"
            out.extend(LeftOut(k, first + i * stride + used_len, gap, reason) for i in range(c - 1))
        used_end = first + (c - 1) * stride + used_len  # exclusive
        if used_end < end:
            out.append(LeftOut(k, used_end, end - used_end, "tail after the last full window"))
    return out
