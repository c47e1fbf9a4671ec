"""Bucketing: variable-length sequences into batches of (nearly) equal length, reshuffled every epoch.

Plan, then materialise: :func:`~statebatch.plans.buckets.plan_buckets` computes an epoch's batches
from the lengths alone (a pure function of seed and epoch); a batch is materialised with one
padded gather from the row source. Windows from :func:`~statebatch.make_windows` can be bucketed
too; their batches are gathered from the windows' strided view, never copied whole.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Sequence, cast

import numpy as np

from .._args import check_bool, check_choice, check_fraction, check_int, check_optional_int, percent, plural, resolve_seed
from ..errors import DataValueError, LengthMismatchError, ParameterError, ShapeError
from .provenance import INDEPENDENT, Provenance, register_provenance
from ..materialise.gather import gather_padded
from ..plans.buckets import (DEFAULT_BIN_WIDTH, MODES, REMAINDERS, BucketPlan, bucket_boundaries, check_boundaries,
                            padding_of, plan_buckets,
                            sorted_padding)
from .batched import Batched, Explanation
from ..sources.registry import holds_many, is_own_kind
from ..sources.options import InputOptions
from ..sources.series import (SeriesSet, aligned_targets, apply_gaps, as_series, check_finite_series, checked_finite,
                              in_memory, source_of)
from ..sources.base import ArraySource, RowSource
from .windows import Windows

__all__ = ["Batch", "Bucketing", "bucket_batches", "bucket_boundaries", "padding_of"]


@dataclass
class Batch:
    """One materialised batch.

    Attributes
    ----------
    X : ndarray ``(batch, length, features)``, padded with ``pad_value``
    y : ndarray or None; per sequence ``(batch, ...)`` or per timestep ``(batch, length, ...)``
    sample_weight : ndarray ``(batch, length)`` (1 real step, 0 padding) for per-timestep targets
    mask : ndarray of bool ``(batch, length)``, True on real steps
    indices : ndarray ``(batch,)``, the sequences in this batch (positions)
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


class _SeriesSequences:
    """Sequences that are the series of a SeriesSet (padded gathers from its row source)."""

    def __init__(self, ss: SeriesSet):
        self.ss = ss
        self.lengths = ss.lengths
        self.n_features = ss.n_features

    def read(self, idx, padded_length, padding, pad_value):
        return gather_padded(self.ss.source, self.ss.offsets, idx, self.lengths, padded_length, padding, pad_value)


class _WindowSequences:
    """Windows as sequences: all of one length, gathered from the windows' strided view."""

    def __init__(self, w: Windows):
        self.w = w
        self.lengths = np.broadcast_to(np.int64(w.timesteps), (w.n_windows,))  # read-only, no memory per window
        self.n_features = w.n_features

    def read(self, idx, padded_length, padding, pad_value):
        X = self.w.take(idx)[0]
        if padded_length > X.shape[1]:
            pad = np.full((len(X), padded_length - X.shape[1]) + X.shape[2:], pad_value, dtype=X.dtype)
            X = np.concatenate([X, pad] if padding == "post" else [pad, X], axis=1)
        mask = np.zeros(X.shape[:2], dtype=bool)
        if padding == "post":
            mask[:, : self.w.timesteps] = True
        else:
            mask[:, padded_length - self.w.timesteps:] = True
        return X, mask


