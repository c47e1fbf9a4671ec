"""The bucket plan: variable-length sequences grouped into batches of similar length, per epoch.

An epoch's plan is a tuple of index arrays (which sequences form each batch, in the order the
batches run) computed from the lengths alone, plus the length each batch is padded to and the
sequences it leaves out. Modes:

- ``"sort"`` (default): put the lengths in bins ``bin_width`` x the mean length wide, on a grid that
  moves by a random offset every epoch; order by bin, at random inside a bin; cut into batches at a
  random offset that keeps the number of batches fixed; shuffle the batch order. ``bin_width`` is the
  one knob that trades padding for mixing (see :func:`retention`).
- ``"pool"``: shuffle, cut into pools of ``pool_batches`` batches, sort each pool (Hugging Face's
  megabatches are this with 50 batches per pool).
- ``"buckets"``: tf.data-style boundaries (given, or optimal ones from :func:`bucket_boundaries`);
  batches never mix buckets.
- ``"exact"``: batches of identical lengths only, no padding at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

from .._args import check_bool, check_choice, check_fraction, check_int, check_seed, percent, plural, rng_for
from ..errors import ParameterError
from .base import LeftOut, check_lengths

MODES = ("sort", "pool", "buckets", "exact")
REMAINDERS = ("keep", "drop")


@dataclass(frozen=True, eq=False)
class BucketPlan:
    """One epoch of bucketed batches.

    Attributes
    ----------
    batches : tuple of int64 arrays
        Sequence indices of each batch, in the order the batches run.
    padded_lengths : int64 ``(n_batches,)``
        The length each batch is padded to.
    lengths : int64 ``(n_sequences,)``
    epoch : int
    left_out : tuple of LeftOut
        Sequences in no batch this epoch (``remainder="drop"``), as positions.
    """

    batches: tuple
    padded_lengths: np.ndarray
    lengths: np.ndarray
    epoch: int = 0
    left_out: tuple = field(default=())

    @property
    def n_batches(self) -> int:
        return len(self.batches)

    @property
    def padding_fraction(self) -> float:
        """Padded steps / all steps of the epoch's padded batches."""
        real = sum(int(self.lengths[b].sum()) for b in self.batches)
        padded = int(sum(int(p) * len(b) for p, b in zip(self.padded_lengths, self.batches)))
        return 1.0 - real / padded if padded else 0.0

    def __repr__(self) -> str:
        return (f"BucketPlan({self.n_batches} batches of {len(self.lengths)} sequences, epoch={self.epoch}, "
                f"padding={percent(self.padding_fraction)}, left_out={len(self.left_out)})")


# --------------------------------------------------------------------------- boundaries
_MAX_GROUPS = 4096  # distinct lengths beyond this are merged into equal-count groups first


