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
import queue
import threading
import warnings
from typing import Any, Iterator, NamedTuple, Sequence

import numpy as np
import torch

from ._args import check_bool, check_int, resolve_seed
from .bucketing import Bucketing
from .errors import (BatchIndexError, BatchSizeError, LengthMismatchError, ParameterError, ShapeError, ShuffleError,
                     StatebatchWarning)
from .plans.base import check_lengths
from .plans.buckets import BucketPlan, bucket_boundaries, plan_buckets
from .schedule import LaneSchedule, ValidationSchedule
from .stateful import Arranged
from .windows import Windows

__all__ = ["LaneLoader", "LaneBatch", "StateCarrier", "carry", "detach_state", "BucketBatchSampler",
           "SequenceDataset", "SequenceItem", "PaddedBatch", "pad_collate", "WindowDataset", "to_tensor",
           "even_batches"]


# --------------------------------------------------------------------------- arrays -> tensors
def to_tensor(a: np.ndarray) -> torch.Tensor:
    """A numpy array as a CPU tensor: shared when it is writable (statebatch made it for this batch),
    copied when it is read-only (a view of the user's data or of a cached epoch), so that
    ``torch.from_numpy`` does not warn and in-place tensor ops never reach the user's data."""
    a = np.asarray(a)
    if not a.flags.writeable or not (a.flags.c_contiguous or a.flags.f_contiguous) or a.dtype.byteorder == ">":
        a = np.array(a, dtype=a.dtype.newbyteorder("=") if a.dtype.byteorder == ">" else a.dtype, order="C")
    return torch.from_numpy(a)


def forecast_batch(batch: Any) -> Any:
    """A forecasting batch (the mapping of :meth:`Windows.batch` / ``arrays()`` with forecasting inputs)
    as a :class:`statebatch.forecast.ForecastBatch` named tuple of tensors (``None`` where a key is
    absent): ``past``, ``future``, ``static``, ``y``, ``mask``, ``scale``, ``past_observed``,
    ``y_observed``."""
    from collections.abc import Mapping

    from .forecast import FORECAST_KEYS, ForecastBatch

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
    if device is None:
        return None
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ParameterError(f"device={device!r} is not a torch device ({e}).",
                             "pass e.g. device='cpu', 'cuda' or torch.device('cuda:0').") from None


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


class _ResetRecorder:
    """A state handle that records which rows the schedule zeroes (the loader has no state itself)."""

    def __init__(self, lanes: int):
        self.mask = np.zeros(lanes, dtype=bool)

    def zero(self, rows: np.ndarray | None) -> None:
        if rows is None:
            self.mask[:] = True
        else:
            self.mask[np.asarray(rows, dtype=np.int64)] = True

    def snapshot(self) -> None:
        return None

    def restore(self, snapshot: Any) -> None:
        pass

    def take(self) -> np.ndarray:
        out, self.mask = self.mask, np.zeros_like(self.mask)
        return out