class Bucketing(Batched):
    """Batches of variable-length sequences grouped by length; iterate it once per epoch.

    Follows the result protocol (:mod:`statebatch.result`): ``for X, y, w in bucketing: ...`` gives one
    epoch of tuples ``(X[, y[, sample_weight]])``; each new iteration is a new epoch, reshuffled
    deterministically from ``seed``. :meth:`plan` gives the epoch's index arrays,
    :meth:`materialise` a :class:`Batch`.
    """

    def __init__(self, seqs, *, ids, batch_size, mode, bin_width, boundaries, pool_batches, shuffle, seed, padding,
                 pad_value, pad_to, token_budget, remainder, targets, target_source, target_offsets,
                 return_sequences):
        self._seqs = seqs
        self.lengths = seqs.lengths
        self.series_ids = ids if isinstance(ids, range) else list(ids)
        self.batch_size = batch_size
        self.mode = mode
        self.bin_width = bin_width
        self.boundaries = boundaries
        self.pool_batches = pool_batches
        self.shuffle = shuffle
        self.seed = seed
        self.padding = padding
        self.pad_value = pad_value
        self.pad_to = pad_to
        self.token_budget = token_budget
        self.remainder = remainder
        self.return_sequences = return_sequences
        self._targets = targets  # (n_sequences, ...) one target per sequence
        self._tsource = target_source  # per-step targets: row source aligned with the sequences
        self._toffsets = target_offsets
        self.epoch = 0
        self.plan(0)

    @property
    def ids(self) -> list:
        return self.series_ids

    @property
    def n_sequences(self) -> int:
        return len(self.lengths)

    @property
    def n_features(self) -> int:
        return int(self._seqs.n_features)

    @property
    def has_targets(self) -> bool:
        return self._targets is not None or self._tsource is not None

    def _make_plan(self, epoch: int) -> BucketPlan:
        return plan_buckets(self.lengths, self.batch_size, mode=self.mode, bin_width=self.bin_width,
                            boundaries=self.boundaries, pool_batches=self.pool_batches, shuffle=self.shuffle,
                            seed=self.seed, epoch=epoch, pad_to=self.pad_to, token_budget=self.token_budget,
                            remainder=self.remainder)

    # -- materialising
    def materialise(self, idx: Any, padded_length: int | None = None) -> Batch:
        """Pad and gather the sequences ``idx`` (positions) into one :class:`Batch`."""
        idx = np.asarray(idx)
        if idx.size and not np.issubdtype(idx.dtype, np.integer):
            raise ParameterError(f"sequence indices must be integers, got dtype {idx.dtype}.", "pass integer positions.")
        idx = idx.astype(np.int64).reshape(-1)
        n = self.n_sequences
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise ParameterError(f"sequence indices {idx[(idx < 0) | (idx >= n)][:5].tolist()} are outside 0..{n - 1}.",
                                 "pass positions of existing sequences.")
        lens = self.lengths[idx]
        longest = int(lens.max()) if len(lens) else 0
        padded = longest if padded_length is None else max(int(padded_length), longest)
        X, mask = self._seqs.read(idx, padded, self.padding, self.pad_value)
        y = w = None
        if self._tsource is not None:
            y, _ = gather_padded(self._tsource, self._toffsets, idx, self.lengths, padded, self.padding, self.pad_value)
            w = mask.astype(np.float32)
        elif self._targets is not None:
            y = self._targets[idx]
        return Batch(X=X, y=y, sample_weight=w, mask=mask, indices=idx, lengths=lens)

    def batch(self, k: int, epoch: int | None = None) -> tuple:
        """Batch ``k`` of ``epoch`` (default: the current one) as ``(X[, y[, sample_weight]])``."""
        plan = self._serve(epoch)
        k = self._check_k(k, plan.n_batches)
        out = self._finite(self.materialise(plan.batches[k], int(plan.padded_lengths[k])).as_tuple(), k)
        register_provenance(out[0], Provenance(INDEPENDENT, None, int(out[0].shape[1]) if out[0].ndim > 1 else 1,
                                               maker="bucket_batches"))
        return out

    def batch_objects(self, epoch: int | None = None) -> Iterator[Batch]:
        """One epoch of :class:`Batch` objects (with mask, indices and lengths)."""
        plan = self.plan(epoch)
        for idx, padded in zip(plan.batches, plan.padded_lengths):
            yield self.materialise(idx, int(padded))

    # -- the way back
    def unbatch(self, outputs: Any, epoch: int | None = None):
        """Outputs of the epoch's batches (a list, one array per batch, in batch order) in original order.

        Returns
        -------
        For per-step outputs ``(batch, length, ...)``: a list with one array ``(length_i, ...)`` per
        sequence (padding removed; ``None`` for sequences in no batch). For one output per sequence:
        an array ``(n_sequences, ...)`` (NaN for sequences in no batch).
        """
        plan = self._outputs_plan(epoch)
        if not isinstance(outputs, (list, tuple)) or len(outputs) != plan.n_batches:
            got = f"a list of {len(outputs)}" if isinstance(outputs, (list, tuple)) else type(outputs).__name__
            raise LengthMismatchError(
                f"outputs must be a list with one array per batch ({plan.n_batches} this epoch), got {got}.",
                "collect model.predict_on_batch(X) for each batch of the epoch, in order: "
                "[model.predict_on_batch(b[0]) for b in bucketing.batches()].")
        outs = [np.asarray(o) for o in outputs]
        for k, (o, idx) in enumerate(zip(outs, plan.batches)):
            if o.ndim == 0 or o.shape[0] != len(idx):
                raise LengthMismatchError(f"outputs of batch {k} have {0 if o.ndim == 0 else o.shape[0]} rows for "
                                          f"{len(idx)} sequences.", "pass the outputs of each batch in order.")
            if o.ndim >= 3 and o.shape[1] != int(plan.padded_lengths[k]):
                raise ShapeError(
                    f"outputs of batch {k} have {o.shape[1]} steps per row but the batch is padded to "
                    f"{int(plan.padded_lengths[k])} steps (outputs {o.shape}).",
                    "pass the outputs of model.predict_on_batch on exactly these batches, in order (per-step outputs "
                    "(batch, padded length, ...) with return_sequences=True, else (batch, ...)).")
        per_step = all(o.ndim >= 2 and o.shape[1] == int(p) for o, p in zip(outs, plan.padded_lengths)) and \
            self.return_sequences
        if per_step:
            res: list = [None] * self.n_sequences
            for o, idx, p in zip(outs, plan.batches, plan.padded_lengths):
                for row, s in enumerate(idx.tolist()):
                    n = int(self.lengths[s])
                    res[s] = o[row, :n] if self.padding == "post" else o[row, int(p) - n:]
            return res
        tail = outs[0].shape[1:] if outs else ()
        res_a = np.full((self.n_sequences,) + tail, np.nan, dtype=np.result_type(outs[0].dtype if outs else float, np.float32))
        for o, idx in zip(outs, plan.batches):
            res_a[idx] = o
        return res_a

    # -- reporting
    def explain(self) -> Explanation:
        plan = self.plan()
        sizes = [len(b) for b in plan.batches]
        pf = plan.padding_fraction
        per = (f"up to {self.batch_size}" if self.token_budget is None else
               f"a token budget of {self.token_budget} steps (at most {self.batch_size} sequences)")
        lines = [
            "stateless: every sequence starts from zero state; no state passes from one sequence to another, "
            "inside a batch or across batches.",
            f"{plural(plan.n_batches, 'batch')} per epoch of {per} sequences ({self.n_sequences} sequences, "
            f"lengths {int(self.lengths.min())}..{int(self.lengths.max())}, {self.n_features} feature(s)); "
            f"mode={self.mode!r}, shuffle={self.shuffle}.",
            f"padding: {percent(pf)} of the padded steps (sorting all lengths would give "
            f"{percent(sorted_padding(self.lengths, self.batch_size))}); padded steps have mask False / weight 0.",
            "each batch is padded to its longest member; the model's input is keras.Input(shape=(None, "
            f"{self.n_features})) so every batch may have its own length.",
        ]
        if plan.left_out:
            lines.append(f"left out this epoch: {plural(len(plan.left_out), 'sequence')} (remainder='drop'); see "
                         ".left_out.")
        return Explanation(shape=(self.n_sequences, None, self.n_features), batch_size=self.batch_size, stateful=False,
                           n_batches=plan.n_batches, last_batch_size=sizes[-1] if sizes else 0,
                           parallel_states=self.batch_size, resets_per_epoch=plan.n_batches, lines=lines,
                           extra={"padding_fraction": pf}, layout="buckets")

    def __repr__(self) -> str:
        plan = self.plan()
        return (f"Bucketing(sequences={self.n_sequences}, batch_size={self.batch_size}, mode={self.mode!r}, "
                f"batches={plan.n_batches}, padding={percent(plan.padding_fraction)}, epoch={self.epoch})")


