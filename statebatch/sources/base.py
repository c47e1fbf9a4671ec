"""Row sources: the data behind a plan.

A **row source** is anything with a length, a ``shape`` ``(rows, *row_shape)`` and a ``dtype`` that
reads row ranges and row lists::

    len(source)                     -> rows
    source.read(start, stop)        -> ndarray (stop - start, *row_shape)   (may be a read-only view)
    source.take(rows)               -> ndarray (len(rows), *row_shape)      (a new array)

Planners never see data, only lengths; materialisers read batches from a row source. In-memory
sources also expose ``array`` (the whole data as a read-only ndarray, no copy), which lets the
materialisers use strided views and one gather per batch. Implementations here: :class:`ArraySource`
(numpy arrays and memmaps, zero-copy) and :class:`ConcatSource` (many arrays laid end to end without
concatenating them). Out-of-core sources live in :mod:`statebatch.store`, Zarr in
:mod:`statebatch.zarr` and Dask in :mod:`statebatch.dask`; each subclasses :class:`RowSource`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..errors import DTypeError, ParameterError, ShapeError


def readonly(arr: np.ndarray) -> np.ndarray:
    """A read-only view of ``arr`` (the array itself when it is already read-only).

    Examples
    --------
    >>> import numpy as np
    >>> readonly(np.zeros(3)).flags.writeable
    False
    """
    if not arr.flags.writeable:
        return arr
    view = arr.view()
    view.flags.writeable = False
    return view


class RowSource:
    """Base class of row sources; subclasses implement :meth:`read` (and may override :meth:`take`)."""

    shape: tuple
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return int(self.shape[0])

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * self.dtype.itemsize

    @property
    def array(self) -> np.ndarray | None:
        """The whole source as a read-only in-memory array without copying, or ``None``."""
        return None

    def _check_range(self, start: int, stop: int) -> None:
        n = len(self)
        if not 0 <= start <= stop <= n:
            raise ParameterError(f"rows [{start}, {stop}) are outside the source's 0..{n} rows ({self!r}).",
                                 "ask for rows inside the source (this is a statebatch bug if it came from a plan).")

    def read(self, start: int, stop: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def take(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        """Rows in any order (repeats allowed), one read per run of consecutive rows."""
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        out = np.empty((len(rows),) + tuple(self.shape[1:]), dtype=self.dtype)
        if len(rows) == 0:
            return out
        if rows.min() < 0 or rows.max() >= len(self):
            raise ParameterError(f"row indices {int(rows.min())}..{int(rows.max())} are outside 0..{len(self) - 1}.",
                                 "ask for rows inside the source.")
        order = np.argsort(rows, kind="stable")
        r = rows[order]
        uniq = np.unique(r)
        breaks = np.flatnonzero(np.diff(uniq) != 1) + 1
        blocks = [self.read(int(run[0]), int(run[-1]) + 1) for run in np.split(uniq, breaks)]
        block = blocks[0] if len(blocks) == 1 else np.concatenate(blocks)
        pos = np.searchsorted(uniq, r)
        out[order] = block[pos]
        return out

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            k = int(key) + (len(self) if key < 0 else 0)
            return self.read(k, k + 1)[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                return self.read(start, max(start, stop))
            return self.take(np.arange(start, stop, step))
        if isinstance(key, tuple):
            raise ParameterError("row sources support row indexing only (no column selection).",
                                 "select columns with statebatch.source.ColumnSource, or before building the source.")
        key = np.asarray(key)
        if key.dtype == bool:
            key = np.flatnonzero(key)
        return self.take(key.reshape(-1)).reshape(key.shape + tuple(self.shape[1:]))

    def to_numpy(self) -> np.ndarray:
        return self.read(0, len(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shape={self.shape}, dtype={self.dtype})"


class ArraySource(RowSource):
    """A numpy array (or memmap) as a row source: reads are read-only views, never copies."""

    def __init__(self, array: np.ndarray):
        if not isinstance(array, np.ndarray):
            raise ParameterError(f"ArraySource needs a numpy array, got {type(array).__name__}.",
                                 "pass np.asarray(data).")
        if array.ndim == 0:
            raise ShapeError("a row source needs at least one axis, got a scalar.", "pass an array of rows.")
        self._array = readonly(array)
        self.shape = array.shape
        self.dtype = array.dtype

    @property
    def array(self) -> np.ndarray:
        return self._array

    def read(self, start: int, stop: int) -> np.ndarray:
        self._check_range(start, stop)
        return self._array[start:stop]

    def take(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise ParameterError(f"row indices {int(rows.min())}..{int(rows.max())} are outside 0..{len(self) - 1}.",
                                 "ask for rows inside the source.")
        return self._array[rows]


class ConcatSource(RowSource):
    """Many arrays or row sources (same trailing shape and dtype) laid end to end, not concatenated.

    ``pieces`` (read-only views) and ``offsets`` let materialisers copy whole chunks straight from each
    piece; for in-memory pieces a concatenated copy is made only when a strided view over all rows is
    needed (:meth:`concatenated`, computed once).

    Parameters
    ----------
    pieces : sequence of arrays or row sources ``(rows_i, *row)``
    checked : bool
        The caller has checked that every piece is a numpy array of one dtype and trailing shape (the
        per-piece checks are skipped: 10,000 series cost no Python loop here).
    """

    def __init__(self, pieces: Sequence[Any], *, checked: bool = False):
        pieces = list(pieces)
        if not pieces:
            raise ParameterError("ConcatSource needs at least one array.", "pass a non-empty list of arrays.")
        tail, dtype = tuple(pieces[0].shape[1:]), np.dtype(pieces[0].dtype)
        uniform = checked or {(tuple(p.shape[1:]), p.dtype) for p in pieces} == {(tail, dtype)}
        for i, p in enumerate([] if uniform else pieces):  # find the odd one out only when there is one
            if tuple(p.shape[1:]) != tail:
                raise ShapeError(f"piece {i} has shape {tuple(p.shape)}, unlike {tuple(pieces[0].shape)} (trailing axes "
                                 "differ).", "give every series the same number of features.")
            if np.dtype(p.dtype) != dtype:
                raise DTypeError(f"piece {i} has dtype {p.dtype}, unlike {dtype}.", "convert all series to one dtype.")
        # The pieces as given: they may be the caller's writable arrays, so they are only ever copied from
        # (raw_pieces); everything handed out is a read-only view (pieces, read, array).
        self.raw_pieces = pieces
        self._pieces: list | None = None
        self.offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
        np.cumsum(np.fromiter(map(len, pieces), dtype=np.int64, count=len(pieces)), out=self.offsets[1:])
        self.shape = (int(self.offsets[-1]),) + tail
        self.dtype = dtype
        self.in_memory = checked or all(isinstance(p, np.ndarray) for p in pieces)
        self._concat: np.ndarray | None = None

    @property
    def pieces(self) -> list:
        """The pieces, in-memory ones as read-only views (made on first use)."""
        if self._pieces is None:
            self._pieces = [readonly(p) if isinstance(p, np.ndarray) else p for p in self.raw_pieces]
        return self._pieces

    def concatenated(self) -> np.ndarray:
        """All rows as one read-only array (one copy, kept; in-memory pieces only)."""
        if not self.in_memory:
            raise ParameterError("these series are out of core: concatenating them would read everything.",
                                 "read them batch by batch (statebatch does), or load them first.")
        if self._concat is None:
            self._concat = readonly(self.raw_pieces[0] if len(self.raw_pieces) == 1 else np.concatenate(self.raw_pieces))
        return self._concat

    @property
    def array(self) -> np.ndarray | None:
        if self._concat is not None:
            return self._concat
        return self.pieces[0] if len(self.raw_pieces) == 1 and self.in_memory else None

    def read(self, start: int, stop: int) -> np.ndarray:
        self._check_range(start, stop)
        if self._concat is not None:
            return self._concat[start:stop]
        first = int(np.searchsorted(self.offsets, start, side="right")) - 1
        parts, pos, k = [], start, max(first, 0)
        while pos < stop:
            lo = pos - int(self.offsets[k])
            hi = min(stop, int(self.offsets[k + 1])) - int(self.offsets[k])
            parts.append(self.raw_pieces[k][lo:hi])
            pos = int(self.offsets[k]) + hi
            k += 1
        if len(parts) == 1:
            return readonly(parts[0]) if isinstance(parts[0], np.ndarray) else parts[0]
        if not parts:
            return np.empty((0,) + tuple(self.shape[1:]), dtype=self.dtype)
        return np.concatenate(parts)


class ColumnSource(RowSource):
    """Some columns of a 2-D source (e.g. the target columns of the data), read lazily."""

    def __init__(self, inner: RowSource, columns: Sequence[int]):
        if inner.ndim != 2:
            raise ShapeError(f"column selection needs a 2-D source, got shape {inner.shape}.", "select columns of a 2-D series.")
        cols = np.asarray(list(columns), dtype=np.int64)
        nf = inner.shape[1]
        if cols.ndim != 1 or len(cols) == 0 or cols.min() < -nf or cols.max() >= nf:
            raise ParameterError(f"columns {list(columns)} do not exist: the data has {nf} feature(s) (0..{nf - 1}).",
                                 f"pass feature positions between 0 and {nf - 1}.")
        self.inner, self.columns = inner, cols % nf
        self.shape = (inner.shape[0], len(cols))
        self.dtype = inner.dtype
        arr = inner.array
        self._array = None if arr is None else readonly(np.ascontiguousarray(arr[:, self.columns]))

    @property
    def array(self) -> np.ndarray | None:
        return self._array

    def read(self, start: int, stop: int) -> np.ndarray:
        self._check_range(start, stop)
        if self._array is not None:
            return self._array[start:stop]
        return self.inner.read(start, stop)[:, self.columns]


def is_source(obj: Any) -> bool:
    """Whether ``obj`` satisfies the row-source protocol (a :class:`RowSource` or a duck type).

    Examples
    --------
    >>> import numpy as np
    >>> is_source(ArraySource(np.zeros((2, 1)))), is_source(np.zeros(3))
    (True, False)
    """
    if isinstance(obj, RowSource):
        return True
    return all(hasattr(obj, a) for a in ("shape", "dtype", "read", "take", "__len__")) and not isinstance(obj, np.ndarray)


class _Wrapped(RowSource):
    """A third-party object that follows the protocol, checked on every read."""

    def __init__(self, obj: Any):
        self.obj = obj
        self.shape = tuple(int(d) for d in obj.shape)
        self.dtype = np.dtype(obj.dtype)

    def read(self, start: int, stop: int) -> np.ndarray:
        self._check_range(start, stop)
        out = np.asarray(self.obj.read(start, stop))
        if out.shape != (stop - start,) + self.shape[1:]:
            raise ShapeError(f"{type(self.obj).__name__}.read({start}, {stop}) returned shape {out.shape}, expected "
                             f"{(stop - start,) + self.shape[1:]}.", "fix the row source's read method.")
        return out

    def take(self, rows):
        out = np.asarray(self.obj.take(np.asarray(rows, dtype=np.int64)))
        if out.shape[0] != len(rows):
            raise ShapeError(f"{type(self.obj).__name__}.take returned {out.shape[0]} rows for {len(rows)}.",
                             "fix the row source's take method.")
        return out


def as_source(obj: Any) -> RowSource:
    """A :class:`RowSource` for numpy arrays, memmaps and objects following the protocol.

    Examples
    --------
    >>> import numpy as np
    >>> as_source(np.zeros((4, 2)))
    ArraySource(shape=(4, 2), dtype=float64)
    """
    if isinstance(obj, RowSource):
        return obj
    if isinstance(obj, np.ndarray):
        return ArraySource(obj)
    if is_source(obj):
        return _Wrapped(obj)
    raise ParameterError(f"{type(obj).__name__} is not a row source.",
                         "pass a numpy array, a statebatch store, or an object with shape, dtype, read(start, stop) "
                         "and take(rows).")

