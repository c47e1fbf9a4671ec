"""Materialise batches: a plan's row indices, read from a row source into contiguous arrays.

Three access patterns, each with a fast path per kind of source:

- windows (:func:`gather_windows`): ``n`` windows of ``length`` rows ``step`` apart. In memory: one
  gather from a read-only strided view (numpy stride tricks), no other copy.
- chunks (:func:`gather_chunks`): lane chunks, the last one of a series padded. In memory: one gather
  of whole chunks plus a masked fill of the partial ones; many in-memory arrays: one copy per chunk
  (a whole epoch: :func:`fill_lanes`, lane by lane in a few ``np.concatenate`` calls); out of core:
  a :class:`LaneReader` reads ahead along each lane.
- padded sequences (:func:`gather_padded`): bucketed batches padded to one length.

Every array returned here is new (never a view of the caller's data) unless documented otherwise.
"""

from __future__ import annotations

import math
from typing import Any, Iterator

import numpy as np

from .._args import allocate, check_int, check_size
from ..errors import DTypeError, ParameterError, ShapeError
from ..sources.base import ConcatSource, RowSource, readonly


def strided_windows(base: np.ndarray, length: int, step: int = 1) -> np.ndarray:
    """Read-only view of every window of ``length`` rows, ``step`` apart, along axis 0.

    The public entry: ``length`` and ``step`` must be integers >= 1 and at least one window must fit
    (a zero length or step would repeat rows, a negative one is no window at all).

    Parameters
    ----------
    base : ndarray, shape ``(rows, *trailing)``
    length : int
        Rows per window.
    step : int
        Distance between the rows of one window (``sampling_rate``).

    Returns
    -------
    ndarray, shape ``(max(rows - (length - 1) * step, 0), length, *trailing)``
        Window ``i`` is ``base[i : i + (length - 1) * step + 1 : step]``; no data is copied.

    Examples
    --------
    >>> import numpy as np
    >>> strided_windows(np.arange(6), 3, step=2)
    array([[0, 2, 4],
           [1, 3, 5]])
    """
    length = check_int("length", length, 1)
    step = check_int("step", step, 1)
    try:
        base = np.asarray(base)
    except (TypeError, ValueError):  # ragged lists
        raise DTypeError("base is a ragged list (rows of different lengths), not one array.",
                         "pass one array (rows, ...); window series of different lengths one at a time, or use "
                         "statebatch.make_windows(list_of_series, timesteps).") from None
    if base.ndim == 0:
        raise ShapeError("base is a scalar; windows are cut along axis 0 of an array.", "pass an array (rows, ...).")
    span = (length - 1) * step + 1
    if span > base.shape[0]:
        raise ShapeError(f"a window of length={length} rows, step={step} apart spans {span} rows, more than the "
                         f"{base.shape[0]} rows of base: there is no window.",
                         f"pass length <= {(base.shape[0] - 1) // step + 1} (or a smaller step), or a longer array.")
    return _strided(base, length, step)


def _strided(base: np.ndarray, length: int, step: int = 1) -> np.ndarray:
    """:func:`strided_windows` without the checks (internal callers pass validated sizes; none fit: 0 windows)."""
    base = np.asarray(base)
    n = max(base.shape[0] - (length - 1) * step, 0)
    s0 = base.strides[0]
    return np.lib.stride_tricks.as_strided(base, shape=(n, length) + base.shape[1:],
                                           strides=(s0, step * s0) + base.strides[1:], writeable=False)


def _in_memory(source: RowSource) -> np.ndarray | None:
    arr = source.array
    if arr is None and isinstance(source, ConcatSource) and source.in_memory:
        arr = source.concatenated()
    return arr


