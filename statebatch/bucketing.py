"""Bucketing: variable-length sequences into batches of (nearly) equal length.

Plan, then materialise: an epoch's plan is a list of integer index arrays (which sequences form each
batch), computed from the lengths alone; a batch is materialised with one gather from a single base
array holding every sequence. Three ways to plan an epoch:

- ``"pool"`` (default): shuffle, cut into pools of many batches, sort each pool by length, batch, shuffle
  the batches. Padding stays near the sorted optimum while membership and order change every epoch.
- ``"buckets"``: tf.data-style boundaries (given, or optimal ones from :func:`bucket_boundaries`);
  batches never mix buckets.
- ``"exact"``: batches of identical lengths only, no padding at all.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from ._series import as_series
from .errors import LengthMismatchError, ParameterError, StatebatchWarning
from .windows import _check_int


# --------------------------------------------------------------------------- boundaries
def _padding_cost_table(vmax: np.ndarray, counts: np.ndarray, sums: np.ndarray) -> np.ndarray:
    """cost[i, j] = padding when length groups i..j share one bucket padded to vmax[j]."""
    c = np.concatenate([[0.0], np.cumsum(counts)])
    s = np.concatenate([[0.0], np.cumsum(sums)])
    i = np.arange(len(vmax))[:, None]
    j = np.arange(len(vmax))[None, :]
    cost = vmax[None, :] * (c[j + 1] - c[i]) - (s[j + 1] - s[i])
    return np.where(j >= i, cost, np.inf)


_MAX_GROUPS = 2048  # the DP table is groups x groups floats


def bucket_boundaries(lengths: Sequence[int], n_buckets: int | None = None, *, max_padding: float = 0.02,
                      max_buckets: int = 32) -> np.ndarray:
    """Bucket boundaries that minimise total padding (dynamic programming over sorted lengths).

    Each bucket is padded to its longest member. Boundaries follow tf.data's convention: bucket ``j``
    holds lengths in ``[b[j-1], b[j])``, so ``n_buckets`` buckets have ``n_buckets - 1`` boundaries.
    The optimum is exact when there are at most 2,048 distinct lengths; beyond that, boundaries are
    restricted to the edges of 2,048 equal-count length groups.

    Parameters
    ----------
    lengths : sequence of int
    n_buckets : int, optional
        Number of buckets. By default the smallest number (at most ``max_buckets``) whose padding is
        at most ``max_padding`` of the padded steps.

    Returns
    -------
    ndarray of int, shape ``(n_buckets - 1,)``
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.ndim != 1 or len(lengths) == 0 or (lengths < 0).any():
        raise ParameterError("lengths must be a non-empty 1-D sequence of non-negative integers.",
                             "pass one length per sequence, e.g. [len(s) for s in sequences].")
    if n_buckets is not None:
        _check_int("n_buckets", n_buckets, 1)
    values, counts = np.unique(lengths, return_counts=True)
    sums = values * counts
    if len(values) > _MAX_GROUPS:  # merge neighbouring lengths into equal-count groups
        edges = np.unique(np.searchsorted(np.cumsum(counts), np.linspace(0, counts.sum(), _MAX_GROUPS + 1)[1:-1]))
        groups = np.split(np.arange(len(values)), edges + 1)
        groups = [g for g in groups if len(g)]
        values = np.array([values[g[-1]] for g in groups])
        counts, sums = np.array([counts[g].sum() for g in groups]), np.array([sums[g].sum() for g in groups])
    m = len(values)
    k_max = min(m, n_buckets if n_buckets is not None else max_buckets)
    cost = _padding_cost_table(values.astype(float), counts.astype(float), sums.astype(float))
    total = float(lengths.sum())
    dp = cost[0].copy()  # dp[j]: least padding covering groups 0..j with k buckets
    starts: list[np.ndarray] = [np.zeros(m, dtype=np.int64)]  # starts[k-1][j]: first group of the last bucket
    best_k = 1
    for k in range(2, k_max + 1):
        if n_buckets is None and dp[-1] <= max_padding * (total + dp[-1]):
            break
        cand = dp[:-1, None] + cost[1:, :]  # last bucket = groups i..j, i >= 1
        i_best = np.argmin(cand, axis=0)
        dp = np.where(np.arange(m) >= k - 1, cand[i_best, np.arange(m)], np.inf)
        starts.append(i_best + 1)
        best_k = k
    ends, j = [], m - 1
    for k in range(best_k, 1, -1):
        ends.append(j)
        j = int(starts[k - 1][j]) - 1
    ends.append(j)
    return np.array(sorted(int(values[e]) + 1 for e in ends[1:]), dtype=np.int64)


