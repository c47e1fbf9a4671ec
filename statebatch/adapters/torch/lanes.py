"""Arranged lanes as torch tensors: :class:`LaneLoader` and its :class:`LaneBatch`."""

from __future__ import annotations

import itertools
import queue
import threading
from typing import Any, Iterator, NamedTuple

import numpy as np
import torch

from ..._args import check_bool, check_int
from ...errors import ParameterError, ShuffleError
from ...results.feed import ResetRecorder as _ResetRecorder
from ...results.feed import lane_block, real_step_weights
from ...results.schedule import LaneSchedule, ValidationSchedule
from ...results.stateful import Arranged
from .checkpoints import _crc, _keys_of, _same_identity
from .distributed import _distributed, _ranks_agree
from .tensors import _check_device, _pin_ok, to_tensor


class LaneBatch(NamedTuple):
    """One batch of arranged lanes.

    Attributes
    ----------
    x : tensor ``(batch_size, timesteps, features)`` (batch first)
    y : tensor ``(batch_size, timesteps, target_features)`` with ``return_sequences``, else
        ``(batch_size, target_features)``; ``None`` without targets
    weight : float32 tensor ``(batch_size, timesteps)`` (``(batch_size,)`` many-to-one): 1 on real
        steps, 0 on padding; weight the loss with it
    reset : bool tensor ``(batch_size,)``: lanes whose state must be zeroed before this batch
        (every lane at the start of an epoch, then the lanes that start a new series)
    """

    x: torch.Tensor
    y: torch.Tensor | None
    weight: torch.Tensor
    reset: torch.Tensor


class LaneCovariateBatch(NamedTuple):
    """One batch of lanes with covariates (``arrange_stateful(static_cols=..., known_cols=...)``): the fields
    of :class:`LaneBatch`, then ``static`` ``(batch_size, S)`` (the series each lane holds; idle lanes 0) and
    ``future`` ``(batch_size, timesteps, K)`` (known values of each step's target step); ``None`` where not
    asked for. ``x`` is the batch's ``past``."""

    x: torch.Tensor
    y: torch.Tensor | None
    weight: torch.Tensor
    reset: torch.Tensor
    static: torch.Tensor | None
    future: torch.Tensor | None


_END = object()

class _OneSeries(NamedTuple):
    """Where one in-memory series' lanes lie: batch ``k``'s row ``i`` of ``arrays[j]`` starts at row
    ``firsts[j] + i * lane + k * timesteps`` (``arrays``: the inputs, then the per-step targets if any)."""

    arrays: tuple
    firsts: tuple
    lane: int
    weight_shape: tuple


def _one_series_layout(a: Arranged, plan: Any) -> _OneSeries | None:
    """One in-memory series in evenly spaced lanes of full chunks (word_language_model's ``batchify`` layout),
    read as strided views of the series rather than gathered chunk by chunk (:meth:`Arranged._materialise_epoch`).
    ``None`` when the plan is not that."""
    src = a._ss.source
    if a._ss.n_series != 1 or src.array is None or a._fixed is not None or a.weight_from is not None:
        return None
    n, b, t = plan.n_batches, plan.batch_size, plan.timesteps
    step, valid = plan.step, plan.valid
    if not n or (plan.series != 0).any() or (valid != t).any():
        return None
    lane = int(step[0, 1] - step[0, 0]) if b > 1 else n * t
    if not ((step - step[0][None, :]) == (np.arange(n) * t)[:, None]).all() or \
            not (np.diff(step[0]) == lane).all() or lane < n * t:
        return None  # chunks do not follow each other in every lane, or the lanes are not evenly spaced
    first = int(step[0, 0])
    arrays, firsts = [src.array], [first]
    if a._ysource is not None:
        if not a.return_sequences or a._ysource.array is None:
            return None
        arrays.append(a._ysource.array)
        firsts.append(first + a._yshift)
    for arr, f in zip(arrays, firsts):
        if f < 0 or f + (b - 1) * lane + n * t > len(arr):  # one past the last row read
            return None
    return _OneSeries(tuple(arrays), tuple(firsts), lane, (b, t) if a.return_sequences else (b,))


