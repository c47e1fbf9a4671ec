"""Provenance: arrays statebatch hands out are recognised when they come back.

The results (:mod:`~statebatch.results.windows`, :mod:`~statebatch.results.stateful`,
:mod:`~statebatch.results.bucketing`) record how they made each array they hand out
(:func:`register_provenance`); the layout detector (:mod:`statebatch.checking.layout`) asks
:func:`provenance_of` first, because a record is *exact* evidence: a view of the same memory, or a
copy whose rows are a permutation of all the rows statebatch made, has the layout it was made with
(or that layout reordered). The layout kinds are named here, where both sides read them.

Pure numpy; weak references only, so a record never keeps an array alive.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Provenance", "register_provenance", "provenance_of", "KINDS", "MISTAKES", "LANES", "NATURAL",
           "SLIDING", "SHUFFLED", "INDEPENDENT", "UNDETERMINED", "CHANNELS_FIRST"]

LANES = "lanes"
NATURAL = "natural_order_chunks"
SLIDING = "sliding_windows"
SHUFFLED = "shuffled_lanes"
INDEPENDENT = "independent"
UNDETERMINED = "undetermined"
CHANNELS_FIRST = "channels_first"
KINDS = (LANES, NATURAL, SLIDING, SHUFFLED, INDEPENDENT, UNDETERMINED, CHANNELS_FIRST)
#: Verdicts that mean the data is wrong for a stateful model.
MISTAKES = frozenset({NATURAL, SLIDING, SHUFFLED, CHANNELS_FIRST})
STRUCTURED = frozenset({LANES, NATURAL, SLIDING, SHUFFLED})

# ----------------------------------------------------------------------------------------------
# provenance: arrays statebatch made itself are recognised when they come back


@dataclass(frozen=True)
class Provenance:
    """How statebatch made an array (recorded by the result that handed it out).

    kind : str
        The layout it has by construction: ``lanes`` (``arrange_stateful``), ``sliding_windows``
        or ``natural_order_chunks`` (``make_windows``: stride below / equal to timesteps; above it,
        windows with gaps), ``independent`` (``bucket_batches``: one sequence per row).
    batch_size : int or None
        The batch size the lanes were cut for (lanes only).
    timesteps, stride : int
        Steps per row; steps between the starts of consecutive windows (windows only).
    resets : int
        Lanes that start a new series after the first batch (lanes only).
    maker : str
        The statebatch function that made it.
    """

    kind: str
    batch_size: int | None
    timesteps: int
    stride: int | None = None
    resets: int = 0
    maker: str = ""
    n_series: int = 1


def _owner(arr: np.ndarray) -> np.ndarray:
    """The array that owns ``arr``'s memory (the end of its ``.base`` chain of arrays)."""
    while isinstance(arr.base, np.ndarray):
        arr = arr.base
    return arr


class _Entry:
    __slots__ = ("ref", "owner", "n", "prov", "finger", "keys", "__weakref__")

    def __init__(self, arr: np.ndarray, prov: Provenance):
        self.ref = weakref.ref(arr)              # the array itself: for matching copies of its rows
        self.owner = weakref.ref(_owner(arr))    # its memory: views of it (slices) stay recognised
        self.n = arr.shape[0]
        self.prov = prov
        self.finger = _fingerprint(arr)
        self.keys: np.ndarray | None = None      # per-row content keys, computed on first need


# key: (data pointer, row shape, strides, dtype) -> entries (several results may share a buffer)
_REGISTRY: dict[tuple, list[_Entry]] = {}
_FINGER_ROWS = 32


def _buffer_key(arr: np.ndarray) -> tuple:
    return (arr.__array_interface__["data"][0], arr.shape[1:], arr.strides, arr.dtype.str)