def gather_windows(source: RowSource, starts: np.ndarray, length: int, step: int = 1) -> np.ndarray:
    """Windows ``(len(starts), length, *row)``: rows ``s, s+step, ..., s+(length-1)*step`` for each start.

    Examples
    --------
    >>> import numpy as np
    >>> from statebatch.sources.base import ArraySource
    >>> gather_windows(ArraySource(np.arange(10)), np.array([0, 5]), 3)
    array([[0, 1, 2],
           [5, 6, 7]])
    """
    starts = np.asarray(starts, dtype=np.int64)
    # sliding windows repeat each row up to `length` times: the copy can be far larger than the data
    check_size("the windows", (len(starts), length) + tuple(source.shape[1:]), source.dtype.itemsize,
               fix="use a larger stride or fewer timesteps, or feed the windows batch by batch (windows.batches(), "
                   "statebatch.keras.WindowDataset) instead of materialising X.")
    arr = _in_memory(source)
    if arr is not None:
        view = _strided(arr, length, step)
        if len(starts) > 1:
            d = int(starts[1] - starts[0])
            if d > 0 and int(starts[-1] - starts[0]) == d * (len(starts) - 1) and (np.diff(starts) == d).all():
                # evenly spaced (natural order, any stride): a strided slice and one contiguous copy
                return np.ascontiguousarray(view[int(starts[0]): int(starts[-1]) + 1: d])
        return view[starts]
    span = (length - 1) * step + 1
    out = np.empty((len(starts), length) + tuple(source.shape[1:]), dtype=source.dtype)
    if not len(starts):
        return out
    lo, hi = int(starts.min()), int(starts.max()) + span
    if hi - lo <= 4 * len(starts) * span:  # one covering read, then a strided gather
        block = source.read(lo, hi)
        return _strided(block, length, step)[starts - lo]
    for i, s in enumerate(starts.tolist()):
        out[i] = source.read(s, s + span)[::step]
    return out


def sliced_batches(X: np.ndarray, y: np.ndarray | None, batch_size: int,
                   n_batches: int) -> Iterator[tuple[np.ndarray, ...]]:
    """Batches of consecutive rows of ``X`` (and ``y``): ``(X[lo:lo+b],)`` or with ``y``, each a contiguous copy.

    One bare loop per case: each copy takes a few microseconds, so even the loop's arithmetic and
    branches showed against the plainest numpy loop (a slice past the end stops at it). A generator, not
    ``zip(map(...))``: zip reuses its result tuple once the consumer drops it, and would keep the last batch
    alive while the next is made.

    Examples
    --------
    >>> import numpy as np
    >>> [xb.tolist() for (xb,) in sliced_batches(np.arange(5), None, 2, 3)]
    [[0, 1], [2, 3], [4]]
    """
    contiguous = np.ascontiguousarray
    stop = n_batches * batch_size
    if y is None:
        for lo in range(0, stop, batch_size):
            yield (contiguous(X[lo: lo + batch_size]),)
    else:
        for lo in range(0, stop, batch_size):
            yield contiguous(X[lo: lo + batch_size]), contiguous(y[lo: lo + batch_size])


def gathered_batches(batch_size: int, n_batches: int,
                     *tables: tuple[np.ndarray, np.ndarray]) -> Iterator[tuple[np.ndarray, ...]]:
    """``n_batches`` batches of ``batch_size`` rows of the index arrays (the last one may be shorter): for each
    ``(view, rows)`` table, ``view[rows[lo:lo+b]]`` (a new array: one gather), e.g. windows from a strided
    view and their targets.

    Examples
    --------
    >>> import numpy as np
    >>> view = strided_windows(np.arange(6), 2)  # windows [0, 1], [1, 2], ...
    >>> [xb.tolist() for (xb,) in gathered_batches(2, 2, (view, np.array([4, 0, 2])))]
    [[[4, 5], [0, 1]], [[2, 3]]]
    """
    stop = n_batches * batch_size
    if len(tables) == 1:
        view, rows = tables[0]
        for lo in range(0, stop, batch_size):
            yield (view[rows[lo: lo + batch_size]],)
    else:
        for lo in range(0, stop, batch_size):
            yield tuple(view[rows[lo: lo + batch_size]] for view, rows in tables)


