"""The lane plan: which steps of which series sit in each row (lane) of each batch, per epoch.

A stateful RNN with batch size ``B`` keeps ``B`` parallel states: row ``i`` of batch ``k+1``
continues row ``i`` of batch ``k``. A *lane* is that row followed through the epoch. One series is cut
into ``B`` contiguous lanes of (nearly) equal length; many series are packed into lanes one after
another, and a lane's state is reset where it moves on to its next series.

:func:`plan_lanes` computes the plan from the series lengths alone: a few small integer arrays,
whatever the data's size. It is pure: the same arguments (seed and epoch included) give the same
plan, and computing one changes nothing.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .._args import check_bool, check_choice, check_int, check_seed, check_size, percent, plural, rng_for
from ..errors import ParameterError, RemainderError, ShapeError
from .base import LeftOut, check_lengths
from .lpt import lpt as _lpt

REMAINDERS = ("pad", "drop", "error")


#: series, step, valid, resets: the (batches, lanes) arrays of a plan without per-batch lengths
_PlanArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True, eq=False)
class LanePlan:
    """Where every chunk goes in one epoch. Arrays have shape ``(n_batches, batch_size)``.

    Attributes
    ----------
    series : int64
        Position of the series in lane ``i`` at batch ``k``; ``-1`` for an idle (fully padded) slot.
    step : int64
        First step (within that series) of the chunk.
    valid : int64
        Real steps in the chunk (the batch's length for a full chunk, fewer for a series' last chunk).
    resets : bool
        Lane ``i`` starts a new series at batch ``k``: its state must be zeroed before the batch.
    timesteps : int
        Chunk length (the longest batch when ``batch_steps`` varies).
    batch_steps : int64 ``(n_batches,)`` or None
        The length of each batch when it varies from batch to batch (``jitter``); ``None`` means every
        batch has ``timesteps`` steps.
    epoch : int
    left_out : tuple of LeftOut
        Steps no chunk holds (series positions, not ids).
    """

    series: np.ndarray
    step: np.ndarray
    valid: np.ndarray
    resets: np.ndarray
    timesteps: int
    batch_steps: np.ndarray | None = None
    epoch: int = 0
    left_out: tuple = field(default=())

    @property
    def n_batches(self) -> int:
        return int(self.series.shape[0])

    @property
    def batch_size(self) -> int:
        return int(self.series.shape[1])

    def batch_length(self, k: int) -> int:
        """Time steps of batch ``k``."""
        return self.timesteps if self.batch_steps is None else int(self.batch_steps[k])

    @property
    def steps_per_batch(self) -> np.ndarray:
        """``(n_batches,)`` time steps of every batch."""
        if self.batch_steps is None:
            return np.full(self.n_batches, self.timesteps, dtype=np.int64)
        return self.batch_steps

    @property
    def padding_fraction(self) -> float:
        """Padded steps (idle slots and the ends of last chunks) / all steps of the epoch."""
        total = int(self.steps_per_batch.sum()) * self.batch_size
        return float(1.0 - self.valid.sum() / total) if total else 0.0

    @property
    def lower_bound_batches(self) -> int:
        """Fewest batches any packing of these chunks could need: ``ceil(chunks / batch_size)``."""
        chunks = int((self.valid > 0).sum())
        return -(-chunks // self.batch_size)

    @property
    def ends(self) -> np.ndarray:
        """``(n_batches, batch_size)`` bool: the slot holds the last chunk of its series."""
        s = self.series
        nxt = np.vstack([s[1:], np.full((1, self.batch_size), -2)])
        nreset = np.vstack([self.resets[1:], np.ones((1, self.batch_size), dtype=bool)])
        return (s >= 0) & ((nxt != s) | nreset)

    def subset(self, k0: int, k1: int) -> "LanePlan":
        """Batches ``k0..k1-1`` (a contiguous part of the epoch)."""
        bs = None if self.batch_steps is None else self.batch_steps[k0:k1]
        return LanePlan(self.series[k0:k1], self.step[k0:k1], self.valid[k0:k1], self.resets[k0:k1].copy(),
                        self.timesteps, bs, self.epoch, ())

    def __repr__(self) -> str:
        return (f"LanePlan({self.n_batches} batches x {self.batch_size} lanes, timesteps={self.timesteps}"
                f"{', varying' if self.batch_steps is not None else ''}, epoch={self.epoch}, "
                f"{reset_counts(self.resets)}, padding={percent(self.padding_fraction)}, "
                f"left_out={len(self.left_out)})")


# --------------------------------------------------------------------------- packing
def reset_counts(resets: np.ndarray) -> str:
    """The lane resets of a plan in the one wording reprs and messages share: ``resets=`` counts every lane
    that starts a series (the first batch's lanes too), ``mid-epoch`` those after the first batch, where a
    lane moves on to its next series (what layout messages and ``explain`` count).

    Examples
    --------
    >>> import numpy as np
    >>> reset_counts(np.array([[True, True], [False, True], [True, False]]))
    'resets=4 (2 mid-epoch)'
    """
    return f"resets={int(np.count_nonzero(resets))} ({int(np.count_nonzero(resets[1:]))} mid-epoch)"


def pack_lanes(chunks: npt.ArrayLike, batch_size: int) -> list[list[int]]:
    """Assign series (by chunk count) to lanes, longest first to the least-loaded lane (LPT).

    Returns the series positions of each lane in the order they run. The number of batches is the
    largest lane load, at most 4/3 of the optimum and close to ``ceil(sum(chunks) / batch_size)``
    when there are many series. Series with no chunk are in no lane.

    Examples
    --------
    >>> pack_lanes([5, 3, 2, 2], 2)  # 5 chunks in lane 0; 3 + 2 in lane 1, then the last 2 in lane 0
    [[0, 3], [1, 2]]
    """
    chunks = check_lengths(chunks, "chunks")
    batch_size = check_int("batch_size", batch_size, 1)
    # the answer is a Python list per lane (about 64 bytes each, empty or not)
    check_size("pack_lanes' lanes", (batch_size,), 64,
               fix=f"pass a batch_size near the number of series ({len(chunks)}): lanes beyond it stay empty.")
    members, sizes = _lpt(chunks, batch_size)
    bounds = np.concatenate([[0], np.cumsum(sizes)]).tolist()
    members = members.tolist()
    return [members[bounds[i]:bounds[i + 1]] for i in range(batch_size)]


def _flat(lanes: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Lanes as lists -> the arrays of :func:`~statebatch.plans.lpt.lpt`."""
    sizes = np.array([len(lane) for lane in lanes], dtype=np.int64)
    return np.fromiter((s for lane in lanes for s in lane), dtype=np.int64, count=int(sizes.sum())), sizes


def _random_pack(chunks: np.ndarray, batch_size: int, capacity: int, rng: np.random.Generator) -> list[list[int]] | None:
    """Series into lanes in a random order without exceeding ``capacity`` chunks per lane, or None.

    Series longer than a quarter of the capacity go first (longest first, to random feasible lanes),
    then the rest in random order, each to a random lane with room; within a lane the order is random.
    """
    items = np.flatnonzero(chunks > 0)
    big = items[chunks[items] * 4 > capacity]
    small = items[chunks[items] * 4 <= capacity]
    big = big[np.argsort(-chunks[big], kind="stable")]
    order = np.concatenate([big, rng.permutation(small)])
    room = np.full(batch_size, capacity, dtype=np.int64)
    lane_of = np.empty(len(order), dtype=np.int64)
    draws = rng.random(len(order))
    for j, (s, u) in enumerate(zip(order.tolist(), draws.tolist())):
        c = int(chunks[s])
        feasible = np.flatnonzero(room >= c)
        if not len(feasible):
            return None
        lane = int(feasible[int(u * len(feasible))])
        room[lane] -= c
        lane_of[j] = lane
    lanes: list[list[int]] = [[] for _ in range(batch_size)]
    for lane in range(batch_size):
        members = order[lane_of == lane]
        lanes[lane] = rng.permutation(members).tolist()
    return lanes


def _plan_from_lanes(members: np.ndarray, sizes: np.ndarray, usable: np.ndarray, chunks: np.ndarray,
                     timesteps: int, batch_size: int, n_batches: int | None = None) -> "_PlanArrays":
    """The plan arrays of series packed into lanes (each lane runs its series back to back): ``members``
    lists lane 0's series in running order, then lane 1's, ...; ``sizes`` counts each lane's series."""
    seq = np.asarray(members, dtype=np.int64)
    n = len(seq)
    c = chunks[seq].astype(np.int64)
    lane_of = np.repeat(np.arange(batch_size), sizes)
    loads = np.bincount(lane_of, weights=c, minlength=batch_size).astype(np.int64)
    nb = int(loads.max()) if len(loads) else 0
    if n_batches is not None:
        nb = max(nb, n_batches)
    # Built lane by lane, (batch_size, nb), then transposed once: each lane is runs of slots, its series back to
    # back and one idle run (series -1) to its end, so every array is a np.repeat of one value per run (no
    # scatter of every chunk). Run j + lane_of[j] is series j; run sizes[:i+1].sum() + i is lane i's idle run.
    at = np.arange(n) + lane_of
    runs = np.empty(n + batch_size, dtype=np.int64)
    runs[at] = c
    runs[np.cumsum(sizes) + np.arange(batch_size)] = nb - loads
    first = np.cumsum(runs) - runs  # each run's first slot (lane-major)
    who = np.full(n + batch_size, -1, dtype=np.int64)
    who[at] = seq
    use = np.zeros(n + batch_size, dtype=np.int64)
    use[at] = usable[seq]
    step = np.arange(batch_size * nb, dtype=np.int64)
    step -= np.repeat(first, runs)  # chunk j of its run
    step *= timesteps
    valid = np.repeat(use, runs)
    valid -= step
    np.clip(valid, 0, timesteps, out=valid)  # idle runs: 0 (a series' chunks hold at least one step each)
    step[valid == 0] = 0  # idle slots start at step 0
    resets = np.zeros(batch_size * nb, dtype=bool)
    resets[first[at]] = True

    def by_batch(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a.reshape(batch_size, nb).T)

    return by_batch(np.repeat(who, runs)), by_batch(step), by_batch(valid), by_batch(resets)


def _balanced(usable: int, timesteps: int, batch_size: int, chunks: int) -> "_PlanArrays":
    """One series cut into ``batch_size`` contiguous lanes whose lengths differ by at most a chunk."""
    q, r = divmod(chunks, batch_size)
    per_lane = np.full(batch_size, q, dtype=np.int64)
    per_lane[:r] += 1
    first_chunk = np.concatenate([[0], np.cumsum(per_lane)[:-1]])
    nb = int(per_lane.max()) if chunks else 0
    k = np.arange(nb)[:, None]
    present = k < per_lane[None, :]
    step = (first_chunk[None, :] + k) * timesteps
    valid = np.where(present, np.clip(usable - step, 0, timesteps), 0)
    series = np.where(present & (valid > 0), 0, -1)
    resets = np.zeros((nb, batch_size), dtype=bool)
    if nb:
        resets[0] = per_lane > 0
    return (series.astype(np.int64), np.where(series >= 0, step, 0).astype(np.int64), valid.astype(np.int64), resets)


def _jittered(usable: np.ndarray, timesteps: int, jitter: int, batch_size: int, one_series: bool,
              seed: int | None, epoch: int, shuffle: bool) -> tuple[np.ndarray, ...]:
    """Plan with a random length per batch in ``[timesteps - jitter, timesteps]`` (AWD-LSTM style).

    The number of batches is the same in every epoch, because Keras reads a dataset's length once per
    ``fit``. One series: the count that batches of the mean length ``timesteps - jitter / 2`` need;
    the random lengths are nudged (within the range) until they cover each lane in exactly that many
    batches. Many series: a bound that holds for every draw (see below); an epoch that needs fewer
    batches ends with idle ones (every lane padding, sample weight 0, counted in ``padding_fraction``).
    """
    shortest, mean = timesteps - jitter, timesteps - jitter // 2
    if int(usable.sum()) == 0:  # nothing to plan: the caller refuses it with the reason
        empty = np.zeros((0, batch_size), dtype=np.int64)
        return empty, empty.copy(), empty.copy(), empty.astype(bool), np.zeros(0, dtype=np.int64)
    rng = rng_for(seed, epoch, 1)
    if one_series:
        n = int(usable[0])
        piece = -(-n // batch_size)
        nb = -(-2 * piece // (2 * timesteps - jitter))  # batches of the mean length T - jitter/2
        lengths = timesteps - rng.integers(0, jitter + 1, size=nb)
        # Cover the lane (sum >= piece) and use every batch (the first nb - 1 sum to < piece): add or
        # remove single steps at random places that have room, all at once.
        short = piece - int(lengths.sum())
        if short > 0:
            slots = np.repeat(np.arange(nb), timesteps - lengths)
            np.add.at(lengths, rng.choice(slots, size=short, replace=False), 1)
        excess = int(lengths[:-1].sum()) - piece + 1
        if excess > 0:
            slots = np.repeat(np.arange(nb - 1), lengths[:-1] - shortest)
            np.add.at(lengths, rng.choice(slots, size=excess, replace=False), -1)
        return _one_series_jittered(n, piece, lengths, batch_size)
    # Many series: lengths come in pairs (x, 2T - jitter - x) in random order, so after any number of
    # batches the steps covered differ from batches x (T - jitter/2) by at most jitter/2. A series of n
    # steps therefore needs at most ceil((n + jitter) / (T - jitter/2)) batches whatever the draw;
    # lanes are packed in those units, which fixes the batch count (epochs needing fewer batches end
    # with idle ones).
    units = -(-(2 * usable + 2 * jitter) // (2 * timesteps - jitter))
    lanes, capacity = _assign_lanes(units, batch_size, shuffle, seed, epoch)
    packed = _pack_jittered(usable, lanes, _paired_lengths(capacity, timesteps, jitter, rng), batch_size)
    if packed is None:  # cannot happen: the unit count above bounds every draw
        raise ShapeError(f"the jittered lanes need more than {capacity} batches (a statebatch bug).",
                         "report it, and use jitter=0 meanwhile.")
    return _top_up(packed, capacity, mean)


def _paired_lengths(n: int, timesteps: int, jitter: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` batch lengths in ``[timesteps - jitter, timesteps]``, random, whose running sum stays within
    ``jitter / 2`` of ``k x (timesteps - jitter / 2)``: pairs ``(x, 2 timesteps - jitter - x)``."""
    half = rng.integers(0, jitter + 1, size=(n + 1) // 2)
    pairs = np.stack([timesteps - half, timesteps - jitter + half], axis=1)
    swap = rng.random(len(pairs)) < 0.5
    pairs[swap] = pairs[swap][:, ::-1]
    return pairs.reshape(-1)[:n].astype(np.int64)


def _assign_lanes(chunks: np.ndarray, batch_size: int, shuffle: bool, seed: int | None,
                  epoch: int) -> tuple[list[list[int]], int]:
    """Series into lanes: longest-first (fixed), or a random packing per epoch within the same
    number of chunks per lane, so the batch count never changes between epochs."""
    fixed = pack_lanes(chunks, batch_size)
    capacity = max((int(chunks[lane].sum()) for lane in fixed if lane), default=0)
    if not shuffle:
        return fixed, capacity
    for attempt in range(4):
        lanes = _random_pack(chunks, batch_size, capacity, rng_for(seed, epoch, 2 + attempt))
        if lanes is not None:
            return lanes, capacity
    # always feasible: the fixed lanes, in a random order within and across lanes
    r = rng_for(seed, epoch, 9)
    return [r.permutation(fixed[i]).tolist() for i in r.permutation(batch_size)], capacity


def _one_series_jittered(n: int, piece: int, lengths: np.ndarray, batch_size: int) -> tuple[np.ndarray, ...]:
    cum = np.concatenate([[0], np.cumsum(lengths)])  # cum[k]: steps before batch k
    a = np.arange(batch_size, dtype=np.int64) * piece  # lane i: steps [a_i, b_i)
    b = np.minimum(a + piece, n)
    n_b = len(lengths)
    lo = a[None, :] + cum[:n_b, None]
    valid = np.clip(np.minimum(lengths[:, None], b[None, :] - lo), 0, None)
    series = np.where(valid > 0, 0, -1).astype(np.int64)
    step = np.where(valid > 0, lo, 0).astype(np.int64)
    resets = np.zeros((n_b, batch_size), dtype=bool)
    resets[0] = b > a
    return series, step, valid.astype(np.int64), resets, lengths.astype(np.int64)


def _pack_jittered(usable: np.ndarray, lanes: list[list[int]], lengths: np.ndarray,
                   batch_size: int) -> tuple[np.ndarray, ...] | None:
    """Each lane runs its series back to back, each series starting at a batch boundary, on batches of
    the given lengths; None when the lanes need more batches than there are lengths."""
    cum = np.concatenate([[0], np.cumsum(lengths)])
    slots: list[tuple[int, int, int, int]] = []  # (series, lane, first batch, end batch)
    for lane, members in enumerate(lanes):
        b0 = 0
        for s in members:
            n = int(usable[s])
            if n <= 0:
                continue
            b1 = int(np.searchsorted(cum, cum[b0] + n, side="left"))  # first boundary at or after the end
            if b1 >= len(cum):
                return None
            slots.append((s, lane, b0, b1))
            b0 = b1
    n_b = max((b1 for *_, b1 in slots), default=0)
    series = np.full((n_b, batch_size), -1, dtype=np.int64)
    step = np.zeros((n_b, batch_size), dtype=np.int64)
    valid = np.zeros((n_b, batch_size), dtype=np.int64)
    resets = np.zeros((n_b, batch_size), dtype=bool)
    for s, lane, b0, b1 in slots:
        ks = np.arange(b0, b1)
        st = cum[ks] - cum[b0]
        series[ks, lane] = s
        step[ks, lane] = st
        valid[ks, lane] = np.minimum(lengths[ks], int(usable[s]) - st)
        resets[b0, lane] = True
    return series, step, valid, resets, lengths[:n_b].astype(np.int64)


def _top_up(arrays: tuple[np.ndarray, ...], nb: int, length: int) -> tuple[np.ndarray, ...]:
    """Append idle batches (every lane padding, weight 0) up to ``nb`` batches."""
    series, step, valid, resets, batch_steps = arrays
    extra = nb - series.shape[0]
    if extra <= 0:
        return arrays
    b = series.shape[1]
    return (np.vstack([series, np.full((extra, b), -1, np.int64)]), np.vstack([step, np.zeros((extra, b), np.int64)]),
            np.vstack([valid, np.zeros((extra, b), np.int64)]), np.vstack([resets, np.zeros((extra, b), bool)]),
            np.concatenate([batch_steps, np.full(extra, length, np.int64)]))


# --------------------------------------------------------------------------- the planner
def plan_lanes(
    lengths: npt.ArrayLike,
    timesteps: int,
    batch_size: int,
    *,
    targets: Any = "next",
    horizon: int = 1,
    tail: str = "pad",
    shuffle: bool = False,
    seed: int | None = None,
    epoch: int = 0,
    jitter: int = 0,
    remainder: str | None = None,
) -> LanePlan:
    """The lane plan of one epoch, from the series lengths alone (no data needed).

    This is exactly the plan :func:`~statebatch.arrange_stateful` uses for the same arguments; for a
    million series it is a few small integer arrays, whatever the data's size.

    Parameters
    ----------
    lengths : sequence of int
        Steps per series. One length: the series is cut into ``batch_size`` contiguous lanes. Several:
        series are packed into lanes one after another (a lane resets where its next series starts).
    timesteps : int
        Chunk length (steps per row of a batch).
    batch_size : int
        Lanes (the model's fixed batch size).
    targets : "next", None or "aligned"
        ``"next"``: the last ``horizon`` steps of every series are targets only, never inputs.
        ``None`` / ``"aligned"``: every step is an input.
    horizon : int
        Steps ahead of next-step targets (>= 1).
    tail : "pad", "drop" or "error"
        A series' last partial chunk (and, for one series, chunks beyond equal lanes): padded with
        weight 0, left out (reported in ``left_out``), or refused (:class:`RemainderError`).
    shuffle : bool
        Many series: pack them into lanes in a new random order every epoch (the number of batches
        stays that of the deterministic packing). Needs ``seed``.
    seed, epoch : int
        The plan of epoch ``epoch`` is a pure function of ``seed`` and ``epoch``.
    jitter : int
        0 (default): every batch has ``timesteps`` steps. ``j > 0``: each batch's length is drawn from
        ``[timesteps - j, timesteps]`` every epoch, so chunk boundaries fall on different steps from
        epoch to epoch (AWD-LSTM varies its BPTT length for the same reason). The model needs a free
        time axis: ``keras.Input(batch_shape=(B, None, F))``. Needs ``seed`` and ``tail="pad"``.
    remainder : deprecated
        The old name of ``tail`` (a FutureWarning; accepted until the next release).

    Returns
    -------
    LanePlan

    Examples
    --------
    >>> plan = plan_lanes([10, 6], timesteps=2, batch_size=2, targets=None)
    >>> plan.n_batches, plan.series[:, 1].tolist()  # lane 1 holds series 1 for 3 batches, then idles (-1)
    (5, [1, 1, 1, -1, -1])
    """
    lengths = check_lengths(lengths)
    timesteps = check_int("timesteps", timesteps, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    tail = check_choice("tail", _tail_arg(tail, remainder), REMAINDERS)
    shuffle = check_bool("shuffle", shuffle)
    seed = check_seed("seed", seed)
    epoch = check_int("epoch", epoch, 0)
    jitter = check_int("jitter", jitter, 0, timesteps - 1)
    if targets is not None and not (isinstance(targets, str) and targets in ("next", "aligned")):
        raise ParameterError(f"targets={targets!r} is not understood by the planner.",
                             "pass targets='next' (last horizon steps are targets only), None or 'aligned'.")
    horizon = check_int("horizon", horizon, 1)
    if (shuffle or jitter) and seed is None:
        raise ParameterError("a shuffled or jittered plan needs a seed to be a pure function of its arguments.",
                             "pass seed=0 (or any integer); results from arrange_stateful draw one for you.")
    if jitter and tail != "pad":
        raise ParameterError(f"jitter={jitter} varies the chunk length, so there is no fixed chunk to drop or refuse "
                             f"(tail={tail!r}).", "use tail='pad' with jitter.")
    held = horizon if targets == "next" else 0
    usable = np.maximum(lengths - held, 0)
    left: list[LeftOut] = [LeftOut(int(k), 0, int(lengths[k]),
                                   f"too short for a target {plural(held, 'step')} ahead")
                           for k in np.flatnonzero((usable == 0) & (lengths > 0))]
    one_series = len(lengths) == 1
    # The plan holds four (batches, lanes) arrays: refuse a lane count no machine could plan.
    check_size("the lane plan", (max(-(-int(usable.sum()) // (batch_size * timesteps)), 1), batch_size), 32)

    if jitter:
        series, step, valid, resets, batch_steps = _jittered(usable, timesteps, jitter, batch_size, one_series,
                                                             seed, epoch, shuffle)
        if not series.size:
            raise _nothing_fits(lengths, timesteps, held)
        return LanePlan(series, step, valid, resets, timesteps, batch_steps, epoch, tuple(left))

    if tail == "pad":
        chunks = -(-usable // timesteps)
    else:
        chunks = usable // timesteps
        over = usable - chunks * timesteps
        if tail == "error" and over.any():
            bad = np.flatnonzero(over)
            raise RemainderError(
                f"{plural(len(bad), 'series', 'series')} do not divide into chunks of {timesteps} steps (series at "
                f"positions {bad[:5].tolist()} leave {over[bad[:5]].tolist()} step(s) over).",
                "use tail='pad' (padded steps get sample weight 0) or tail='drop' (reported in left_out).")
        left += [LeftOut(int(k), int(chunks[k] * timesteps), int(over[k]),
                         f"tail='drop': the last partial chunk (chunks of {timesteps} steps)")
                 for k in np.flatnonzero(over)]
        usable = chunks * timesteps
    if chunks.sum() == 0:
        raise _nothing_fits(lengths, timesteps, held)

    if one_series:
        arrays = _one_series_lanes(int(chunks[0]), usable, timesteps, batch_size, tail, left)
    elif shuffle:
        lanes, capacity = _assign_lanes(chunks, batch_size, True, seed, epoch)
        arrays = _plan_from_lanes(*_flat(lanes), usable, chunks, timesteps, batch_size, capacity)
    else:
        arrays = _plan_from_lanes(*_lpt(chunks, batch_size), usable, chunks, timesteps, batch_size)
    if held and tail != "pad":
        left += _orphan_targets(arrays, lengths, held, tail)
    return LanePlan(*arrays, timesteps=timesteps, batch_steps=None, epoch=epoch, left_out=tuple(left))


def _one_series_lanes(c: int, usable: np.ndarray, timesteps: int, batch_size: int, tail: str,
                      left: list[LeftOut]) -> "_PlanArrays":
    """One series cut into ``batch_size`` contiguous lanes of ``c`` chunks in all: without padding, the
    chunks beyond equal lanes are refused or left out (appended to ``left``)."""
    if tail != "pad":
        q = c // batch_size
        if q == 0:
            raise ShapeError(
                f"only {plural(c, 'chunk')} of {timesteps} steps for {batch_size} lanes: the series is too short "
                "to give every lane one chunk.",
                "use fewer lanes (batch_size) or shorter timesteps, or tail='pad' (idle lanes get weight 0).")
        if c % batch_size:
            if tail == "error":
                raise RemainderError(
                    f"{c} chunks do not divide into {batch_size} equal lanes ({c % batch_size} chunk(s) over).",
                    "use tail='pad' or 'drop', or a batch_size that divides the chunk count.")
            lost = (c - q * batch_size) * timesteps
            left.append(LeftOut(0, int(q * batch_size * timesteps), int(lost),
                                f"tail='{tail}': chunks beyond {batch_size} equal lanes"))
        c = q * batch_size
        usable = np.array([c * timesteps], dtype=np.int64)
    return _balanced(int(usable[0]), timesteps, batch_size, c)


def _orphan_targets(arrays: "_PlanArrays", lengths: np.ndarray, held: int, tail: str) -> list[LeftOut]:
    """The last ``held`` steps of a series are only targets; when the steps they follow were left out,
    they sit nowhere either: report them too."""
    series, step, valid = arrays[0], arrays[1], arrays[2]
    used = series >= 0
    ends = np.zeros(len(lengths), dtype=np.int64)
    np.maximum.at(ends, series[used], (step + valid)[used])
    out = []
    for k in np.flatnonzero((lengths > held) & (ends < lengths - held)):
        out.append(LeftOut(int(k), int(lengths[k] - held), held,
                           f"tail='{tail}': {plural(held, 'step')} that only the left-out steps "
                           f"had as target ({held} ahead)"))
    return out


def _tail_arg(tail: str, remainder: str | None) -> str:
    """``tail``, or its old name ``remainder`` (renamed with arrange_stateful's; a FutureWarning for one release,
    both at once only when they agree)."""
    if remainder is None:
        return tail
    warnings.warn("plan_lanes(remainder=...) is renamed tail=... (the same values); remainder= is accepted until "
                  "the next release.", FutureWarning, stacklevel=3)
    if tail != "pad" and tail != remainder:
        raise ParameterError(f"tail={tail!r} and remainder={remainder!r} are the same option given twice.",
                             "pass tail only (remainder is its old name).")
    return remainder


def _nothing_fits(lengths: np.ndarray, timesteps: int, held: int) -> ShapeError:
    return ShapeError(
        f"no chunk of {timesteps} steps fits: series lengths {lengths[:10].tolist()}"
        f"{'...' if len(lengths) > 10 else ''}" + (f" (minus {held} target step(s) each)" if held else "") + ".",
        "use fewer timesteps or longer series.")