def _layer(prev: np.ndarray, k: int, vmax: np.ndarray, c: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One layer of the bucket DP: ``cur[j] = min_i prev[i] + cost(i + 1, j)`` for ``k`` buckets.

    ``cost(a, j)`` (padding of groups ``a..j`` in one bucket) satisfies the quadrangle inequality, so
    the best split ``i`` is non-decreasing in ``j``: divide and conquer over ``j``, all subproblems of
    one recursion level at once in numpy. O(m log m) per layer instead of O(m^2).
    """
    m = len(vmax)
    cur = np.full(m, np.inf)
    arg = np.zeros(m, dtype=np.int64)
    # tasks: j in [jlo, jhi], best split in [olo, ohi]
    jlo, jhi = np.array([k - 1]), np.array([m - 1])
    olo, ohi = np.array([k - 2]), np.array([m - 2])
    while len(jlo):
        mid = (jlo + jhi) // 2
        lo, hi = olo, np.minimum(ohi, mid - 1)
        n = hi - lo + 1
        task = np.repeat(np.arange(len(mid)), n)
        i = lo[task] + (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n))
        j = mid[task]
        val = prev[i] + vmax[j] * (c[j + 1] - c[i + 1]) - (s[j + 1] - s[i + 1])
        starts = np.cumsum(n) - n
        best_val = np.minimum.reduceat(val, starts)
        hit = np.flatnonzero(val <= best_val[task])
        first = hit[np.unique(task[hit], return_index=True)[1]]  # leftmost minimum per task
        best = i[first]
        cur[mid], arg[mid] = best_val, best
        left, right = jlo <= mid - 1, mid + 1 <= jhi
        jlo, jhi, olo, ohi = (np.concatenate([jlo[left], mid[right] + 1]), np.concatenate([mid[left] - 1, jhi[right]]),
                              np.concatenate([olo[left], best[right]]), np.concatenate([best[left], ohi[right]]))
    return cur, arg


def check_boundaries(boundaries: Any) -> np.ndarray:
    """Bucket boundaries as strictly increasing positive int64 lengths (tf.data's convention), or refused.

    Examples
    --------
    >>> check_boundaries([4, 8])
    array([4, 8])
    """
    try:
        raw = np.asarray(boundaries)
    except (TypeError, ValueError):  # ragged lists
        raw = np.asarray([], dtype=object)
    if raw.dtype == object or raw.ndim > 1 or (raw.size and raw.dtype.kind not in "iu") or (raw < 1).any():
        raise ParameterError(f"boundaries must be a 1-D list of positive integer lengths, got {boundaries!r}.",
                             "pass e.g. boundaries=[10, 20, 40], or statebatch.bucket_boundaries(lengths, 8).")
    bnds = raw.astype(np.int64).reshape(-1)
    if len(bnds) > 1 and (np.diff(bnds) <= 0).any():
        raise ParameterError(f"boundaries must be strictly increasing, got {bnds.tolist()}.",
                             "pass sorted boundaries, e.g. statebatch.bucket_boundaries(lengths, 8).")
    return bnds


def bucket_boundaries(lengths: npt.ArrayLike, n_buckets: int | None = None, *, max_padding: float = 0.02,
                      max_buckets: int = 32) -> np.ndarray:
    """Bucket boundaries that minimise total padding (dynamic programming over sorted lengths).

    Each bucket is padded to its longest member. Boundaries follow tf.data's convention: bucket ``j``
    holds lengths in ``[b[j-1], b[j])``, so ``n_buckets`` buckets have ``n_buckets - 1`` boundaries.
    Exact for up to 4,096 distinct lengths (beyond, neighbouring lengths are merged into equal-count
    groups first); O(n_buckets x m log m) for m distinct lengths.

    Parameters
    ----------
    lengths : sequence of int
    n_buckets : int, optional
        Number of buckets (at most 4,096). By default the smallest number (at most ``max_buckets``)
        whose padding is at most ``max_padding`` of the padded steps.

    Returns
    -------
    ndarray of int, shape ``(n_buckets - 1,)`` (fewer when there are fewer distinct lengths)

    Examples
    --------
    >>> bucket_boundaries([3, 4, 4, 9, 10, 10], 2)  # lengths below 5, and the rest
    array([5])
    """
    lengths = check_lengths(lengths)
    if n_buckets is not None:
        check_int("n_buckets", n_buckets, 1, _MAX_GROUPS)
    check_int("max_buckets", max_buckets, 1, _MAX_GROUPS)
    max_padding = check_fraction("max_padding", max_padding, low=0.0, high=1.0, inclusive=True)
    values, counts = np.unique(lengths, return_counts=True)
    sums = values * counts
    if len(values) > _MAX_GROUPS:  # merge neighbouring lengths into equal-count groups
        edges = np.unique(np.searchsorted(np.cumsum(counts), np.linspace(0, counts.sum(), _MAX_GROUPS + 1)[1:-1]))
        groups = [g for g in np.split(np.arange(len(values)), edges + 1) if len(g)]
        values = np.array([values[g[-1]] for g in groups])
        counts, sums = np.array([counts[g].sum() for g in groups]), np.array([sums[g].sum() for g in groups])
    m = len(values)
    k_max = min(m, n_buckets if n_buckets is not None else max_buckets)
    vmax = values.astype(float)
    c = np.concatenate([[0.0], np.cumsum(counts, dtype=float)])
    s = np.concatenate([[0.0], np.cumsum(sums, dtype=float)])
    dp = vmax * c[1:] - s[1:]  # one bucket holding groups 0..j
    total = float(lengths.sum())
    args: list[np.ndarray] = []
    for k in range(2, k_max + 1):
        if n_buckets is None and dp[-1] <= max_padding * (total + dp[-1]):
            break
        dp, arg = _layer(dp, k, vmax, c, s)
        args.append(arg)
    ends, j = [], m - 1
    for arg in reversed(args):  # walk the splits back from the last group
        j = int(arg[j])
        ends.append(j)
    return np.array(sorted(int(values[e]) + 1 for e in ends), dtype=np.int64)


def padding_of(lengths: npt.ArrayLike, boundaries: npt.ArrayLike) -> int:
    """Padded steps when each bucket (tf.data convention) is padded to its longest member.

    Examples
    --------
    >>> padding_of([3, 4, 9, 10], [5])  # 3 padded to 4, 9 padded to 10
    2
    """
    lengths = check_lengths(lengths)
    bounds = check_lengths(boundaries, "boundaries") if np.size(boundaries) else np.empty(0, np.int64)
    if len(bounds) > 1 and (np.diff(bounds) <= 0).any():
        raise ParameterError(f"boundaries must be strictly increasing, got {bounds.tolist()}.",
                             "pass sorted boundaries, e.g. statebatch.bucket_boundaries(lengths, 8).")
    bucket = np.searchsorted(bounds, lengths, side="right")
    longest = np.zeros(len(bounds) + 1, dtype=np.int64)
    np.maximum.at(longest, bucket, lengths)
    return int((longest[bucket] - lengths).sum())


def sorted_padding(lengths: np.ndarray, batch_size: int) -> float:
    """Padding of the best fixed-size batching: all lengths sorted, cut into batches.

    Examples
    --------
    >>> import numpy as np
    >>> round(sorted_padding(np.array([3, 4, 9, 10]), 2), 4)  # 2 padded steps of 28
    0.0714
    """
    s = np.sort(np.asarray(lengths, dtype=np.int64))
    n = len(s)
    tops = s[np.minimum(np.arange(batch_size - 1, n + batch_size - 1, batch_size), n - 1)]
    sizes = np.diff(np.append(np.arange(0, n, batch_size), n))
    padded = int((tops * sizes).sum())
    return float(1.0 - s.sum() / padded) if padded else 0.0


# --------------------------------------------------------------------------- planning
# Measured (bench/run.py, "bucket mixing"): on 3,000 lognormal lengths (median 60, sigma 0.5 to 0.6)
# and batch size 32 this pads less than a 2%-jittered sort and keeps fewer batch-mates between epochs.
DEFAULT_BIN_WIDTH = 0.031


def _cut(order: np.ndarray, lengths: np.ndarray, batch_size: int, token_budget: int | None) -> list[np.ndarray]:
    """Cut an ordering (sorted by length within groups) into batches."""
    if token_budget is None:
        return [order[i: i + batch_size] for i in range(0, len(order), batch_size)]
    batches, start, longest = [], 0, 0
    lens = lengths[order].tolist()
    for pos, n in enumerate(lens):
        longest_new = max(longest, n)
        if pos > start and (longest_new * (pos - start + 1) > token_budget or pos - start >= batch_size):
            batches.append(order[start:pos])
            start, longest_new = pos, n
        longest = longest_new
    if start < len(order):
        batches.append(order[start:])
    return batches


def _shifted_bins(idx: np.ndarray, lengths: np.ndarray, batch_size: int, bin_width: float,
                  rng: np.random.Generator, token_budget: int | None, move_cuts: bool) -> list[np.ndarray]:
    """Sort by length bins whose grid moves every epoch, random inside a bin; cut into batches.

    The bin width is ``bin_width`` x the mean length of *all* sequences, so the grid is the same in
    every epoch up to its random offset: a sequence's bin-mates change where the grid moves, which is
    what mixes batches between epochs, and a batch pads to about its bin's longest member, which is
    what the mixing costs. ``move_cuts`` also moves the cut points by a random amount that keeps the
    number of batches fixed (the first batch takes between ``r`` and ``batch_size`` sequences, where
    ``r`` is the size the last batch would otherwise have), so the sparse tails mix too.
    """
    lens = lengths[idx]
    width = bin_width * float(lengths.mean())
    # A width of at most one step puts one distinct length per bin: a plain sort.
    bins = np.floor(lens / width + rng.random()).astype(np.int64) if width > 1 else lens.copy()
    shuffled = rng.permutation(len(idx))
    order = idx[shuffled[np.argsort(bins[shuffled], kind="stable")]]  # by bin, random within a bin
    if token_budget is not None:
        return _cut(order, lengths, batch_size, token_budget)
    return _cut_moving(order, batch_size, rng, move_cuts)


def _cut_moving(order: np.ndarray, batch_size: int, rng: np.random.Generator, move_cuts: bool) -> list[np.ndarray]:
    """Cut into batches of ``batch_size``, the cut points moved by a random amount that keeps the count."""
    m = len(order)
    r = m % batch_size
    first = int(rng.integers(r, batch_size + 1)) if (move_cuts and r and m > batch_size) else batch_size
    bounds = [0] + list(range(first, m, batch_size)) + [m]
    return [order[a:b] for a, b in zip(bounds[:-1], bounds[1:]) if b > a]


def _rotating_left_out(members: np.ndarray, batch_size: int, seed: int, epoch: int, stream: int) -> np.ndarray:
    """The ``len(members) % batch_size`` members that ``remainder="drop"`` leaves out this epoch.

    They are a window of a fixed random permutation (fixed by the seed, not the epoch) that advances
    by its own size every epoch: consecutive windows are disjoint whenever a full batch exists, so a
    sequence is never left out two epochs in a row, and over ``E`` epochs each one is left out
    ``floor(E r / n)`` or ``ceil(E r / n)`` times. Any epoch is planned without its history.
    """
    n = len(members)
    r = n % batch_size
    if r == 0 or n < batch_size:
        return members[:0] if n >= batch_size else members
    perm = rng_for(seed, 0, 1000 + stream).permutation(n)
    start = (epoch * r) % n
    return np.sort(members[perm[(start + np.arange(r)) % n]])


def plan_buckets(
    lengths: npt.ArrayLike,
    batch_size: int = 32,
    *,
    mode: str = "sort",
    bin_width: float = DEFAULT_BIN_WIDTH,
    boundaries: Sequence[int] | None = None,
    pool_batches: int | None = None,
    shuffle: bool = True,
    seed: int | None = None,
    epoch: int = 0,
    pad_to: str = "batch",
    token_budget: int | None = None,
    remainder: str = "keep",
) -> BucketPlan:
    """The bucketed batches of one epoch, from the sequence lengths alone.

    Parameters
    ----------
    lengths : sequence of int (>= 1)
    batch_size : int
        Sequences per batch (at most, with ``token_budget``).
    mode : "sort", "pool", "buckets" or "exact"
        See the module docstring.
    bin_width : float
        ``"sort"`` mode's one knob trading padding for mixing: the width of the length bins, as a
        fraction of the mean length, inside which batch-mates are drawn at random (the bin grid moves
        every epoch). 0 is a plain sort (least padding, most batch-mates kept between epochs); the
        default 0.031 pads less than a 2%-jittered sort and keeps fewer batch-mates. Measure with
        :func:`retention` and ``BucketPlan.padding_fraction``.
    boundaries : sequence of int
        ``"buckets"`` mode: the bucket boundaries (tf.data convention).
    pool_batches : int
        ``"pool"`` mode: batches per sorted pool (default 50, Hugging Face's megabatch).
    shuffle, seed, epoch
        Reshuffle membership and order every epoch, a pure function of ``(seed, epoch)``. Without
        shuffling, batches run from the shortest sequences to the longest.
    pad_to : "batch" or "bucket"
        Pad to the batch's longest member, or (``"buckets"`` mode) to the bucket's upper boundary - 1.
    token_budget : int, optional
        Vary the batch size so that ``batch x longest`` stays within this many steps.
    remainder : "keep" or "drop"
        Keep batches smaller than ``batch_size`` or leave their sequences out of this epoch. With
        shuffling, the left-out sequences rotate: no sequence is left out two epochs in a row (in
        ``"buckets"``/``"exact"`` modes: within a group that fills at least one batch), and any epoch
        is planned without computing the ones before it.

    Returns
    -------
    BucketPlan

    Examples
    --------
    >>> plan = plan_buckets([3, 4, 9, 10, 5, 6], 2, shuffle=False)
    >>> plan.n_batches, [b.tolist() for b in plan.batches]
    (3, [[0, 1], [4, 5], [2, 3]])
    """
    lengths = check_lengths(lengths)
    batch_size = check_int("batch_size", batch_size, 1)
    mode = check_choice("mode", mode, MODES)
    bin_width = check_fraction("bin_width", bin_width, low=0.0, high=1e6, inclusive=True)
    shuffle = check_bool("shuffle", shuffle)
    seed = check_seed("seed", seed)
    epoch = check_int("epoch", epoch, 0)
    pad_to = check_choice("pad_to", pad_to, ("batch", "bucket"))
    remainder = check_choice("remainder", remainder, REMAINDERS)
    if token_budget is not None:
        token_budget = check_int("token_budget", token_budget, 1)
        if remainder == "drop":
            raise ParameterError("remainder='drop' keeps only full batches, but with token_budget batch sizes vary "
                                 "by design, so no batch is 'full'.", "drop one of token_budget / remainder='drop'.")
        too_long = np.flatnonzero(lengths > token_budget)
        if len(too_long):
            raise ParameterError(
                f"token_budget={token_budget} is smaller than {plural(len(too_long), 'sequence')} (e.g. position "
                f"{int(too_long[0])} with {int(lengths[too_long[0]])} steps): such a batch would exceed the budget.",
                f"raise token_budget to at least {int(lengths.max())}, or leave out sequences longer than the budget.")
    if (lengths <= 0).any():
        raise ParameterError(f"{int((lengths <= 0).sum())} sequences are empty.", "drop empty sequences first.")
    if shuffle and seed is None:
        raise ParameterError("a shuffled plan needs a seed to be a pure function of its arguments.",
                             "pass seed=0 (or any integer); bucket_batches draws one for you.")
    bnds = None
    if mode == "buckets":
        if boundaries is None:
            raise ParameterError("mode='buckets' needs boundaries.", "pass boundaries=statebatch.bucket_boundaries(lengths, 8).")
        bnds = check_boundaries(boundaries)
    elif pad_to == "bucket":
        raise ParameterError("pad_to='bucket' needs mode='buckets' (other modes have no bucket boundaries).",
                             "use pad_to='batch', or mode='buckets'.")
    n = len(lengths)
    rng = rng_for(seed, epoch) if shuffle else None
    drop = remainder == "drop"
    batches, dropped = _batches(lengths, batch_size, mode, bin_width, bnds, pool_batches, rng, seed, epoch,
                                token_budget, drop)
    left: tuple = ()
    if drop:
        if not batches:
            raise ParameterError(f"no group of sequences fills a batch of {batch_size}: remainder='drop' would leave "
                                 f"all {n} sequences out.", "use remainder='keep' or a smaller batch_size.")
        left = tuple(LeftOut(int(i), 0, int(lengths[i]), f"remainder='drop': in no full batch of epoch {epoch}")
                     for i in np.sort(dropped))
    if rng is not None:  # shuffle
        batches = [batches[i] for i in rng.permutation(len(batches))]
    longest = np.array([int(lengths[b].max()) for b in batches], dtype=np.int64)
    if pad_to == "bucket" and bnds is not None and len(bnds):  # no boundaries (one distinct length): one bucket, padded to its batch
        at = np.searchsorted(bnds, longest, side="right")
        longest = np.where(at < len(bnds), bnds[np.minimum(at, len(bnds) - 1)] - 1, longest)
    return BucketPlan(tuple(b if b.dtype.kind == "i" else np.asarray(b, dtype=np.int64) for b in map(np.asarray, batches)),
                      longest, lengths, epoch, left)


def _batches(lengths, batch_size, mode, bin_width, bnds, pool_batches, rng, seed, epoch, token_budget, drop):
    """(batches, left out) of one epoch; ``rng`` is None for the fixed shortest-first order."""
    n = len(lengths)
    none = np.empty(0, dtype=np.int64)
    if (rng is not None and mode == "sort" and not drop and token_budget is None and n
            and lengths[0] == lengths.min() == lengths.max()):
        # Equal lengths (e.g. windows): length bins are moot, a batch is a random draw. One int32
        # permutation, and the batches are views of it: no per-sequence bookkeeping beyond 4 bytes.
        order = np.arange(n, dtype=np.int32 if n < 2**31 else np.int64)
        rng.shuffle(order)
        return _cut_moving(order, batch_size, rng, move_cuts=True), none
    everyone = np.arange(n, dtype=np.int64)
    if mode in ("sort", "pool"):
        if rng is None:  # fixed order: sorted; dropping leaves out the longest partial batch
            batches = _cut(np.argsort(lengths, kind="stable"), lengths, batch_size, token_budget)
            return _full_only(batches, batch_size) if drop else (batches, none)
        dropped = _rotating_left_out(everyone, batch_size, seed, epoch, 0) if drop else none
        idx = np.setdiff1d(everyone, dropped, assume_unique=True) if len(dropped) else everyone
        if mode == "sort":
            return _shifted_bins(idx, lengths, batch_size, bin_width, rng, token_budget, move_cuts=not drop), dropped
        pool = (pool_batches or 50) * batch_size  # a multiple of batch_size: pools cut into full batches
        perm = idx[rng.permutation(len(idx))]
        out: list[np.ndarray] = []
        for lo in range(0, len(perm), pool):
            chunk = perm[lo: lo + pool]
            out += _cut(chunk[np.argsort(lengths[chunk], kind="stable")], lengths, batch_size, token_budget)
        return out, dropped
    keys = lengths if mode == "exact" else np.searchsorted(bnds, lengths, side="right")
    order = np.argsort(keys, kind="stable")  # grouped by key, shortest first within a group
    out, dropped_parts = [], []
    for group in np.split(order, np.flatnonzero(np.diff(keys[order])) + 1):
        if rng is None:
            group = group[np.argsort(lengths[group], kind="stable")]
            cut = _cut(group, lengths, batch_size, token_budget)
            if drop:
                cut, left = _full_only(cut, batch_size)
                dropped_parts.append(left)
            out += cut
            continue
        if drop:
            left = _rotating_left_out(np.sort(group), batch_size, seed, epoch, 1 + int(keys[group[0]]))
            dropped_parts.append(left)
            group = np.setdiff1d(group, left, assume_unique=True)
        out += _cut(group[rng.permutation(len(group))], lengths, batch_size, token_budget)
    dropped = np.concatenate(dropped_parts) if dropped_parts else none
    return out, dropped.astype(np.int64)


def _full_only(batches: list[np.ndarray], batch_size: int) -> tuple[list[np.ndarray], np.ndarray]:
    full = [b for b in batches if len(b) == batch_size]
    rest = [b for b in batches if len(b) < batch_size]
    return full, (np.concatenate(rest) if rest else np.empty(0, np.int64)).astype(np.int64)


def retention(a: BucketPlan, b: BucketPlan) -> float:
    """How much two epochs' batches overlap: lower means better mixing.

    For each sequence with at least one batch-mate in ``a``, the fraction of those batch-mates that
    are again its batch-mates in ``b`` (0 for a sequence left out of ``b``), averaged.

    Returns
    -------
    float in [0, 1]

    Examples
    --------
    >>> a = plan_buckets([3, 4, 9, 10, 5, 6], 2, seed=0)
    >>> retention(a, a)  # the same batches: every batch-mate kept
    1.0
    """
    if not (isinstance(a, BucketPlan) and isinstance(b, BucketPlan)):
        raise ParameterError(f"retention compares two BucketPlans, got {type(a).__name__} and {type(b).__name__}.",
                             "pass two epochs' plans: retention(bucketing.plan(0), bucketing.plan(1)).")
    n = len(a.lengths)
    if len(b.lengths) != n:
        raise ParameterError(f"the plans cover different sequences ({n} and {len(b.lengths)}).",
                             "compare two epochs of the same bucketing.")
    ids = []
    for plan in (a, b):
        at = np.full(n, -1, dtype=np.int64)
        for k, members in enumerate(plan.batches):
            at[members] = k
        ids.append(at)
    in_a, in_b = ids
    size_a = np.bincount(in_a[in_a >= 0], minlength=max(a.n_batches, 1))
    mates = np.where(in_a >= 0, size_a[np.maximum(in_a, 0)] - 1, 0)
    both = (in_a >= 0) & (in_b >= 0)
    _, inverse, counts = np.unique(in_a[both] * (b.n_batches + 1) + in_b[both], return_inverse=True, return_counts=True)
    kept = np.zeros(n)
    kept[both] = counts[inverse] - 1
    has = mates > 0
    return float((kept[has] / mates[has]).mean()) if has.any() else 0.0