def bucket_batches(
    sequences: Any,
    batch_size: int = 32,
    *,
    targets: Any = None,
    return_sequences: bool = False,
    mode: str = "sort",
    bin_width: float = DEFAULT_BIN_WIDTH,
    boundaries: Sequence[int] | None = None,
    n_buckets: int | None = None,
    pool_batches: int | None = None,
    shuffle: bool = True,
    seed: int | None = None,
    padding: str = "post",
    pad_value: float = 0.0,
    pad_to: str = "batch",
    token_budget: int | None = None,
    remainder: str = "keep",
    options: InputOptions | None = None,
    id_col: str | None = None,
    time_col: str | None = None,
    feature_cols: Sequence[str] | None = None,
    dtype: Any = None,
    allow_nan: bool = False,
    allow_inf: bool = False,
    gaps: str = "error",
) -> Bucketing:
    """Group variable-length sequences into batches of similar length.

    Parameters
    ----------
    sequences : list of arrays ``(length_i, features)`` (or ``(length_i,)``), a long DataFrame with
        ``id_col``, stored series, or :class:`~statebatch.Windows` (each window one sequence).
    batch_size : int
        Sequences per batch (the last batch of a group may be smaller unless ``remainder="drop"``).
    targets : optional
        ``return_sequences=False``: one target per sequence, an array ``(n_sequences, ...)``.
        ``return_sequences=True``: one target per step, a list of arrays aligned with each sequence
        (padded, with per-step sample weights). The choice is explicit, never guessed from shapes.
    mode : "sort", "pool", "buckets" or "exact"
        See :mod:`statebatch.plans.buckets`. ``"buckets"`` uses ``boundaries`` or computes optimal
        ones (:func:`bucket_boundaries`, ``n_buckets``); ``"exact"`` never pads.
    bin_width : float
        ``"sort"`` mode: the one knob trading padding for mixing, the width of the moving length bins
        as a fraction of the mean length (default 0.031; 0 is a plain sort: least padding, least
        mixing). Measure with :func:`statebatch.retention` and ``padding_fraction()``.
    pool_batches : int, optional
        ``"pool"`` mode: batches per sorted pool (default 50).
    shuffle, seed
        Reshuffle every epoch (membership and order), deterministically given ``seed`` (drawn once
        when None).
    padding : "post" or "pre"
    pad_value : float
    pad_to : "batch" or "bucket"
        Pad to the batch's longest member, or (``"buckets"`` mode) to the bucket's upper boundary.
    token_budget : int, optional
        Vary the batch size so that ``batch x longest`` stays within this many steps (non-stateful
        models only).
    remainder : "keep" or "drop"
        Keep batches smaller than ``batch_size`` or leave their sequences out of the epoch (reported
        in ``left_out``; they rotate, so no sequence is left out two epochs in a row).
    options, id_col, time_col, feature_cols, dtype, allow_nan, allow_inf, gaps
        How the input is read: see :class:`~statebatch.InputOptions` (the keywords are its fields;
        targets are given with ``targets``, not ``target_cols``).

    Returns
    -------
    Bucketing
        Iterate once per epoch; each batch is a tuple ``(X[, y[, sample_weight]])`` with X padded
        ``(batch, length, features)``.

    Examples
    --------
    >>> import numpy as np
    >>> import statebatch as sb
    >>> seqs = [np.ones(n) for n in (2, 5, 3, 4)]
    >>> b = sb.bucket_batches(seqs, batch_size=2, mode="exact", shuffle=False)
    >>> [x.shape for (x,) in b.batches()]
    [(1, 2, 1), (1, 3, 1), (1, 4, 1), (1, 5, 1)]
    """
    opts = InputOptions.resolve(options, id_col=id_col, time_col=time_col, feature_cols=feature_cols, dtype=dtype,
                                allow_nan=allow_nan, allow_inf=allow_inf, gaps=gaps)
    if opts.target_cols is not None:
        raise ParameterError("bucket_batches takes targets=... (one per sequence, or per step), not target_cols.",
                             "pass the targets as an array, or drop target_cols from options.")
    batch_size = check_int("batch_size", batch_size, 1)
    pool_batches = check_optional_int("pool_batches", pool_batches, 1)
    mode = check_choice("mode", mode, MODES)
    bin_width = check_fraction("bin_width", bin_width, low=0.0, high=1e6, inclusive=True)
    padding = check_choice("padding", padding, ("post", "pre"))
    pad_to = check_choice("pad_to", pad_to, ("batch", "bucket"))
    remainder = check_choice("remainder", remainder, REMAINDERS)
    return_sequences = check_bool("return_sequences", return_sequences)
    shuffle = check_bool("shuffle", shuffle)
    token_budget = check_optional_int("token_budget", token_budget, 1)
    seed = resolve_seed(seed)
    _check_pad_value(pad_value)
    if isinstance(sequences, Windows):  # each window one sequence: gathered from the strided view
        seqs: _WindowSequences | _SeriesSequences = _WindowSequences(sequences)
        ids: Sequence[Any] = range(sequences.n_windows)  # window positions: a range, not 8 bytes + a Python int each
        targets, return_sequences = _window_targets(sequences, opts, targets, return_sequences)
    else:
        seqs = _SeriesSequences(_as_sequences(sequences, opts))
        ids = list(seqs.ss.ids)
    lengths = seqs.lengths
    tarr, tsource, toffsets = _targets(targets, return_sequences, lengths, ids, opts)
    bk = Bucketing(seqs, ids=ids, batch_size=batch_size, mode=mode, bin_width=bin_width,
                   boundaries=_boundaries(mode, lengths, boundaries, n_buckets), pool_batches=pool_batches,
                   shuffle=shuffle, seed=seed, padding=padding, pad_value=pad_value, pad_to=pad_to,
                   token_budget=token_budget, remainder=remainder, targets=tarr, target_source=tsource,
                   target_offsets=toffsets, return_sequences=return_sequences)
    if isinstance(seqs, _SeriesSequences):  # Windows were checked when they were made
        # stored sequences are checked batch by batch as they are read
        bk._allow(opts.allow_nan, opts.allow_inf, checked=checked_finite(seqs.ss.source),
                  lazy=not in_memory(seqs.ss.source))
    return bk


