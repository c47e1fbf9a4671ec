"""Materialise a lane plan: batches, blocks of batches and whole epochs of an :class:`~statebatch.Arranged`.

A :class:`~statebatch.plans.lanes.LanePlan` says which chunk of which series each lane holds at each
batch; :class:`LaneEpochs` reads those chunks from the row source (inputs, targets, sample weights) and
keeps what makes the next read cheap: one epoch materialised in batch order (``cache``), the epoch
packed lane by lane (``lanes``, many in-memory series) and a read-ahead :class:`LaneReader` per lane
block (out of core). The result (:class:`~statebatch.Arranged`) binds a plan to a source and
delegates here; it adds only what belongs to results (NaN/inf scans of batches read out of core,
provenance of the arrays it hands out).

Many in-memory series are packed *lane by lane*, ``(batch_size, n_batches * timesteps, features)``
(:func:`fill_lanes`); batch ``k`` is the slice ``lanes[:, k*T:(k+1)*T]`` and ``X`` is one transposed
copy of it. :data:`PACK_AT_CONSTRUCTION_BYTES` bounds the epoch ``arrange_stateful`` packs (and checks
for NaN/inf on the packed lanes) at construction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .._args import check_size, percent
from .._args import plural
from ..errors import LengthMismatchError, ParameterError, ShapeError
from ..plans.lanes import LanePlan
from ..sources.base import ConcatSource, RowSource, readonly
from ..sources.series import SeriesSet
from .gather import LaneReader, fill_lanes, gather_chunks, gather_rows, lanes_to_batches, source_views, sums_finite

__all__ = ["LaneEpochs", "PACK_AT_CONSTRUCTION_BYTES", "lane_outputs", "packs_lanes"]

#: Many in-memory series whose epoch takes at most this many bytes are packed into lanes when they are
#: arranged: the packed epoch is checked for NaN/inf in one pass (instead of one check per series) and
#: then serves every batch, ``X`` and the Keras feeds. Larger epochs are checked series by series and
#: packed when first asked for.
PACK_AT_CONSTRUCTION_BYTES = 256 << 20


@dataclass(frozen=True, eq=False)
class HeadSeries(SeriesSet):
    """The first ``keep[i]`` steps of every series (same source, nothing copied): a split's training part."""

    keep: np.ndarray | None = None

    @property
    def lengths(self) -> np.ndarray:
        assert self.keep is not None  # always given by Arranged.split
        return self.keep

    def series(self, i: int) -> np.ndarray:
        assert self.keep is not None
        start = int(self.offsets[i])
        return self.source.read(start, start + int(self.keep[i]))


def packs_lanes(src: RowSource) -> bool:
    """Whether epochs of ``src`` are packed lane by lane from the arrays themselves: many in-memory arrays
    (not one array, which is sliced instead).

    Examples
    --------
    >>> import numpy as np
    >>> from statebatch.sources.series import source_of
    >>> packs_lanes(source_of([np.zeros((3, 1)), np.ones((2, 1))])), packs_lanes(source_of([np.zeros((3, 1))]))
    (True, False)
    """
    return isinstance(src, ConcatSource) and src.in_memory and src.array is None


def _weights(valid: np.ndarray, length: int, per_step: bool) -> np.ndarray:
    """Sample weights of chunks with ``valid`` real steps: per step (padding 0), or 1 for a full chunk."""
    if per_step:
        return (np.arange(length)[None, :] < valid[:, None]).astype(np.float32)
    return (valid == length).astype(np.float32)


