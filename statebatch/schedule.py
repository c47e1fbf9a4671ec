"""Framework-neutral epoch logic for stateful lanes: what any training loop must do, and when.

A framework adapter (``statebatch.keras``, ``statebatch.torch``) wraps its recurrent state in a
:class:`StateHandle` (zero some rows, take a snapshot, restore it) and calls a :class:`LaneSchedule`
at the start of every epoch, before every batch, and around validation. The schedule decides:

- which lanes to zero before batch ``k`` of the current epoch's plan (all lanes before the first
  batch of an epoch; afterwards the lanes that move on to a new series);
- that validation inside training must save the training state first and restore it afterwards,
  and start from zero unless the validation data continues the training lanes;
- that batches arrive in order (:class:`InOrderGuard`), since a shuffled order scrambles lanes.
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

import numpy as np

from ._args import check_int
from .errors import ParameterError, ShuffleError


class StateHandle(Protocol):
    """What a framework adapter exposes of a model's recurrent state (rows = lanes)."""

    def zero(self, rows: np.ndarray | None) -> None:
        """Zero the state of ``rows`` (all rows when ``None``)."""

    def snapshot(self) -> Any:
        """A copy of the whole state."""

    def restore(self, snapshot: Any) -> None:
        """Put a snapshot back."""


def resets_of(data: Any) -> tuple[Any, bool, int]:
    """``(result, continues, batch_size)`` of an arrangement-like object (anything with ``resets``)."""
    inner = getattr(data, "arranged", None) or getattr(data, "shards", None) or data
    if getattr(inner, "resets", None) is None or not hasattr(inner, "batch_size"):
        raise ParameterError(f"expected arranged lanes (statebatch.arrange_stateful) or their dataset, got "
                             f"{type(data).__name__}.", "pass what statebatch.arrange_stateful returned (or its "
                             "StatefulDataset).")
    return inner, bool(getattr(inner, "continues", False)), int(inner.batch_size)


class LaneSchedule:
    """When the lanes of one arrangement must be zeroed, per epoch and batch.

    Parameters
    ----------
    data : Arranged (or anything with ``resets``, ``batch_size``, ``plan``/``epoch``), or its dataset
    reset_on_epoch_begin : bool
        Zero every lane at the start of each epoch (default). ``False`` carries state from one epoch
        into the next (all lanes still start from zero in the first epoch).
    """

    def __init__(self, data: Any, *, reset_on_epoch_begin: bool = True):
        self.result, self.continues, self.batch_size = resets_of(data)
        self.reset_on_epoch_begin = reset_on_epoch_begin
        self.resets_done = 0  # lanes zeroed before batches other than the first (for inspection)

    def n_batches(self) -> int:
        return int(np.asarray(self.result.resets).shape[0])

    def epoch_begin(self, state: StateHandle, epoch: int) -> None:
        """Start of training epoch ``epoch``: serve that epoch's plan and zero every lane."""
        epoch = check_int("epoch", epoch, 0)
        if hasattr(self.result, "set_epoch"):
            self.result.set_epoch(epoch)
        if self.reset_on_epoch_begin or epoch == 0:
            state.zero(None)

    def rows_before(self, k: int, *, from_zero: bool) -> np.ndarray:
        """Lanes to zero before batch ``k``. ``from_zero``: every lane was zeroed just before batch 0."""
        resets = np.asarray(self.result.resets)
        if not 0 <= k < len(resets):
            return np.empty(0, dtype=np.int64)
        if k == 0 and from_zero:
            return np.empty(0, dtype=np.int64)  # batch 0 follows the full reset
        return np.flatnonzero(resets[k])

    def batch_begin(self, state: StateHandle, k: int, *, from_zero: bool = True) -> np.ndarray:
        rows = self.rows_before(k, from_zero=from_zero)
        if len(rows):
            state.zero(rows)
            self.resets_done += len(rows)
        return rows


