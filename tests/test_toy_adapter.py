"""A new framework adapter, written from outside the package (issue 23): a toy numpy "framework" whose
recurrent model is ``h_t = tanh(W x_t + U h_{t-1})``, fed by the framework-neutral lane feed
(``statebatch.results.feed.lane_steps``) and keeping its state behind a ``StateHandle``
(``zero(rows)``, ``snapshot()``, ``restore(snapshot)``) that ``ValidationSchedule`` drives.

The adapter knows nothing of plans, packing or lanes' series: it runs every batch in order, zeroes the
rows the feed says reset, and weights out the padding. The proof that this is enough: its per-step
outputs equal the same cell run over each whole series from a zero state, exactly, for every epoch of
a shuffled (repacked every epoch) arrangement, with validation run in the middle of an epoch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import statebatch as sb
from statebatch.results.feed import LaneStep, lane_steps
from statebatch.results.schedule import StateHandle, ValidationSchedule

H, F = 3, 2  # hidden units, input features
ID = 10_000  # a step's target is its id: series * ID + step (exact in float64)


def cell(x: np.ndarray, h: np.ndarray, W: np.ndarray, U: np.ndarray) -> np.ndarray:
    """One step for every row: ``(rows, F), (rows, H) -> (rows, H)``. Products summed along the last axis,
    row by row, so a row's result does not depend on how many rows run together (a BLAS matmul could
    change its summation order with the batch size)."""
    return np.tanh((x[:, None, :] * W[None]).sum(-1) + (h[:, None, :] * U[None]).sum(-1))


# --------------------------------------------------------------------------- the toy adapter (user code)
class ToyState:
    """The toy framework's recurrent state, ``(lanes, H)``, as a :class:`StateHandle`."""

    def __init__(self, lanes: int):
        self.h = np.zeros((lanes, H))
        self.zeroed: list[Any] = []  # what the schedule asked for (inspected by the tests)

    def zero(self, rows: np.ndarray | None) -> None:
        self.zeroed.append(None if rows is None else np.asarray(rows).tolist())
        if rows is None:
            self.h[:] = 0.0
        else:
            self.h[np.asarray(rows, dtype=np.int64)] = 0.0

    def snapshot(self) -> np.ndarray:
        return self.h.copy()

    def restore(self, snapshot: np.ndarray) -> None:
        self.h = snapshot.copy()


class ToyAdapter:
    """Runs a toy stateful RNN over an arrangement's batches with only the feed and a StateHandle."""

    def __init__(self, W: np.ndarray, U: np.ndarray, lanes: int):
        self.W, self.U = W, U
        self.state = ToyState(lanes)
        _: StateHandle = self.state  # the protocol the schedule drives (checked by mypy)

    def run_batch(self, step: LaneStep) -> np.ndarray:
        """Outputs ``(lanes, T, H)`` of one batch; the state carries into the next batch."""
        if step.reset.any():
            self.state.zero(np.flatnonzero(step.reset))
        w = step.weight if step.weight.ndim == 2 else np.ones(step.x.shape[:2])
        out = np.zeros(step.x.shape[:2] + (H,))
        for t in range(step.x.shape[1]):
            new = cell(step.x[:, t], self.state.h, self.W, self.U)
            real = w[:, t] > 0  # a padded step leaves the state as it was
            self.state.h = np.where(real[:, None], new, self.state.h)
            out[:, t] = new
        return out

    def epoch(self, arranged: sb.Arranged, epoch: int, *, between: Any = None) -> list[tuple[LaneStep, np.ndarray]]:
        """Every batch of ``epoch`` in order; ``between(k)`` runs after batch ``k`` (e.g. validation)."""
        served = []
        for step in lane_steps(arranged, epoch):
            served.append((step, self.run_batch(step)))
            if between is not None:
                between(step.batch)
        return served

    def validate(self, arranged: sb.Arranged) -> list[tuple[LaneStep, np.ndarray]]:
        """Validation batches with their own state: the training state is saved first and put back after."""
        schedule = ValidationSchedule(arranged)
        schedule.begin(self.state)
        try:
            return [(step, self.run_batch(step)) for step in lane_steps(arranged, validation=True)]
        finally:
            schedule.end(self.state)


