"""Stateful arrangement: series into *lanes* so that row i of batch k+1 continues row i of batch k.

A stateful Keras RNN keeps ``batch_size`` parallel states; the state of row ``i`` at the end of
batch ``k`` is the initial state of row ``i`` in batch ``k+1``. :func:`arrange_stateful` is "plan,
then bind a row source": :func:`~statebatch.plans.lanes.plan_lanes` decides from the series lengths
which series and steps sit in each lane at each batch and where lanes reset (per epoch, when
shuffled or jittered); :class:`Arranged` materialises X, y and sample weights batch by batch.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
import warnings
from typing import Any, Sequence

import numpy as np

from .._args import check_bool, check_choice, check_fraction, check_int, check_size, percent, plural, resolve_seed
from ..errors import LengthMismatchError, ParameterError, ShapeError, StatebatchError, StatebatchWarning
from .provenance import LANES, Provenance, register_provenance
from ..materialise.gather import (LaneReader, fill_lanes, gather_chunks, gather_rows, lanes_to_batches, source_views,
                          sums_finite)
from ..plans.base import LeftOut, named
from ..plans.lanes import REMAINDERS, LanePlan, plan_lanes
from .batched import Batched, Explanation
from ..sources.series import (GAPS, INPUT_CHECKS_DOC, INPUT_CHECKS_STUB, SeriesSet, aligned_targets, apply_gaps, as_series,
                     check_finite_series, checked_finite, in_memory, source_of)
from ..sources.base import ConcatSource, RowSource, readonly

__all__ = ["Arranged", "arrange_stateful"]

#: Many in-memory series whose epoch takes at most this many bytes are packed into lanes when they are
#: arranged: the packed epoch is checked for NaN/inf in one pass (instead of one check per series) and
#: then serves every batch, ``X`` and the Keras feeds. Larger epochs are checked series by series and
#: packed when first asked for.
PACK_AT_CONSTRUCTION_BYTES = 256 << 20


@dataclass(frozen=True, eq=False)
class _HeadSeries(SeriesSet):
    """The first ``keep[i]`` steps of every series (same source, nothing copied): a split's training part."""

    keep: np.ndarray | None = None

    @property
    def lengths(self) -> np.ndarray:
        return self.keep

    def series(self, i: int) -> np.ndarray:
        start = int(self.offsets[i])
        return self.source.read(start, start + int(self.keep[i]))