class WindowTables:
    """Windows by index from in-memory arrays, with the strided views and every window's start row made
    once, so that a batch of window indices costs one small index and one gather per table (the path of
    batches that arrive as indices, e.g. from a ``DataLoader``'s sampler, and of shuffled epochs).

    Parameters
    ----------
    rows : ndarray of int, shape ``(n_windows,)``
        Start row of every window, natural order (int32 where the rows fit: half the memory).
    tables : sequence of ``(view, offset)``
        Per table (inputs, targets), a read-only view indexed by row (e.g. :func:`strided_windows` of
        the inputs) and the offset of the row it is read at from the window's start row.

    Examples
    --------
    >>> import numpy as np
    >>> base = np.arange(8)
    >>> t = WindowTables(np.array([0, 2, 4]), [(strided_windows(base, 2), 0), (base * 10, 2)])
    >>> [a.tolist() for a in t.take(np.array([2, 0]))]  # windows 2 and 0, each with the row 2 after its start
    [[[4, 5], [0, 1]], [60, 20]]
    >>> [[a.tolist() for a in b] for b in t.batches(np.array([1, 2, 0]), 2, 2)]
    [[[[2, 3], [4, 5]], [40, 60]], [[[0, 1]], [20]]]
    """

    def __init__(self, rows: np.ndarray, tables: "list[tuple[np.ndarray, int]]"):
        self.rows = rows
        self.tables = tuple(tables)

    def take(self, idx: np.ndarray) -> tuple[np.ndarray, ...]:
        """Windows ``idx`` (valid window indices), one new array per table."""
        r = self.rows[idx]
        return tuple(view[r + off if off else r] for view, off in self.tables)

    def batches(self, order: np.ndarray | None, batch_size: int, n_batches: int) -> Iterator[tuple[np.ndarray, ...]]:
        """``n_batches`` batches of ``batch_size`` windows in ``order`` (None: natural order), as :meth:`take`."""
        rows = self.rows if order is None else self.rows[order]
        return gathered_batches(batch_size, n_batches, *((view, rows + off if off else rows) for view, off in self.tables))


def window_tables(arr: np.ndarray, rows: np.ndarray, length: int, step: int,
                  targets: "tuple[np.ndarray, int, int | None, int] | None" = None) -> WindowTables:
    """:class:`WindowTables` of windows ``length`` rows ``step`` apart starting at ``rows`` of ``arr``, and
    optionally targets ``(yarr, offset, ylength, ystep)``: row ``start + offset`` of ``yarr``, or the window
    of ``ylength`` rows ``ystep`` apart starting there (``ylength`` None: one row).

    Examples
    --------
    >>> import numpy as np
    >>> t = window_tables(np.arange(6.0), np.array([0, 3]), 2, 1, (np.arange(6) * 10, 2, None, 1))
    >>> [a.tolist() for a in t.take(np.array([1]))]
    [[[3.0, 4.0]], [50]]
    """
    tables = [(_strided(arr, length, step), 0)]
    last = int(rows.max()) + (length - 1) * step if len(rows) else 0
    if targets is not None:
        yarr, offset, ylength, ystep = targets
        tables.append((yarr if ylength is None else _strided(yarr, ylength, ystep), offset))
        last = max(last, last + offset + (0 if ylength is None else (ylength - 1) * ystep))
    if last < np.iinfo(np.int32).max:  # kept for the windows' lifetime: half the memory of int64
        rows = rows.astype(np.int32)
    return WindowTables(rows, tables)


def gather_rows(source: RowSource, rows: np.ndarray) -> np.ndarray:
    """Rows by index (a new array).

    Examples
    --------
    >>> import numpy as np
    >>> from statebatch.sources.base import ArraySource
    >>> gather_rows(ArraySource(np.arange(10) * 10), np.array([3, 0]))
    array([30,  0])
    """
    rows = np.asarray(rows, dtype=np.int64)
    arr = _in_memory(source)
    if arr is not None:
        return arr[rows]
    return source.take(rows)


