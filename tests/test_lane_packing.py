"""The vectorised lane packing against plain one-at-a-time references: the LPT assignment (runs of
equal-size series placed at once), the plan arrays built lane by lane, and the epoch packed into lanes."""
import heapq

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import statebatch as sb
from statebatch.materialise import gather
from statebatch.plans import lanes as plans
from statebatch.plans import lpt
from statebatch.sources.base import ConcatSource


def lpt_reference(chunks, batch_size):
    """Longest first to the least-loaded lane (ties: the lowest lane), one series at a time."""
    loads = [(0, lane) for lane in range(batch_size)]
    lanes = [[] for _ in range(batch_size)]
    for s in sorted(range(len(chunks)), key=lambda s: -chunks[s]):  # sorted() is stable: ties by position
        if chunks[s] <= 0:
            continue
        load, lane = heapq.heappop(loads)
        lanes[lane].append(s)
        heapq.heappush(loads, (load + int(chunks[s]), lane))
    return lanes


# Few distinct sizes make long runs of equal sizes (the merged path); a few huge ones make lanes far apart.
chunk_lists = st.one_of(
    st.lists(st.integers(0, 4), min_size=1, max_size=600),
    st.lists(st.sampled_from([1, 2, 3, 50, 400]), min_size=1, max_size=600),
    st.lists(st.integers(0, 3000), min_size=1, max_size=80),
)


@settings(max_examples=150, deadline=None)
@given(chunks=chunk_lists, batch_size=st.integers(1, 70), run=st.sampled_from([1, 2, 7, 192]),
       short=st.sampled_from([1, 24, 10**6]), round_=st.sampled_from([1, 12, 10**6]))
def test_lpt_places_every_run_as_one_series_at_a_time_would(chunks, batch_size, run, short, round_):
    # run=1: every run merged at once (numpy); short=1, round_=1: rounds of keys; short=10**6: one at a time
    default = lpt.RUN, lpt._SHORT, lpt._ROUND
    lpt.RUN, lpt._SHORT, lpt._ROUND = run, short, round_
    try:
        got = sb.pack_lanes(np.array(chunks, dtype=np.int64), batch_size)
    finally:
        lpt.RUN, lpt._SHORT, lpt._ROUND = default
    assert got == lpt_reference(chunks, batch_size)


@pytest.mark.parametrize("seed", range(4))
def test_lpt_of_many_lognormal_series_in_each_way_equals_one_at_a_time(seed):
    """Realistic sizes (long runs of small sizes after a few large ones, lanes apart in load between runs)."""
    rng = np.random.default_rng(seed)
    chunks = np.clip(rng.lognormal(1.8, 0.8, 1500).astype(np.int64), 0, 100)
    batch_size = int(rng.integers(5, 70))
    want = lpt_reference(chunks.tolist(), batch_size)
    default = lpt.RUN, lpt._SHORT, lpt._ROUND
    try:
        for run, short, round_ in [(1, 1, 1), (10**6, 1, 1), (10**6, 1, 12), (10**6, 10**6, 1), (192, 24, 12)]:
            lpt.RUN, lpt._SHORT, lpt._ROUND = run, short, round_
            assert sb.pack_lanes(chunks, batch_size) == want, (run, short, round_)
    finally:
        lpt.RUN, lpt._SHORT, lpt._ROUND = default


def test_lpt_run_of_lanes_far_apart_in_load_falls_back_to_the_loop():
    keys = np.array([0, 10_000 * 4 + 1, 10_000 * 4 + 2, 10_000 * 4 + 3])  # lane 0 far below the others
    assert lpt._run(keys, 4, 200) is None
    taken, after = lpt._run(np.array([0, 1, 2, 3]), 8, 6)  # equal loads: round robin
    assert taken.tolist() == [0, 1, 2, 3, 8, 9] and after.tolist() == [16, 17, 10, 11]


def plan_reference(lanes, usable, chunks, timesteps, batch_size, n_batches=0):
    """Each lane runs its series back to back, chunk by chunk, then idles."""
    nb = max([n_batches] + [int(sum(chunks[s] for s in lane)) for lane in lanes])
    series = np.full((nb, batch_size), -1, dtype=np.int64)
    step, valid = np.zeros_like(series), np.zeros_like(series)
    resets = np.zeros((nb, batch_size), dtype=bool)
    for i, lane in enumerate(lanes):
        k = 0
        for s in lane:
            resets[k, i] = True
            for j in range(int(chunks[s])):
                series[k, i], step[k, i] = s, j * timesteps
                valid[k, i] = min(timesteps, int(usable[s]) - j * timesteps)
                k += 1
    return series, step, valid, resets


@settings(max_examples=150, deadline=None)
@given(lengths=st.lists(st.integers(0, 90), min_size=1, max_size=40), T=st.integers(1, 9), B=st.integers(1, 9),
       drop=st.booleans(), extra=st.integers(0, 3))
def test_plan_arrays_equal_a_chunk_by_chunk_reference(lengths, T, B, drop, extra):
    usable = np.array(lengths, dtype=np.int64)
    chunks = usable // T if drop else -(-usable // T)
    if drop:
        usable = chunks * T
    if not chunks.any():
        return
    lanes = lpt_reference(chunks.tolist(), B)
    n_batches = max(int(sum(chunks[s] for s in lane)) for lane in lanes) + extra  # a shuffled epoch's capacity
    got = plans._plan_from_lanes(*plans._flat(lanes), usable, chunks, T, B, n_batches)
    for g, want in zip(got, plan_reference(lanes, usable, chunks, T, B, n_batches)):
        assert g.dtype == want.dtype and g.flags.c_contiguous
        np.testing.assert_array_equal(g, want)


@settings(max_examples=100, deadline=None)
@given(lengths=st.lists(st.integers(0, 30), min_size=1, max_size=12), data=st.data())
def test_fill_lanes_writes_ranges_in_any_order_like_a_row_by_row_copy(lengths, data):
    """Ranges given out of lane order (or empty) are placed where they belong, padding everywhere else."""
    arrays = [np.arange(n * 2, dtype=np.float64).reshape(n, 2) + 1000 * k for k, n in enumerate(lengths)]
    src = ConcatSource(arrays)
    lanes, rows = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 40))
    want = np.full((lanes, rows, 2), -1.0)
    lane, first, starts, counts = [], [], [], []
    free = [0] * lanes  # next free row of each lane
    for k, n in enumerate(lengths):
        i = data.draw(st.integers(0, lanes - 1))
        a = free[i] + data.draw(st.integers(0, 3))
        c = min(data.draw(st.integers(0, n)), rows - a)
        if c < 0:
            continue
        start = int(src.offsets[k]) + data.draw(st.integers(0, n - c))
        if c:
            want[i, a: a + c] = src.read(start, start + c)
        lane.append(i), first.append(a), starts.append(start), counts.append(c)
        free[i] = a + c
    order = data.draw(st.permutations(range(len(lane))))
    pick = lambda v: np.array([v[j] for j in order], dtype=np.int64)  # noqa: E731
    got, finite = gather.fill_lanes(src, lanes, rows, pick(lane), pick(first), pick(starts), pick(counts), -1.0,
                                    check_finite=True)
    np.testing.assert_array_equal(got, want)
    assert finite


def test_fill_lanes_refuses_overlapping_ranges():
    src = ConcatSource([np.arange(6.0)])
    with pytest.raises(sb.ParameterError, match="overlap"):
        gather.fill_lanes(src, 1, 6, np.array([0, 0]), np.array([0, 2]), np.array([0, 0]), np.array([3, 3]))