class Arranged(Batched):
    """Series arranged in lanes for a stateful model; see :func:`arrange_stateful`.

    Follows the result protocol (:mod:`statebatch.result`). Batch ``k`` is ``(X, y, sample_weight)``
    (``(X,)`` without targets) with ``batch_size`` rows; row ``i`` continues row ``i`` of batch
    ``k - 1`` unless ``resets[k, i]``.

    Attributes
    ----------
    X : ndarray ``(n_batches * batch_size, timesteps, features)``
        The current epoch in batch order (for ``model.fit(**arranged.fit_kwargs())``).
    y : ndarray or None
        ``(n, timesteps, target_features)`` with ``return_sequences``, else ``(n, target_features)``.
    sample_weight : ndarray
        ``(n, timesteps)`` with ``return_sequences`` (0 on padded steps), else ``(n,)`` (0 for a chunk
        that holds padding).
    resets : ndarray of bool ``(n_batches, batch_size)``
        Lanes that start a new series at each batch of the current epoch.
    """

    def __init__(self, ss: SeriesSet, *, timesteps: int, batch_size: int, target_mode: str | None,
                 ysource: RowSource | None, yshift: int, horizon: int, return_sequences: bool, remainder: str,
                 pad_value: float, shuffle: bool, seed: int, jitter: int, continues: bool = False,
                 fixed_plan: LanePlan | None = None, first_batch: int = 0,
                 weight_from: np.ndarray | None = None):
        self._ss = ss
        # Holdout in time (validation part of split): per series, the first input step whose target is held out;
        # the steps before it run with sample weight 0 so that the state reaches the held-out part.
        self.weight_from = weight_from
        self.timesteps = timesteps
        self.batch_size = batch_size
        self.target_mode = target_mode
        self._ysource = ysource
        self._yshift = yshift
        self.horizon = horizon
        self.return_sequences = return_sequences
        self.remainder = remainder
        self.pad_value = pad_value
        self.shuffle = shuffle
        self.seed = seed
        self.jitter = jitter
        self.continues = continues  # True for a validation tail that continues training lanes
        self.first_batch = first_batch
        self._fixed = fixed_plan
        self.series_ids = list(ss.ids)
        self.feature_names = ss.feature_names
        self.series_lengths = ss.lengths
        self.epoch = 0
        self._readers: dict[str, LaneReader] = {}
        self._cache: dict[tuple, Any] = {}
        # One epoch's inputs ("x") and per-step targets ("y") packed lane by lane, (lanes, n_batches *
        # timesteps, *row), keyed by (cache key, "x"/"y"): batch k is the view [:, k*T:(k+1)*T].
        self._lanes: dict[tuple, np.ndarray] = {}
        self.plan(0)  # plan now: errors surface here, not at the first batch

    # ---------------------------------------------------------------- plan
    def _make_plan(self, epoch: int) -> LanePlan:
        if self._fixed is not None:
            return self._fixed
        return plan_lanes(self._ss.lengths, self.timesteps, self.batch_size,
                          targets="next" if self.target_mode == "next" else None, horizon=self.horizon,
                          remainder=self.remainder, shuffle=self.shuffle, seed=self.seed, epoch=epoch,
                          jitter=self.jitter)

    @property
    def varies(self) -> bool:
        """Whether plans differ from epoch to epoch (shuffled packing or jittered chunk lengths)."""
        return self._fixed is None and (self.jitter > 0 or (self.shuffle and self._ss.n_series > 1))

    # ---------------------------------------------------------------- sizes
    @property
    def n_features(self) -> int:
        return self._ss.n_features

    @property
    def n_series(self) -> int:
        return self._ss.n_series

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.n_batches * self.batch_size, self.timesteps, self.n_features)

    @property
    def batch_shape(self) -> tuple:
        """For ``keras.Input(batch_shape=arranged.batch_shape)`` (time axis ``None`` when it varies)."""
        return (self.batch_size, None if self.jitter else self.timesteps, self.n_features)

    @property
    def has_targets(self) -> bool:
        return self._ysource is not None

    @property
    def resets(self) -> np.ndarray:
        return self.plan().resets

    @property
    def lower_bound_batches(self) -> int:
        return self.plan().lower_bound_batches

    @property
    def left_out(self) -> list[LeftOut]:
        """Steps in no batch this epoch, and (many-to-one) steps whose targets carry weight 0."""
        plan = self.plan()
        out = named(plan.left_out, self.series_ids)
        if self.has_targets and not self.return_sequences:
            lens = plan.steps_per_batch[:, None]
            part = (plan.valid > 0) & (plan.valid < lens)
            for k, i in zip(*np.nonzero(part)):
                s = int(plan.series[k, i])
                out.append(LeftOut(self.series_ids[s], int(plan.step[k, i]), int(plan.valid[k, i]),
                                   "many-to-one: a series' last partial chunk has no full-length output, so its "
                                   "target carries weight 0 (use return_sequences=True or remainder='drop')"))
        return out

    # ---------------------------------------------------------------- materialise
    def _rows(self, plan: LanePlan, k: int | slice) -> tuple[np.ndarray, np.ndarray]:
        """First source row and real steps of each chunk of batch ``k`` (of batches ``k``, a slice, in order)."""
        s = plan.series[k].reshape(-1)
        start = np.where(s >= 0, self._ss.offsets[np.maximum(s, 0)] + plan.step[k].reshape(-1), 0)
        return start, plan.valid[k].reshape(-1)

    def _reader(self, key: Any, source: RowSource) -> LaneReader | None:
        if source.array is not None or (isinstance(source, ConcatSource) and source.in_memory):
            return None
        if key not in self._readers:
            self._readers[key] = LaneReader(source)
        return self._readers[key]

    def _batch_arrays(self, plan: LanePlan, k: int, lanes: slice | None = None) -> tuple[np.ndarray, ...]:
        length = plan.batch_length(k)
        start, valid = self._rows(plan, k)
        block = None if lanes is None else (lanes.start or 0, lanes.stop)  # a block's own read-ahead buffers
        limits = None
        if lanes is not None:
            limits = self._run_ends(plan)[k][lanes]
            start, valid = start[lanes], valid[lanes]
        packed = self._lanes.get((self._cache_key(plan), "x")) if lanes is None else None
        if packed is not None:  # packed: batch k is a slice of every lane (one copy into a contiguous batch)
            X = np.ascontiguousarray(packed[:, k * length:(k + 1) * length])
        else:
            X = gather_chunks(self._ss.source, start, valid, length, self.pad_value,
                              reader=self._reader("x" if block is None else ("x", block), self._ss.source),
                              limits=limits)
        if self._ysource is None:
            return (X,)
        return (X,) + self._targets_at(start, valid, length, block, limits)

    def _run_ends(self, plan: LanePlan) -> np.ndarray:
        """``(n_batches, batch_size)``: for each chunk, the source row after the last one its lane reads
        without a break (the chunks that follow it in its lane continue the same rows). A block of lanes
        reads ahead only up to there, so it never reads rows that other lanes hold."""
        cached = getattr(self, "_run_end_cache", None)
        if cached is not None and cached[0] == plan.epoch:
            return cached[1]
        start, valid = self._rows(plan, slice(None))
        first = start.reshape(plan.n_batches, -1)
        steps = valid.reshape(plan.n_batches, -1)
        end = first + steps
        runs = end.copy()
        for k in range(plan.n_batches - 2, -1, -1):  # from the last batch back: a lane's run goes on while
            go_on = (first[k + 1] == end[k]) & (steps[k + 1] > 0)  # its next chunk starts where this one ends
            runs[k] = np.where(go_on, runs[k + 1], end[k])
        self._run_end_cache = (plan.epoch, runs)
        return runs

    def _targets_at(self, start: np.ndarray, valid: np.ndarray, length: int,
                    block: tuple | None = None, limits: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Targets and sample weights of chunks starting at source rows ``start`` with ``valid`` steps:
        per step (``return_sequences``, padded steps weight 0) or of each chunk's last step (a
        partial chunk weight 0)."""
        if self.return_sequences:
            y = gather_chunks(self._ysource, start + self._yshift, valid, length, self.pad_value,
                              reader=self._reader("y" if block is None else ("y", block), self._ysource),
                              limits=None if limits is None else limits + self._yshift)
            w = (np.arange(length)[None, :] < valid[:, None]).astype(np.float32)
        else:
            last = np.where(valid > 0, start + valid - 1 + self._yshift, 0)
            y = gather_rows(self._ysource, last)
            y[valid == 0] = self.pad_value
            w = (valid == length).astype(np.float32)
        return y, w

    def batch(self, k: int, epoch: int | None = None, *, lanes: slice | None = None) -> tuple[np.ndarray, ...]:
        """Batch ``k`` of ``epoch`` (default: the current one): ``(X, y, sample_weight)`` or ``(X,)``.

        ``lanes`` (a slice of lane indices, e.g. one replica's block from
        :func:`statebatch.feed.lane_block`): only those rows of the batch. Out-of-core data is then read
        only for those lanes, each block through its own read-ahead buffer, so a process that trains
        one block of lanes never reads the others' rows.
        """
        plan = self._serve(epoch)
        k = self._check_k(k, plan.n_batches)
        key = self._cache_key(plan)
        b = self.batch_size
        if lanes is not None:
            if not (isinstance(lanes, slice) and lanes.step in (None, 1)
                    and 0 <= (lanes.start or 0) < (b if lanes.stop is None else lanes.stop) <= b):
                raise ParameterError(f"lanes must be a slice of consecutive lane indices within 0..{b - 1}, got "
                                     f"{lanes!r}.", "pass e.g. slice(0, 4), or statebatch.feed.lane_block(...).")
            if key in self._cache or self._lanes.get((key, "x")) is not None \
                    or self._reader("x", self._ss.source) is None:  # in memory: a slice of the whole batch
                return tuple(a[lanes] for a in self.batch(k, plan.epoch))
            return self._finite(self._held_out(plan, self._batch_arrays(plan, k, lanes), k, lanes), k)
        if key in self._cache:
            arrays = self._cache[key]
            return tuple(np.ascontiguousarray(a[k * b:(k + 1) * b]) for a in arrays)
        return self._finite(self._held_out(plan, self._batch_arrays(plan, k), k), k)

    def _cache_epoch(self, max_bytes: int) -> bool:
        """Materialise the current epoch (then batch ``k`` is a view of it) when its rows are in memory, its
        batches have one length and its arrays take at most ``max_bytes``; returns whether it is cached.
        Keras datasets call this: serving views costs nothing per batch, gathering chunks does."""
        plan = self.plan()
        if self._cache_key(plan) in self._cache:
            return True
        if plan.batch_steps is not None or self._reader("x", self._ss.source) is not None:
            return False
        x_bytes = plan.n_batches * plan.batch_size * plan.timesteps * self.n_features * self._ss.source.dtype.itemsize
        if x_bytes * (2 if self.has_targets else 1) > max_bytes:
            return False
        self._epoch_arrays()
        return True

    def _block(self, k0: int, k1: int, epoch: int | None = None) -> tuple[np.ndarray, ...] | None:
        """Batches ``k0 .. k1-1`` stacked, ``(k1 - k0, batch_size, ...)`` per array, in one gather (views of
        the epoch arrays when they are materialised); ``None`` where batches are read lane by lane (out of
        core) or differ in length (jitter). Feeds :func:`statebatch.keras.to_tf_dataset` in blocks."""
        plan = self._serve(epoch)
        if plan.batch_steps is not None or self._reader("x", self._ss.source) is not None:
            return None
        if not 0 <= k0 < k1 <= plan.n_batches:
            raise ParameterError(f"batches {k0}..{k1 - 1} are outside 0..{plan.n_batches - 1}.",
                                 "ask for a range inside the epoch.")
        b = self.batch_size
        key = self._cache_key(plan)
        if key in self._cache:
            arrays = tuple(a[k0 * b:k1 * b] for a in self._cache[key])
        else:
            rows = slice(k0, k1)
            start, valid = self._rows(plan, rows)
            lanes = self._lanes.get((key, "x"))
            if lanes is not None:  # packed: the block is a slice of every lane, in batch order (one copy)
                t = plan.timesteps
                X = lanes_to_batches(lanes[:, k0 * t:k1 * t], t)
            else:
                X = gather_chunks(self._ss.source, start, valid, plan.timesteps, self.pad_value)
            arrays = (X,) if self._ysource is None else (X,) + self._targets_at(start, valid, plan.timesteps)
            arrays = self._finite(self._held_out(plan, arrays, rows), k0)
        return tuple(a.reshape((k1 - k0, b) + a.shape[1:]) for a in arrays)

    def _held_out(self, plan: LanePlan, arrays: tuple, k: int | slice | None, lanes: slice | None = None) -> tuple:
        """Zero the sample weights of steps before each series' held-out part (``weight_from``); batch ``k``
        (a range of batches for a slice; only ``lanes`` of batch ``k`` when given) or, with ``k=None``, the
        whole epoch in batch order."""
        if self.weight_from is None or len(arrays) < 3:
            return arrays
        k = slice(None) if k is None else k
        s, step, valid = plan.series[k].reshape(-1), plan.step[k].reshape(-1), plan.valid[k].reshape(-1)
        if lanes is not None:
            s, step, valid = s[lanes], step[lanes], valid[lanes]
        first = np.where(s >= 0, self.weight_from[np.maximum(s, 0)], 0)
        w = arrays[2]
        if w.ndim == 2:  # per step
            keep = (step[:, None] + np.arange(w.shape[1])[None, :]) >= first[:, None]
        else:  # one target per chunk, at its last step
            keep = (step + valid - 1) >= first
        return arrays[:2] + (w * keep,) + arrays[3:]

    def _cache_key(self, plan: LanePlan) -> tuple:
        # Only shuffled or jittered plans differ between epochs; the others are materialised once.
        varies = self._fixed is None and (self.shuffle or self.jitter)
        return ("epoch", plan.epoch if varies else -1)

    def _epoch_arrays(self) -> tuple[np.ndarray, ...]:
        plan = self.plan()
        key = self._cache_key(plan)
        if key not in self._cache:
            if plan.batch_steps is not None:
                raise ShapeError(
                    f"jitter={self.jitter}: batches have different lengths this epoch, so they do not stack into "
                    "one X array.", "feed the batches one by one: statebatch.keras.StatefulDataset(arranged) or "
                    "arranged.batches().")
            # X in its dtype, twice: the packed lanes and their copy in batch order are alive together
            check_size("the epoch's X", (plan.n_batches, plan.batch_size, plan.timesteps, self.n_features),
                       self._ss.source.dtype.itemsize, copies=2,
                       fix="check timesteps and batch_size (the epoch has "
                           f"{percent(plan.padding_fraction)} padding), or feed the batches one by one "
                           "(arranged.batches(), statebatch.keras.StatefulDataset(arranged)) instead of X.")
            self._cache.clear()
            arrays = self._held_out(plan, self._materialise_epoch(plan), None)
            self._cache[key] = tuple(readonly(a) for a in self._finite(arrays, -1))
            prov = self._provenance(plan)
            for a in self._cache[key]:  # recognised when they come back to validate / explain / detect_layout
                register_provenance(a, prov)
            self._lanes.clear()  # the epoch arrays serve every batch now; keep one copy of the epoch, not two
        return self._cache[key]

    def _provenance(self, plan: LanePlan) -> Provenance:
        resets = int(np.count_nonzero(plan.resets[1:])) if plan.n_batches > 1 else 0
        return Provenance(LANES, plan.batch_size, plan.timesteps, resets=resets, maker="arrange_stateful",
                          n_series=self._ss.n_series)

    def _materialise_epoch(self, plan: LanePlan) -> tuple[np.ndarray, ...]:
        src, t, b = self._ss.source, plan.timesteps, plan.batch_size
        if self._packs(src):
            X = lanes_to_batches(self._packed(plan, "x"), t)
            if self._ysource is None:
                return (X,)
            if self.return_sequences and self._packs(self._ysource):
                y = lanes_to_batches(self._packed(plan, "y"), t)
                w = (np.arange(t)[None, :] < plan.valid.reshape(-1)[:, None]).astype(np.float32)
                return X, y, w
            return (X,) + self._targets_epoch(plan)
        if src.array is None:  # out of core: batch by batch through the lane readers
            parts = [self._batch_arrays(plan, k) for k in range(plan.n_batches)]
            return tuple(np.concatenate([p[j] for p in parts]) for j in range(len(parts[0])))
        s = plan.series.reshape(-1)
        start = np.where(s >= 0, self._ss.offsets[np.maximum(s, 0)] + plan.step.reshape(-1), 0)
        valid = plan.valid.reshape(-1)
        X = gather_chunks(src, start, valid, t, self.pad_value)
        if self._ysource is None:
            return (X,)
        return (X,) + self._targets_epoch(plan)

    @staticmethod
    def _packs(src: RowSource) -> bool:
        """Many in-memory arrays (not one array): epochs are packed lane by lane from the arrays themselves."""
        return isinstance(src, ConcatSource) and src.in_memory and src.array is None

    def _packed(self, plan: LanePlan, which: str) -> np.ndarray:
        """The epoch of ``plan`` lane by lane, ``(batch_size, n_batches * timesteps, *row)`` (read-only): inputs
        (``"x"``) or per-step targets (``"y"``); packed once per epoch with :func:`fill_lanes`."""
        lanes = self._lanes.get((self._cache_key(plan), which))
        return self._pack(plan, which)[0] if lanes is None else lanes

    def _pack(self, plan: LanePlan, which: str, check_finite: bool = False) -> tuple[np.ndarray, bool]:
        """Pack (see :meth:`_packed`) and keep the lanes; ``finite``: see :func:`fill_lanes`."""
        key = (self._cache_key(plan), which)
        src, shift = (self._ss.source, 0) if which == "x" else (self._ysource, self._yshift)
        lane, first_row, starts, counts = self._lane_layout(plan)
        lanes, finite = fill_lanes(src, plan.batch_size, plan.n_batches * plan.timesteps, lane, first_row,
                                   starts + shift, counts, self.pad_value, check_finite=check_finite)
        self._lanes = {k: v for k, v in self._lanes.items() if k[0] == key[0]}  # one epoch's lanes at a time
        self._lanes[key] = readonly(lanes)
        return self._lanes[key], finite

    def _lane_layout(self, plan: LanePlan) -> tuple[np.ndarray, ...]:
        """Where each series sits in its lane (fixed-length batches): ``(lane, first row in the lane, first
        source row, rows)``. A series fills its chunks from the batch where its lane resets, back to back."""
        ii, kk = np.nonzero((plan.resets & (plan.series >= 0)).T)  # lane by lane: already in the lanes' order
        series = plan.series[kk, ii]
        starts = self._ss.offsets[series] + plan.step[kk, ii]
        return ii, kk * plan.timesteps, starts, self._used(plan)[series]

    def _used(self, plan: LanePlan) -> np.ndarray:
        """Steps of each series that are inputs in ``plan`` (lengths minus held-back target steps, minus drops);
        kept for the last plan asked about (packing and checking ask twice)."""
        last = self.__dict__.get("_used_last")
        if last is not None and last[0] is plan:
            return last[1]
        s, v = plan.series.reshape(-1), plan.valid.reshape(-1)
        used = np.bincount(np.maximum(s, 0), weights=np.where(s >= 0, v, 0), minlength=self._ss.n_series).astype(np.int64)
        self._used_last = (plan, used)
        return used

    def _pack_checked(self) -> bool:
        """Pack this epoch's inputs into lanes now (many in-memory series, fixed-length batches, at most
        :data:`PACK_AT_CONSTRUCTION_BYTES`) and check the data for NaN/inf in one pass over the packed lanes
        plus the steps that are no input. True: every step of every series is finite. False: not packed, or
        the sum is not finite (a NaN/inf, or an overflow): the caller runs the exact per-series check."""
        src, plan = self._ss.source, self.plan()
        if not self._packs(src) or plan.batch_steps is not None:
            return False
        if plan.n_batches * plan.batch_size * plan.timesteps * self.n_features * src.dtype.itemsize \
                > PACK_AT_CONSTRUCTION_BYTES:
            return False
        if plan.step[plan.resets & (plan.series >= 0)].any():
            return False  # a series' inputs do not start at its first step: let the full check see every step
        offsets, lengths = self._ss.offsets, self._ss.lengths
        if not self._pack(plan, "x", check_finite=True)[1]:  # checked block by block as it is written
            return False
        used = self._used(plan)
        rest = np.flatnonzero(used < lengths)  # held-back target steps, dropped remainders, too-short series
        return not len(rest) or sums_finite(np.concatenate(source_views(src, offsets[rest] + used[rest],
                                                                         lengths[rest] - used[rest])))

    def _targets_epoch(self, plan: LanePlan) -> tuple[np.ndarray, np.ndarray]:
        t = plan.timesteps
        s = plan.series.reshape(-1)
        start = np.where(s >= 0, self._ss.offsets[np.maximum(s, 0)] + plan.step.reshape(-1), 0)
        return self._targets_at(start, plan.valid.reshape(-1), t)

    @property
    def X(self) -> np.ndarray:
        return self._epoch_arrays()[0]

    @property
    def y(self) -> np.ndarray | None:
        return self._epoch_arrays()[1] if self.has_targets else None

    @property
    def sample_weight(self) -> np.ndarray:
        """Weights of the current epoch (1 real step, 0 padding), also without targets."""
        if self.has_targets:
            return self._epoch_arrays()[2]
        plan = self.plan()
        valid = plan.valid.reshape(-1)
        if self.return_sequences:
            return (np.arange(plan.timesteps)[None, :] < valid[:, None]).astype(np.float32)
        return (valid == plan.timesteps).astype(np.float32)

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The current epoch as ``(X, y, sample_weight)`` (``(X,)`` without targets), batch after batch."""
        return self._epoch_arrays()

    @property
    def batch_view(self) -> np.ndarray:
        """X as ``(n_batches, batch_size, timesteps, features)``; a zero-copy read-only view of the
        series for one in-memory series with ``remainder="drop"`` (lane ``i`` is a contiguous piece)."""
        plan = self.plan()
        arr = self._ss.source.array
        if (self._ss.n_series == 1 and arr is not None and self.remainder != "pad" and plan.batch_steps is None
                and self._fixed is None):
            n = plan.n_batches * plan.batch_size * plan.timesteps
            q = plan.n_batches
            view = arr[:n].reshape((plan.batch_size, q, plan.timesteps) + arr.shape[1:]).swapaxes(0, 1)
            return register_provenance(readonly(view), self._provenance(plan))
        return self.X.reshape((plan.n_batches, plan.batch_size) + self.X.shape[1:])

    def fit_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``model.fit`` / ``evaluate`` on the current epoch's arrays."""
        kw: dict[str, Any] = {"x": self.X, "batch_size": self.batch_size, "shuffle": False}
        if self.has_targets:
            kw.update(y=self.y, sample_weight=self.sample_weight)
        return kw

    # ---------------------------------------------------------------- splitting / the way back
    def split(self, validation: float = 0.2) -> tuple["Arranged", "Arranged"]:
        """Hold out the last part of every series in time: ``(train, val)``.

        ``train`` arranges the first part of every series with this arrangement's parameters (shuffle and
        jitter included). ``val`` arranges every whole series in the same way, but only targets in the
        held-out last part carry sample weight: each series' training part runs first with weight 0, so its
        state reaches the held-out steps as it stands after that series' training steps (with the current
        weights), whichever lanes the series share. Of a series of ``n`` steps, the last
        ``ceil(n * validation)`` targets are held out; no held-out value is ever an input or target of
        ``train``. ``val`` starts from zero state (``continues=False``) and resets where series start; one
        series runs whole in one lane (the other lanes idle), not cut into ``batch_size`` lanes.
        For a val_loss that is a mean over the held-out targets, use ``statebatch.keras.fit_stateful`` (it
        makes the loss a mean over weighted steps) or compile with
        ``keras.losses.MeanSquaredError(reduction="mean_with_sample_weight")``: Keras' default reduction
        also counts weight-0 steps.
        """
        validation = check_fraction("validation", validation)
        if self.weight_from is not None:
            raise ParameterError("this arrangement is already the validation part of a split.",
                                 "split the original arrangement (or arrange the data again) instead.")
        lengths = self._ss.lengths
        keep = lengths - np.ceil(lengths * validation).astype(np.int64)
        need = (self.horizon if self.target_mode == "next" else 0) + 1
        short = np.flatnonzero(keep < need)
        if short.size:
            names = [self.series_ids[i] for i in short[:5]]
            raise ParameterError(
                f"{plural(short.size, 'series', 'series')} ({names}) would keep fewer than {need} step(s) for training "
                f"after holding out {validation:.0%} of their steps.",
                "use a smaller validation fraction, or leave the shortest series out.")
        head = _HeadSeries(**{f.name: getattr(self._ss, f.name) for f in fields(SeriesSet)}, keep=keep)
        common = dict(timesteps=self.timesteps, batch_size=self.batch_size, target_mode=self.target_mode,
                      ysource=self._ysource, yshift=self._yshift, horizon=self.horizon,
                      return_sequences=self.return_sequences, remainder=self.remainder, pad_value=self.pad_value,
                      seed=self.seed)
        train = Arranged(head, shuffle=self.shuffle, jitter=self.jitter, continues=self.continues, **common)
        whole = None
        if self._ss.n_series == 1:
            # One series is cut into batch_size lanes that each start from zero state; validation must run it whole
            # in one lane so that the held-out part follows every step before it. With a second, empty series the
            # planner packs whole series into lanes instead of cutting one (the empty one takes no lane).
            whole = plan_lanes(np.append(lengths, 0), self.timesteps, self.batch_size,
                               targets="next" if self.target_mode == "next" else None, horizon=self.horizon,
                               remainder=self.remainder)
        val = Arranged(self._ss, shuffle=False, jitter=0, weight_from=keep - self._yshift, fixed_plan=whole, **common)
        train._check_batches = val._check_batches = self._check_batches
        train._x_checked = val._x_checked = self._x_checked
        return train, val

    def provenance(self, batch: int, lane: int, epoch: int | None = None) -> dict[str, Any]:
        """Which series and steps sit in ``lane`` at ``batch``."""
        plan = self.plan(epoch)
        batch = self._check_k(batch, plan.n_batches)
        lane = check_int("lane", lane)
        if not 0 <= lane < plan.batch_size:
            raise ParameterError(f"lane {lane} is outside 0..{plan.batch_size - 1}.", "pass a lane index below batch_size.")
        s = int(plan.series[batch, lane])
        length = plan.batch_length(batch)
        if s < 0:
            return {"series": None, "steps": None, "padding": length, "reset": False}
        st, v = int(plan.step[batch, lane]), int(plan.valid[batch, lane])
        return {"series": self.series_ids[s], "steps": (st, st + v), "padding": length - v,
                "reset": bool(plan.resets[batch, lane])}

    def unbatch(self, outputs: Any, *, as_dict: bool = False, epoch: int | None = None):
        """Map model outputs in batch order back to each series, dropping padding.

        Parameters
        ----------
        outputs : array ``(n_batches * batch_size, timesteps, ...)`` (sequence outputs) or
            ``(n_batches * batch_size, ...)`` (one output per chunk), e.g. ``model.predict(...)``; also
            ``(n_batches, batch_size, ...)`` or a list of per-batch arrays (needed when batch lengths vary).

        Returns
        -------
        list (or dict keyed by series id) of arrays: per series ``(steps_arranged, ...)`` for sequence
        outputs (row ``t`` is the output at input step ``t``), or ``(chunks, ...)`` per chunk.
        """
        plan = self._outputs_plan(epoch)
        nb, b = plan.n_batches, plan.batch_size
        if isinstance(outputs, (list, tuple)) and len(outputs) == nb and all(hasattr(o, "shape") for o in outputs):
            per_batch = [np.asarray(o) for o in outputs]
        else:
            if outputs is None:
                raise ParameterError("outputs is None.", "pass the model's predictions on these batches.")
            try:
                out = np.asarray(outputs)
            except (TypeError, ValueError):  # ragged lists
                raise ShapeError("outputs are a ragged list (rows of different shapes), not one array.",
                                 "pass model.predict's array, or a list with one array per batch.") from None
            if out.ndim >= 2 and out.shape[:2] == (nb, b) and out.shape[0] * out.shape[1] != out.shape[0]:
                out = out.reshape((nb * b,) + out.shape[2:])
            if out.ndim == 0 or out.shape[0] != nb * b:
                raise LengthMismatchError(
                    f"outputs have {0 if out.ndim == 0 else out.shape[0]} rows but the arrangement has {nb * b} "
                    f"({plural(nb, 'batch')} x {plural(b, 'lane')}).",
                    "pass the outputs of model.predict on exactly these batches, in order.")
            per_batch = [out[k * b:(k + 1) * b] for k in range(nb)]
        for k, o in enumerate(per_batch):
            if o.ndim == 0 or o.shape[0] != b:
                raise LengthMismatchError(f"outputs of batch {k} have {0 if o.ndim == 0 else o.shape[0]} rows for "
                                          f"{plural(b, 'lane')}.", "pass one output row per lane.")
            if o.ndim >= 3 and o.shape[1] != plan.batch_length(k):
                # (lanes, steps, units) with another step count is not the output of this batch: reading it
                # would shift every output against its input step
                raise ShapeError(
                    f"outputs of batch {k} have {o.shape[1]} steps per row but the batch has "
                    f"{plan.batch_length(k)} timesteps (outputs {o.shape}).",
                    "pass model.predict on exactly these batches: per-step outputs (batch_size, timesteps, ...) "
                    "with return_sequences=True, else one output per row (batch_size, ...).")
        seq = self.return_sequences and all(o.ndim >= 2 and o.shape[1] == plan.batch_length(k)
                                            for k, o in enumerate(per_batch))
        vals, sid, step = [], [], []
        for k, o in enumerate(per_batch):
            s, st, v = plan.series[k], plan.step[k], plan.valid[k]
            if seq:
                t = np.arange(o.shape[1])
                mask = (t[None, :] < v[:, None]) & (s[:, None] >= 0)
                vals.append(o[mask])
                sid.append(np.broadcast_to(s[:, None], mask.shape)[mask])
                step.append((st[:, None] + t[None, :])[mask])
            else:
                keep = (s >= 0) & (v > 0)
                vals.append(o[keep])
                sid.append(s[keep])
                step.append(st[keep])
        vals_a, sid_a, step_a = np.concatenate(vals), np.concatenate(sid), np.concatenate(step)
        order = np.lexsort((step_a, sid_a))
        vals_a, sid_a = vals_a[order], sid_a[order]
        counts = np.bincount(sid_a, minlength=self.n_series)
        parts = np.split(vals_a, np.cumsum(counts)[:-1])
        if as_dict:
            return {self.series_ids[i]: parts[i] for i in range(self.n_series)}
        return parts

    # ---------------------------------------------------------------- reporting
    def explain(self) -> Explanation:
        p, b, t = self.plan(), self.batch_size, self.timesteps
        n_series = self.n_series
        resets_mid = int(p.resets[1:].sum())
        idle = int((p.valid == 0).sum())
        tshape = "None (varies)" if self.jitter else t
        lines = [
            f"stateful=True with {plural(b, 'lane')}: row i of batch k+1 continues row i of batch k, so each lane "
            f"carries one state through the epoch; state is zeroed at the start of every epoch"
            + (f" and where a lane moves on to a new series ({plural(resets_mid, 'time')} after the first batch)"
               if resets_mid else "") + " (statebatch.keras.LaneResetCallback does both).",
            f"{plural(p.n_batches, 'batch')} per epoch of {plural(b, 'lane')} x {tshape} timesteps x "
            f"{self.n_features} feature(s); model: keras.Input(batch_shape=({b}, {'None' if self.jitter else t}, "
            f"{self.n_features})), fit(..., shuffle=False).",
            ("1 series split into " + plural(b, "contiguous lane") + "." if n_series == 1 else
             f"{plural(n_series, 'series', 'series')} packed into {plural(b, 'lane')}"
             + ("; repacked in a new order every epoch." if self.shuffle else ".")),
            f"padding: {percent(p.padding_fraction)} of steps ({plural(idle, 'idle lane slot')}); padded steps carry sample "
            f"weight 0. {plural(p.n_batches, 'batch')} (lower bound {p.lower_bound_batches}).",
        ]
        if self.weight_from is not None:
            held = np.maximum(self.series_lengths - self.weight_from - self._yshift, 0)
            lines.append(f"holdout in time: only the last {plural(int(held.sum()), 'target')} of the series (the last "
                         f"{int(held.min())}-{int(held.max())} of each) carry weight; each series' earlier steps run first "
                         "with weight 0, so its state reaches the held-out part as after training on those steps.")
        left = self.left_out
        if left:
            lost = sum(lo.steps for lo in left)
            lines.append(f"left out: {plural(lost, 'step')} in {plural(len(left), 'place')}; see .left_out.")
        return Explanation(shape=self.shape, batch_size=b, stateful=True, n_batches=p.n_batches,
                           last_batch_size=b, parallel_states=b, resets_per_epoch=1 + resets_mid, lines=lines,
                           extra={"padding_fraction": p.padding_fraction, "n_series": n_series}, layout="lanes")

    def __repr__(self) -> str:
        p = self.plan()
        return (f"Arranged(X={self.shape}, batches={p.n_batches}, lanes={self.batch_size}, series={self.n_series}, "
                f"padding={percent(p.padding_fraction)}, resets={int(p.resets.sum())}, epoch={self.epoch}"
                f"{', shuffled' if self.shuffle else ''}{f', jitter={self.jitter}' if self.jitter else ''}, "
                f"left_out_steps={sum(lo.steps for lo in self.left_out)})")