class ValidationSchedule:
    """Validation inside training: keep its state apart from the training state.

    The training state is saved before validation and restored after it. Validation starts from
    zero, except when the validation data says it continues the training lanes (``continues=True``):
    then it starts from the training state. (:meth:`Arranged.split` holds out the end of every series
    and replays each series from its start, so its validation part starts from zero.)
    """

    def __init__(self, data: Any):
        self.lanes = LaneSchedule(data)
        self._saved: Any = None

    @property
    def continues(self) -> bool:
        return self.lanes.continues

    def begin(self, state: StateHandle) -> None:
        self._saved = state.snapshot()
        if not self.continues:
            state.zero(None)

    def batch_begin(self, state: StateHandle, k: int) -> np.ndarray:
        return self.lanes.batch_begin(state, k, from_zero=not self.continues)

    def end(self, state: StateHandle) -> None:
        if self._saved is not None:
            state.restore(self._saved)
            self._saved = None


class InOrderGuard:
    """Refuse batch requests that are not in order, which would scramble stateful lanes.

    One worker: batch ``k`` may be requested when it is the first of a pass (0) or follows the batches
    before it. Several worker threads (Keras' ``OrderedEnqueuer``): batches are handed to threads in
    order and delivered to the model in that order, but a thread may reach ``__getitem__`` late, so
    requests arrive slightly out of order. The guard then accepts a batch within ``window`` = ``workers
    + lookahead`` (the batches in flight) of the highest one of the pass, refuses repeats, and starts a
    new pass when a batch of the first window comes again. A shuffled order is caught as soon as two
    requests lie further apart than the window (at once, for epochs of more than a few windows);
    shorter shuffled epochs with several workers cannot be told from thread timing. Thread-safe.
    """

    def __init__(self, *, workers: int = 1, lookahead: int = 0, what: str = "stateful batches"):
        self.workers = max(1, int(workers))
        self.window = self.workers + (max(0, int(lookahead)) if self.workers > 1 else 0)
        self.what = what
        self._lock = threading.Lock()
        self._served: set[int] = set()
        self._low = 0  # the oldest batch not yet served (one worker)
        self._high = -1  # the highest batch served in this pass (several workers)

    def reset(self) -> None:
        with self._lock:
            self._served.clear()
            self._low, self._high = 0, -1

    def _refuse(self, k: int) -> None:
        expected = self._low if self.workers == 1 else max(self._high - self.window + 1, 0)
        self._served.clear()
        self._low, self._high = 0, -1
        where = (f"batch {k} where batch {expected} comes " + ("first" if expected == 0 else f"after batch {expected - 1}")
                 if self.workers == 1 else f"batch {k} after batch {expected if expected > 0 else 0}.."
                 f"{max(expected, 0) + self.window - 1} with {self.workers} worker threads")
        raise ShuffleError(
            f"{self.what} were requested out of order ({where}); Keras shuffles a PyDataset's batches when "
            "fit(shuffle=True), its default, which would scramble which lane continues which.",
            "pass shuffle=False to model.fit (or use statebatch.keras.fit_stateful).")

    def check(self, k: int) -> None:
        with self._lock:
            if self.workers == 1:
                if k == 0 and self._low > 0 and 0 in self._served and len(self._served) == self._low:
                    self._served.clear()  # a new pass over the data (e.g. evaluate after fit)
                    self._low = 0
                if k in self._served or k != self._low:
                    self._refuse(k)
                self._served.add(k)
                while self._low in self._served:
                    self._low += 1
                return
            if k < self.window and (k in self._served or k < self._high - self.window):
                # A new pass: an early batch again, or one far behind this pass (Keras on TF peeks batches 0
                # and 1, then iterates from 0, and a thread may take 2 before 0 and 1 arrive again).
                self._served.clear()
                self._high = -1
            elif k in self._served:
                self._refuse(k)
            limit = self.window if self._high < 0 else self._high + self.window
            if k >= limit or k < self._high - self.window:
                self._refuse(k)
            self._served.add(k)
            self._high = max(self._high, k)