def gather_chunks(source: RowSource, starts: np.ndarray, valid: np.ndarray, length: int, pad_value: Any = 0,
                  *, reader: "LaneReader | None" = None, limits: np.ndarray | None = None) -> np.ndarray:
    """Chunks ``(n, length, *row)``: rows ``[s, s + v)`` of each (start, valid) pair, padded after ``v``.

    Chunks with ``v == 0`` are all padding. ``reader`` (out-of-core sources) reads ahead per lane, up to
    ``limits`` (per chunk: the row after the last its lane will read) when given.

    Examples
    --------
    >>> import numpy as np
    >>> from statebatch.sources.base import ArraySource
    >>> gather_chunks(ArraySource(np.arange(10.0)), np.array([0, 8]), np.array([3, 2]), 3, pad_value=-1)
    array([[ 0.,  1.,  2.],
           [ 8.,  9., -1.]])
    """
    starts = np.asarray(starts, dtype=np.int64)
    valid = np.asarray(valid, dtype=np.int64)
    n = len(starts)
    row = tuple(source.shape[1:])
    check_size("the chunks", (n, length) + row, source.dtype.itemsize)
    if reader is not None and source.array is None:
        return reader.read(starts, valid, length, pad_value, limits)
    arr = source.array
    if arr is None and isinstance(source, ConcatSource):
        out = np.empty((n, length) + row, dtype=source.dtype)
        out[...] = pad_value
        piece = np.searchsorted(source.offsets, starts, side="right") - 1
        for i in np.flatnonzero(valid):
            p = int(piece[i])
            lo = int(starts[i] - source.offsets[p])
            out[i, : valid[i]] = source.raw_pieces[p][lo: lo + valid[i]]
        return out
    if arr is None:
        out = np.empty((n, length) + row, dtype=source.dtype)
        out[...] = pad_value
        for i in np.flatnonzero(valid):
            out[i, : valid[i]] = source.read(int(starts[i]), int(starts[i] + valid[i]))
        return out
    full = valid == length
    chunks = _strided(arr, length)
    if len(chunks):
        out = chunks[np.where(full, starts, 0)]  # one gather of whole chunks
    else:  # fewer rows than one chunk: everything is partial
        out = np.empty((n, length) + row, dtype=arr.dtype)
    partial = np.flatnonzero(~full)
    if len(partial):
        steps = np.arange(length)
        rows = np.minimum(starts[partial, None] + steps, len(arr) - 1)
        mask = steps[None, :] < valid[partial, None]
        fill = arr[rows]
        pad = np.asarray(pad_value, dtype=out.dtype)
        mask = mask.reshape(mask.shape + (1,) * (fill.ndim - 2))
        out[partial] = np.where(mask, fill, pad)
    return out


