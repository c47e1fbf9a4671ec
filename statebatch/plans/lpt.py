"""Longest-processing-time-first packing of series into lanes, exact and mostly vectorised.

Series sorted by size come in runs of equal size (chunk counts are small integers), and placing a run one
series at a time on a heap of lane loads is a merge of arithmetic sequences: a run is placed with a few
numpy calls (:func:`_run`), short runs one heap operation per series (:func:`_loop`). Both give exactly
the assignment of the one-at-a-time rule.
"""

from __future__ import annotations

import bisect
import heapq

import numpy as np


def lpt(chunks: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Series (by chunk count) into lanes, longest first to the least-loaded lane (ties: the lowest lane):
    the series of lane 0 in running order, then lane 1's, ...; and the number of series in each lane
    (:func:`~statebatch.plans.lanes.pack_lanes` as arrays). Series with no chunk are in no lane.

    Examples
    --------
    >>> members, sizes = lpt(np.array([5, 3, 2, 2]), 2)  # 5 in lane 0; 3 + 2 in lane 1; the last 2 in lane 0
    >>> members.tolist(), sizes.tolist()
    ([0, 3, 1, 2], [2, 2])
    """
    order = np.argsort(-chunks, kind="stable")
    order = order[chunks[order] > 0]
    # The least-loaded lane (ties: the lowest) takes the next series. Keys load * batch_size + lane order
    # lanes by (load, lane) with plain integers (all distinct: key % batch_size is the lane); the key each
    # series is given is recorded, and lanes are collected afterwards. Empty lanes have load 0 and the
    # lowest empty one is taken first, so the lanes used are always the first min(batch_size, series)
    # ones: only those have keys (a huge batch_size costs no memory here).
    steps = chunks[order].astype(np.int64) * batch_size
    n = len(order)
    taken = np.empty(n, dtype=np.int64)
    heap = list(range(min(batch_size, n)))  # sorted: a valid heap
    bounds = [0] + (np.flatnonzero(np.diff(steps)) + 1).tolist() + [n]  # runs of equal size (sorted by size)
    done = 0  # series before this one are placed
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b - a < _SHORT:  # placed with its neighbours, one heap operation each
            continue
        if done < a:
            taken[done:a] = _each(heap, steps[done:a].tolist())
        step = int(steps[a])
        run = _run(np.sort(heap), step, b - a) if b - a >= RUN else None
        if run is None:
            taken[a:b] = _loop(heap, step, b - a)
        else:
            taken[a:b], keys = run
            heap = np.sort(keys).tolist()
        done = b
    if done < n:
        taken[done:] = _each(heap, steps[done:].tolist())
    lane_of = taken % batch_size
    by_lane = np.argsort(lane_of, kind="stable")  # keeps each lane's running order
    return order[by_lane].astype(np.int64), np.bincount(lane_of, minlength=batch_size)


#: Runs of at least this many series of one size are placed by :func:`_run` (a few numpy calls, about
#: 40 us a run); runs of at least ``_SHORT`` by :func:`_loop` (a round of keys at a time); shorter runs
#: one heap operation a series (about 0.2 us each: :func:`_each`).
RUN = 192
_SHORT = 24


def _each(heap: list[int], steps: list[int]) -> list[int]:
    """Series one at a time (``steps``: load * lanes each adds): the key of the least-loaded lane each
    is given (``heap`` is updated in place)."""
    keys: list[int] = []
    take, replace = keys.append, heapq.heapreplace
    for step in steps:
        key = heap[0]
        replace(heap, key + step)
        take(key)
    return keys


def _loop(heap: list[int], step: int, n: int) -> list[int]:
    """``n`` series of one size: the key of the least-loaded lane each is given, as one at a time would
    give them (``heap`` is updated in place, left sorted).

    The keys below ``smallest + step`` are all taken, in increasing order, before any key put back (those
    are at least ``smallest + step``): they are taken together, a round at a time; lanes far apart in
    load (few keys in a round) go one key at a time on the heap.
    """
    keys = sorted(heap)  # sorted: a valid heap as well
    taken: list[int] = []
    while n > 0:
        p = bisect.bisect_left(keys, keys[0] + step)
        if p < _ROUND and p < n:  # a short round: heap operations cost less
            take, replace = taken.append, heapq.heapreplace
            for _ in range(n):
                key = keys[0]
                replace(keys, key + step)
                take(key)
            keys.sort()
            break
        head = keys[:min(p, n)]
        taken += head
        keys = sorted(keys[len(head):] + [k + step for k in head])
        n -= len(head)
    heap[:] = keys
    return taken


#: Rounds of fewer keys than this are taken one heap operation at a time.
_ROUND = 12


def _run(keys: np.ndarray, step: int, n: int) -> tuple[np.ndarray, np.ndarray] | None:
    """What :func:`_loop` gives ``n`` series of one size, without a loop: the keys they are given and
    the lanes' keys afterwards; None when that would take much more memory than ``n`` (the loop then).

    Taking the smallest key ``k`` and putting back ``k + step``, ``n`` times, merges the sequences
    ``k_i, k_i + step, k_i + 2 step, ...`` of the lanes: the keys taken are the ``n`` smallest terms of
    those sequences, in increasing order (all distinct: each lane's terms are its lane modulo
    ``batch_size``). Every lane has at least ``ceil(n / lanes)`` terms up to ``bound`` below, so the
    ``n`` smallest are among the terms up to ``bound``.
    """
    lanes = len(keys)
    bound = int(keys[-1]) + (-(-n // lanes) - 1) * step  # keys are sorted
    terms = (bound - keys) // step + 1  # per lane: terms up to bound (at least one)
    ends = np.cumsum(terms)
    total = int(ends[-1])
    if total > 4 * n + 4 * lanes or bound + total * step >= 1 << 62:  # lanes far apart in load (rare): the
        return None  # loop costs less memory (and int64 keys stay far from overflowing)
    found = np.arange(0, total * step, step, dtype=np.int64)
    found += np.repeat(keys - (ends - terms) * step, terms)
    found.sort()
    taken = found[:n]
    return taken, keys + np.maximum((taken[-1] - keys) // step + 1, 0) * step
