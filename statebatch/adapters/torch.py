"""PyTorch adapter: lanes, lane resets, recurrent state and buckets for ``torch.utils.data``.

Importing this module imports torch. PyTorch has no stateful mode: truncated backpropagation
through time is a loop that carries the hidden state from one batch to the next, detaches it
(``repackage_hidden`` in pytorch/examples' word language model) and must zero the rows whose lane
moves on to a new series. The epoch logic (which lanes reset before batch k, keeping validation
state apart) lives in :mod:`statebatch.schedule`; this module maps it onto torch:

- :class:`LaneLoader` yields an arrangement's batches as ``(x, y, weight, reset)`` tensors, strictly
  in order, optionally pinned and prefetched by one background thread (which cannot reorder).
- :class:`StateCarrier` carries a model's recurrent state (a GRU's ``h``, an LSTM's ``(h, c)``,
  ``(layers * directions, B, H)`` stacks, nested tuples): detaches it and zeroes the rows that reset;
  :meth:`StateCarrier.validation` keeps validation and inference state apart from training state.
- :class:`BucketBatchSampler` (for ``DataLoader(batch_sampler=...)``), :class:`SequenceDataset` and
  :func:`pad_collate` (lengths for ``pack_padded_sequence``, masks) for bucketing; ``set_epoch``
  reshuffles and ``num_replicas``/``rank`` split every epoch's batches between the ranks of a
  distributed run, each rank the same number of distinct batches.
- :class:`WindowDataset`: windows from :func:`~statebatch.make_windows` as a map-style dataset.

Arrays reach torch without a copy where statebatch built them for this batch (they are writable and
share memory with nothing else); read-only arrays (views of the user's data, cached epochs) are
copied, so ``torch.from_numpy`` never warns and a tensor modified in place never writes into the
user's data.
"""

from __future__ import annotations

import contextlib
import itertools
import numbers
import queue
import threading
import warnings
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np
import torch

from .._args import check_bool, check_int, resolve_seed
from ..results.bucketing import Bucketing
from ..results.feed import ResetRecorder as _ResetRecorder
from ..results.feed import lane_block
from ..errors import (BatchIndexError, BatchSizeError, DTypeError, LengthMismatchError, ParameterError, ShapeError,
                     ShuffleError, StatebatchWarning)
from ..plans.base import check_lengths
from ..plans.buckets import BucketPlan, bucket_boundaries, plan_buckets
from ..results.schedule import LaneSchedule, ValidationSchedule
from ..results.stateful import Arranged
from ..results.windows import Windows

__all__ = ["LaneLoader", "LaneBatch", "StateCarrier", "carry", "detach_state", "BucketBatchSampler",
           "SequenceDataset", "SequenceItem", "PaddedBatch", "pad_collate", "WindowDataset", "WindowBatchSampler",
           "to_tensor", "even_batches"]


# --------------------------------------------------------------------------- arrays -> tensors
def to_tensor(a: Any) -> torch.Tensor:
    """A numpy array as a CPU tensor: shared when it is writable (statebatch made it for this batch),
    copied when it is read-only (a view of the user's data or of a cached epoch), so that
    ``torch.from_numpy`` does not warn and in-place tensor ops never reach the user's data.

    A tensor is returned as it is. Anything else is read with ``np.asarray``; dtypes torch has no
    tensor type for (object, strings, datetimes, ``longdouble``) and ragged lists raise
    :class:`~statebatch.DTypeError`.
    """
    if isinstance(a, torch.Tensor):
        return a
    a = _as_array(a, "to_tensor's input")
    if not a.flags.writeable or not (a.flags.c_contiguous or a.flags.f_contiguous) or a.dtype.byteorder == ">":
        a = np.array(a, dtype=a.dtype.newbyteorder("=") if a.dtype.byteorder == ">" else a.dtype, order="C")
    return torch.from_numpy(a)


def _as_array(a: Any, what: str) -> np.ndarray:
    """``np.asarray(a)`` of a dtype torch can hold, else a DTypeError that says what to pass."""
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as e:  # ragged nested lists, objects numpy cannot read
        raise DTypeError(f"{what} is not an array ({type(a).__name__}: {e}).",
                         "pass a numpy array (or list of numbers) of one shape, or a torch tensor.") from None
    if not _torch_dtype_ok(arr.dtype):
        raise DTypeError(f"{what} has dtype {arr.dtype}, which torch has no tensor type for.",
                         "convert it to numbers first, e.g. np.asarray(a, dtype=np.float32) (strings: encode them "
                         "as integer codes).")
    return arr


def _torch_dtype_ok(dtype: np.dtype) -> bool:
    return (dtype.kind in "biu" or (dtype.kind == "f" and dtype.itemsize <= 8)
            or (dtype.kind == "c" and dtype.itemsize <= 16))


def forecast_batch(batch: Any) -> Any:
    """A forecasting batch (the mapping of :meth:`Windows.batch` / ``arrays()`` with forecasting inputs)
    as a :class:`statebatch.forecast.ForecastBatch` named tuple of tensors (``None`` where a key is
    absent): ``past``, ``future``, ``static``, ``y``, ``mask``, ``scale``, ``past_observed``,
    ``y_observed``."""
    from collections.abc import Mapping

    from ..materialise.forecast import FORECAST_KEYS, ForecastBatch

    if not isinstance(batch, Mapping) or not {"past", "future", "static", "y"} <= set(batch):
        raise ParameterError(f"forecast_batch needs a forecasting batch (a mapping with past/future/static/y), got "
                             f"{type(batch).__name__}.", "pass windows.batch(k) of make_windows(..., known_cols=..., ...).")
    extra = [k for k in batch if k not in FORECAST_KEYS]
    if extra:
        raise ParameterError(f"forecast_batch got unknown keys {extra}.", f"pass a batch with keys among {FORECAST_KEYS}.")
    return ForecastBatch(**{k: to_tensor(v) for k, v in batch.items()})


__all__.append("forecast_batch")


def _pin_ok(pin_memory: bool) -> bool:
    """Pinning needs an accelerator; without one it is skipped with a warning, as DataLoader does."""
    if not pin_memory:
        return False
    if torch.cuda.is_available():
        return True
    warnings.warn("pin_memory=True but no CUDA device is available: batches are not pinned.",
                  StatebatchWarning, stacklevel=3)
    return False


def _check_device(device: Any) -> torch.device | None:
    """A device tensors can be moved to on this machine, checked now rather than at the first batch."""
    if device is None:
        return None
    fix = "pass device='cpu', or a device this machine has (torch.cuda.is_available(), torch.cuda.device_count())."
    if isinstance(device, bool) or not isinstance(device, (str, torch.device, numbers.Integral)):
        raise ParameterError(f"device={device!r} ({type(device).__name__}) is not a torch device.", fix)
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as e:
        raise ParameterError(f"device={device!r} is not a torch device ({e}).",
                             "pass e.g. device='cpu', 'cuda' or torch.device('cuda:0').") from None
    if dev.type == "meta":  # meta tensors hold no values: every batch would silently be lost
        raise ParameterError("device='meta' holds no data: every batch would arrive without its values.", fix)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ParameterError(f"device={device!r} but no CUDA device is available (torch.cuda.is_available() is "
                                 "False: no GPU, or torch built without CUDA).", fix)
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ParameterError(f"device={device!r} but this machine has {count} CUDA device(s), "
                                 f"cuda:0..cuda:{count - 1}.", fix)
    try:  # other accelerators (mps, xpu, ...): one tiny move says whether it works here
        torch.zeros(1).to(dev)
    except Exception as e:  # noqa: BLE001 - torch raises RuntimeError or AssertionError depending on the backend
        raise ParameterError(f"device={device!r} cannot be used on this machine ({type(e).__name__}: {e}).",
                             fix) from None
    return dev


