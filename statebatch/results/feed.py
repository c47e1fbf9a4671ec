"""The framework-neutral lane feed: one epoch of arranged lanes as numpy steps a training loop runs.

Every framework adapter that carries recurrent state itself (``statebatch.jax``; the torch
``LaneLoader`` does the same in torch tensors) needs the same four things per batch: the inputs, the
targets, the weights that say which steps are real, and which lanes to zero before the batch. This
module computes them once, from the arrangement's plan and the :mod:`statebatch.schedule`, in
numpy; an adapter only converts the arrays to its tensors and hands the reset rows to its carry.

Several replicas (data parallelism): with ``num_replicas=R`` every replica ``rank`` gets the same
batches of the same epoch plan (a pure function of seed and epoch, so ranks agree without
communicating) but only its own consecutive block of ``batch_size / R`` lanes, whose states it keeps.
"""

from __future__ import annotations

from typing import Any, Iterator, NamedTuple

import numpy as np

from .._args import check_bool, check_int
from ..errors import BatchSizeError, ParameterError
from .schedule import LaneSchedule, ValidationSchedule
from .stateful import Arranged

__all__ = ["LaneStep", "ResetRecorder", "lane_block", "lane_steps", "real_step_weights", "plan_resets"]


class LaneStep(NamedTuple):
    """One batch of lanes, for one replica.

    Attributes
    ----------
    batch : int
        The batch index ``k`` within the epoch.
    x : ndarray ``(lanes, timesteps, features)``; with covariates (``arrange_stateful(static_cols=...,
        known_cols=...)``) a dict of the inputs by batch key: ``past`` (the lanes), ``future``
        ``(lanes, timesteps, K)``, ``static`` ``(lanes, S)``, those present
    y : ndarray ``(lanes, timesteps, targets)`` (``(lanes, targets)`` many-to-one), or ``None``
    weight : float32 ndarray ``(lanes, timesteps)`` (``(lanes,)`` many-to-one): 1 on real steps, 0 on padding
    reset : bool ndarray ``(lanes,)``: lanes whose state must be zeroed before this batch
    """

    batch: int
    x: np.ndarray | dict[str, np.ndarray]
    y: np.ndarray | None
    weight: np.ndarray
    reset: np.ndarray


class ResetRecorder:
    """A state handle that records which rows the schedule zeroes (the feed holds no state itself)."""

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


def lane_block(batch_size: int, num_replicas: int = 1, rank: int = 0) -> slice:
    """The lanes replica ``rank`` of ``num_replicas`` holds: a consecutive block of ``batch_size / R``.

    Examples
    --------
    >>> lane_block(8, 2, 1)
    slice(4, 8, None)
    """
    num_replicas = check_int("num_replicas", num_replicas, 1)
    rank = check_int("rank", rank, 0)
    if rank >= num_replicas:
        raise ParameterError(f"rank={rank} is outside 0..{num_replicas - 1} (num_replicas={num_replicas}).",
                             "pass a rank below num_replicas.")
    if batch_size % num_replicas:
        raise BatchSizeError(f"batch_size={batch_size} lanes do not split evenly over {num_replicas} replicas.",
                             f"arrange with a batch_size divisible by {num_replicas}.")
    per = batch_size // num_replicas
    return slice(rank * per, (rank + 1) * per)


def plan_resets(arranged: Arranged, epoch: int, *, validation: bool = False,
                reset_on_epoch_begin: bool = True) -> Iterator[tuple[int, np.ndarray]]:
    """``(k, reset mask over all lanes)`` for every batch of ``epoch``, as the schedule decides.

    Examples
    --------
    >>> import numpy as np
    >>> import statebatch as sb
    >>> a = sb.arrange_stateful([np.arange(9.0), np.arange(3.0), np.arange(5.0)], timesteps=2, batch_size=2)
    >>> [(k, m.tolist()) for k, m in plan_resets(a, 0)]  # every lane first, then where a new series starts
    [(0, [True, True]), (1, [False, False]), (2, [False, True]), (3, [False, False])]
    """
    rec = ResetRecorder(arranged.batch_size)
    n = arranged.plan(epoch).n_batches
    if validation:
        sched = ValidationSchedule(arranged)
        sched.begin(rec)
        for k in range(n):
            sched.batch_begin(rec, k)
            yield k, rec.take()
        sched.end(rec)
    else:
        schedule = LaneSchedule(arranged, reset_on_epoch_begin=reset_on_epoch_begin)
        schedule.epoch_begin(rec, epoch)
        for k in range(n):
            schedule.batch_begin(rec, k)
            yield k, rec.take()