def source_views(source: ConcatSource, starts: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    """Rows ``[starts[j], starts[j] + counts[j])`` of an in-memory :class:`ConcatSource`, one array each:
    views of its pieces (the piece itself when the range is the whole piece), read across pieces only
    where a range spans several. The pieces are found for all ranges at once (no search per range).

    For copying from only: they may be writable views of the caller's arrays, so never return them.

    Examples
    --------
    >>> import numpy as np
    >>> from statebatch.sources.series import source_of
    >>> src = source_of([np.arange(4), np.arange(10, 13)])  # rows 0-3, then 4-6
    >>> [v.tolist() for v in source_views(src, np.array([4, 2]), np.array([3, 3]))]  # rows 4-6; 2-4 cross pieces
    [[10, 11, 12], [2, 3, 10]]
    """
    starts = np.asarray(starts, dtype=np.int64)
    counts = np.asarray(counts, dtype=np.int64)
    offsets = source.offsets
    piece = np.searchsorted(offsets, starts, side="right") - 1
    lo = starts - offsets[np.clip(piece, 0, len(offsets) - 1)]
    plen = np.diff(offsets)[np.clip(piece, 0, len(offsets) - 2)]
    whole = (lo == 0) & (counts == plen)
    inside = lo + counts <= plen
    pieces = source.raw_pieces  # possibly the caller's writable arrays: these views are only copied from
    if whole.all():  # every range is a whole piece (many series, all of each): no slicing
        return list(map(pieces.__getitem__, piece.tolist()))
    if inside.all():  # every range inside one piece: one slice each
        return [pieces[p][a:b] for p, a, b in zip(piece.tolist(), lo.tolist(), (lo + counts).tolist())]
    out = []
    for p, a, c, w, ok, s in zip(piece.tolist(), lo.tolist(), counts.tolist(), whole.tolist(), inside.tolist(),
                                 starts.tolist()):
        out.append(pieces[p] if w else pieces[p][a: a + c] if ok else source.read(s, s + c))
    return out


def fill_lanes(source: ConcatSource, lanes: int, rows_per_lane: int, lane: np.ndarray, first_row: np.ndarray,
               starts: np.ndarray, counts: np.ndarray, pad_value: Any = 0, *,
               check_finite: bool = False) -> tuple[np.ndarray, bool]:
    """An epoch lane by lane, ``(lanes, rows_per_lane, *row)``, from many in-memory arrays.

    Rows ``[starts[j], starts[j] + counts[j])`` of ``source`` go to lane ``lane[j]`` from its row
    ``first_row[j]``; every other row is ``pad_value``. Laid end to end, the lanes are one sequence of
    (padding, series rows) pairs, so the epoch is written by a few ``np.concatenate`` calls of views
    into the output: the copying runs in C with two list entries per series (about 0.1 us each),
    never a Python-level copy per chunk or per series. Batch ``k`` is then the view
    ``out[:, k * T:(k + 1) * T]``.

    Returns
    -------
    (out, finite)
        ``finite`` (``check_finite=True``; else True): :func:`sums_finite` of everything written,
        computed block by block right after each block is written, while it is still in the CPU cache
        (cheaper than a second pass over the whole epoch).

    Examples
    --------
    >>> import numpy as np
    >>> from statebatch.sources.series import source_of
    >>> src = source_of([np.arange(3.0), np.arange(10.0, 12.0)])
    >>> lanes, finite = fill_lanes(src, 2, 4, lane=np.array([0, 1]), first_row=np.array([0, 0]),
    ...                            starts=np.array([0, 3]), counts=np.array([3, 2]), pad_value=-1.0)
    >>> lanes, finite
    (array([[ 0.,  1.,  2., -1.],
           [10., 11., -1., -1.]]), True)
    """
    row = tuple(source.shape[1:])
    total = lanes * rows_per_lane
    out = allocate("the epoch's lanes", (lanes, rows_per_lane) + row, source.dtype)
    flat = out.reshape((total,) + row)
    first_row = np.asarray(first_row, dtype=np.int64)
    pos = np.asarray(lane, dtype=np.int64) * rows_per_lane + first_row
    starts, counts = np.asarray(starts, dtype=np.int64), np.asarray(counts, dtype=np.int64)
    keep = counts > 0
    if not keep.all():
        pos, first_row, starts, counts = pos[keep], first_row[keep], starts[keep], counts[keep]
    if len(pos) > 1 and not (pos[1:] > pos[:-1]).all():  # callers list ranges lane by lane: in order already
        order = np.argsort(pos, kind="stable")
        pos, first_row, starts, counts = pos[order], first_row[order], starts[order], counts[order]
    ends = pos + counts
    gaps = pos.copy()  # part j: padding from the end of range j - 1, then rows from pos[j]
    gaps[1:] -= ends[:-1]
    tail = total - int(ends[-1]) if len(ends) else total
    if (gaps < 0).any() or tail < 0 or (first_row + counts > rows_per_lane).any():
        raise ParameterError("lane ranges overlap or overrun their lane (a statebatch bug: the plan and the "
                             "layout disagree).", "report this with the arguments that produced it.")
    pad = np.full((max(int(gaps.max(initial=0)), tail),) + row, pad_value, dtype=source.dtype)
    gap_list = gaps.tolist()
    pad_views = {g: pad[:g] for g in set(gap_list)}  # a set of Python ints: cheaper than np.unique's sort
    parts: list[np.ndarray] = [pad] * (2 * len(gaps))
    parts[0::2] = list(map(pad_views.__getitem__, gap_list))
    parts[1::2] = source_views(source, starts, counts)
    parts.append(pad[:tail])
    # Blocks of about _FILL_BLOCK_BYTES at part boundaries: parts[2 j0:2 j1] fill rows bounds[j0]:bounds[j1].
    bounds = np.concatenate([[0], ends, [total]])
    per_block = max(1, _FILL_BLOCK_BYTES // max(1, math.prod(row) * source.dtype.itemsize))
    cuts = np.unique(np.searchsorted(bounds, np.arange(per_block, total, per_block), side="right") - 1)
    finite, j0 = True, 0
    for j1 in np.append(cuts[cuts > 0], len(bounds) - 1).tolist():
        r0, r1 = int(bounds[j0]), int(bounds[j1])
        if r1 > r0:
            np.concatenate(parts[2 * j0: 2 * j1], out=flat[r0:r1])
            if check_finite and finite:
                finite = sums_finite(flat[r0:r1])
        j0 = j1
    return out, finite


#: Bytes written per block by :func:`fill_lanes` before they are checked (while still in the CPU cache).
_FILL_BLOCK_BYTES = 2 << 20


def sums_finite(arr: np.ndarray) -> bool:
    """Whether a sum over all of ``arr`` is finite: False for any NaN or inf (they propagate through sums
    and products), and for an overflow of finite values (callers then run an exact check). Real floats:
    the sum of squares (one BLAS dot, faster than ``np.add.reduce``; squares are never negative, so no
    inf - inf either); other kinds: ``np.add.reduce``.

    Examples
    --------
    >>> import numpy as np
    >>> sums_finite(np.ones(4)), sums_finite(np.array([1.0, np.nan]))
    (True, False)
    """
    flat = np.ascontiguousarray(arr).reshape(-1)
    if flat.dtype in (np.float32, np.float64):  # BLAS sets no numpy floating-point warnings: no errstate needed
        return bool(np.isfinite(np.dot(flat, flat)))
    with np.errstate(all="ignore"):
        return bool(np.isfinite(np.add.reduce(flat)))


def lanes_to_batches(lanes: np.ndarray, timesteps: int) -> np.ndarray:
    """``(lanes, n_batches * timesteps, *row)`` -> the same epoch in batch order ``(n_batches * lanes,
    timesteps, *row)`` (one transposed copy; batch ``k`` is rows ``k * lanes:(k + 1) * lanes``).

    Examples
    --------
    >>> import numpy as np
    >>> lanes = np.arange(8).reshape(2, 4)  # 2 lanes, 2 batches of 2 steps
    >>> lanes_to_batches(lanes, 2)  # batch 0 (lanes 0, 1), then batch 1
    array([[0, 1],
           [4, 5],
           [2, 3],
           [6, 7]])
    """
    b, rows = lanes.shape[:2]
    nb = rows // timesteps
    view = lanes.reshape((b, nb, timesteps) + lanes.shape[2:]).swapaxes(0, 1)
    return np.ascontiguousarray(view).reshape((nb * b, timesteps) + lanes.shape[2:])


def gather_padded(source: RowSource, offsets: np.ndarray, idx: np.ndarray, lengths: np.ndarray, padded_length: int,
                  padding: str, pad_value: Any) -> tuple[np.ndarray, np.ndarray]:
    """Sequences ``idx`` padded to ``padded_length``: ``(X (n, L, *row), mask (n, L))``.

    Examples
    --------
    >>> import numpy as np
    >>> from statebatch.sources.base import ArraySource
    >>> src = ArraySource(np.arange(5.0)[:, None])  # two sequences: rows 0-2 and 3-4
    >>> x, mask = gather_padded(src, np.array([0, 3, 5]), np.array([1, 0]), np.array([3, 2]), 3, "post", 0.0)
    >>> x[:, :, 0], mask
    (array([[3., 4., 0.],
           [0., 1., 2.]]), array([[ True,  True, False],
           [ True,  True,  True]]))
    """
    idx = np.asarray(idx, dtype=np.int64)
    lens = lengths[idx]
    steps = np.arange(padded_length)
    if padding == "post":
        mask = steps[None, :] < lens[:, None]
        src = steps[None, :]
    else:
        shift = (padded_length - lens)[:, None]
        mask = steps[None, :] >= shift
        src = steps[None, :] - shift
    X = allocate("the padded batch", (len(idx), padded_length) + tuple(source.shape[1:]), source.dtype)
    X[...] = pad_value
    arr = source.array
    if arr is not None:
        rows = offsets[idx][:, None] + src
        X[mask] = arr[rows[mask]]
    elif isinstance(source, ConcatSource):  # each sequence lies in one piece: one slice copy each
        first = offsets[idx]
        piece = np.searchsorted(source.offsets, first, side="right") - 1
        los = (first - source.offsets[piece]).tolist()
        raw, L = source.raw_pieces, padded_length
        for j, (p, lo, n) in enumerate(zip(piece.tolist(), los, lens.tolist())):
            if padding == "post":
                X[j, :n] = raw[p][lo: lo + n]
            else:
                X[j, L - n:] = raw[p][lo: lo + n]
    else:
        for j, (s, n) in enumerate(zip(idx.tolist(), lens.tolist())):
            X[j][mask[j]] = source.read(int(offsets[s]), int(offsets[s]) + n)
    return X, mask


class LaneReader:
    """Per-lane read-ahead for out-of-core sources.

    The next batch continues each lane where this one ends, so every lane reads ``readahead``
    chunks (at least ``min_read_bytes``, at most ``max_buffer_bytes`` for all lanes) at once into its
    row of one preallocated buffer ``(lanes, capacity, *row)``
    (straight into it when the source supports ``read_into``) and serves the next batches from
    memory. A batch is one vectorised copy out of the buffer (a slice when all lanes sit at the same
    offset, one gather otherwise), never a Python loop over the lanes. Resident memory: the buffer,
    ``lanes x capacity x row`` values.
    """

    #: Each lane reads at least this many bytes at a time: fewer, larger reads (per-read overhead is
    #: a syscall plus Python bookkeeping), within ``max_buffer_bytes`` for all lanes together.
    min_read_bytes = 256 << 10
    max_buffer_bytes = 64 << 20

    def __init__(self, source: RowSource, readahead: int = 16):
        self.source = source
        self.readahead = readahead
        self._buf: np.ndarray | None = None  # (lanes, capacity, *row)
        self._lo = self._hi = np.zeros(0, dtype=np.int64)  # rows [lo, hi) of each lane are buffered
        # (starts, offset, length, end) of the next lockstep batch: every lane's rows from `offset` to
        # `end` in the buffer are the rows from `starts` on; None when lanes are not in lockstep.
        self._next: tuple | None = None

    def read(self, starts: np.ndarray, valid: np.ndarray, length: int, pad_value: Any,
             limits: np.ndarray | None = None) -> np.ndarray:
        """``limits``: per lane, the row its read-ahead stops before (the end of the rows the lane will
        read in a row): a replica that serves some lanes then never reads the rows of the others."""
        src = self.source
        starts = np.asarray(starts, dtype=np.int64)
        valid = np.asarray(valid, dtype=np.int64)
        nxt = self._next
        # Lanes in lockstep (one long series): the batch after a full one starts `length` rows later in
        # every lane; when it is buffered too, it is one slice copy, without the per-lane bookkeeping.
        if (nxt is not None and nxt[2] == length and nxt[1] + length <= nxt[3] and valid.min() == length
                and np.array_equal(starts, nxt[0])):
            r = nxt[1]
            self._next = (starts + length, r + length, length, nxt[3])
            assert self._buf is not None  # _next is set only after the buffer is filled
            return self._buf[:, r: r + length].copy()
        self._next = None
        lanes = len(starts)
        if self._buf is None or self._buf.shape[0] != lanes or self._buf.shape[1] < length:
            row_bytes = max(1, math.prod(src.shape[1:]) * src.dtype.itemsize)
            cap = max(self.readahead * length, -(-self.min_read_bytes // row_bytes))
            cap = max(length, min(cap, self.max_buffer_bytes // (lanes * row_bytes)))
            self._buf = np.empty((lanes, cap) + tuple(src.shape[1:]), dtype=src.dtype)
            self._lo = np.zeros(lanes, dtype=np.int64)
            self._hi = np.zeros(lanes, dtype=np.int64)
        buf, lo, hi = self._buf, self._lo, self._hi
        cap = buf.shape[1]
        need = valid > 0
        miss = need & ((starts < lo) | (starts + valid > hi))
        if miss.any():
            n = len(src)
            read_into = getattr(src, "read_into", None)
            for lane in np.flatnonzero(miss).tolist():
                s = int(starts[lane])
                e = min(n, s + cap) if limits is None else min(n, s + cap, max(int(limits[lane]), s + int(valid[lane])))
                if read_into is not None:
                    read_into(s, e, buf[lane, : e - s])
                else:
                    buf[lane, : e - s] = src.read(s, e)
                lo[lane], hi[lane] = s, e
        rel = np.where(need, starts - lo, 0)
        if need.all() and (valid == length).all() and (rel == rel[0]).all():
            r = int(rel[0])
            # rows buffered in every lane from offset r on: the next batches may take the fast path
            self._next = (starts + length, r + length, length, r + int((hi - starts).min()))
            return buf[:, r: r + length].copy()  # lanes in lockstep: one block copy
        steps = np.arange(length)
        out = buf[np.arange(lanes)[:, None], np.minimum(rel[:, None] + steps, cap - 1)]  # a new array
        pad = steps[None, :] >= valid[:, None]
        if pad.any():
            out[pad] = pad_value
        return out


def as_readonly_if_shared(arr: np.ndarray) -> np.ndarray:
    """Arrays that may share memory with user data are returned read-only.

    Examples
    --------
    >>> import numpy as np
    >>> base = np.zeros(4)
    >>> as_readonly_if_shared(base[:2]).flags.writeable, as_readonly_if_shared(np.zeros(2)).flags.writeable
    (False, True)
    """
    return arr if arr.flags.owndata else readonly(arr)
