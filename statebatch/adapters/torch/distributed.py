"""Data parallelism: the process group's ``num_replicas``/``rank``, ranks that must agree, and
:func:`even_batches` (every rank the same number of distinct batches)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..._args import check_int
from ...errors import ParameterError
from ...plans.buckets import BucketPlan


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

    Examples
    --------
    >>> import statebatch as sb
    >>> plan = sb.plan_buckets([5, 3, 8, 2, 7, 4, 6], batch_size=3, shuffle=False)
    >>> [len(b) for b in plan.batches]
    [3, 3, 1]
    >>> [len(b) for b in even_batches(plan, 2)]  # 4 batches: 2 for each of 2 replicas
    [3, 1, 2, 1]
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
