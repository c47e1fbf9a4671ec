"""The result protocol shared by :class:`~statebatch.Windows`, :class:`~statebatch.Arranged` and
:class:`~statebatch.Bucketing`, and the types every result reports with.

One vocabulary for all three (``docs/design.md`` lists it):

============================  ===================================================================
``plan(epoch=None)``          the epoch's plan: a small value of integer arrays (pure)
``n_batches``                 batches in the current epoch
``batch(k, epoch=None)``      batch ``k`` as ``(X,)``, ``(X, y)`` or ``(X, y, sample_weight)``
``batches(epoch=None)``       iterator over one epoch's batches
``iter(result)``              the current epoch's batches, then ``epoch += 1``
``epoch`` / ``set_epoch(e)``  which epoch ``batch`` and ``batches`` serve by default
``batch_size``                rows per batch (at most, for the last batch or a token budget)
``left_out``                  list of :class:`LeftOut`: data in no batch this epoch, with reasons
``padding_fraction``          padded steps / all steps this epoch
``explain()``                 :class:`Explanation` in words
``unbatch(outputs)``          model outputs in batch order back to the original order (by default
                              with the plan of the epoch whose batches were served last)
============================  ===================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
import math
from typing import Any, Iterator

import numpy as np

from .._args import check_int
from ..errors import DataValueError, ParameterError, ShapeError
from ..plans.base import LeftOut, named
from ..sources.base import RowSource
from ..sources.series import SeriesSet

__all__ = ["LeftOut", "Explanation", "Batched", "SizedResult", "stack_outputs"]


@dataclass
class Explanation:
    """What Keras does with some data, in words; ``print(explanation)`` gives it.

    Attributes
    ----------
    shape : ``(samples, timesteps, features)``; ``timesteps`` may be ``None`` (variable)
    batch_size : rows per batch
    stateful : whether the recurrent layers keep state across batches
    n_batches : batches per epoch (steps per epoch)
    last_batch_size : size of the last batch (``batch_size`` when it divides evenly)
    parallel_states : recurrent states kept side by side (one per row of a batch)
    resets_per_epoch : how often state is zeroed in one epoch (by Keras, or by statebatch's resets)
    lines : the explanation, one sentence per item; the first answers "when is state reset?"
    problems : what would go wrong, with the fix
    layout : what the data looks like (when explain read data), e.g. ``"sliding_windows"``
    """

    shape: tuple
    batch_size: int
    stateful: bool
    n_batches: int
    last_batch_size: int
    parallel_states: int
    resets_per_epoch: int
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    layout: str | None = None

    def continues(self, sample: int) -> int | None:
        """Index of the sample whose final state is the initial state of ``sample`` (or ``None``).

        Stateful: sample ``k*B + i`` continues sample ``(k-1)*B + i`` (same row, previous batch).
        Stateless: every sample starts from zero state.
        """
        n = self.shape[0]
        sample = check_int("sample", sample)
        if not 0 <= sample < n:
            raise ParameterError(f"sample {sample} is outside 0..{n - 1}.", "pass a valid sample index.")
        if not self.stateful or sample < self.batch_size:
            return None
        return sample - self.batch_size

    def __str__(self) -> str:
        out = [f"statebatch explain: X {self._fmt_shape()}, batch_size={self.batch_size}, stateful={self.stateful}"]
        out += [f"  - {line}" for line in self.lines]
        out += [f"  ! {p}" for p in self.problems]
        return "\n".join(out)

    def _fmt_shape(self) -> str:
        return "(" + ", ".join("None" if d is None else str(d) for d in self.shape) + ")"

    def _repr_pretty_(self, p, cycle):  # IPython
        p.text(str(self))


class Batched:
    """Base class of statebatch results: epoch handling and the parts of the protocol they share.

    Subclasses implement ``_make_plan(epoch)``, ``batch(k, epoch)``, ``explain()``, ``unbatch()`` and
    set ``series_ids``.
    """

    epoch: int = 0
    series_ids: list

    # -- plans, one per epoch (the two most recent are kept)
    def _make_plan(self, epoch: int):  # pragma: no cover - abstract
        raise NotImplementedError

    def plan(self, epoch: int | None = None):
        """The plan of ``epoch`` (default: the current epoch)."""
        epoch = self.epoch if epoch is None else check_int("epoch", epoch, 0)
        cache = self.__dict__.setdefault("_plans", {})
        if epoch not in cache:
            if len(cache) >= 2:
                cache.pop(next(iter(cache)))
            cache[epoch] = self._make_plan(epoch)
        return cache[epoch]

    # Out-of-core data is not read up front, so NaN/inf are looked for in each batch as it is read
    # (X not, where its store was checked when written: series.checked_finite). NaN and inf are allowed
    # separately (allow_nan, allow_inf), as the up-front check does.
    _check_batches: bool = False
    _x_checked: bool = False
    _allow_nan: bool = False
    _allow_inf: bool = False
    _lazy: bool = False

    def _allow(self, allow_nan: bool, allow_inf: bool, *, checked: bool, lazy: bool) -> None:
        """Which values the batch-time scan refuses: ``lazy`` (out-of-core) data is scanned unless both NaN and
        inf are allowed; X not where its store was ``checked`` when written."""
        self._allow_nan, self._allow_inf, self._lazy, self._x_checked = allow_nan, allow_inf, lazy, checked
        self._check_batches = lazy and not (allow_nan and allow_inf)

    def _finite(self, arrays: tuple, k: int | str) -> tuple:
        if self._check_batches:
            for name, a in zip(("X", "y"), arrays[:2]):
                if name == "X" and self._x_checked:  # read from a store checked when it was written
                    continue
                # one reduction per batch (NaN/inf make the sum non-finite); the exact test only then
                with np.errstate(all="ignore"):
                    if a.dtype.kind not in "fc" or math.isfinite(float(np.add.reduce(a, axis=None))):
                        continue
                kind = self._refused(a)
                if kind:
                    raise DataValueError(
                        f"batch {k} holds {kind} in {name}, read from out-of-core data (NaN/inf are looked for batch by "
                        "batch as it is read; in-memory data is checked up front).",
                        "fill or drop them when preparing the store (statebatch.dask.prepare refuses them by default), "
                        f"or pass {'allow_nan=True' if 'NaN' in kind else 'allow_inf=True'}.")
        return arrays

    def _refused(self, a: np.ndarray) -> str:
        """Which refused non-finite values ``a`` holds: ``"NaN"``, ``"inf"``, ``"NaN/inf"`` or ``""``."""
        nan = not self._allow_nan and bool(np.isnan(a).any())
        inf = not self._allow_inf and bool(np.isinf(a).any())
        return "NaN/inf" if nan and inf else "NaN" if nan else "inf" if inf else ""

    def _serve(self, epoch: int | None):
        """The plan whose batches are being handed out; remembered so that :meth:`unbatch` maps model
        outputs back with the plan that produced their inputs (Keras datasets and ``for batch in
        result`` move on to the next epoch as soon as an epoch is consumed)."""
        plan = self.plan(epoch)
        self._served = plan.epoch
        return plan

    def _outputs_plan(self, epoch: int | None):
        """The plan outputs belong to: ``epoch``, else the epoch batches were last served from."""
        if epoch is None:
            epoch = self.__dict__.get("_served", self.epoch)
        return self.plan(epoch)

    @property
    def n_batches(self) -> int:
        """Batches in the current epoch."""
        return self.plan().n_batches

    def set_epoch(self, epoch: int) -> None:
        """Serve ``epoch`` from now on (``batch``, ``batches``, datasets built on this result)."""
        self.epoch = check_int("epoch", epoch, 0)

    def _check_k(self, k: Any, n_batches: int) -> int:
        k = check_int("batch index", k)
        if not 0 <= k < n_batches:
            raise ParameterError(f"batch {k} is outside 0..{n_batches - 1} ({n_batches} batches this epoch).",
                                 "pass a batch index between 0 and n_batches - 1.")
        return k

    def batch(self, k: int, epoch: int | None = None) -> tuple:  # pragma: no cover - abstract
        raise NotImplementedError

    def batches(self, epoch: int | None = None) -> Iterator[tuple]:
        """Iterate over the batches of one epoch (default: the current one)."""
        epoch = self.epoch if epoch is None else check_int("epoch", epoch, 0)
        for k in range(self.plan(epoch).n_batches):
            yield self.batch(k, epoch)

    def __iter__(self) -> Iterator[tuple]:
        """The current epoch's batches; afterwards the result moves on to the next epoch."""
        epoch = self.epoch
        yield from self.batches(epoch)
        self.epoch = epoch + 1

    @property
    def left_out(self) -> list[LeftOut]:
        """Data in no batch this epoch, with the reason (series ids, steps)."""
        return named(self.plan().left_out, self.series_ids)

    @property
    def padding_fraction(self) -> float:
        """Padded steps / all steps of the current epoch."""
        return float(self.plan().padding_fraction)


class SizedResult:
    """The size properties of a result over a :class:`~statebatch.sources.series.SeriesSet`, written once
    (``Windows`` and ``Arranged``): the subclass sets ``_ss``, ``_ysource`` and ``timesteps`` and says
    how many samples (rows of ``X``) it has.
    """

    _ss: SeriesSet
    _ysource: RowSource | None
    timesteps: int

    def _n_samples(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def n_features(self) -> int:
        """Features per step of ``X``."""
        return self._ss.n_features

    @property
    def n_series(self) -> int:
        """Series the result was built from."""
        return self._ss.n_series

    @property
    def has_targets(self) -> bool:
        """Whether batches carry targets (``y``)."""
        return self._ysource is not None

    @property
    def shape(self) -> tuple[int, int, int]:
        """``X``'s shape: ``(samples, timesteps, features)``."""
        return (self._n_samples(), self.timesteps, self.n_features)


def stack_outputs(outputs: Any) -> np.ndarray:
    """Model outputs as one array, rows in batch order: an array, or a list with one array per batch.

    Examples
    --------
    >>> import numpy as np
    >>> stack_outputs([np.zeros((2, 3)), np.ones((1, 3))]).shape
    (3, 3)
    """
    if isinstance(outputs, (list, tuple)) and outputs and all(hasattr(o, "shape") for o in outputs):
        try:
            return np.concatenate([np.asarray(o) for o in outputs])
        except ValueError as exc:
            raise ShapeError(f"per-batch outputs cannot be joined ({exc}).",
                             "pass outputs with the same shape after the batch axis.") from None
    if outputs is None:
        raise ParameterError("outputs is None.", "pass the model's predictions (an array, or a list of per-batch arrays).")
    try:
        out = np.asarray(outputs)
    except (TypeError, ValueError) as exc:
        raise ParameterError("outputs are a ragged list (rows of different shapes), not one array"
                             + ("" if "inhomogeneous" in str(exc) else f" ({type(exc).__name__})") + ".",
                             "pass an array of predictions, or a list with one array per batch.") from None
    if out.ndim == 0:
        raise ShapeError("outputs is a scalar.", "pass one output row per sample.")
    return out
