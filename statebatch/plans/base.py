"""What every plan shares: the record of data left out, and input checks on lengths."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ..errors import ParameterError


class LeftOut(NamedTuple):
    """Steps of one series that a plan puts in no batch (or, for bucketing, a whole sequence).

    Attributes
    ----------
    series : the series (in a plan: its position; in a result: its id)
    first_step : first step left out, within the series
    steps : how many consecutive steps are left out from there (each entry is one contiguous run: a gap
        between two windows is an entry of its own)
    reason : why, in words
    """

    series: Any
    first_step: int
    steps: int
    reason: str


def check_lengths(lengths: Any, what: str = "lengths") -> np.ndarray:
    """A 1-D array of non-negative integer lengths.

    Examples
    --------
    >>> check_lengths([3, 0, 5])
    array([3, 0, 5])
    """
    try:
        arr = np.asarray(lengths)
    except (TypeError, ValueError):
        raise ParameterError(f"{what} must be a sequence of integers.", f"pass one length per series, e.g. {what}=[120, 80].") from None
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1 or arr.size == 0:
        raise ParameterError(f"{what} must be a non-empty 1-D sequence of integers, got shape {arr.shape}.",
                             f"pass one length per series, e.g. {what}=[120, 80].")
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or
                                 (np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr))
                                  and np.all(arr == np.round(arr)))):
        raise ParameterError(f"{what} must hold integers, got dtype {arr.dtype}.", "pass whole step counts.")
    # A read-only int64 array (e.g. the broadcast lengths of equal-length windows) is used as it is:
    # nobody can change it under the plan, and copying it would cost memory per sequence.
    arr = arr if (arr.dtype == np.int64 and not arr.flags.writeable) else arr.astype(np.int64)
    if (arr < 0).any():
        bad = np.flatnonzero(arr < 0)
        raise ParameterError(f"{what} holds negative values (positions {bad[:5].tolist()}: {arr[bad[:5]].tolist()}).",
                             "a length counts steps: pass values >= 0.")
    return arr


def named(left_out: tuple[LeftOut, ...], ids: list) -> list[LeftOut]:
    """Replace series positions by series ids (what results report).

    Examples
    --------
    >>> named((LeftOut(1, 0, 4, "too short"),), ["a", "b"])
    [LeftOut(series='b', first_step=0, steps=4, reason='too short')]
    """
    return [lo._replace(series=ids[lo.series]) for lo in left_out]