def _check_pad_value(pad_value: Any) -> None:
    """A finite number: padded steps are masked, but NaN or inf inputs still reach the output."""
    if isinstance(pad_value, bool) or not isinstance(pad_value, (int, float, np.integer, np.floating)):
        raise ParameterError(f"pad_value must be a number, got {pad_value!r}.", "pass e.g. pad_value=0.0.")
    if not np.isfinite(pad_value):
        kind = "a NaN" if np.isnan(pad_value) else "an inf"
        raise ParameterError(f"pad_value={pad_value!r} is not finite: padded steps are masked, but {kind} input still "
                             "turns the layer's output (and the loss) into NaN (inf x 0 and inf - inf are NaN).",
                             "pass a finite pad_value, e.g. 0.0.")


def _window_targets(w: Windows, opts: InputOptions, targets: Any, return_sequences: bool) -> tuple[Any, bool]:
    """Windows as sequences: no frame options; their own targets unless ``targets`` are given (per step when
    they are per step)."""
    _no_frame_args(opts.id_col, opts.time_col, opts.feature_cols)
    if opts.dtype is not None:
        raise ParameterError("dtype cannot convert windows.", "pass dtype to make_windows instead.")
    if targets is None and w.has_targets:
        y = w.y
        assert y is not None
        targets = y
        if y.ndim >= 2 and y.shape[1] == w.timesteps and w._ylength == w.timesteps:
            return list(y), True
    return targets, return_sequences


