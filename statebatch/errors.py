"""Exception and warning types.

Every error statebatch raises is a :class:`StatebatchError` and also a built-in ``ValueError`` or
``TypeError``, so ``except ValueError`` keeps working. Messages follow one pattern: what is wrong,
the shapes involved, and a line starting with ``Fix:`` that says what to do.
"""

from __future__ import annotations


class StatebatchError(Exception):
    """Base class of all statebatch errors."""

    def __init__(self, problem: str, fix: str | None = None) -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem if fix is None else f"{problem}\n  Fix: {fix}")


class ParameterError(StatebatchError, ValueError):
    """A statebatch function was called with an invalid parameter value."""


class BatchIndexError(ParameterError, IndexError):
    """A batch index outside the epoch (also an ``IndexError``, which ends Python's sequence iteration)."""


class ShapeError(StatebatchError, ValueError):
    """An array has the wrong rank or shape (e.g. 2-D X for an RNN)."""


class LengthMismatchError(ShapeError):
    """Arrays that must have one entry per sample (X, y, sample_weight) differ in length."""


class ModelMismatchError(ShapeError):
    """The data does not match the model's input (timesteps, features, fixed batch size)."""


class DataValueError(StatebatchError, ValueError):
    """The data holds values a network cannot train on (NaN, inf) or is empty."""


class DTypeError(StatebatchError, TypeError):
    """The data has a dtype a network cannot use (object, strings, ragged lists)."""


class OrderError(StatebatchError, ValueError):
    """Time-ordered data is not in time order (unsorted index, duplicate timestamps)."""


class StatefulLayoutError(StatebatchError, ValueError):
    """Data is arranged in a way that breaks a stateful RNN's per-row state."""


class BatchSizeError(StatefulLayoutError):
    """The sample count or the model's fixed batch size does not fit ``batch_size``."""


class ShuffleError(StatefulLayoutError):
    """Shuffling was requested for data whose order carries state."""


class OverlappingWindowsError(StatefulLayoutError):
    """Sliding (overlapping) windows were fed to a stateful model."""


class RemainderError(StatefulLayoutError):
    """Data does not divide into whole chunks/batches and ``remainder="error"`` was asked for."""


class StatebatchWarning(UserWarning):
    """Something legal but suspicious; collected in reports and emitted as a warning."""


class StoreError(StatebatchError, ValueError):
    """An out-of-core store is missing, truncated, changed since it was written, or unreadable."""


class UnsupportedModelError(StatebatchError, ValueError):
    """A model whose graph statebatch cannot rewrite (subclassed models, shared or hidden stateful layers)."""


class UnknownSeriesError(ParameterError, KeyError):
    """A series id that a state store does not hold (also a ``KeyError``)."""

    def __str__(self) -> str:  # KeyError would print the message's repr
        return Exception.__str__(self)