def padding_of(lengths: Sequence[int], boundaries: Sequence[int]) -> int:
    """Padded steps when each bucket (tf.data convention) is padded to its longest member."""
    lengths = np.asarray(lengths, dtype=np.int64)
    bucket = np.searchsorted(np.asarray(boundaries), lengths, side="right")
    longest = np.zeros(len(boundaries) + 1, dtype=np.int64)
    np.maximum.at(longest, bucket, lengths)
    return int((longest[bucket] - lengths).sum())


# --------------------------------------------------------------------------- batches
@dataclass
class Batch:
    """One materialised batch.

    Attributes
    ----------
    X : ndarray ``(batch, length, features)``, padded with ``pad_value``
    y : ndarray or None; per sequence ``(batch, ...)`` or per timestep ``(batch, length, ...)``
    sample_weight : ndarray ``(batch, length)`` (1 real step, 0 padding) for per-timestep targets
    mask : ndarray of bool ``(batch, length)``, True on real steps
    indices : ndarray ``(batch,)``, the sequences in this batch
    lengths : ndarray ``(batch,)``
    """

    X: np.ndarray
    y: np.ndarray | None
    sample_weight: np.ndarray | None
    mask: np.ndarray
    indices: np.ndarray
    lengths: np.ndarray

    def as_tuple(self) -> tuple:
        if self.y is None:
            return (self.X,)
        if self.sample_weight is None:
            return (self.X, self.y)
        return (self.X, self.y, self.sample_weight)