def arrange_stateful(
    data: Any,
    timesteps: int,
    batch_size: int,
    *,
    targets: Any = "next",
    horizon: int = 1,
    return_sequences: bool = True,
    remainder: str = "pad",
    pad_value: float = 0.0,
    target_features: Sequence[int] | None = None,
    shuffle: bool = False,
    seed: int | None = None,
    jitter: int = 0,
    id_col: str | None = None,
    time_col: str | None = None,
    feature_cols: Sequence[str] | None = None,
    target_cols: Sequence[str] | None = None,
    dtype: Any = None,
    allow_nan: bool = False,
    gaps: str = "error",
) -> Arranged:
    """Arrange series into lanes for a stateful RNN: plan from the lengths, then bind the data.

    Parameters
    ----------
    data : one series (any input :func:`~statebatch.make_windows` accepts) or many (a list of
        arrays, a long DataFrame with ``id_col``, stored series).
        One series is split into ``batch_size`` contiguous lanes; many series are packed into lanes
        (longest first to the least-loaded lane), and a lane's state is reset where it moves on to
        its next series (``resets``).
    timesteps : int
        Length of each chunk (a row of a batch).
    batch_size : int
        Lanes; the model's fixed batch size.
    targets : "next", None, or array(s) aligned with the series
        ``"next"``: the value ``horizon`` steps later, per timestep with ``return_sequences`` (many-to-
        many) or after each chunk's last step otherwise (many-to-one). Aligned arrays: the target of
        each step (or of each chunk's last step). ``target_cols`` of a DataFrame as targets.
    remainder : "pad", "drop" or "error"
        What to do with a series' last partial chunk and idle lane slots: pad them (sample weight 0),
        drop the partial chunks (reported in ``left_out``), or raise :class:`RemainderError`.
    pad_value : float
    shuffle : bool
        Many series: repack them into lanes in a new order every epoch (``seed``; drawn once when None).
        The number of batches stays the same every epoch.
    jitter : int
        Vary each batch's length in ``[timesteps - jitter, timesteps]`` every epoch, so chunk boundaries
        fall on different steps (needs ``keras.Input(batch_shape=(B, None, F))``).
    allow_nan, gaps
        The input checks every entry point shares: NaN/inf refused unless ``allow_nan=True``; holes in
        the time stamps refused, split or accepted (``gaps``).

    Returns
    -------
    Arranged

    Notes
    -----
    One in-memory series with ``remainder="drop"`` gives a zero-copy view ``(n_batches, batch_size,
    timesteps, features)`` (``Arranged.batch_view``). Many in-memory series are packed lane by lane
    straight from each array (never concatenated first): an epoch of at most 256 MB
    (``PACK_AT_CONSTRUCTION_BYTES``) is packed here, where NaN/inf are checked on the packed lanes
    (the data is copied then; later changes to the arrays are not seen by that epoch), and batches
    are served from the lanes; ``X`` is the same epoch in batch order (one more copy).
    """
    timesteps = check_int("timesteps", timesteps, 1)
    batch_size = check_int("batch_size", batch_size, 1)
    horizon = check_int("horizon", horizon, 1)
    remainder = check_choice("remainder", remainder, REMAINDERS)
    return_sequences = check_bool("return_sequences", return_sequences)
    shuffle = check_bool("shuffle", shuffle)
    jitter = check_int("jitter", jitter, 0, timesteps - 1)
    seed = resolve_seed(seed)
    if isinstance(pad_value, bool) or not isinstance(pad_value, (int, float, np.integer, np.floating)):
        raise ParameterError(f"pad_value must be a number, got {pad_value!r}.", "pass e.g. pad_value=0.0.")
    if target_cols is not None and isinstance(targets, str) and targets == "next":
        pass  # the target columns' next values
    ss = as_series(data, id_col=id_col, time_col=time_col, feature_cols=feature_cols, target_cols=target_cols,
                   dtype=dtype, gaps=check_choice("gaps", gaps, GAPS))
    ss = apply_gaps(ss, check_choice("gaps", gaps, GAPS))
    allow_nan = check_bool("allow_nan", allow_nan)
    # Many in-memory float series: the NaN/inf check runs on the epoch packed into lanes (one pass, see
    # Arranged._pack_checked) once the plan exists. Any error raised before then is preceded by the exact
    # check, so bad data is reported first, as when it is checked here.
    deferred = not allow_nan and Arranged._packs(ss.source) and ss.dtype.kind in "fc"
    if deferred:
        if ss.targets is not None:
            check_finite_series(SeriesSet(ss.targets, ss.offsets, ss.ids), "target columns")
    else:
        check_finite_series(ss, allow_nan=allow_nan)
    try:
        arranged = _arrange(ss, timesteps, batch_size, targets, horizon, return_sequences, remainder, pad_value,
                            target_features, shuffle, seed, jitter, allow_nan)
    except StatebatchError:
        if deferred:
            check_finite_series(SeriesSet(ss.source, ss.offsets, ss.ids))
        raise
    if deferred and not arranged._pack_checked():
        check_finite_series(SeriesSet(ss.source, ss.offsets, ss.ids))
    arranged._check_batches = not allow_nan and not in_memory(ss.source)
    arranged._x_checked = checked_finite(ss.source)
    _warn_padding(arranged)
    return arranged