# --------------------------------------------------------------------------- lanes
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


_END = object()

def _one_series_epoch(a: Arranged, plan: Any) -> tuple[np.ndarray, ...] | None:
    """One in-memory series in evenly spaced lanes of full chunks (word_language_model's ``batchify`` layout):
    the epoch's inputs (and per-step targets) in batch order as one strided copy of the series each, which
    is what :meth:`Arranged._materialise_epoch` gathers chunk by chunk. ``None`` when the plan is not that."""
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

    def epoch_of(arr: np.ndarray, first: int) -> np.ndarray | None:
        last = first + (b - 1) * lane + n * t  # one past the last row read
        if first < 0 or last > len(arr):
            return None
        rs = arr.strides[0]
        view = np.lib.stride_tricks.as_strided(arr[first:], (n, b, t) + arr.shape[1:],
                                               (t * rs, lane * rs, rs) + arr.strides[1:], writeable=False)
        return view.reshape((n * b, t) + arr.shape[1:])  # the copy, in batch order

    x = epoch_of(src.array, int(step[0, 0]))
    if x is None:
        return None
    if a._ysource is None:
        return (x,)
    if not a.return_sequences or a._ysource.array is None:
        return None
    y = epoch_of(a._ysource.array, int(step[0, 0]) + a._yshift)
    if y is None:
        return None
    return x, y, np.ones((n * b, t), dtype=np.float32)


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
    :class:`StateCarrier` (or zero those rows yourself) before running the batch.

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
            sched = ValidationSchedule(view)
            sched.begin(rec)
            sched.batch_begin(rec, 0)
            masks[0] = rec.take()
            sched.end(rec)
        else:
            sched = LaneSchedule(view, reset_on_epoch_begin=self.reset_on_epoch_begin)
            sched.epoch_begin(rec, epoch)
            sched.batch_begin(rec, 0)
            masks[0] = rec.take()
        return masks

    def _epoch_tensors(self, epoch: int) -> tuple[torch.Tensor, ...] | None:
        """The whole epoch as tensors ``(x, y, weight)`` in batch order (batch ``k`` = rows ``k*B:(k+1)*B``), so
        that every batch is a view: in-memory data, batches of one length, at most ``_VIEW_EPOCH_BYTES``.
        The tensors are this pass's own (made for it, or copied from a read-only cached epoch), so a batch
        changed in place never reaches the user's data or a later epoch. ``None``: batch by batch instead."""
        a = self.arranged
        plan = a.plan(epoch)
        if plan.batch_steps is not None or a._reader("x", a._ss.source) is not None or not plan.n_batches:
            return None
        rows = plan.n_batches * plan.batch_size
        per_row = plan.timesteps * a.n_features * a._ss.source.dtype.itemsize
        if rows * per_row * (2 if a.has_targets else 1) > _VIEW_EPOCH_BYTES:
            return None
        cached = a._cache.get(a._cache_key(plan))
        if cached is not None:
            arrays = cached
        else:  # this pass's own arrays (writable: handed to torch without another copy)
            arrays = _one_series_epoch(a, plan)
            if arrays is None:
                arrays = a._finite(a._held_out(plan, a._materialise_epoch(plan), None), -1)
        a._served = plan.epoch
        tensors = tuple(to_tensor(x) for x in arrays)
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

    def _make(self, k: int, epoch: int, reset: np.ndarray) -> LaneBatch:
        # several replicas: only this rank's lanes are read (out of core, only their rows), so the
        # batch is already this rank's block (see _to_device)
        block = self.block if self.num_replicas > 1 else slice(None)
        arrays = self.arranged.batch(k, epoch, lanes=self.block) if self.num_replicas > 1 \
            else self.arranged.batch(k, epoch)
        x = to_tensor(arrays[0])
        if len(arrays) > 1:
            y, w = to_tensor(arrays[1]), to_tensor(arrays[2])
        else:  # no targets: the weights still say which steps are real
            plan = self.arranged.plan(epoch)
            valid = plan.valid[k][block]
            if self.arranged.return_sequences:
                w = torch.from_numpy((np.arange(plan.batch_length(k))[None, :] < valid[:, None]).astype(np.float32))
            else:
                w = torch.from_numpy((valid == plan.batch_length(k)).astype(np.float32))
            y = None
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

    def _to_device(self, b: LaneBatch, whole: bool = False) -> LaneBatch:
        if whole and self.num_replicas > 1:  # a whole batch (in memory): this rank's block, as views
            b = LaneBatch(*(None if t is None else t[self.block] for t in b))
        if self.device is None:
            return b
        nb = self.pin_memory
        return LaneBatch(*(None if t is None else t.to(self.device, non_blocking=nb) for t in b))

    def __iter__(self) -> Iterator[LaneBatch]:
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
            n = self.arranged.plan(epoch).n_batches
            whole = self._epoch_tensors(epoch) if start < n else None
            if whole is None:
                for k, reset in self._plan_resets(epoch, start):
                    b = self._make(k, epoch, reset)
                    pos[1] += 1
                    yield self._to_device(b)
            else:  # views of this pass's own epoch tensors, split by one unbind each: no copy per batch
                r = torch.from_numpy(self._reset_masks(epoch))
                parts = [(None,) * n if t is None else t.view((n, self.batch_size) + tuple(t.shape[1:])).unbind(0)
                         for t in whole] + [(r.pin_memory() if self.pin_memory else r).unbind(0)]
                make, move = LaneBatch._make, self.device is not None or self.num_replicas > 1
                for b in itertools.islice(zip(*parts), start, None):
                    pos[1] += 1
                    yield self._to_device(make(b), whole=True) if move else make(b)
        if self._pos is pos:
            self._pos = None
        self.arranged.set_epoch(epoch + 1)

    def _prefetched(self, epoch: int, start: int = 0) -> Iterator[LaneBatch]:
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


# --------------------------------------------------------------------------- recurrent state
def _map_state(state: Any, fn) -> Any:
    """Apply ``fn`` to every tensor of a (nested) state: tensors, tuples, lists, named tuples, dicts."""
    if state is None:
        return None
    if isinstance(state, torch.Tensor):
        return fn(state)
    if isinstance(state, dict):
        return {k: _map_state(v, fn) for k, v in state.items()}
    if isinstance(state, tuple) and hasattr(state, "_fields"):
        return type(state)(*(_map_state(s, fn) for s in state))
    if isinstance(state, (tuple, list)):
        return type(state)(_map_state(s, fn) for s in state)
    raise ParameterError(f"a recurrent state holds a {type(state).__name__}; expected tensors, possibly nested in "
                         "tuples, lists or dicts.", "pass the state the model returned (e.g. h, or (h, c)).")