class LaneEpochs:
    """Reads the batches of lane plans from one set of series (and their targets) and keeps the caches.

    Parameters
    ----------
    ss : SeriesSet
        The series (their row source and offsets).
    ysource : RowSource or None
        Targets, row-aligned with ``ss.source`` after a shift of ``yshift`` rows (None: no targets).
    return_sequences : bool
        Targets and weights per step ``(n, T, ...)`` / ``(n, T)``, else of each chunk's last step.
    pad_value : scalar
        Value of padded steps.
    weight_from : ndarray ``(n_series,)`` or None
        A split's validation part: per series the first input step whose target carries weight.
    varies : bool
        Whether plans differ from epoch to epoch (caches are then keyed by epoch).

    Examples
    --------
    >>> import numpy as np
    >>> from statebatch.plans.lanes import plan_lanes
    >>> from statebatch.sources.series import as_series
    >>> ss = as_series(np.arange(8.0))
    >>> m = LaneEpochs(ss, ysource=None, yshift=0, return_sequences=True, pad_value=0.0)
    >>> plan = plan_lanes(ss.lengths, 2, 2)
    >>> m.batch_arrays(plan, 0)[0][:, :, 0]
    array([[0., 1.],
           [4., 5.]])
    """

    def __init__(self, ss: SeriesSet, *, ysource: RowSource | None, yshift: int, return_sequences: bool,
                 pad_value: Any, weight_from: np.ndarray | None = None, varies: bool = False):
        self.ss = ss
        self.ysource = ysource
        self.yshift = yshift
        self.return_sequences = return_sequences
        self.pad_value = pad_value
        self.weight_from = weight_from
        self.varies = varies
        self.readers: dict[Any, LaneReader] = {}
        #: One epoch's arrays in batch order, keyed by :meth:`cache_key` (batch k is rows k*B:(k+1)*B).
        self.cache: dict[tuple, tuple[np.ndarray, ...]] = {}
        #: One epoch's inputs ("x") and per-step targets ("y") packed lane by lane, (lanes, n_batches *
        #: timesteps, *row), keyed by (cache key, "x"/"y"): batch k is the view [:, k*T:(k+1)*T].
        self.lanes: dict[tuple, np.ndarray] = {}
        self._run_end_cache: tuple[int, np.ndarray] | None = None
        self._used_last: tuple[LanePlan, np.ndarray] | None = None

    @property
    def n_features(self) -> int:
        return self.ss.n_features

    def cache_key(self, plan: LanePlan) -> tuple:
        """Only shuffled or jittered plans differ between epochs; the others are materialised once."""
        return ("epoch", plan.epoch if self.varies else -1)

    # ---------------------------------------------------------------- one batch
    def rows(self, plan: LanePlan, k: int | slice) -> tuple[np.ndarray, np.ndarray]:
        """First source row and real steps of each chunk of batch ``k`` (of batches ``k``, a slice, in order)."""
        s = plan.series[k].reshape(-1)
        start = np.where(s >= 0, self.ss.offsets[np.maximum(s, 0)] + plan.step[k].reshape(-1), 0)
        return start, plan.valid[k].reshape(-1)

    def reader(self, key: Any, source: RowSource) -> LaneReader | None:
        """The read-ahead reader of ``key`` (``"x"``, ``"y"`` or per lane block); None in memory."""
        if source.array is not None or (isinstance(source, ConcatSource) and source.in_memory):
            return None
        if key not in self.readers:
            self.readers[key] = LaneReader(source)
        return self.readers[key]

    def in_memory(self) -> bool:
        """Whether the inputs are in memory (no lane reader)."""
        return self.reader("x", self.ss.source) is None

    def batch_arrays(self, plan: LanePlan, k: int, lanes: slice | None = None) -> tuple[np.ndarray, ...]:
        """Batch ``k`` (only ``lanes`` of it when given), ``(X, y, w)`` or ``(X,)``, before ``weight_from``."""
        length = plan.batch_length(k)
        start, valid = self.rows(plan, k)
        block = None if lanes is None else (lanes.start or 0, lanes.stop)  # a block's own read-ahead buffers
        limits = None
        if lanes is not None:
            limits = self.run_ends(plan)[k][lanes]
            start, valid = start[lanes], valid[lanes]
        packed = self.lanes.get((self.cache_key(plan), "x")) if lanes is None else None
        if packed is not None:  # packed: batch k is a slice of every lane (one copy into a contiguous batch)
            X = np.ascontiguousarray(packed[:, k * length:(k + 1) * length])
        else:
            X = gather_chunks(self.ss.source, start, valid, length, self.pad_value,
                              reader=self.reader("x" if block is None else ("x", block), self.ss.source),
                              limits=limits)
        if self.ysource is None:
            return (X,)
        return (X,) + self.targets_at(start, valid, length, block, limits)

    def run_ends(self, plan: LanePlan) -> np.ndarray:
        """``(n_batches, batch_size)``: for each chunk, the source row after the last one its lane reads
        without a break (the chunks that follow it in its lane continue the same rows). A block of lanes
        reads ahead only up to there, so it never reads rows that other lanes hold."""
        cached = self._run_end_cache
        if cached is not None and cached[0] == plan.epoch:
            return cached[1]
        start, valid = self.rows(plan, slice(None))
        first = start.reshape(plan.n_batches, -1)
        steps = valid.reshape(plan.n_batches, -1)
        end = first + steps
        runs = end.copy()
        for k in range(plan.n_batches - 2, -1, -1):  # from the last batch back: a lane's run goes on while
            go_on = (first[k + 1] == end[k]) & (steps[k + 1] > 0)  # its next chunk starts where this one ends
            runs[k] = np.where(go_on, runs[k + 1], end[k])
        self._run_end_cache = (plan.epoch, runs)
        return runs

    def targets_at(self, start: np.ndarray, valid: np.ndarray, length: int,
                   block: tuple | None = None, limits: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Targets and sample weights of chunks starting at source rows ``start`` with ``valid`` steps:
        per step (``return_sequences``, padded steps weight 0) or of each chunk's last step (a
        partial chunk weight 0)."""
        ysource = self.ysource
        assert ysource is not None  # called only with targets
        if self.return_sequences:
            y = gather_chunks(ysource, start + self.yshift, valid, length, self.pad_value,
                              reader=self.reader("y" if block is None else ("y", block), ysource),
                              limits=None if limits is None else limits + self.yshift)
        else:
            last = np.where(valid > 0, start + valid - 1 + self.yshift, 0)
            y = gather_rows(ysource, last)
            y[valid == 0] = self.pad_value
        return y, _weights(valid, length, self.return_sequences)

    def held_out(self, plan: LanePlan, arrays: tuple, k: int | slice | None, lanes: slice | None = None) -> tuple:
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

    def weights(self, plan: LanePlan) -> np.ndarray:
        """The epoch's sample weights without targets (1 real step, 0 padding), in batch order."""
        return _weights(plan.valid.reshape(-1), plan.timesteps, self.return_sequences)

    # ---------------------------------------------------------------- blocks and epochs
    def by_block(self, plan: LanePlan) -> bool:
        """Whether batches can be read in blocks (in memory, one batch length)."""
        return plan.batch_steps is None and self.in_memory()

    def block(self, plan: LanePlan, k0: int, k1: int) -> tuple[np.ndarray, ...]:
        """Batches ``k0 .. k1-1`` in batch order, ``(rows, ...)`` per array, in one gather (a slice of the
        packed lanes when they exist); the caller checks :meth:`by_block` and the cache first."""
        rows = slice(k0, k1)
        start, valid = self.rows(plan, rows)
        lanes = self.lanes.get((self.cache_key(plan), "x"))
        t = plan.timesteps
        if lanes is not None:  # packed: the block is a slice of every lane, in batch order (one copy)
            X = lanes_to_batches(lanes[:, k0 * t:k1 * t], t)
        else:
            X = gather_chunks(self.ss.source, start, valid, t, self.pad_value)
        arrays = (X,) if self.ysource is None else (X,) + self.targets_at(start, valid, t)
        return self.held_out(plan, arrays, rows)

    def fits_cache(self, plan: LanePlan, max_bytes: int) -> bool:
        """Whether the epoch of ``plan`` may be materialised for serving views: in memory, one batch length,
        its arrays at most ``max_bytes``."""
        if not self.by_block(plan):
            return False
        x_bytes = plan.n_batches * plan.batch_size * plan.timesteps * self.n_features * self.ss.source.dtype.itemsize
        return x_bytes * (2 if self.ysource is not None else 1) <= max_bytes

    def epoch(self, plan: LanePlan, jitter: int) -> tuple[np.ndarray, ...]:
        """The whole epoch of ``plan`` in batch order, ``weight_from`` applied (not yet cached: the caller
        checks it and stores it with :meth:`keep_epoch`)."""
        if plan.batch_steps is not None:
            raise ShapeError(
                f"jitter={jitter}: batches have different lengths this epoch, so they do not stack into "
                "one X array.", "feed the batches one by one: statebatch.keras.StatefulDataset(arranged) or "
                "arranged.batches().")
        # X in its dtype, twice: the packed lanes and their copy in batch order are alive together
        check_size("the epoch's X", (plan.n_batches, plan.batch_size, plan.timesteps, self.n_features),
                   self.ss.source.dtype.itemsize, copies=2,
                   fix="check timesteps and batch_size (the epoch has "
                       f"{percent(plan.padding_fraction)} padding), or feed the batches one by one "
                       "(arranged.batches(), statebatch.keras.StatefulDataset(arranged)) instead of X.")
        self.cache.clear()
        return self.held_out(plan, self.materialise_epoch(plan), None)

    def keep_epoch(self, plan: LanePlan, arrays: tuple[np.ndarray, ...],
                   each: Callable[[np.ndarray], Any] | None = None) -> tuple[np.ndarray, ...]:
        """Cache the epoch's checked ``arrays`` read-only (``each`` called on every one, e.g. to record its
        provenance) and drop the packed lanes: one copy of the epoch, not two."""
        key = self.cache_key(plan)
        self.cache[key] = tuple(readonly(a) for a in arrays)
        if each is not None:
            for a in self.cache[key]:
                each(a)
        self.lanes.clear()
        return self.cache[key]

    def materialise_epoch(self, plan: LanePlan) -> tuple[np.ndarray, ...]:
        """The epoch of ``plan`` in batch order, ``(X, y, w)`` or ``(X,)``, before ``weight_from``."""
        src, t = self.ss.source, plan.timesteps
        if packs_lanes(src):
            X = lanes_to_batches(self.packed(plan, "x"), t)
            if self.ysource is None:
                return (X,)
            if self.return_sequences and packs_lanes(self.ysource):
                y = lanes_to_batches(self.packed(plan, "y"), t)
                return X, y, _weights(plan.valid.reshape(-1), t, True)
            return (X,) + self.targets_epoch(plan)
        if src.array is None:  # out of core: batch by batch through the lane readers
            parts = [self.batch_arrays(plan, k) for k in range(plan.n_batches)]
            return tuple(np.concatenate([p[j] for p in parts]) for j in range(len(parts[0])))
        start, valid = self.rows(plan, slice(None))
        X = gather_chunks(src, start, valid, t, self.pad_value)
        if self.ysource is None:
            return (X,)
        return (X,) + self.targets_epoch(plan)

    def targets_epoch(self, plan: LanePlan) -> tuple[np.ndarray, np.ndarray]:
        """Targets and weights of the whole epoch in batch order."""
        start, valid = self.rows(plan, slice(None))
        return self.targets_at(start, valid, plan.timesteps)

    # ---------------------------------------------------------------- packing lane by lane
    def packed(self, plan: LanePlan, which: str) -> np.ndarray:
        """The epoch of ``plan`` lane by lane, ``(batch_size, n_batches * timesteps, *row)`` (read-only): inputs
        (``"x"``) or per-step targets (``"y"``); packed once per epoch with :func:`fill_lanes`."""
        lanes = self.lanes.get((self.cache_key(plan), which))
        return self.pack(plan, which)[0] if lanes is None else lanes

    def pack(self, plan: LanePlan, which: str, check_finite: bool = False) -> tuple[np.ndarray, bool]:
        """Pack (see :meth:`packed`) and keep the lanes; ``finite``: see :func:`fill_lanes`."""
        key = (self.cache_key(plan), which)
        src, shift = (self.ss.source, 0) if which == "x" else (self.ysource, self.yshift)
        assert isinstance(src, ConcatSource)  # packs_lanes(src) was checked by the caller
        lane, first_row, starts, counts = self.lane_layout(plan)
        lanes, finite = fill_lanes(src, plan.batch_size, plan.n_batches * plan.timesteps, lane, first_row,
                                   starts + shift, counts, self.pad_value, check_finite=check_finite)
        self.lanes = {k: v for k, v in self.lanes.items() if k[0] == key[0]}  # one epoch's lanes at a time
        self.lanes[key] = readonly(lanes)
        return self.lanes[key], finite

    def lane_layout(self, plan: LanePlan) -> tuple[np.ndarray, ...]:
        """Where each series sits in its lane (fixed-length batches): ``(lane, first row in the lane, first
        source row, rows)``. A series fills its chunks from the batch where its lane resets, back to back."""
        ii, kk = np.nonzero((plan.resets & (plan.series >= 0)).T)  # lane by lane: already in the lanes' order
        series = plan.series[kk, ii]
        starts = self.ss.offsets[series] + plan.step[kk, ii]
        return ii, kk * plan.timesteps, starts, self.used(plan)[series]

    def used(self, plan: LanePlan) -> np.ndarray:
        """Steps of each series that are inputs in ``plan`` (lengths minus held-back target steps, minus drops);
        kept for the last plan asked about (packing and checking ask twice)."""
        last = self._used_last
        if last is not None and last[0] is plan:
            return last[1]
        s, v = plan.series.reshape(-1), plan.valid.reshape(-1)
        used = np.bincount(np.maximum(s, 0), weights=np.where(s >= 0, v, 0), minlength=self.ss.n_series).astype(np.int64)
        self._used_last = (plan, used)
        return used

    def pack_checked(self, plan: LanePlan) -> bool:
        """Pack this epoch's inputs into lanes now (many in-memory series, fixed-length batches, at most
        :data:`PACK_AT_CONSTRUCTION_BYTES`) and check the data for NaN/inf in one pass over the packed lanes
        plus the steps that are no input. True: every step of every series is finite. False: not packed, or
        the sum is not finite (a NaN/inf, or an overflow): the caller runs the exact per-series check."""
        src = self.ss.source
        if not packs_lanes(src) or plan.batch_steps is not None:
            return False
        assert isinstance(src, ConcatSource)
        if plan.n_batches * plan.batch_size * plan.timesteps * self.n_features * src.dtype.itemsize \
                > PACK_AT_CONSTRUCTION_BYTES:
            return False
        if plan.step[plan.resets & (plan.series >= 0)].any():
            return False  # a series' inputs do not start at its first step: let the full check see every step
        offsets, lengths = self.ss.offsets, self.ss.lengths
        if not self.pack(plan, "x", check_finite=True)[1]:  # checked block by block as it is written
            return False
        used = self.used(plan)
        rest = np.flatnonzero(used < lengths)  # held-back target steps, dropped remainders, too-short series
        return not len(rest) or sums_finite(np.concatenate(source_views(src, offsets[rest] + used[rest],
                                                                         lengths[rest] - used[rest])))

    def batch_view(self, plan: LanePlan) -> np.ndarray | None:
        """X as a zero-copy read-only view ``(n_batches, batch_size, timesteps, features)`` of one in-memory
        series whose lanes hold no padding (the caller checks the arrangement allows it); None otherwise."""
        arr = self.ss.source.array
        if self.ss.n_series != 1 or arr is None or plan.batch_steps is not None:
            return None
        n = plan.n_batches * plan.batch_size * plan.timesteps
        view = arr[:n].reshape((plan.batch_size, plan.n_batches, plan.timesteps) + arr.shape[1:]).swapaxes(0, 1)
        return readonly(view)