#: An epoch with more padding than this warns (StatebatchWarning): the model then mostly runs on steps
#: of weight 0, almost always because batch_size (lanes) or timesteps is too large for the data. Lanes
#: that never hold data warn at any padding. (Many series of different lengths in as many lanes are
#: often half padding, legitimately: that alone does not warn.)
PADDING_WARNING = 0.75


def _warn_padding(arranged: Arranged) -> None:
    """Warn when most of the epoch is padding, naming the idle lanes and the fix (fewer lanes, shorter
    timesteps); legal (idle lanes carry weight 0), but the compute and the loss's denominator are wasted."""
    plan = arranged.plan()
    frac = plan.padding_fraction
    busy = int((plan.valid > 0).any(axis=0).sum())  # lanes that hold data in some batch
    idle = plan.batch_size - busy
    if frac <= PADDING_WARNING and not idle:
        return
    real = int(plan.valid.sum())
    t = plan.timesteps
    if idle:
        why = f"{plural(idle, 'lane')} of {plan.batch_size} {'never holds' if idle == 1 else 'never hold'} data"
        fix = f"use fewer lanes (batch_size={max(1, busy)} or less), or more data"
    else:
        why = (f"the data fills only {percent(1 - frac)} of {plural(plan.batch_size, 'lane')} x "
               f"{plural(plan.n_batches, 'batch')} x {t} timesteps")
        fix = (f"use shorter timesteps (each lane holds about {plural(real // plan.batch_size, 'real step')}) or "
               "fewer lanes, or more data")
    warnings.warn(StatebatchWarning(
        f"padding is {percent(frac)} of the epoch: {why} ({plural(real, 'real step')} in "
        f"{plural(plan.n_batches, 'batch')} of {plan.batch_size} x {t}). The model computes on the padded steps "
        f"(sample weight 0) and the loss divides by them. Fix: {fix}."), stacklevel=3)