def _as_sequences(sequences: Any, opts: InputOptions) -> SeriesSet:
    """Many sequences (a list, a 3-D array, a long frame, stored series) as a checked :class:`SeriesSet`."""
    if isinstance(sequences, np.ndarray) and sequences.dtype != object and sequences.ndim == 3:
        sequences = list(sequences)  # an array of equal-length sequences
    elif isinstance(sequences, np.ndarray) and sequences.ndim == 2 and opts.id_col is None:
        raise ShapeError(
            f"sequences is one 2-D array {sequences.shape}: is it {sequences.shape[0]} sequences of "
            f"{sequences.shape[1]} steps (one feature), or one sequence of {sequences.shape[0]} steps x "
            f"{sequences.shape[1]} features?",
            "pass a list of arrays (one per sequence), or a 3-D array (sequences, steps, features): "
            "list(arr[..., None]) for one feature per step.")
    if isinstance(sequences, tuple):
        sequences = list(sequences)
    if isinstance(sequences, list) and sequences:  # plain lists become arrays; row sources stay lazy
        sequences = [s if isinstance(s, np.ndarray) or is_own_kind(s) else np.asarray(s) for s in sequences]
    ss = as_series(sequences, id_col=opts.id_col, time_col=opts.time_col, feature_cols=opts.feature_cols,
                   dtype=opts.dtype, what="sequences", gaps=opts.gaps)
    if ss.n_series == 1 and not (isinstance(sequences, list) or opts.id_col is not None or holds_many(sequences)):
        raise ShapeError(f"sequences is a single series {ss.source.shape}; bucketing needs many sequences.",
                         "pass a list of arrays (one per sequence) or a long DataFrame with id_col.")
    if (ss.lengths == 0).any():
        raise ParameterError(f"{int((ss.lengths == 0).sum())} sequences are empty.", "drop empty sequences first.")
    ss = apply_gaps(ss, opts.gaps, "sequences")
    check_finite_series(ss, what="sequences", allow_nan=opts.allow_nan, allow_inf=opts.allow_inf)
    return ss