def _checked_state(state: Any, batch_dim: int, what: str) -> Any:
    """A (nested) state whose tensors all have one lane count on ``batch_dim``; errors name ``what``."""
    lanes: set[int] = set()

    def one(t: torch.Tensor) -> torch.Tensor:
        if t.ndim == 0 or not -t.ndim <= batch_dim < t.ndim:
            raise ShapeError(f"{what} holds a tensor of shape {tuple(t.shape)} with no axis {batch_dim} for lanes.",
                             "pass batch_dim=1 for nn.RNN/GRU/LSTM states, 0 for (batch, hidden) cell states.")
        lanes.add(int(t.shape[batch_dim]))
        return t

    _map_state(state, one)
    if len(lanes) > 1:
        raise BatchSizeError(f"{what} holds tensors with different lane counts {sorted(lanes)} on axis {batch_dim}.",
                             "every tensor of a recurrent state needs one row per lane; pass the state the model "
                             "returned.")
    return state


def detach_state(state: Any) -> Any:
    """The state cut from the graph of the batches before it (``repackage_hidden``), nested or not."""
    return _map_state(state, lambda t: t.detach())


def _reset_mask(reset: Any) -> torch.Tensor:
    """``reset`` as a 1-D bool tensor (one flag per lane), else a ParameterError saying what to pass."""
    fix = "pass the reset tensor the LaneLoader yields with each batch (a 1-D bool mask, one flag per lane)."
    if isinstance(reset, torch.Tensor):
        r = reset
    else:
        try:
            arr = np.asarray(reset)
        except (ValueError, TypeError) as e:
            raise ParameterError(f"reset is not a mask ({type(reset).__name__}: {e}).", fix) from None
        if arr.dtype != bool:
            raise ParameterError(f"reset must be a 1-D boolean mask with one flag per lane, got dtype {arr.dtype} and "
                                 f"shape {arr.shape}.", fix + " For lane indices use StateCarrier.zero(rows).")
        r = torch.from_numpy(np.array(arr, dtype=bool))
    if r.ndim != 1 or r.dtype != torch.bool:
        raise ParameterError(f"reset must be a 1-D boolean mask with one flag per lane, got dtype {r.dtype} and shape "
                             f"{tuple(r.shape)}.", fix)
    return r


def _check_rows(rows: Any, lanes: int | None) -> np.ndarray | None:
    """Lane indices for :meth:`StateCarrier.zero`: ``None`` (every lane), or integers in ``0 .. lanes - 1``.

    Negative indices are refused rather than counted from the end: a lane is a position in the batch,
    and ``-1`` is far more often an off-by-one than "the last lane". Bools and floats are refused too
    (a mask or a float index would silently pick other lanes)."""
    if rows is None:
        return None
    fix = "pass lane indices 0 .. batch_size - 1 (e.g. rows=[0, 3]), or rows=None for every lane; for a bool mask " \
          "use np.flatnonzero(mask)."
    if isinstance(rows, torch.Tensor):
        rows = rows.detach().cpu().numpy()
    if isinstance(rows, (str, bytes, dict, set, frozenset)):
        raise ParameterError(f"rows must be lane indices, got a {type(rows).__name__}.", fix)
    try:
        arr = np.asarray(rows)
    except (ValueError, TypeError) as e:
        raise ParameterError(f"rows must be lane indices, got {type(rows).__name__} ({e}).", fix) from None
    if arr.size and (arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer)):
        raise ParameterError(f"rows must be integer lane indices, got dtype {arr.dtype}.", fix)
    if arr.ndim > 1:
        raise ParameterError(f"rows must be a flat list of lane indices, got shape {arr.shape}.", fix)
    arr = arr.astype(np.int64).reshape(-1)
    if arr.size and arr.min() < 0:
        raise ParameterError(f"rows {arr[arr < 0][:5].tolist()} are negative: lanes count from 0.", fix)
    if lanes is not None and arr.size and arr.max() >= lanes:
        raise BatchIndexError(f"rows {arr[arr >= lanes][:5].tolist()} are outside 0..{lanes - 1} (the state has "
                              f"{lanes} lanes).", fix)
    return arr


def carry(state: Any, reset: Any, *, batch_dim: int = 1) -> Any:
    """Carry a recurrent state into the next batch: detach it and zero the rows (lanes) that reset.

    Parameters
    ----------
    state : tensor or nested tuple/list/dict of tensors, or None
        What the model returned: a GRU's ``h`` or an LSTM's ``(h, c)``, each ``(layers * directions,
        batch_size, hidden)`` for ``nn.RNN``/``nn.GRU``/``nn.LSTM`` (also with ``batch_first=True``);
        custom cells often keep ``(batch_size, hidden)``: pass ``batch_dim=0``. ``None`` (zero state)
        stays ``None``.
    reset : bool tensor or array ``(batch_size,)``, as yielded by :class:`LaneLoader`.
    batch_dim : int
        The axis of every state tensor that indexes lanes.

    Returns
    -------
    The state with the same structure, detached; rows ``reset`` are zero. The input is not modified.
    """
    r = _reset_mask(reset)
    batch_dim = check_int("batch_dim", batch_dim)

    def one(t: torch.Tensor) -> torch.Tensor:
        t = t.detach()
        if t.ndim == 0 or not -t.ndim <= batch_dim < t.ndim:
            raise ShapeError(f"a state tensor of shape {tuple(t.shape)} has no axis {batch_dim} to hold lanes.",
                             "pass batch_dim=1 for nn.RNN/GRU/LSTM states (layers * directions, batch, hidden), "
                             "batch_dim=0 for (batch, hidden).")
        if t.shape[batch_dim] != len(r):
            raise BatchSizeError(
                f"a state tensor of shape {tuple(t.shape)} has {t.shape[batch_dim]} rows on axis {batch_dim} but the "
                f"batch has {len(r)} lanes.",
                "pass batch_dim=1 for nn.RNN/GRU/LSTM states (layers * directions, batch, hidden) and batch_dim=0 "
                "for (batch, hidden) cell states; the model's state must have one row per lane.")
        if not bool(r.any()):
            return t
        shape = [1] * t.ndim
        shape[batch_dim] = len(r)
        keep = (~r).to(t.device).view(shape)
        return torch.where(keep, t, torch.zeros((), dtype=t.dtype, device=t.device))

    return _map_state(state, one)