def _arrange(ss: SeriesSet, timesteps: int, batch_size: int, targets: Any, horizon: int, return_sequences: bool,
             remainder: str, pad_value: Any, target_features: Any, shuffle: bool, seed: int, jitter: int,
             allow_nan: bool) -> Arranged:
    """The targets and the :class:`Arranged` of checked series (the part of :func:`arrange_stateful` after the
    data's own checks)."""
    pad_value = _pad_for(pad_value, ss.dtype)

    ysource, yshift, target_mode = None, 0, None
    if isinstance(targets, str) and targets == "next":
        target_mode = "next"
        ysource = ss.next_value_source(target_features)
        yshift = horizon
    elif targets is None:
        if target_features is not None:
            raise ParameterError("target_features has no meaning with targets=None.", "drop target_features.")
    elif isinstance(targets, str):
        raise ParameterError(f"targets={targets!r} is not understood.",
                             "pass 'next', None, or target arrays aligned with the series.")
    else:
        if horizon != 1:
            raise ParameterError(f"horizon={horizon} applies to targets='next'; aligned target arrays give the target "
                                 "of each step themselves.", "shift the target arrays yourself, or use targets='next'.")
        target_mode = "aligned"
        tl = aligned_targets(targets, ss)
        if any(len(t) != n for t, n in zip(tl, ss.lengths)):
            raise LengthMismatchError(
                f"targets must be aligned row by row with the series: got lengths {[len(t) for t in tl][:5]} "
                f"for series of lengths {ss.lengths[:5].tolist()}.",
                "pass one target array per series, each as long as its series.")
        tl = [t[:, None] if t.ndim == 1 else t for t in tl]
        ysource = source_of(tl)
        check_finite_series(SeriesSet(ysource, ss.offsets, ss.ids), "targets", allow_nan)
    return Arranged(ss, timesteps=timesteps, batch_size=batch_size, target_mode=target_mode, ysource=ysource,
                    yshift=yshift, horizon=horizon, return_sequences=return_sequences, remainder=remainder,
                    pad_value=pad_value, shuffle=shuffle, seed=seed, jitter=jitter)