# --------------------------------------------------------------------------- the reference and the checks
def whole_series(series: list[np.ndarray], W: np.ndarray, U: np.ndarray) -> list[np.ndarray]:
    """The same cell over each whole series from zero state, one step at a time: ``(length, H)`` each."""
    out = []
    for s in series:
        h = np.zeros((1, H))
        steps = []
        for t in range(len(s)):
            h = cell(s[t:t + 1], h, W, U)
            steps.append(h[0])
        out.append(np.array(steps))
    return out


def outputs_by_step(served: list[tuple[LaneStep, np.ndarray]]) -> dict[tuple[int, int], np.ndarray]:
    """``(series, step) -> output`` of every real step served, read from the targets (each step's id)."""
    found: dict[tuple[int, int], np.ndarray] = {}
    for step, out in served:
        real = step.weight > 0
        assert step.y is not None
        for i, t in zip(*np.nonzero(real)):
            sid = int(step.y[i, t, 0])
            key = (sid // ID, sid % ID)
            assert key not in found, f"step {key} served twice in one epoch"
            found[key] = out[i, t]
    return found


def assert_equal_to_whole_series(served, series, W, U) -> None:
    ref = whole_series(series, W, U)
    found = outputs_by_step(served)
    assert sorted(found) == [(j, s) for j in range(len(series)) for s in range(len(series[j]))]
    for (j, s), v in found.items():
        np.testing.assert_array_equal(v, ref[j][s], err_msg=f"series {j} step {s}")


def make_data(seed: int, lengths: list[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    series = [rng.standard_normal((n, F)) for n in lengths]
    ids = [(j * ID + np.arange(n, dtype=np.float64))[:, None] for j, n in enumerate(lengths)]
    return series, ids


@pytest.fixture
def weights() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    return rng.standard_normal((H, F)) * 0.8, rng.standard_normal((H, H)) * 0.5


LENGTHS = [23, 7, 31, 12, 5, 18, 40, 9]


@pytest.mark.parametrize("shuffle", [False, True])
def test_a_toy_adapter_over_the_feed_equals_each_whole_series(weights, shuffle):
    W, U = weights
    series, ids = make_data(0, LENGTHS)
    arranged = sb.arrange_stateful(series, 4, 3, targets=ids, shuffle=shuffle, seed=5)
    adapter = ToyAdapter(W, U, arranged.batch_size)
    packings = []
    for epoch in range(3):
        served = adapter.epoch(arranged, epoch)
        assert_equal_to_whole_series(served, series, W, U)
        assert served[0][0].reset.all()  # every lane starts the epoch from zero
        packings.append(np.concatenate([s.y[..., 0] for s, _ in served]).tolist())
    # a shuffled arrangement repacks every epoch (and the outputs above stayed exact); a plain one does not
    assert (packings[0] != packings[1] or packings[1] != packings[2]) == shuffle


def test_validation_in_the_middle_of_an_epoch_keeps_its_state_apart(weights):
    W, U = weights
    series, ids = make_data(0, LENGTHS)
    val_series, val_ids = make_data(2, [11, 6, 14])
    arranged = sb.arrange_stateful(series, 4, 3, targets=ids, shuffle=True, seed=5)
    val = sb.arrange_stateful(val_series, 4, 3, targets=val_ids)
    adapter = ToyAdapter(W, U, arranged.batch_size)
    validated = []

    def validate_after(k: int) -> None:
        if k in (1, 4):  # mid-epoch, while the lanes hold training state
            before = adapter.state.snapshot()
            assert np.abs(before).sum() > 0
            validated.append(adapter.validate(val))
            np.testing.assert_array_equal(adapter.state.h, before)  # the training state is back, exactly

    for epoch in range(2):
        assert_equal_to_whole_series(adapter.epoch(arranged, epoch, between=validate_after), series, W, U)
    assert len(validated) == 4
    for v in validated:  # validation from zero state (not from the training state), every time
        assert_equal_to_whole_series(v, val_series, W, U)
    assert None in adapter.state.zeroed  # the validation schedule zeroed every lane before validating


def test_without_the_resets_the_toy_adapter_would_be_wrong(weights):
    # the check above can fail: ignoring the feed's reset rows carries one series' state into the next
    W, U = weights
    series, ids = make_data(0, LENGTHS)
    arranged = sb.arrange_stateful(series, 4, 3, targets=ids)
    adapter = ToyAdapter(W, U, arranged.batch_size)
    served = []
    for step in lane_steps(arranged, 0):
        served.append((step, adapter.run_batch(step._replace(reset=np.zeros_like(step.reset)))))
    with pytest.raises(AssertionError):
        assert_equal_to_whole_series(served, series, W, U)