def real_step_weights(arranged: Arranged, k: int, epoch: int) -> np.ndarray:
    """The weights of batch ``k`` when the arrangement has no targets: 1 on real steps, 0 on padding.

    Examples
    --------
    >>> import numpy as np
    >>> import statebatch as sb
    >>> a = sb.arrange_stateful([np.arange(5.0), np.arange(3.0)], timesteps=2, batch_size=2, targets=None)
    >>> real_step_weights(a, 1, 0)  # batch 1: lane 0 holds steps 2-3, lane 1 one last step and padding
    array([[1., 1.],
           [1., 0.]], dtype=float32)
    """
    plan = arranged.plan(epoch)
    valid = plan.valid[k]
    if arranged.return_sequences:
        return (np.arange(plan.batch_length(k))[None, :] < valid[:, None]).astype(np.float32)
    return (valid == plan.batch_length(k)).astype(np.float32)


def lane_steps(arranged: Arranged, epoch: int | None = None, *, validation: bool = False,
               reset_on_epoch_begin: bool = True, num_replicas: int = 1, rank: int = 0,
               start: int = 0) -> Iterator[LaneStep]:
    """One epoch of ``arranged`` as :class:`LaneStep` s, in order, for replica ``rank``.

    Parameters
    ----------
    arranged : Arranged
    epoch : int, optional
        The epoch whose plan to serve (default: the arrangement's current epoch). The arrangement's
        epoch is not moved.
    validation : bool
        Serve as validation data (:class:`~statebatch.schedule.ValidationSchedule`).
    reset_on_epoch_begin : bool
        Training: zero every lane before the first batch of the epoch (default).
    num_replicas, rank : int
        Serve only lanes :func:`lane_block` ``(batch_size, num_replicas, rank)``.
    start : int
        First batch to serve (resuming inside an epoch: the resets of the batches before it are
        not repeated; restore the carried state that was saved with the position).

    Examples
    --------
    >>> import numpy as np, statebatch as sb
    >>> arranged = sb.arrange_stateful([np.arange(12.0), np.arange(7.0)], timesteps=3, batch_size=2)
    >>> [(s.batch, s.x.shape, s.reset.tolist()) for s in lane_steps(arranged)][:2]
    [(0, (2, 3, 1), [True, True]), (1, (2, 3, 1), [False, False])]

    Lanes with covariates: ``x`` is a dict of ``past``, ``future``, ``static`` (those present).
    """
    if not isinstance(arranged, Arranged):
        raise ParameterError(f"lane_steps needs arranged lanes, got {type(arranged).__name__}.",
                             "build them with statebatch.arrange_stateful(...).")
    epoch = arranged.epoch if epoch is None else check_int("epoch", epoch, 0)
    validation = check_bool("validation", validation)
    reset_on_epoch_begin = check_bool("reset_on_epoch_begin", reset_on_epoch_begin)
    block = lane_block(arranged.batch_size, num_replicas, rank)
    n = arranged.plan(epoch).n_batches
    start = check_int("start", start, 0)
    if start > n:
        raise ParameterError(f"start={start} is past the {n} batches of epoch {epoch}.",
                             f"pass a batch index between 0 and {n}.")
    for k, reset in plan_resets(arranged, epoch, validation=validation, reset_on_epoch_begin=reset_on_epoch_begin):
        if k < start:
            continue
        arrays = arranged.batch(k, epoch)
        if isinstance(arrays, dict):  # covariates: the inputs by key, as Keras and torch get them
            x = {key: arrays[key][block] for key in ("past", "future", "static") if key in arrays}
            w = arrays["sample_weight"] if "y" in arrays else real_step_weights(arranged, k, epoch)
            yield LaneStep(k, x, arrays["y"][block] if "y" in arrays else None, w[block], reset[block])
            continue
        if len(arrays) > 1:
            y, w = arrays[1][block], arrays[2][block]
        else:
            y, w = None, real_step_weights(arranged, k, epoch)[block]
        yield LaneStep(k, arrays[0][block], y, w, reset[block])