class Bucketing:
    """Batches of variable-length sequences grouped by length; iterate it once per epoch.

    ``for X, y, w in bucketing: ...`` gives one epoch of tuples ``(X[, y[, sample_weight]])``; each new
    iteration is a new epoch, reshuffled deterministically from ``seed``. :meth:`plan` gives the
    epoch's index arrays, :meth:`materialise` a :class:`Batch`.
    """

    def __init__(self, *, base, offsets, lengths, ids, batch_size, mode, boundaries, pool_batches, shuffle, seed,
                 padding, pad_value, pad_to, targets, per_step_targets, token_budget, drop_remainder,
                 max_padding=0.02):
        self._base = base
        self._offsets = offsets
        self.lengths = lengths
        self.ids = ids
        self.batch_size = batch_size
        self.mode = mode
        self.boundaries = boundaries
        self.pool_batches = pool_batches
        self.shuffle = shuffle
        self.seed = seed
        self.padding = padding
        self.pad_value = pad_value
        self.pad_to = pad_to
        self._targets = targets
        self._per_step = per_step_targets
        self.token_budget = token_budget
        self.drop_remainder = drop_remainder
        self.max_padding = max_padding
        self._auto_pool: int | None = None
        self.epoch = 0
        self.leftover: np.ndarray = np.empty(0, dtype=np.int64)

    @property
    def n_sequences(self) -> int:
        return len(self.lengths)

    @property
    def n_features(self) -> int:
        return int(self._base.shape[1])

    # -- planning
    def _rng(self, epoch: int) -> np.random.Generator:
        return np.random.default_rng(None if self.seed is None else (self.seed, epoch))

    def _cut(self, order: np.ndarray) -> list[np.ndarray]:
        """Cut an ordering (sorted by length within groups) into batches."""
        if self.token_budget is None:
            return [order[i: i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        batches, start, longest = [], 0, 0
        for pos, idx in enumerate(order):
            longest_new = max(longest, int(self.lengths[idx]))
            if pos > start and longest_new * (pos - start + 1) > self.token_budget:
                batches.append(order[start:pos])
                start, longest_new = pos, int(self.lengths[idx])
            longest = longest_new
        if start < len(order):
            batches.append(order[start:])
        return batches

    def plan(self, epoch: int | None = None) -> list[np.ndarray]:
        """The batches of one epoch as arrays of sequence indices (deterministic for a seed and epoch)."""
        epoch = self.epoch if epoch is None else epoch
        rng = self._rng(epoch)
        n = self.n_sequences
        lengths = self.lengths
        perm = rng.permutation(n) if self.shuffle else np.arange(n)
        batches: list[np.ndarray] = []
        if self.mode == "pool":
            if not self.shuffle:
                pool_batches = -(-n // self.batch_size)
            elif self.pool_batches is not None:
                pool_batches = self.pool_batches
            else:
                pool_batches = self._auto_pool_batches(perm)
            batches = self._pooled(perm, pool_batches)
        else:
            keys = lengths if self.mode == "exact" else np.searchsorted(self.boundaries, lengths, side="right")
            order = perm[np.argsort(keys[perm], kind="stable")]  # grouped by key, random within a group
            for group in np.split(order, np.flatnonzero(np.diff(keys[order])) + 1):
                if not self.shuffle:
                    group = group[np.argsort(lengths[group], kind="stable")]
                batches += self._cut(group)
        if self.drop_remainder and self.token_budget is None:
            full = [b for b in batches if len(b) == self.batch_size]
            left = [b for b in batches if len(b) < self.batch_size]
            self.leftover = np.concatenate(left) if left else np.empty(0, dtype=np.int64)
            if len(self.leftover):
                warnings.warn(f"drop_remainder=True leaves out {len(self.leftover)} of {n} sequences this epoch "
                              "(see Bucketing.leftover).", StatebatchWarning, stacklevel=3)
            batches = full
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def _pooled(self, perm: np.ndarray, pool_batches: int) -> list[np.ndarray]:
        pool = pool_batches * self.batch_size
        batches: list[np.ndarray] = []
        for lo in range(0, len(perm), pool):
            chunk = perm[lo: lo + pool]
            batches += self._cut(chunk[np.argsort(self.lengths[chunk], kind="stable")])
        return batches

    def _auto_pool_batches(self, perm: np.ndarray) -> int:
        """Smallest pool (32, 64, 128... batches) whose padding is within ``max_padding``; chosen once."""
        if self._auto_pool is None:
            all_batches = -(-self.n_sequences // self.batch_size)
            pool = min(32, all_batches)
            while pool < all_batches and _plan_padding(self._pooled(perm, pool), self.lengths) > self.max_padding:
                pool *= 2
            self._auto_pool = min(pool, all_batches)
        return self._auto_pool

    def n_batches(self, epoch: int | None = None) -> int:
        return len(self.plan(epoch))

    # -- materialising
    def materialise(self, idx: np.ndarray) -> Batch:
        """Pad and gather the sequences ``idx`` into one :class:`Batch`."""
        idx = np.asarray(idx, dtype=np.int64)
        lens = self.lengths[idx]
        longest = self._padded_length(int(lens.max())) if len(lens) else 0
        steps = np.arange(longest)
        if self.padding == "post":
            mask = steps[None, :] < lens[:, None]
            src = steps[None, :]
        else:
            shift = (longest - lens)[:, None]
            mask = steps[None, :] >= shift
            src = steps[None, :] - shift
        rows = self._offsets[idx][:, None] + src
        X = np.full((len(idx), longest, self.n_features), self.pad_value, dtype=self._base.dtype)
        X[mask] = self._base[rows[mask]]
        y = w = None
        if self._targets is not None:
            if self._per_step:
                y = np.full((len(idx), longest) + self._targets.shape[1:], self.pad_value, dtype=self._targets.dtype)
                y[mask] = self._targets[rows[mask]]
                w = mask.astype(np.float32)
            else:
                y = self._targets[idx]
        return Batch(X=X, y=y, sample_weight=w, mask=mask, indices=idx, lengths=lens)

    def batches(self, epoch: int | None = None) -> Iterator[Batch]:
        for idx in self.plan(epoch):
            yield self.materialise(idx)

    def __iter__(self) -> Iterator[tuple]:
        epoch = self.epoch
        self.epoch += 1
        for b in self.batches(epoch):
            yield b.as_tuple()

    # -- reporting
    def _padded_length(self, longest: int) -> int:
        """Length a batch whose longest member is ``longest`` is padded to."""
        if self.pad_to == "bucket" and self.mode == "buckets":
            b = int(np.searchsorted(self.boundaries, longest, side="right"))
            if b < len(self.boundaries):
                return int(self.boundaries[b]) - 1
        return longest

    def padding_fraction(self, epoch: int | None = None) -> float:
        """Padded steps / all steps of the epoch's padded batches."""
        return _plan_padding(self.plan(epoch), self.lengths, self._padded_length)

    def _explain(self):
        from .explain import Explanation

        plan = self.plan(self.epoch)
        sizes = [len(b) for b in plan]
        pf = self.padding_fraction(self.epoch)
        lines = [
            f"{len(plan)} batches per epoch of up to {self.batch_size if self.token_budget is None else 'a token budget of ' + str(self.token_budget)} "
            f"sequences ({self.n_sequences} sequences, lengths {int(self.lengths.min())}..{int(self.lengths.max())}, "
            f"{self.n_features} feature(s)); mode={self.mode!r}, shuffle={self.shuffle}.",
            f"padding: {pf:.2%} of the padded steps (sorting all lengths would give "
            f"{_sorted_padding(self.lengths, self.batch_size):.2%}); padded steps have mask False / weight 0.",
            "each batch is padded to its longest member; the model's input is keras.Input(shape=(None, "
            f"{self.n_features})) so every batch may have its own length.",
        ]
        if len(self.leftover):
            lines.append(f"left out: {len(self.leftover)} sequences (drop_remainder); see .leftover.")
        return Explanation(shape=(self.n_sequences, None, self.n_features), batch_size=self.batch_size, stateful=False,
                           n_batches=len(plan), last_batch_size=sizes[-1] if sizes else 0,
                           parallel_states=self.batch_size, resets_per_epoch=len(plan), lines=lines,
                           extra={"padding_fraction": pf})

    def explain(self):
        return self._explain()

    def __repr__(self) -> str:
        return (f"Bucketing(sequences={self.n_sequences}, batch_size={self.batch_size}, mode={self.mode!r}, "
                f"batches={self.n_batches()}, padding={self.padding_fraction():.2%})")


def _plan_padding(plan: list[np.ndarray], lengths: np.ndarray, padded_length=lambda longest: longest) -> float:
    real = sum(int(lengths[b].sum()) for b in plan)
    padded = sum(padded_length(int(lengths[b].max())) * len(b) for b in plan)
    return 1.0 - real / padded if padded else 0.0


def _sorted_padding(lengths: np.ndarray, batch_size: int) -> float:
    s = np.sort(lengths)
    padded = sum(int(s[i: i + batch_size].max()) * len(s[i: i + batch_size]) for i in range(0, len(s), batch_size))
    return 1.0 - s.sum() / padded if padded else 0.0


def bucket_batches(
    sequences: Any,
    batch_size: int = 32,
    *,
    targets: Any = None,
    mode: str = "pool",
    boundaries: Sequence[int] | None = None,
    n_buckets: int | None = None,
    pool_batches: int | None = None,
    max_padding: float = 0.02,
    shuffle: bool = True,
    seed: int | None = None,
    padding: str = "post",
    pad_value: float = 0.0,
    pad_to: str = "batch",
    token_budget: int | None = None,
    drop_remainder: bool = False,
    id_col: str | None = None,
    time_col: str | None = None,
    feature_cols: Sequence[str] | None = None,
    dtype: Any = None,
) -> Bucketing:
    """Group variable-length sequences into batches of similar length.

    Parameters
    ----------
    sequences : list of arrays ``(length_i, features)`` (or ``(length_i,)``), a long DataFrame with
        ``id_col``, or :class:`~statebatch.Windows` (each window one sequence).
    batch_size : int
        Sequences per batch (the last batch of a group may be smaller unless ``drop_remainder``).
    targets : array ``(n_sequences, ...)`` (one per sequence) or list of arrays aligned with each
        sequence (one per timestep; padded, with per-timestep sample weights).
    mode : "pool", "buckets" or "exact"
        See the module docstring. ``"buckets"`` uses ``boundaries`` or computes optimal ones
        (:func:`bucket_boundaries`, ``n_buckets``); ``"exact"`` never pads.
    pool_batches : int, optional
        ``"pool"`` mode: batches per sorted pool. Larger pools pad less, smaller pools mix more. By
        default the smallest pool (32, 64, 128... batches) whose padding is within ``max_padding``.
    max_padding : float
        Padding target for the automatic pool size (default 2% of the padded steps).
    shuffle, seed
        Reshuffle every epoch (membership and order), deterministically given ``seed``.
    padding : "post" or "pre"
    pad_value : float
    pad_to : "batch" or "bucket"
        Pad to the batch's longest member, or (``"buckets"`` mode) to the bucket's upper boundary.
    token_budget : int, optional
        Vary the batch size so that ``batch x longest`` stays within this many steps (non-stateful
        models only).
    drop_remainder : bool
        Drop batches smaller than ``batch_size``; the dropped sequences are reported (``leftover``).

    Returns
    -------
    Bucketing
        Iterate once per epoch; each batch is a tuple ``(X[, y[, sample_weight]])`` with X padded
        ``(batch, length, features)``.
    """
    batch_size = _check_int("batch_size", batch_size, 1)
    if pool_batches is not None:
        pool_batches = _check_int("pool_batches", pool_batches, 1)
    if mode not in ("pool", "buckets", "exact"):
        raise ParameterError(f"mode={mode!r} is not one of 'pool', 'buckets', 'exact'.", "pass mode='pool' (default).")
    if padding not in ("post", "pre"):
        raise ParameterError(f"padding={padding!r} must be 'post' or 'pre'.", "pass padding='post' (cuDNN-friendly).")
    if pad_to not in ("batch", "bucket"):
        raise ParameterError(f"pad_to={pad_to!r} must be 'batch' or 'bucket'.", "pass pad_to='batch'.")
    if token_budget is not None:
        token_budget = _check_int("token_budget", token_budget, 1)

    if hasattr(sequences, "take") and hasattr(sequences, "series_ids"):  # Windows: each window a sequence
        X = sequences.X
        seqs = list(X)
        if targets is None and sequences.y is not None:
            targets = sequences.y
        sequences = seqs
    if isinstance(sequences, np.ndarray) and sequences.dtype != object and sequences.ndim == 3:
        sequences = list(sequences)
    if isinstance(sequences, (list, tuple)) and sequences and not isinstance(sequences[0], np.ndarray):
        sequences = [np.asarray(s) for s in sequences]
    ss = as_series(list(sequences) if isinstance(sequences, tuple) else sequences,
                   id_col=id_col, time_col=time_col, feature_cols=feature_cols, dtype=dtype, what="sequences")
    base, offsets = ss.concatenated()
    lengths = ss.lengths
    if (lengths == 0).any():
        raise ParameterError(f"{int((lengths == 0).sum())} sequences are empty.", "drop empty sequences first.")

    tarr = None
    per_step = False
    if targets is not None:
        if isinstance(targets, (list, tuple)) and len(targets) and np.ndim(targets[0]) >= 1 and \
                len(targets) == len(lengths) and all(len(t) == n for t, n in zip(targets, lengths)) and \
                any(n > 1 for n in lengths):
            per_step = True
            tarr = np.concatenate([np.asarray(t) for t in targets])
            if tarr.ndim == 1:
                tarr = tarr[:, None]
        else:
            tarr = np.asarray(targets)
            if len(tarr) != len(lengths):
                raise LengthMismatchError(
                    f"{len(lengths)} sequences but {len(tarr)} targets.",
                    "give one target per sequence, or a list of per-timestep target arrays (one per sequence).")

    bnds = None
    if mode == "buckets":
        bnds = np.asarray(boundaries if boundaries is not None else bucket_boundaries(lengths, n_buckets), dtype=np.int64)
        if bnds.ndim != 1 or (len(bnds) > 1 and (np.diff(bnds) <= 0).any()):
            raise ParameterError(f"boundaries must be strictly increasing, got {bnds.tolist()}.",
                                 "pass sorted boundaries, e.g. statebatch.bucket_boundaries(lengths, 8).")
    return Bucketing(base=base, offsets=offsets, lengths=lengths, ids=ss.ids, batch_size=batch_size, mode=mode,
                     boundaries=bnds, pool_batches=pool_batches, shuffle=shuffle, seed=seed, padding=padding,
                     pad_value=pad_value, pad_to=pad_to, targets=tarr, per_step_targets=per_step,
                     token_budget=token_budget, drop_remainder=drop_remainder, max_padding=max_padding)