def _pad_for(pad_value: Any, dtype: np.dtype) -> Any:
    """``pad_value`` in the data's dtype; refused when it cannot be represented (NaN in integers...) or is
    not finite (a NaN or inf step times its sample weight 0 is still NaN in the loss)."""
    if not np.isfinite(pad_value):
        raise ParameterError(f"pad_value={pad_value!r} is not finite: padded steps carry sample weight 0, but NaN x 0 "
                             "is NaN, so the loss would be NaN.", "pass a finite pad_value, e.g. 0.0.")
    if np.issubdtype(dtype, np.integer) or dtype == bool:
        if not np.isfinite(pad_value) or float(pad_value) != int(pad_value):
            raise ParameterError(f"pad_value={pad_value!r} cannot be stored in the data's dtype {dtype}.",
                                 "pass an integer pad_value, or convert the data with dtype='float32'.")
        info = np.iinfo(dtype) if dtype != bool else None
        if info is not None and not info.min <= int(pad_value) <= info.max:
            raise ParameterError(f"pad_value={pad_value!r} is outside the range of {dtype}.", "pass a value in range.")
    return pad_value


arrange_stateful.__doc__ = arrange_stateful.__doc__.replace(INPUT_CHECKS_STUB, INPUT_CHECKS_DOC)