_END = object()


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

    Notes
    -----
    Iterate it directly. It is also an ``IterableDataset``, so ``DataLoader(loader, batch_size=None)``
    works for code that wants a DataLoader, but only with ``num_workers=0``: a worker process would
    advance its own copy of the arrangement (every epoch would repeat the first plan) and several
    workers would each serve the whole epoch. Use ``prefetch`` for background reading.
    """

    def __init__(self, arranged: Arranged, *, validation: bool = False, reset_on_epoch_begin: bool = True,
                 shuffle: bool = False, pin_memory: bool = False, prefetch: int = 0, device: Any = None):
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

    # -- the protocol
    def __len__(self) -> int:
        return self.arranged.n_batches

    @property
    def epoch(self) -> int:
        return self.arranged.epoch

    def set_epoch(self, epoch: int) -> None:
        """Serve ``epoch``'s plan next (the ``DistributedSampler`` convention; iterating also moves on)."""
        self.arranged.set_epoch(epoch)

    @property
    def continues(self) -> bool:
        return bool(self.arranged.continues)

    def _plan_resets(self, epoch: int) -> Iterator[tuple[int, np.ndarray]]:
        """``(k, reset mask)`` for every batch of ``epoch``, as the schedule decides."""
        rec = _ResetRecorder(self.batch_size)
        n = self.arranged.plan(epoch).n_batches
        if self.validation:
            sched = ValidationSchedule(self.arranged)
            sched.begin(rec)
            for k in range(n):
                sched.batch_begin(rec, k)
                yield k, rec.take()
            sched.end(rec)
        else:
            sched = LaneSchedule(self.arranged, reset_on_epoch_begin=self.reset_on_epoch_begin)
            sched.epoch_begin(rec, epoch)
            for k in range(n):
                sched.batch_begin(rec, k)
                yield k, rec.take()

    def _make(self, k: int, epoch: int, reset: np.ndarray) -> LaneBatch:
        arrays = self.arranged.batch(k, epoch)
        x = to_tensor(arrays[0])
        if len(arrays) > 1:
            y, w = to_tensor(arrays[1]), to_tensor(arrays[2])
        else:  # no targets: the weights still say which steps are real
            plan = self.arranged.plan(epoch)
            valid = plan.valid[k]
            if self.arranged.return_sequences:
                w = torch.from_numpy((np.arange(plan.batch_length(k))[None, :] < valid[:, None]).astype(np.float32))
            else:
                w = torch.from_numpy((valid == plan.batch_length(k)).astype(np.float32))
            y = None
        r = torch.from_numpy(reset.copy())
        if self.pin_memory:
            x, w, r = x.pin_memory(), w.pin_memory(), r.pin_memory()
            y = None if y is None else y.pin_memory()
        return LaneBatch(x, y, w, r)

    def _to_device(self, b: LaneBatch) -> LaneBatch:
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
        self.arranged.plan(epoch)  # plan errors surface here, in the caller's thread
        if self.prefetch:
            yield from self._prefetched(epoch)
        else:
            for k, reset in self._plan_resets(epoch):
                yield self._to_device(self._make(k, epoch, reset))
        self.arranged.set_epoch(epoch + 1)

    def _prefetched(self, epoch: int) -> Iterator[LaneBatch]:
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
                for k, reset in self._plan_resets(epoch):
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


def detach_state(state: Any) -> Any:
    """The state cut from the graph of the batches before it (``repackage_hidden``), nested or not."""
    return _map_state(state, lambda t: t.detach())


def _reset_mask(reset: Any) -> torch.Tensor:
    r = reset if isinstance(reset, torch.Tensor) else torch.as_tensor(np.asarray(reset))
    if r.ndim != 1 or r.dtype != torch.bool:
        raise ParameterError(f"reset must be a 1-D boolean mask with one flag per lane, got dtype {r.dtype} and shape "
                             f"{tuple(r.shape)}.", "pass the reset tensor the LaneLoader yields with each batch.")
    return r


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
        self.state = detach_state(state)

    # -- StateHandle
    def zero(self, rows: np.ndarray | None = None) -> None:
        if rows is None or self.state is None:
            self.state = None
            return
        mask = np.zeros(self._lanes(), dtype=bool)
        mask[np.asarray(rows, dtype=np.int64)] = True
        self.state = carry(self.state, mask, batch_dim=self.batch_dim)

    def _lanes(self) -> int:
        found: list[int] = []
        _map_state(self.state, lambda t: found.append(int(t.shape[self.batch_dim])))
        return found[0]

    def snapshot(self) -> tuple:
        # a tuple even for the zero state (None), so that the schedule always restores it
        return ("state", _map_state(self.state, lambda t: t.detach().clone()))

    def restore(self, snapshot: tuple) -> None:
        self.state = snapshot[1]

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