class StateCarrier:
    """Carries a model's recurrent state across the batches of a :class:`LaneLoader` (truncated BPTT).

    A :class:`~statebatch.schedule.StateHandle` (``zero``, ``snapshot``, ``restore``) over the state::

        carrier = StateCarrier()
        for x, y, w, reset in loader:
            out, h = model(x, carrier(reset))   # detached, reset rows zeroed (None = zeros at first)
            carrier.update(h)
            ...
        with carrier.validation(val_loader):     # training state saved, validation from zero
            for x, y, w, reset in val_loader:
                out, h = model(x, carrier(reset)); carrier.update(h)
        # training state restored here

    Parameters
    ----------
    batch_dim : int
        The lanes axis of every state tensor: 1 for ``nn.RNN``/``nn.GRU``/``nn.LSTM`` (their state is
        ``(layers * directions, batch, hidden)`` even with ``batch_first=True``), 0 for ``(batch,
        hidden)`` cell states.
    """

    def __init__(self, *, batch_dim: int = 1):
        self.batch_dim = check_int("batch_dim", batch_dim)
        self.state: Any = None

    def __call__(self, reset: Any) -> Any:
        """The state to run the next batch from: detached, rows ``reset`` zeroed (``None`` = zeros)."""
        r = _reset_mask(reset)
        if self.state is not None and bool(r.all()):
            self.state = None  # every lane starts from zero: the model's own zero state
        self.state = carry(self.state, r, batch_dim=self.batch_dim)
        return self.state

    def update(self, state: Any) -> None:
        """Keep the state the model returned for the next batch (detached: the graph is not kept)."""
        self.state = detach_state(_checked_state(state, self.batch_dim, "the state given to update()"))

    # -- StateHandle
    def zero(self, rows: Any = None) -> None:
        """Zero the state of lanes ``rows`` (integers ``0 .. batch_size - 1``; ``None``: every lane)."""
        rows = _check_rows(rows, None if self.state is None else self._lanes())
        if rows is None or self.state is None:
            self.state = None
            return
        mask = np.zeros(self._lanes(), dtype=bool)
        mask[rows] = True
        self.state = carry(self.state, mask, batch_dim=self.batch_dim)

    def _lanes(self) -> int:
        found: list[int] = []
        _map_state(self.state, lambda t: found.append(int(t.shape[self.batch_dim])))
        return found[0]

    def snapshot(self) -> tuple:
        # a tuple even for the zero state (None), so that the schedule always restores it
        return ("state", _map_state(self.state, lambda t: t.detach().clone()))

    def restore(self, snapshot: tuple) -> None:
        if not (isinstance(snapshot, tuple) and len(snapshot) == 2 and snapshot[0] == "state"):
            raise ParameterError(f"restore() takes what snapshot() returned, got {type(snapshot).__name__}.",
                                 "pass carrier.snapshot()'s value; to load a checkpoint use load_state_dict().")
        self.state = _checked_state(snapshot[1], self.batch_dim, "the snapshot")

    # -- checkpoints (the torchdata StatefulDataLoader convention)
    def state_dict(self) -> dict[str, Any]:
        """``{"batch_dim", "state"}``: the lane states (cloned tensors, nested as the model returned them;
        ``None`` = every lane at zero). With :meth:`LaneLoader.state_dict` this is all the reset logic
        needs: the loader's next reset mask is a function of its epoch and batch, applied to this state."""
        return {"batch_dim": self.batch_dim, "state": _map_state(self.state, lambda t: t.detach().clone())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Put back a :meth:`state_dict` (checked: tensors only, one lane count, the same ``batch_dim``)."""
        fix = "pass what StateCarrier.state_dict() returned (e.g. from torch.load of the checkpoint)."
        if not isinstance(state, dict) or set(state) != {"batch_dim", "state"}:
            raise ParameterError(f"a StateCarrier state is a dict with 'batch_dim' and 'state', got "
                                 f"{type(state).__name__}{_keys_of(state)}.",
                                 fix)
        if state["batch_dim"] != self.batch_dim:
            raise ParameterError(f"the state was saved with batch_dim={state['batch_dim']!r}, this carrier has "
                                 f"batch_dim={self.batch_dim}.", f"build the carrier with StateCarrier(batch_dim="
                                 f"{state['batch_dim']!r}) as the saved run did.")
        checked = _checked_state(state["state"], self.batch_dim, "the loaded state")
        self.state = _map_state(checked, lambda t: t.detach().clone())

    @contextlib.contextmanager
    def validation(self, data: Any = None):
        """Keep validation (or inference) state apart from training state, as Keras' callback does.

        Inside the block the carrier starts from zero, or from the training state when ``data``
        continues the training lanes (a :class:`LaneLoader` or :class:`~statebatch.Arranged` from
        :meth:`Arranged.split`); on leaving, the training state is put back.
        """
        if data is None:
            saved = self.snapshot()
            self.state = None
            try:
                yield self
            finally:
                self.restore(saved)
            return
        sched = ValidationSchedule(data.arranged if isinstance(data, LaneLoader) else data)
        sched.begin(self)
        try:
            yield self
        finally:
            sched.end(self)

    def __repr__(self) -> str:
        shapes = []
        _map_state(self.state, lambda t: shapes.append(tuple(t.shape)))
        return f"StateCarrier(batch_dim={self.batch_dim}, state={shapes if shapes else 'zero'})"


# --------------------------------------------------------------------------- bucketing
def _split_batch(idx: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two batches from one: the shorter half and the longer half of its members (least padding)."""
    order = idx[np.argsort(lengths[idx], kind="stable")]
    half = len(order) // 2
    return order[:half], order[half:]


def even_batches(plan: BucketPlan, num_replicas: int) -> list[np.ndarray]:
    """An epoch's batches, as many as a multiple of ``num_replicas`` and at least one per replica.

    Every sequence stays in exactly one batch. Where the count does not divide, the largest batches
    are split in two (shorter and longer half) up to the next multiple; only when there are too few
    sequences for that (batches of one sequence) are the smallest batches merged down to the
    multiple below instead, so such a batch may exceed ``batch_size``. Raises when there are fewer
    sequences than replicas.
    """
    if not isinstance(plan, BucketPlan):
        raise ParameterError(f"even_batches needs a bucket plan, got {type(plan).__name__}.",
                             "pass statebatch.plan_buckets(...) or bucketing.plan(epoch).")
    num_replicas = check_int("num_replicas", num_replicas, 1)
    batches = [np.asarray(b, dtype=np.int64) for b in plan.batches]
    n_seq = sum(len(b) for b in batches)
    if n_seq < num_replicas:
        raise ParameterError(
            f"{n_seq} sequences in this epoch's batches cannot give each of {num_replicas} replicas a batch.",
            "use fewer replicas or more sequences.")
    up = max(num_replicas, -(-len(batches) // num_replicas) * num_replicas)
    if n_seq >= up:
        while len(batches) < up:
            j = max(range(len(batches)), key=lambda i: (len(batches[i]), int(plan.lengths[batches[i]].max())))
            a, b = _split_batch(batches[j], plan.lengths)
            batches[j:j + 1] = [a, b]
        return batches
    down = len(batches) // num_replicas * num_replicas  # >= num_replicas, since n_seq >= num_replicas
    while len(batches) > down:
        order = sorted(range(len(batches)), key=lambda i: len(batches[i]))
        i, j = sorted(order[:2])
        batches[i] = np.concatenate([batches[i], batches[j]])
        del batches[j]
    return batches


def _ranks_agree(mine: Any, problem: str, fix: str) -> None:
    """Every rank of the process group holds the same ``mine`` (what determines its plan), else an error."""
    every: list = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(every, mine)
    if any(e != mine for e in every):
        raise ParameterError(problem, fix)


def _distributed() -> tuple[int, int] | None:
    """``(world_size, rank)`` of an initialised process group, else None."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return None


class _ResumableBatches:
    """Epoch and position of a batch sampler, for ``state_dict``/``load_state_dict`` (the torchdata
    ``StatefulDataLoader`` convention). The batches of an epoch are a pure function of the sampler's data,
    options, seed and the epoch, so ``(epoch, batches handed out)`` is the whole state; ``_identity()``
    describes the rest, so that a state is not loaded into a sampler that would plan other batches."""

    epoch: int = 0
    _resume: int = 0
    _pos: list | None = None

    def _identity(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _epoch_batches(self) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def set_epoch(self, epoch: int) -> None:
        """Serve ``epoch``'s batches (reshuffled) from now on. After :meth:`load_state_dict`, setting the
        loaded epoch again keeps the resume point (a resumed loop calls ``set_epoch`` at its top)."""
        epoch = check_int("epoch", epoch, 0)
        if epoch != self.epoch:
            self._resume = 0
        self.epoch, self._pos = epoch, None

    def _served(self, batches: list, convert) -> Iterator:
        start, self._resume = self._resume, 0
        self._pos = pos = [self.epoch, start]
        for b in batches[start:]:
            pos[1] += 1  # counted as handed over: a state taken after this batch resumes at the next one
            yield convert(b)
        if self._pos is pos:
            self._pos = None

    def state_dict(self) -> dict[str, Any]:
        """``{"epoch", "batch", "sampler"}``: ``batch`` = batches of ``epoch`` handed out so far. Exact when the
        ``DataLoader`` fetches in the training process (``num_workers=0``): worker processes ask for batches
        ahead of the ones the loop has received."""
        epoch, batch = self._pos if self._pos is not None else (self.epoch, self._resume)
        return {"epoch": int(epoch), "batch": int(batch), "sampler": self._identity()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`: the next pass serves the rest of the saved epoch, exactly."""
        name = type(self).__name__
        fix = f"pass what {name}.state_dict() returned for a sampler built with the same call."
        if not isinstance(state, dict) or not {"epoch", "batch", "sampler"} <= set(state):
            raise ParameterError(f"a {name} state is a dict with 'epoch', 'batch' and 'sampler', got "
                                 f"{type(state).__name__}.", fix)
        epoch = check_int("the state's epoch", state["epoch"], 0)
        batch = check_int("the state's batch", state["batch"], 0)
        _same_identity(self._identity(), state["sampler"], "sampler",
                       "build the sampler from the same data and options (seed included) before loading.")
        self.epoch, self._pos = epoch, None
        n = len(self._epoch_batches())
        if batch > n:
            raise ParameterError(f"the state's batch {batch} is beyond epoch {epoch}'s {n} batches.", fix)
        self._resume = batch


def _keys_of(state: Any) -> str:
    return f" with keys {sorted(map(str, state))}" if isinstance(state, dict) else ""


def _same_identity(mine: dict, theirs: Any, what: str, fix: str) -> None:
    if isinstance(theirs, dict) and theirs == mine:
        return
    keys = sorted(k for k in set(mine) | set(theirs if isinstance(theirs, dict) else {})
                  if not isinstance(theirs, dict) or mine.get(k) != theirs.get(k))
    raise ParameterError(f"the state was saved for another {what} (differs in {', '.join(keys)}): the batches after "
                         "it would not be the ones the saved run was to see.", fix)


def _crc(a: Any) -> int:
    """A checksum of integer data that is the same in every process (unlike ``hash()``)."""
    import zlib

    return int(zlib.crc32(np.ascontiguousarray(np.asarray(a, dtype=np.int64)).tobytes()))


class BucketBatchSampler(_ResumableBatches, torch.utils.data.Sampler):
    """Bucketed batches of sequence indices for ``DataLoader(dataset, batch_sampler=..., collate_fn=...)``.

    The batches are those of statebatch's bucket plan (sequences of similar length, reshuffled per
    epoch as a pure function of ``seed`` and the epoch). Call ``set_epoch(epoch)`` at the start of
    every epoch to reshuffle (the ``DistributedSampler`` convention; without it every epoch repeats
    the same batches).

    Distributed data parallel: with ``num_replicas`` ranks, every rank plans the same epoch (the same
    seed on every rank, checked across an initialised process group) and takes every
    ``num_replicas``-th batch from its ``rank``; when the batch count does not divide, the largest
    batches are split in two first, so every rank gets the same number of distinct batches and every
    sequence is in exactly one of them each epoch (nothing is repeated or dropped).

    Parameters
    ----------
    data : Bucketing or sequence of int
        A :func:`statebatch.bucket_batches` result (its batch size, mode, seed...), or the sequences'
        lengths, planned with ``batch_size`` and ``**plan_kwargs`` of
        :func:`statebatch.plan_buckets`.
    batch_size : int
        With lengths only.
    num_replicas, rank : int, optional
        Default: the initialised process group's world size and rank, else 1 and 0.
    seed : int, optional
        With lengths only; required when ``num_replicas > 1`` (each rank would draw its own).
    """

    def __init__(self, data: Any, batch_size: int | None = None, *, num_replicas: int | None = None,
                 rank: int | None = None, seed: int | None = None, **plan_kwargs):
        group = _distributed()
        self.num_replicas = check_int("num_replicas", group[0] if num_replicas is None and group else
                                      (1 if num_replicas is None else num_replicas), 1)
        self.rank = check_int("rank", group[1] if rank is None and group else (0 if rank is None else rank), 0)
        if self.rank >= self.num_replicas:
            raise ParameterError(f"rank={self.rank} is outside 0..{self.num_replicas - 1} (num_replicas="
                                 f"{self.num_replicas}).", "pass a rank below num_replicas.")
        if isinstance(data, Bucketing):
            if batch_size is not None or seed is not None or plan_kwargs:
                raise ParameterError("batch_size, seed and planning options belong to the Bucketing when one is given.",
                                     "pass them to statebatch.bucket_batches, or give lengths instead.")
            self.bucketing: Bucketing | None = data
            self.batch_size = data.batch_size
            self.seed = data.seed
            self.lengths = np.asarray(data.lengths)
        else:
            self.bucketing = None
            if batch_size is None:
                raise ParameterError("batch_size is needed when the sampler is given lengths.",
                                     "pass batch_size=..., or a statebatch.bucket_batches(...) result.")
            if seed is None and self.num_replicas > 1:
                raise ParameterError(
                    f"num_replicas={self.num_replicas} without a seed: each rank would draw its own and plan "
                    "different batches, so sequences would repeat on some ranks and be missed on others.",
                    "pass the same seed=... on every rank.")
            self.batch_size = check_int("batch_size", batch_size, 1)
            self.seed = resolve_seed(seed)
            self.lengths = check_lengths(data)
            self._kwargs = dict(plan_kwargs)
            if self._kwargs.get("mode") == "buckets" and self._kwargs.get("boundaries") is None:
                # as bucket_batches does: boundaries that minimise padding (n_buckets of them, or chosen)
                self._kwargs["boundaries"] = bucket_boundaries(self.lengths, self._kwargs.pop("n_buckets", None))
            self._plan_of(0)  # errors in the options surface here
        self.epoch = 0
        if group and self.num_replicas > 1:
            self._check_ranks_agree()

    def _plan_of(self, epoch: int) -> BucketPlan:
        if self.bucketing is not None:
            return self.bucketing.plan(epoch)
        try:
            return plan_buckets(self.lengths, self.batch_size, seed=self.seed, epoch=epoch, **self._kwargs)
        except TypeError as e:
            raise ParameterError(f"unknown planning option ({e}).",
                                 "pass options of statebatch.plan_buckets (mode, bin_width, shuffle, ...).") from None

    def _check_ranks_agree(self) -> None:
        plan = self._plan_of(0)
        import hashlib

        digest = hashlib.sha1()  # not hash(): Python salts it per process
        for b in plan.batches:
            digest.update(np.asarray(b, dtype=np.int64).tobytes() + b"|")
        _ranks_agree((len(self.lengths), int(self.lengths.sum()), self.batch_size, digest.hexdigest()),
                     "the ranks of this process group planned different batches (different seeds, lengths or options), "
                     "so sequences would repeat on some ranks and be missed on others.",
                     "build the sampler (or the Bucketing) with the same data, options and an explicit seed on every "
                     "rank.")

    def batches(self, epoch: int | None = None) -> list[np.ndarray]:
        """This rank's batches of ``epoch`` (default: the current one), as index arrays."""
        epoch = self.epoch if epoch is None else check_int("epoch", epoch, 0)
        return even_batches(self._plan_of(epoch), self.num_replicas)[self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        return self._served(self.batches(), lambda b: b.tolist())

    _epoch_batches = batches

    def _identity(self) -> dict[str, Any]:
        kwargs = {} if self.bucketing is not None else {k: repr(v) for k, v in sorted(self._kwargs.items())}
        return {"n_sequences": int(len(self.lengths)), "lengths_crc32": _crc(self.lengths),
                "batch_size": int(self.batch_size), "seed": int(self.seed), "num_replicas": self.num_replicas,
                "rank": self.rank, "options": kwargs if self.bucketing is None else {
                    k: repr(np.asarray(v).tolist() if isinstance(v, np.ndarray) else v)
                    for k, v in ((k, getattr(self.bucketing, k, None)) for k in (
                        "mode", "bin_width", "boundaries", "pool_batches", "shuffle", "token_budget", "remainder",
                        "pad_to"))}}

    def __len__(self) -> int:
        return len(self.batches())

    def __repr__(self) -> str:
        return (f"BucketBatchSampler({len(self)} batches of up to {self.batch_size}, epoch={self.epoch}, "
                f"rank {self.rank} of {self.num_replicas})")


class SequenceItem(NamedTuple):
    """One sequence of a :class:`SequenceDataset`: ``x`` ``(length, features)``, ``y`` (per sequence
    ``(...)`` or per step ``(length, ...)``; ``None`` without targets) and its position ``index``."""

    x: torch.Tensor
    y: torch.Tensor | None
    index: int


class PaddedBatch(NamedTuple):
    """A padded batch from :func:`pad_collate`.

    Attributes
    ----------
    x : tensor ``(batch, longest, features)``, padded with ``pad_value``
    y : per sequence ``(batch, ...)``; per step ``(batch, longest, ...)`` padded; ``None`` without targets
    weight : float32 ``(batch, longest)``, 1 on real steps (per-step targets), else ``None``
    lengths : int64 CPU tensor ``(batch,)``: for ``pack_padded_sequence(x, lengths, batch_first=True,
        enforce_sorted=False)``
    mask : bool ``(batch, longest)``, True on real steps
    indices : int64 ``(batch,)``: the sequences' positions (to map outputs back)
    """

    x: torch.Tensor
    y: torch.Tensor | None
    weight: torch.Tensor | None
    lengths: torch.Tensor
    mask: torch.Tensor
    indices: torch.Tensor


def _pad(tensors: Sequence[torch.Tensor], longest: int, padding: str, pad_value: float) -> torch.Tensor:
    first = tensors[0]
    out = torch.full((len(tensors), longest) + tuple(first.shape[1:]), pad_value, dtype=first.dtype)
    for i, t in enumerate(tensors):
        n = t.shape[0]
        if padding == "post":
            out[i, :n] = t
        else:
            out[i, longest - n:] = t
    return out


def pad_collate(items: Sequence[Any], *, padding: str = "post", pad_value: float = 0.0,
                per_step: bool = False) -> PaddedBatch:
    """Pad a list of sequences ``(x, y, index)`` (as :class:`SequenceDataset` gives them) into a batch.

    Parameters
    ----------
    items : list of ``(x, y, index)``; ``x`` ``(length_i, features)``
    padding : "post" or "pre"
    pad_value : float
    per_step : bool
        ``y`` holds one target per step (padded like ``x``, with ``weight``); else one per sequence
        (stacked). :attr:`SequenceDataset.collate` sets it from the bucketing.
    """
    if not isinstance(padding, str) or padding not in ("post", "pre"):
        raise ParameterError(f"padding={padding!r} is not 'post' or 'pre'.", "pass padding='post' or 'pre'.")
    if isinstance(pad_value, bool) or not isinstance(pad_value, (numbers.Real, np.integer, np.floating)):
        raise ParameterError(f"pad_value must be a number, got {pad_value!r} ({type(pad_value).__name__}).",
                             "pass e.g. pad_value=0.0.")
    per_step = check_bool("per_step", per_step)
    gathered = getattr(items, "gathered", None)
    if gathered is not None and gathered[1:] == (padding, pad_value, per_step):
        return gathered[0]  # SequenceDataset.__getitems__ already padded the batch in one gather
    items = _check_items(items)
    xs = [to_tensor(it[0]) if not isinstance(it[0], torch.Tensor) else it[0] for it in items]
    if any(x.ndim == 0 for x in xs):
        raise ShapeError("a sequence is a scalar.", "pass sequences of shape (length, features).")
    _check_alike(xs, "sequences", "x")
    if not xs[0].is_floating_point() and not xs[0].is_complex() and float(pad_value) != int(pad_value):
        raise ParameterError(f"pad_value={pad_value!r} does not fit the sequences' dtype {xs[0].dtype}.",
                             "pass an integer pad_value for integer sequences (e.g. token id 0).")
    lengths = torch.tensor([x.shape[0] for x in xs], dtype=torch.int64)
    longest = int(lengths.max())
    x = _pad(xs, longest, padding, pad_value)
    steps = torch.arange(longest)
    mask = steps[None, :] < lengths[:, None] if padding == "post" else steps[None, :] >= (longest - lengths)[:, None]
    ys = [it[1] for it in items]
    y = weight = None
    if any(v is not None for v in ys):
        if any(v is None for v in ys):
            raise LengthMismatchError("some sequences of the batch have targets and some do not.",
                                      "give every sequence a target, or none.")
        ys = [v if isinstance(v, torch.Tensor) else to_tensor(v) for v in ys]
        if len({v.dtype for v in ys}) > 1:
            raise DTypeError(f"targets of the batch differ in dtype ({sorted({str(v.dtype) for v in ys})}).",
                             "give every sequence targets of one dtype.")
        if per_step:
            bad = [i for i, (v, n) in enumerate(zip(ys, lengths.tolist())) if v.ndim == 0 or v.shape[0] != n]
            if bad:
                raise LengthMismatchError(f"per_step=True but the targets of item {bad[0]} do not have one row per "
                                          "step.", "pass per_step=False for one target per sequence.")
            y = _pad(ys, longest, padding, pad_value)
            weight = mask.to(torch.float32)
        else:
            if len({tuple(v.shape) for v in ys}) > 1:
                raise LengthMismatchError("targets of the batch differ in shape, so they do not stack into one "
                                          "per-sequence target.", "pass per_step=True for one target per step.")
            y = torch.stack(ys)
    indices = torch.tensor([_item_index(it[2]) for it in items], dtype=torch.int64)
    return PaddedBatch(x, y, weight, lengths, mask, indices)


def _check_items(items: Any) -> Sequence:
    """A non-empty sequence of ``(x, y, index)`` items, as :class:`SequenceDataset` gives them."""
    fix = "pass a list of (x, y, index) items, as SequenceDataset gives them (y may be None)."
    if isinstance(items, (str, bytes, np.ndarray, torch.Tensor)) or not isinstance(items, Sequence):
        raise ParameterError(f"pad_collate needs a list of (x, y, index) items, got {type(items).__name__}.", fix)
    if not len(items):
        raise ParameterError("pad_collate got an empty batch.", "give it at least one sequence.")
    for j, it in enumerate(items):
        if not isinstance(it, (tuple, list)) or len(it) != 3:
            raise ParameterError(f"item {j} of the batch is a {type(it).__name__}"
                                 f"{f' of {len(it)} parts' if isinstance(it, (tuple, list)) else ''}, not (x, y, "
                                 "index).",
                                 fix)
    return items


def _check_alike(ts: Sequence[torch.Tensor], what: str, name: str) -> None:
    """Tensors that pad into one batch: one dtype, one shape after the time axis."""
    if len({t.dtype for t in ts}) > 1:
        raise DTypeError(f"the {what} of the batch differ in dtype ({sorted({str(t.dtype) for t in ts})}): padding "
                         f"into the first one's dtype would silently convert the others.",
                         f"give every sequence's {name} one dtype (e.g. float32).")
    shapes = {tuple(t.shape[1:]) for t in ts}
    if len(shapes) > 1:
        raise ShapeError(f"the {what} of the batch differ in shape after the time axis ({sorted(shapes)}).",
                         f"give every sequence's {name} the shape (length, features) with the same features.")


def _item_index(i: Any) -> int:
    if isinstance(i, torch.Tensor) and i.ndim == 0 and not i.is_floating_point() and i.dtype != torch.bool:
        return int(i)
    if isinstance(i, bool) or not isinstance(i, (numbers.Integral, np.integer)):
        raise ParameterError(f"an item's index is {i!r} ({type(i).__name__}), not an integer.",
                             "give each item its integer position (SequenceDataset does).")
    return int(i)


def _positions(idx: Any, n: int, what: str) -> np.ndarray:
    """Item indices of a map-style dataset of ``n`` items (negative ones count from the end)."""
    # the common cases first, checked with two reductions: a batch sampler's index array, a list of ints
    try:
        arr = np.asarray(idx) if type(idx) is list else idx
    except (ValueError, TypeError):  # ragged nested lists: the checks below say what is wrong
        arr = None
    if isinstance(arr, np.ndarray) and arr.ndim == 1 and arr.dtype.kind in "iu" and arr.size:
        if 0 <= arr.min() and arr.max() < n:
            return arr.astype(np.int64, copy=False)
    fix = f"pass a flat list of integer {what} indices 0 .. len(dataset) - 1."
    if isinstance(idx, torch.Tensor):
        idx = idx.detach().cpu().numpy()
    if isinstance(idx, (str, bytes, dict, set, frozenset)) or not (hasattr(idx, "__len__") or hasattr(idx, "__iter__")):
        raise ParameterError(f"{what} indices must be a list of integers, got {type(idx).__name__}.", fix)
    try:
        idx = np.asarray(idx if isinstance(idx, (np.ndarray, list)) else list(idx))
        if idx.dtype == object:  # e.g. a list mixing ints and lists: not a flat list of integers
            raise ValueError("mixed or nested entries")
    except (ValueError, TypeError) as e:
        raise ParameterError(f"{what} indices are not a flat list of integers ({e}).", fix) from None
    if idx.size and (idx.dtype == bool or not np.issubdtype(idx.dtype, np.integer)):
        raise ParameterError(f"{what} indices must be integers, got dtype {idx.dtype}.", fix)
    if idx.ndim > 1:
        raise ParameterError(f"{what} indices must be a flat list, got shape {idx.shape}.", fix)
    idx = idx.astype(np.int64).reshape(-1)
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise BatchIndexError(f"{what} indices {idx[(idx < -n) | (idx >= n)][:5].tolist()} are outside 0..{n - 1}.",
                              f"ask for {what}s 0 .. len(dataset) - 1.")
    return idx % n if n and idx.size and idx.min() < 0 else idx


class _LazyItems(list):
    """A list of a batch's items that makes them on first use (``_make_items``), ``_n`` items long.

    Collates that know the batch read its gathered arrays instead and never fill the list; any other
    reader (a custom collate, indexing, iteration, pickling by a worker process) sees a plain list.
    """

    _n = 0
    _filled = False

    def _make_items(self) -> Iterator[Any]:
        raise NotImplementedError

    def _fill(self) -> "_LazyItems":
        if not self._filled:
            self._filled = True
            super().extend(self._make_items())
        return self

    def _unchanged(self) -> bool:
        return not self._filled  # items may have been replaced once the list is filled

    def __len__(self) -> int:
        return self._n if not self._filled else super().__len__()

    def __getitem__(self, k):
        return list.__getitem__(self._fill(), k)

    def __iter__(self):
        return list.__iter__(self._fill())

    def __reversed__(self):
        return list.__reversed__(self._fill())

    def __contains__(self, item) -> bool:
        return list.__contains__(self._fill(), item)

    def __eq__(self, other) -> bool:
        return list.__eq__(self._fill(), other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return list.__repr__(self._fill())

    def __reduce_ex__(self, protocol):  # pickled (e.g. by a worker process) as a plain list of the items
        return list, ([tuple(it) if isinstance(it, tuple) else it for it in self._fill()],)


class _Gathered(_LazyItems):
    """Items of one batch gathered together; ``gathered`` = (the padded batch, padding, pad_value, per_step).

    The per-item views are made on first use of the items (a collate other than :func:`pad_collate`
    reads them); ``pad_collate`` hands ``gathered`` on without touching them, which saves a Python
    object per sequence (a third of a DataLoader epoch of short sequences).
    """

    gathered: tuple | None = None

    def __init__(self, n: int, make):
        super().__init__()
        self._n, self._make = n, make

    def _make_items(self):
        return self._make()


class SequenceDataset(torch.utils.data.Dataset):
    """The sequences of a :class:`~statebatch.Bucketing` as a map-style dataset: item ``i`` is
    ``(x_i, y_i, i)`` unpadded. Use with :class:`BucketBatchSampler` and :attr:`collate`::

        ds = SequenceDataset(bucketing)
        sampler = BucketBatchSampler(bucketing)
        loader = DataLoader(ds, batch_sampler=sampler, collate_fn=ds.collate)
    """

    def __init__(self, bucketing: Bucketing):
        if not isinstance(bucketing, Bucketing):
            raise ParameterError(f"SequenceDataset needs a statebatch Bucketing, got {type(bucketing).__name__}.",
                                 "build it with statebatch.bucket_batches(...).")
        self.bucketing = bucketing

    def __len__(self) -> int:
        return self.bucketing.n_sequences

    def __getitem__(self, i: int) -> SequenceItem:
        i = int(_positions([check_int("sequence index", i)], len(self), "sequence")[0])
        b = self.bucketing.materialise([i])
        y = None if b.y is None else to_tensor(b.y[0])
        return SequenceItem(to_tensor(b.X[0]), y, i)

    def __getitems__(self, indices: Sequence[int]) -> list[SequenceItem]:
        """A batch of sequences with one padded gather (``DataLoader`` calls this with each batch of indices);
        :meth:`collate` then hands the padded batch on without padding it again."""
        idx = _positions(indices, len(self), "sequence")
        if not idx.size:
            return []
        b = self.bucketing.materialise(idx)
        x, mask = to_tensor(b.X), to_tensor(b.mask)
        y = None if b.y is None else to_tensor(b.y)
        per_step = self._per_step
        lengths = torch.from_numpy(np.asarray(b.lengths, dtype=np.int64).copy())
        longest = x.shape[1]
        post = self.bucketing.padding == "post"

        def make():
            out = []
            for j, (i, m) in enumerate(zip(idx.tolist(), lengths.tolist())):
                rows = slice(0, m) if post else slice(longest - m, longest)
                out.append(SequenceItem(x[j, rows], None if y is None else (y[j, rows] if per_step else y[j]), i))
            return out

        items = _Gathered(len(idx), make)
        weight = mask.to(torch.float32) if per_step else None
        items.gathered = (PaddedBatch(x, y, weight, lengths, mask, torch.from_numpy(idx.copy())),
                          self.bucketing.padding, self.bucketing.pad_value, per_step)
        return items

    @property
    def collate(self):
        """:func:`pad_collate` with this bucketing's ``padding``, ``pad_value`` and kind of targets."""
        import functools

        return functools.partial(pad_collate, padding=self.bucketing.padding, pad_value=self.bucketing.pad_value,
                                 per_step=self._per_step)

    @property
    def _per_step(self) -> bool:
        """Whether the targets are one per step (padded like x), else one per sequence."""
        return bool(self.bucketing.return_sequences and self.bucketing.has_targets)


# --------------------------------------------------------------------------- windows
class WindowDataset(torch.utils.data.Dataset):
    """Windows from :func:`~statebatch.make_windows` as a map-style dataset: item ``i`` is window ``i``
    as ``(x,)`` or ``(x, y)`` tensors, gathered from the zero-copy strided view.

    ``DataLoader`` does the batching and shuffling (the windows' own ``batch_size``/``shuffle`` are not
    used); a batch of indices is fetched with one gather (``__getitems__``).
    """

    def __init__(self, windows: Windows):
        if not isinstance(windows, Windows):
            raise ParameterError(f"WindowDataset needs statebatch Windows, got {type(windows).__name__}.",
                                 "build them with statebatch.make_windows(...).")
        if getattr(windows, "forecast", None) is not None:  # items would be mappings, not (x, y) tensors
            raise ParameterError("WindowDataset serves (x, y) windows; forecasting windows (known_cols, static_cols, "
                                 "min_timesteps, scale, ...) give mappings.",
                                 "iterate the windows' own batches: for b in windows.batches(): "
                                 "batch = statebatch.torch.forecast_batch(b) (one gather per batch).")
        self.windows = windows

    def __len__(self) -> int:
        return self.windows.n_windows

    def __getitem__(self, i: int) -> tuple:
        i = check_int("window index", i)
        return tuple(to_tensor(a[0]) for a in self.windows.take(_positions([i], len(self), "window")))

    def __getitems__(self, indices: Sequence[int]) -> list[tuple]:
        """Windows ``indices`` with one gather (``DataLoader`` calls this with each batch of indices).

        The batch comes back as a list of per-window ``(x, y)`` items made only when read; its items are of a
        type registered with ``default_collate``, which then hands on the gathered ``[x, y]`` tensors as
        they are instead of splitting them into windows and stacking them again (the same values, order
        and types as stacking). Any other collate reads the items as usual."""
        idx = _positions(indices, len(self), "window")
        arrays = tuple(np.asarray(a) for a in self.windows.take(idx))
        return _GatheredWindows(tuple(to_tensor(a) for a in arrays), arrays)


class _WindowItem(tuple):
    """One window ``(x,)`` or ``(x, y)`` of a gathered batch (a plain tuple of tensors to every reader)."""

    __slots__ = ()

    def __reduce__(self):  # pickled (by a worker process) as a plain tuple
        return tuple, (tuple(self),)


class _GatheredWindows(_LazyItems):
    """The windows of one batch, gathered; ``gathered`` = the batch tensors ``(X, y)``. An item is made when it is
    read (``default_collate`` reads the first to pick its collate function, then uses ``gathered``)."""

    def __init__(self, tensors: tuple[torch.Tensor, ...], arrays: tuple[np.ndarray, ...]):
        super().__init__()
        self.gathered = tensors
        self._n = int(tensors[0].shape[0])
        # the numpy arrays the tensors share memory with (to_tensor copies read-only ones): items are made from
        # them, a numpy index and torch.from_numpy being cheaper than indexing a tensor
        self._arrays = tuple(a if t.data_ptr() == a.__array_interface__["data"][0] else t.numpy()
                             for t, a in zip(tensors, arrays))

    def _item(self, j: int) -> "_WindowItem":
        return _WindowItem(torch.from_numpy(a[j]) if a[j].ndim else torch.from_numpy(a[j:j + 1]).view(())
                           for a in self._arrays)

    def _make_items(self):
        return (_WindowItem(a[j] for a in self.gathered) for j in range(self._n))

    def __getitem__(self, k):
        if not self._filled and isinstance(k, (int, np.integer)) and -self._n <= k < self._n:
            return self._item(int(k) % self._n)
        return list.__getitem__(self._fill(), k)


def _collate_windows(batch: Sequence, *, collate_fn_map: dict | None = None) -> Any:
    """``default_collate`` of windows: the gathered tensors as they are, as a list like stacking gives."""
    if isinstance(batch, _GatheredWindows) and batch._unchanged():
        return list(batch.gathered)
    from torch.utils.data._utils.collate import collate

    return collate([tuple(it) for it in batch], collate_fn_map=collate_fn_map)


def _register_window_collate() -> None:
    # torch documents extending default_collate by adding a type to default_collate_fn_map; only our own item
    # type is added, so no other collation changes.
    from torch.utils.data._utils.collate import default_collate_fn_map

    default_collate_fn_map.setdefault(_WindowItem, _collate_windows)


_register_window_collate()


class WindowBatchSampler(_ResumableBatches, torch.utils.data.Sampler):
    """The windows' own batches of indices for ``DataLoader(WindowDataset(w), batch_sampler=...)``.

    Batch ``k`` of epoch ``e`` holds the windows of ``w.batch(k, e)``, in that order (the plan of
    :func:`~statebatch.make_windows`: its ``batch_size``, ``shuffle``, ``seed``, ``remainder``), handed
    over as one index array, so the loader does no work per window. Call ``set_epoch(epoch)`` at the
    start of every epoch to reshuffle (the ``DistributedSampler`` convention); ``state_dict`` /
    ``load_state_dict`` resume in the middle of an epoch.
    """

    def __init__(self, windows: Windows):
        if not isinstance(windows, Windows):
            raise ParameterError(f"WindowBatchSampler needs statebatch Windows, got {type(windows).__name__}.",
                                 "build them with statebatch.make_windows(..., batch_size=..., shuffle=..., seed=...).")
        self.windows = windows
        self.epoch = 0

    def batches(self, epoch: int | None = None) -> list[np.ndarray]:
        """The batches of ``epoch`` (default: the current one), as index arrays."""
        epoch = self.epoch if epoch is None else check_int("epoch", epoch, 0)
        plan = self.windows.plan(epoch)
        out = []
        for k in range(plan.n_batches):
            idx = plan.batch_indices(k)
            out.append(np.arange(idx.start, idx.stop, dtype=np.int64) if isinstance(idx, slice) else idx)
        return out

    _epoch_batches = batches

    def __iter__(self) -> Iterator[np.ndarray]:
        return self._served(self.batches(), lambda b: b)

    def __len__(self) -> int:
        return self.windows.plan(self.epoch).n_batches

    def _identity(self) -> dict[str, Any]:
        w = self.windows
        return {"n_windows": int(w.n_windows), "starts_crc32": _crc(w.starts), "batch_size": int(w.batch_size),
                "shuffle": bool(w.shuffle), "seed": int(w.seed), "remainder": str(w.remainder)}

    def __repr__(self) -> str:
        return f"WindowBatchSampler({len(self)} batches of up to {self.windows.batch_size}, epoch={self.epoch})"