# The one-series batches are copied about this many bytes (inputs, targets, weights) at a time: a block stays in a
# core's cache while its batches are served (a 4.2M-token epoch took 1.5x as long in 8 MB blocks and about 2x as
# long copied whole, on a loaded 2-core machine), a series of any length takes this much memory besides the batches
# the caller keeps, and the first batch comes without copying the whole epoch; large enough that the per-block work
# stays small.
_BLOCK_BYTES = 1 << 20


def _one_series_batches(lay: _OneSeries, plan: Any, resets: tuple, start: int, pin: bool) -> Iterator[LaneBatch]:
    """The :class:`LaneBatch` es of :func:`_one_series_layout`'s lanes from batch ``start``: every block of
    batches one strided copy of the inputs (and targets) and one array of ones, each batch a view of them. The
    copies are this pass's own, so a batch changed in place never reaches the series, another batch or a later
    epoch."""
    n, b, t = plan.n_batches, plan.batch_size, plan.timesteps
    per_batch = 4 * int(np.prod(lay.weight_shape)) + sum(
        b * t * arr.dtype.itemsize * int(np.prod(arr.shape[1:])) for arr in lay.arrays)
    blocks = -(-(n - start) * per_batch // _BLOCK_BYTES)  # of about equal sizes (no block of one batch at the end)
    size = -(-(n - start) // blocks)
    no_y = itertools.repeat(None)

    def block(k0: int) -> Iterator[LaneBatch]:
        m = min(size, n - k0)
        parts = []
        for arr, first in zip(lay.arrays, lay.firsts):
            rs = arr.strides[0]
            view = np.lib.stride_tricks.as_strided(arr[first + k0 * t:], (m, b, t) + arr.shape[1:],
                                                   (t * rs, lay.lane * rs, rs) + arr.strides[1:], writeable=False)
            parts.append(to_tensor(view))  # read-only view: to_tensor copies it (C order, native byte order)
        parts.append(torch.from_numpy(np.ones((m,) + lay.weight_shape, dtype=np.float32)))
        if pin:
            parts = [p.pin_memory() for p in parts]
        x, *rest, w = (p.unbind(0) for p in parts)
        return map(LaneBatch._make, zip(x, rest[0] if rest else no_y, w, resets[k0:k0 + m]))

    # one block is copied when the batches before it have been served
    return itertools.chain.from_iterable(map(block, range(start, n, size)))


class _EpochResets(NamedTuple):
    """One epoch's resets as the schedule reads them (``statebatch.schedule.resets_of``)."""

    resets: np.ndarray
    batch_size: int
    continues: bool


# An in-memory epoch of fixed-length batches up to this size (inputs and targets) is made into tensors once per
# pass and every batch served as a view of them (as word_language_model's batchify does), instead of a copy per batch.
_VIEW_EPOCH_BYTES = 256 << 20


class LaneLoader(torch.utils.data.IterableDataset):
    """Arranged lanes as torch tensors, batch after batch, strictly in order.

    ``for x, y, weight, reset in loader`` runs one epoch of the arrangement's current plan, then moves
    it to the next epoch (a shuffled or jittered arrangement re-plans; ``set_epoch`` jumps). Row ``i``
    of a batch continues row ``i`` of the previous batch unless ``reset[i]``; give ``reset`` to a
    :class:`StateCarrier` (or zero those rows yourself) before running the batch. Lanes with covariates
    (``arrange_stateful(static_cols=..., known_cols=...)``) serve :class:`LaneCovariateBatch` es
    (``x, y, weight, reset, static, future``), gathered batch by batch.

    Parameters
    ----------
    arranged : Arranged
        From :func:`statebatch.arrange_stateful`.
    validation : bool
        Serve the batches as validation data (``statebatch.schedule.ValidationSchedule``): batch 0
        resets every lane unless the data continues the training lanes (``continues=True``), then
        only the lanes that start a new series.
    reset_on_epoch_begin : bool
        Training only: reset every lane at the start of every epoch (default). ``False`` carries
        state from one epoch into the next (every lane still starts from zero in epoch 0).
    shuffle : bool
        Must be ``False``: shuffling batches scrambles which lane continues which. Shuffle the
        *packing* instead: ``arrange_stateful(..., shuffle=True, seed=...)`` repacks every epoch.
    pin_memory : bool
        Pin the tensors (only with CUDA available; otherwise skipped with a warning).
    prefetch : int
        Batches read ahead by one background thread (0: none). One thread reads in order and a
        FIFO queue hands them over, so the order never changes.
    device : torch device, optional
        Move the tensors there (``non_blocking`` when pinned).
    num_replicas, rank : int, optional
        Data parallelism (``DistributedDataParallel``): every rank serves every batch of the same epoch
        plan (a pure function of the arrangement's seed and the epoch) but only its own consecutive
        block of ``batch_size / num_replicas`` lanes (:func:`statebatch.feed.lane_block`), whose states
        its :class:`StateCarrier` keeps. Defaults: the ``torch.distributed`` process group's size and
        rank (1 and 0 without one); with a process group the ranks check that they arranged the same
        lanes.

    Notes
    -----
    Iterate it directly. It is also an ``IterableDataset``, so ``DataLoader(loader, batch_size=None)``
    works for code that wants a DataLoader, but only with ``num_workers=0``: a worker process would
    advance its own copy of the arrangement (every epoch would repeat the first plan) and several
    workers would each serve the whole epoch. Use ``prefetch`` for background reading.
    """

    def __init__(self, arranged: Arranged, *, validation: bool = False, reset_on_epoch_begin: bool = True,
                 shuffle: bool = False, pin_memory: bool = False, prefetch: int = 0, device: Any = None,
                 num_replicas: int | None = None, rank: int | None = None):
        if not isinstance(arranged, Arranged):
            raise ParameterError(f"LaneLoader needs arranged lanes, got {type(arranged).__name__}.",
                                 "build them with statebatch.arrange_stateful(...); for windows use "
                                 "statebatch.torch.WindowDataset, for buckets BucketBatchSampler.")
        if check_bool("shuffle", shuffle):
            raise ShuffleError(
                "shuffle=True would serve the batches of stateful lanes out of order: row i of batch k must continue "
                "row i of batch k-1, so a shuffled order carries one series' state into another.",
                "leave shuffle=False; to vary the data between epochs repack the lanes instead: "
                "statebatch.arrange_stateful(..., shuffle=True, seed=...).")
        self.arranged = arranged
        self.validation = check_bool("validation", validation)
        self.reset_on_epoch_begin = check_bool("reset_on_epoch_begin", reset_on_epoch_begin)
        self.pin_memory = _pin_ok(check_bool("pin_memory", pin_memory))
        self.prefetch = check_int("prefetch", prefetch, 0)
        self.device = _check_device(device)
        self.batch_size = arranged.batch_size
        group = _distributed()
        self.num_replicas = check_int("num_replicas", num_replicas if num_replicas is not None
                                      else (group[0] if group else 1), 1)
        self.rank = check_int("rank", rank if rank is not None else (group[1] if group else 0), 0)
        self.block = lane_block(self.batch_size, self.num_replicas, self.rank)
        self.lanes = self.block.stop - self.block.start  # lanes this rank serves (its StateCarrier's rows)
        if group and self.num_replicas > 1:
            self._check_ranks_agree()
        self._resume = 0  # the batch the next pass starts at (load_state_dict sets it; 0 otherwise)
        self._pos: list[int] | None = None  # [epoch, batches served] while a pass is under way

    # -- the protocol
    def __len__(self) -> int:
        return self.arranged.n_batches

    @property
    def epoch(self) -> int:
        return self.arranged.epoch

    def set_epoch(self, epoch: int) -> None:
        """Serve ``epoch``'s plan next (the ``DistributedSampler`` convention; iterating also moves on). After
        :meth:`load_state_dict`, setting the loaded epoch again keeps the resume point."""
        epoch = check_int("epoch", epoch, 0)
        if epoch != self.arranged.epoch:
            self._resume = 0
        self.arranged.set_epoch(epoch)
        self._pos = None

    # -- checkpoints (the torchdata StatefulDataLoader convention)
    def state_dict(self) -> dict[str, Any]:
        """Where the loader stands: ``{"epoch", "batch", ...}``, ``batch`` = batches of ``epoch`` already
        served. An epoch's plan (packing, jitter, resets) is a pure function of the arrangement's seed
        and the epoch, so the epoch and the batch determine everything the loader serves after them;
        the rest of the dict identifies the arrangement, so that a state is not loaded into another one.
        Save it with the model's, the optimizer's and :meth:`StateCarrier.state_dict` after a batch."""
        epoch, batch = self._pos if self._pos is not None else (self.arranged.epoch, self._resume)
        return {"epoch": int(epoch), "batch": int(batch), "validation": self.validation,
                "reset_on_epoch_begin": self.reset_on_epoch_begin, "arrangement": self._identity(),
                "num_replicas": self.num_replicas, "rank": self.rank}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`: the next pass serves the rest of the saved epoch, exactly (the
        same batches and resets as an uninterrupted run), then the following epochs as usual."""
        fix = "pass what LaneLoader.state_dict() returned for a loader built with the same call."
        if not isinstance(state, dict) or not {"epoch", "batch", "arrangement"} <= set(state):
            raise ParameterError(f"a LaneLoader state is a dict with 'epoch', 'batch' and 'arrangement', got "
                                 f"{type(state).__name__}{_keys_of(state)}.",
                                 fix)
        epoch = check_int("the state's epoch", state["epoch"], 0)
        batch = check_int("the state's batch", state["batch"], 0)
        _same_identity(self._identity(), state["arrangement"], "arrangement",
                       "arrange the same data with the same arrange_stateful(...) call (seed included) before loading.")
        for key, value in (("validation", self.validation), ("reset_on_epoch_begin", self.reset_on_epoch_begin),
                           ("num_replicas", self.num_replicas), ("rank", self.rank)):
            if key in state and state[key] != value:
                raise ParameterError(f"the state was saved by a loader with {key}={state[key]!r}, this one has "
                                     f"{key}={value!r}: the resets after it would differ.", fix)
        n = self.arranged.plan(epoch).n_batches
        if batch > n:
            raise ParameterError(f"the state's batch {batch} is beyond epoch {epoch}'s {n} batches.", fix)
        self.arranged.set_epoch(epoch)
        self._resume, self._pos = batch, None

    def _identity(self) -> dict[str, Any]:
        """What fixes every epoch's plan besides the epoch: the arrangement's parameters and data sizes."""
        a = self.arranged
        lengths = np.asarray(a.series_lengths, dtype=np.int64)
        return {"batch_size": int(a.batch_size), "timesteps": int(a.timesteps), "seed": int(a.seed),
                "shuffle": bool(a.shuffle), "jitter": int(a.jitter), "horizon": int(a.horizon),
                "remainder": str(a.remainder), "return_sequences": bool(a.return_sequences),
                "n_series": int(len(lengths)), "steps": int(lengths.sum()),
                "lengths_crc32": _crc(lengths), "n_features": int(a.n_features),
                "has_targets": bool(a.has_targets), "first_batch": int(a.first_batch)}

    @property
    def continues(self) -> bool:
        return bool(self.arranged.continues)

    def _plan_resets(self, epoch: int, start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """``(k, reset mask)`` for every batch ``k >= start`` of ``epoch``, as the schedule decides (the batches
        before ``start`` run through the schedule too, so a resumed pass gets the same masks)."""
        masks = self._reset_masks(epoch)
        for k in range(start, len(masks)):
            yield k, masks[k]

    def _reset_masks(self, epoch: int) -> np.ndarray:
        """The reset mask of every batch of ``epoch``, ``(n_batches, batch_size)`` bool, as the schedule decides.

        The schedule runs the start of the epoch and batch 0 (full reset or not, validation or training);
        after batch 0 it zeroes exactly the lanes ``resets[k]`` of the plan (``LaneSchedule.rows_before``),
        so those rows are the plan's, taken in one copy rather than one schedule call per batch."""
        rec = _ResetRecorder(self.batch_size)
        plan = self.arranged.plan(epoch)
        view = _EpochResets(plan.resets, self.batch_size, self.continues)  # the schedule reads this epoch's plan
        masks = np.array(plan.resets, dtype=bool)
        if not plan.n_batches:
            return masks
        if self.validation:
            held_out = ValidationSchedule(view)
            held_out.begin(rec)
            held_out.batch_begin(rec, 0)
            masks[0] = rec.take()
            held_out.end(rec)
        else:
            training = LaneSchedule(view, reset_on_epoch_begin=self.reset_on_epoch_begin)
            training.epoch_begin(rec, epoch)
            training.batch_begin(rec, 0)
            masks[0] = rec.take()
        return masks

    def _views(self, epoch: int, start: int) -> Iterator[LaneBatch] | None:
        """The batches of ``epoch`` from ``start`` as views of a few tensors made for this pass: in-memory data,
        batches of one length. One series in evenly spaced lanes (:func:`_one_series_layout`) is copied a block
        of batches at a time; another epoch of at most ``_VIEW_EPOCH_BYTES`` is made into tensors ``(x, y,
        weight)`` in batch order (batch ``k`` = rows ``k*B:(k+1)*B``) once. The tensors are this pass's own (made
        for it, or copied from a read-only cached epoch), so a batch changed in place never reaches the user's
        data or a later epoch. ``None``: batch by batch instead."""
        a = self.arranged
        plan = a.plan(epoch)
        if start >= plan.n_batches or plan.batch_steps is not None or a._reader("x", a._ss.source) is not None \
                or a.covariates is not None:  # covariates are gathered batch by batch (_make)
            return None
        one = _one_series_layout(a, plan)
        whole = self._epoch_tensors(plan) if one is None else None
        if one is None and whole is None:
            return None
        r = torch.from_numpy(self._reset_masks(epoch))  # this pass's own masks, a row per batch
        resets = (r.pin_memory() if self.pin_memory else r).unbind(0)
        a._served = plan.epoch
        if one is not None:
            return _one_series_batches(one, plan, resets, start, self.pin_memory)
        assert whole is not None  # one is None: _epoch_tensors made it
        n = plan.n_batches
        parts = [(None,) * n if t is None else t.view((n, self.batch_size) + tuple(t.shape[1:])).unbind(0)
                 for t in whole] + [resets]
        return map(LaneBatch._make, itertools.islice(zip(*parts), start, None))

    def _epoch_tensors(self, plan: Any) -> tuple[torch.Tensor | None, ...] | None:
        """The whole epoch of ``plan`` as tensors ``(x, y, weight)`` in batch order, at most ``_VIEW_EPOCH_BYTES``."""
        a = self.arranged
        rows = plan.n_batches * plan.batch_size
        per_row = plan.timesteps * a.n_features * a._ss.source.dtype.itemsize
        if rows * per_row * (2 if a.has_targets else 1) > _VIEW_EPOCH_BYTES:
            return None
        cached = a._cache.get(a._cache_key(plan))
        # this pass's own arrays (writable: handed to torch without another copy), or the cached epoch's (copied)
        arrays = cached if cached is not None else a._finite(a._held_out(plan, a._materialise_epoch(plan), None), -1)
        tensors: tuple[torch.Tensor | None, ...] = tuple(to_tensor(x) for x in arrays)
        if len(tensors) == 1:  # no targets: the weights still say which steps are real
            valid = plan.valid.reshape(-1)
            if a.return_sequences:
                w = (np.arange(plan.timesteps)[None, :] < valid[:, None]).astype(np.float32)
            else:
                w = (valid == plan.timesteps).astype(np.float32)
            tensors = (tensors[0], None, torch.from_numpy(w))
        if self.pin_memory:
            tensors = tuple(None if t is None else t.pin_memory() for t in tensors)
        return tensors

    def _make(self, k: int, epoch: int, reset: np.ndarray) -> LaneBatch | LaneCovariateBatch:
        # several replicas: only this rank's lanes are read (out of core, only their rows), so the
        # batch is already this rank's block (see _to_device)
        block = self.block if self.num_replicas > 1 else slice(None)
        arrays = self.arranged.batch(k, epoch, lanes=self.block) if self.num_replicas > 1 \
            else self.arranged.batch(k, epoch)
        if isinstance(arrays, dict):  # lanes with covariates
            plain = self._make_plain(k, epoch, reset, block, tuple(arrays[key] for key in ("past", "y", "sample_weight")
                                                                    if key in arrays))
            extra = [None if arrays.get(key) is None else to_tensor(arrays[key]) for key in ("static", "future")]
            if self.pin_memory:
                extra = [None if t is None else t.pin_memory() for t in extra]
            return LaneCovariateBatch(*plain, *extra)
        return self._make_plain(k, epoch, reset, block, arrays)

    def _make_plain(self, k: int, epoch: int, reset: np.ndarray, block: slice, arrays: tuple) -> LaneBatch:
        """The :class:`LaneBatch` of batch ``k``'s arrays ``(X, y, w)`` or ``(X,)``."""
        x = to_tensor(arrays[0])
        if len(arrays) > 1:
            y, w = to_tensor(arrays[1]), to_tensor(arrays[2])
        else:  # no targets: the weights still say which steps are real (as the neutral feed computes them)
            w, y = torch.from_numpy(real_step_weights(self.arranged, k, epoch)[block]), None
        r = torch.from_numpy(reset[block])  # a row of this pass's own masks
        if self.pin_memory:
            x, w, r = x.pin_memory(), w.pin_memory(), r.pin_memory()
            y = None if y is None else y.pin_memory()
        return LaneBatch(x, y, w, r)

    def _check_ranks_agree(self) -> None:
        _ranks_agree(self._identity(),
                     "the ranks of this process group arranged different lanes (different data, seeds or options), so "
                     "their blocks of lanes would not be parts of the same batches.",
                     "call arrange_stateful with the same series and options and an explicit seed on every rank.")

    def _to_device(self, b: Any, whole: bool = False) -> Any:
        kind = type(b)  # LaneBatch, or LaneCovariateBatch for lanes with covariates
        if whole and self.num_replicas > 1:  # a whole batch (in memory): this rank's block, as views
            b = kind._make(None if t is None else t[self.block] for t in b)
        if self.device is None:
            return b
        nb = self.pin_memory
        return kind._make(None if t is None else t.to(self.device, non_blocking=nb) for t in b)

    def __iter__(self) -> Iterator[LaneBatch | LaneCovariateBatch]:
        if torch.utils.data.get_worker_info() is not None:
            raise ParameterError(
                "LaneLoader is being read by a DataLoader worker process: each worker would serve the whole epoch "
                "and advance only its own copy of the arrangement, so lanes would repeat and epochs would not be "
                "repacked.", "iterate the LaneLoader directly (prefetch=n reads ahead on a thread), or use "
                "DataLoader(loader, batch_size=None) with num_workers=0.")
        epoch = self.arranged.epoch
        start, self._resume = self._resume, 0
        self.arranged.plan(epoch)  # plan errors surface here, in the caller's thread
        self._pos = pos = [epoch, start]
        if self.prefetch:
            for b in self._prefetched(epoch, start):
                pos[1] += 1  # counted as handed over: state_dict() after this batch resumes at the next one
                yield b
        else:
            views = self._views(epoch, start)
            if views is None:
                for k, reset in self._plan_resets(epoch, start):
                    item = self._make(k, epoch, reset)
                    pos[1] += 1
                    yield self._to_device(item)
            elif self.device is not None or self.num_replicas > 1:
                for b in views:
                    pos[1] += 1
                    yield self._to_device(b, whole=True)
            else:  # views of this pass's own tensors: no copy per batch
                for pos[1], b in enumerate(views, start + 1):  # counted as handed over, as above
                    yield b
        if self._pos is pos:
            self._pos = None
        self.arranged.set_epoch(epoch + 1)

    def _prefetched(self, epoch: int, start: int = 0) -> Iterator[LaneBatch | LaneCovariateBatch]:
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.05)
                    return True
                except queue.Full:
                    continue
            return False

        def produce():  # one thread, batches in order: a FIFO queue cannot reorder them
            try:
                for k, reset in self._plan_resets(epoch, start):
                    if not put(self._make(k, epoch, reset)):
                        return
                put(_END)
            except BaseException as e:  # handed to the consumer, raised there
                put(e)

        thread = threading.Thread(target=produce, name="statebatch-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield self._to_device(item)
        finally:
            stop.set()
            thread.join()

    def __repr__(self) -> str:
        return (f"LaneLoader({len(self)} batches of {self.batch_size} lanes, epoch={self.epoch}"
                f"{', validation' if self.validation else ''}{f', prefetch={self.prefetch}' if self.prefetch else ''})")