def _distributed() -> tuple[int, int] | None:
    """``(world_size, rank)`` of an initialised process group, else None."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return None


class BucketBatchSampler(torch.utils.data.Sampler):
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
        mine = (len(self.lengths), int(self.lengths.sum()), self.batch_size, digest.hexdigest())
        every: list = [None] * torch.distributed.get_world_size()
        torch.distributed.all_gather_object(every, mine)
        if any(e != mine for e in every):
            raise ParameterError(
                "the ranks of this process group planned different batches (different seeds, lengths or options), "
                "so sequences would repeat on some ranks and be missed on others.",
                "build the sampler (or the Bucketing) with the same data, options and an explicit seed on every rank.")

    def set_epoch(self, epoch: int) -> None:
        """Serve ``epoch``'s batches (reshuffled) from now on."""
        self.epoch = check_int("epoch", epoch, 0)

    def batches(self, epoch: int | None = None) -> list[np.ndarray]:
        """This rank's batches of ``epoch`` (default: the current one), as index arrays."""
        epoch = self.epoch if epoch is None else check_int("epoch", epoch, 0)
        return even_batches(self._plan_of(epoch), self.num_replicas)[self.rank::self.num_replicas]

    def __iter__(self) -> Iterator[list[int]]:
        for b in self.batches():
            yield b.tolist()

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
    if padding not in ("post", "pre"):
        raise ParameterError(f"padding={padding!r} is not 'post' or 'pre'.", "pass padding='post' or 'pre'.")
    gathered = getattr(items, "gathered", None)
    if gathered is not None and gathered[1:] == (padding, pad_value, per_step):
        return gathered[0]  # SequenceDataset.__getitems__ already padded the batch in one gather
    if not len(items):
        raise ParameterError("pad_collate got an empty batch.", "give it at least one sequence.")
    xs = [it[0] if isinstance(it[0], torch.Tensor) else to_tensor(np.asarray(it[0])) for it in items]
    if any(x.ndim == 0 for x in xs):
        raise ShapeError("a sequence is a scalar.", "pass sequences of shape (length, features).")
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
        ys = [v if isinstance(v, torch.Tensor) else to_tensor(np.asarray(v)) for v in ys]
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
    indices = torch.tensor([int(it[2]) for it in items], dtype=torch.int64)
    return PaddedBatch(x, y, weight, lengths, mask, indices)


def _positions(idx: Any, n: int, what: str) -> np.ndarray:
    """Item indices of a map-style dataset of ``n`` items (negative ones count from the end)."""
    idx = np.asarray(idx)
    if idx.size and not np.issubdtype(idx.dtype, np.integer):
        raise ParameterError(f"{what} indices must be integers, got dtype {idx.dtype}.", "pass integer indices.")
    idx = idx.astype(np.int64).reshape(-1)
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise BatchIndexError(f"{what} indices {idx[(idx < -n) | (idx >= n)][:5].tolist()} are outside 0..{n - 1}.",
                              f"ask for {what}s 0 .. len(dataset) - 1.")
    return idx % n if n else idx


class _Gathered(list):
    """Items of one batch gathered together; ``gathered`` = (the padded batch, padding, pad_value, per_step).

    The per-item views are made on first use of the items (a collate other than :func:`pad_collate`
    reads them); ``pad_collate`` hands ``gathered`` on without touching them, which saves a Python
    object per sequence (a third of a DataLoader epoch of short sequences).
    """

    gathered: tuple | None = None

    def __init__(self, n: int, make):
        super().__init__()
        self._n, self._make = n, make

    def _filled(self) -> list:
        if self._make is not None:
            make, self._make = self._make, None
            super().extend(make())
        return self

    def __len__(self) -> int:
        return self._n if self._make is not None else super().__len__()

    def __iter__(self):
        return list.__iter__(self._filled())

    def __reversed__(self):
        return list.__reversed__(self._filled())

    def __getitem__(self, k):
        return list.__getitem__(self._filled(), k)

    def __contains__(self, item) -> bool:
        return list.__contains__(self._filled(), item)

    def __eq__(self, other) -> bool:
        return list.__eq__(self._filled(), other)

    __hash__ = None

    def __repr__(self) -> str:
        return list.__repr__(self._filled())

    def __reduce_ex__(self, protocol):  # pickled (e.g. by a worker process) as a plain list of the items
        return list, (list(self._filled()),)


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
        idx = _positions(list(indices), len(self), "sequence")
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
        arrays = [to_tensor(a) for a in self.windows.take(_positions(list(indices), len(self), "window"))]
        return [tuple(a[j] for a in arrays) for j in range(len(indices))]