def _targets(targets: Any, return_sequences: bool, lengths: np.ndarray, ids: Sequence[Any],
             opts: InputOptions) -> tuple[np.ndarray | None, RowSource | None, np.ndarray | None]:
    """``(one target per sequence, per-step target source, its offsets)``, checked (lengths, NaN/inf)."""
    if targets is None:
        return None, None, None
    if return_sequences:
        tsource, toffsets = _step_targets(targets, lengths, ids)
        check_finite_series(SeriesSet(tsource, toffsets, cast(list, ids)), what="targets", allow_nan=opts.allow_nan,
                            allow_inf=opts.allow_inf)
        return None, tsource, toffsets
    ragged = LengthMismatchError("targets are ragged: one target per sequence must form one array.",
                                 "pass return_sequences=True for per-step targets (a list of arrays aligned "
                                 "with each sequence).")
    try:
        tarr = np.asarray(targets)
    except (TypeError, ValueError):
        raise ragged from None
    if tarr.dtype == object:
        raise ragged
    if tarr.ndim == 0 or len(tarr) != len(lengths):
        raise LengthMismatchError(
            f"{len(lengths)} sequences but {0 if tarr.ndim == 0 else len(tarr)} targets.",
            "give one target per sequence, or return_sequences=True with a list of per-step target arrays.")
    if tarr.dtype.kind in "fc":
        bad = (np.isnan(tarr) if not opts.allow_nan else False) | (np.isinf(tarr) if not opts.allow_inf else False)
        if np.any(bad):
            kind = "NaN/inf" if not (opts.allow_nan or opts.allow_inf) else "inf" if opts.allow_nan else "NaN"
            raise DataValueError(f"targets hold {int(np.sum(bad))} {kind} value(s) (first at sequence "
                                 f"{int(np.flatnonzero(np.reshape(bad, (len(tarr), -1)).any(axis=1))[0])}).",
                                 "fill or drop them, or pass "
                                 f"{'allow_inf=True' if kind == 'inf' else 'allow_nan=True'}.")
    return tarr, None, None


def _step_targets(targets: Any, lengths: np.ndarray, ids: Sequence[Any]) -> tuple[RowSource, np.ndarray]:
    """Per-step targets: one array per sequence, each as long as its sequence."""
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    fake = SeriesSet(ArraySource(np.zeros((int(lengths.sum()), 1))), offsets, list(ids))
    if not isinstance(targets, (list, tuple)) or len(targets) != len(lengths):
        raise LengthMismatchError(
            f"return_sequences=True needs one target array per sequence ({len(lengths)}), got "
            f"{type(targets).__name__}{f' of length {len(targets)}' if hasattr(targets, '__len__') else ''}.",
            "pass a list of per-step target arrays, one per sequence, or return_sequences=False.")
    tl = aligned_targets(list(targets), fake) if len(lengths) > 1 else aligned_targets(targets[0], fake)
    bad = [i for i, (t, n) in enumerate(zip(tl, lengths)) if len(t) != n]
    if bad:
        raise LengthMismatchError(
            f"per-step targets must be as long as their sequence: sequence {bad[0]} has {lengths[bad[0]]} "
            f"steps but {len(tl[bad[0]])} targets ({len(bad)} such sequence(s)).",
            "pass one target per step of each sequence.")
    return source_of([t[:, None] if t.ndim == 1 else t for t in tl]), offsets


def _boundaries(mode: str, lengths: np.ndarray, boundaries: Any, n_buckets: int | None) -> np.ndarray | None:
    """The bucket boundaries of ``mode="buckets"`` (given, or computed from the lengths); refused otherwise."""
    if mode == "buckets":
        if boundaries is None:
            return bucket_boundaries(lengths, n_buckets)
        return check_boundaries(boundaries)
    if boundaries is not None or n_buckets is not None:
        raise ParameterError(f"boundaries/n_buckets apply to mode='buckets', not mode={mode!r}.",
                             "pass mode='buckets', or drop boundaries/n_buckets.")
    return None


def _no_frame_args(*args: Any) -> None:
    if any(a is not None for a in args):
        raise ParameterError("id_col/time_col/feature_cols do not apply to windows.", "drop them.")