def lane_outputs(plan: LanePlan, outputs: Any, *, return_sequences: bool, n_series: int) -> list[np.ndarray]:
    """Model outputs of the batches of ``plan`` (in batch order) back to each series, padding dropped.

    Parameters
    ----------
    plan : LanePlan
        The plan whose batches the outputs belong to.
    outputs : array ``(n_batches * batch_size, timesteps, ...)`` (sequence outputs) or
        ``(n_batches * batch_size, ...)`` (one output per chunk); also ``(n_batches, batch_size, ...)`` or a
        list of per-batch arrays (needed when batch lengths vary).
    return_sequences : bool
        Whether per-step outputs are read per step (else one output per chunk).
    n_series : int

    Returns
    -------
    list of arrays, one per series: ``(steps, ...)`` for sequence outputs (row ``t`` is the output at input
    step ``t``), or ``(chunks, ...)``.

    Examples
    --------
    >>> import numpy as np
    >>> from statebatch.plans.lanes import plan_lanes
    >>> plan = plan_lanes([4, 2], timesteps=2, batch_size=2, targets=None)
    >>> out = np.arange(8.0).reshape(4, 2)   # 2 batches x 2 lanes, 2 steps each
    >>> [p.tolist() for p in lane_outputs(plan, out, return_sequences=True, n_series=2)]
    [[0.0, 1.0, 4.0, 5.0], [2.0, 3.0]]
    """
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
    seq = return_sequences and all(o.ndim >= 2 and o.shape[1] == plan.batch_length(k)
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
    counts = np.bincount(sid_a, minlength=n_series)
    parts = np.split(vals_a, np.cumsum(counts)[:-1])
    return list(parts)