def _fingerprint(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A few evenly spaced whole rows (copied): an in-place change to the array (a shuffle, new
    values) shows as a mismatch, so a stale record never vouches for changed data."""
    n = arr.shape[0]
    idx = np.unique(np.linspace(0, max(n - 1, 0), min(n, _FINGER_ROWS)).astype(np.int64)) if n else np.zeros(0, int)
    return idx, np.array(arr[idx], copy=True)


def _drop(key: tuple, entry_ref: "weakref.ref[_Entry]") -> None:
    lst = _REGISTRY.get(key)
    e = entry_ref()
    if lst is not None and e is not None:
        lst[:] = [x for x in lst if x is not e]
        if not lst:
            del _REGISTRY[key]


def register_provenance(arr: Any, prov: Provenance) -> Any:
    """Record how statebatch made ``arr`` (results call this on the arrays they hand out). Costs a
    copy of a few rows; the record goes when the array does. Returns ``arr``.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(12.0).reshape(3, 4)
    >>> X is register_provenance(X, Provenance(LANES, 1, 4, maker="example"))
    True
    >>> provenance_of(X)[0].maker
    'example'
    """
    if not isinstance(arr, np.ndarray) or arr.ndim < 2 or arr.shape[0] == 0:
        return arr
    try:
        e = _Entry(arr, prov)
    except TypeError:                       # an array type without weak references
        return arr
    key = _buffer_key(arr)
    _REGISTRY.setdefault(key, []).append(e)
    try:
        weakref.finalize(_owner(arr), _drop, key, weakref.ref(e))
    except TypeError:
        weakref.finalize(arr, _drop, key, weakref.ref(e))
    return arr


def _unchanged(e: _Entry, a: np.ndarray) -> bool:
    """``a`` (the registered array, or a view of the same memory with ``n`` <= e.n rows) still
    holds the rows it had when statebatch made it."""
    idx, rows = e.finger
    keep = idx < a.shape[0]
    if not keep.any():
        return False
    cur = np.asarray(a[idx[keep]])
    ref = rows[keep]
    return cur.shape == ref.shape and bool(np.array_equal(cur, ref, equal_nan=ref.dtype.kind == "f"))


def _alive(e: _Entry) -> np.ndarray | None:
    a = e.ref()
    if a is None or not _unchanged(e, a):
        return None                          # gone, or changed in place since statebatch made it
    return a


def provenance_of(X: Any) -> tuple[Provenance, np.ndarray | None] | None:
    """How statebatch made ``X``, when it did: ``(provenance, rows)`` with ``rows`` None when X is
    the array itself or a leading slice of it (same memory), else, for a copy whose rows are all the
    rows of a statebatch array in another order, the index of each of X's rows in that array. None
    when X is not statebatch's (or was changed in place since, or shares only some rows with it).

    Examples
    --------
    >>> import numpy as np
    >>> import statebatch as sb
    >>> X = sb.make_windows(np.arange(10.0), timesteps=4, stride=4).X
    >>> prov, rows = provenance_of(X)
    >>> prov.kind, prov.maker, rows
    ('natural_order_chunks', 'make_windows', None)
    >>> provenance_of(np.zeros((3, 4, 1))) is None  # not made by statebatch
    True
    """
    if not isinstance(X, np.ndarray) or X.ndim < 2 or not _REGISTRY:
        return None
    ptr, rs, st, dt = _buffer_key(X)
    for e in _REGISTRY.get((ptr, rs, st, dt), []):
        # the same memory read the same way (the array, or a leading slice of it), while its owner
        # lives (so the address was not reused) and its rows are unchanged
        if e.owner() is not None and e.n >= X.shape[0] and _unchanged(e, X):
            return e.prov, None
    # a copy of rows of a statebatch array (a permutation, a subset): match rows by content
    n = X.shape[0]
    if n < 2:
        return None
    for key, entries in list(_REGISTRY.items()):
        if key[1] != rs or key[3] != dt:
            continue
        for e in entries:
            a = _alive(e)
            if a is None or a.shape[0] < n // 2:
                continue
            if e.keys is None:
                e.keys = row_keys(a)
            found = match_rows(row_keys(X), e.keys)
            # Exact only for a permutation of ALL the rows statebatch made (fit(shuffle=True), rows
            # permuted in batches, lanes reordered): rows that merely coincide with some of them (lanes
            # cut by hand from the same series, another subset) say nothing about the order of the rest.
            if found is not None and n == a.shape[0] and (found >= 0).all() and np.unique(found).size == n:
                return e.prov, found
    return None


def row_keys(a: np.ndarray) -> np.ndarray:
    """One float64 per row from its first and last steps (a fixed random combination)."""
    flat = np.asarray(a[:, 0]).reshape(a.shape[0], -1).astype(np.float64)
    last = np.asarray(a[:, -1]).reshape(a.shape[0], -1).astype(np.float64) if a.ndim >= 3 else flat
    w = np.random.default_rng(12345).uniform(1.0, 2.0, 2 * flat.shape[1])
    return flat @ w[: flat.shape[1]] + last @ w[flat.shape[1]:]


def match_rows(kx: np.ndarray, ka: np.ndarray) -> np.ndarray | None:
    """Index in ``ka`` of each key of ``kx`` when (nearly) all of them are there and unambiguous."""
    order = np.argsort(ka, kind="stable")
    s = ka[order]
    pos = np.minimum(np.searchsorted(s, kx), s.size - 1)
    hit = (s[pos] == kx) & np.isfinite(kx)
    unique = hit & ((pos + 1 >= s.size) | (s[np.minimum(pos + 1, s.size - 1)] != kx))
    if unique.mean() < 0.9 or np.unique(pos[unique]).size < 0.9 * unique.sum():
        return None
    return np.where(unique, order[pos], -1)
