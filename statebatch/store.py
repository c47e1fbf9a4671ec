"""Out-of-core row stores: the data behind a plan, read batch by batch with bounded memory.

A store looks like a 2-D array ``(rows, features)`` to the planners (``len``, ``shape``, ``dtype``)
but reads only the rows a batch needs, with positioned reads (``os.pread``) from ``.npy`` files. A
memory map would do the same with less code, but every page it touches stays in the process's
resident set; positioned reads keep resident memory to the batch being built.

:class:`ShardedStore` lays many ``.npy`` shards (or row ranges of them) end to end as one virtual
array, e.g. series prepared by Dask workers (:mod:`statebatch.dask`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import ParameterError


def _npy_header(path: Path) -> tuple[tuple, np.dtype, int]:
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        if fortran:
            raise ParameterError(f"{path} is stored in Fortran order.", "save it C-contiguous (np.save(np.ascontiguousarray(a))).")
        return tuple(shape), np.dtype(dtype), f.tell()


class RowStore:
    """Base class: array-like row access on top of ``read(start, stop)``."""

    shape: tuple
    dtype: np.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return int(self.shape[0])

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def read(self, start: int, stop: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def take_chunks(self, starts: Sequence[int], length: int, step: int = 1) -> np.ndarray:
        """``(len(starts), length, *trailing)``: rows ``s, s+step, ..., s+(length-1)*step`` for each start."""
        starts = np.asarray(starts, dtype=np.int64)
        span = (length - 1) * step + 1
        out = np.empty((len(starts), length) + self.shape[1:], dtype=self.dtype)
        for i, s in enumerate(starts):
            block = self.read(int(s), int(s) + span)
            out[i] = block[::step]
        return out

    def take_rows(self, rows: Sequence[int]) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows),) + self.shape[1:], dtype=self.dtype)
        if len(rows) == 0:
            return out
        order = np.argsort(rows, kind="stable")
        r = rows[order]
        # one read per run of consecutive rows
        breaks = np.flatnonzero(np.diff(r) != 1) + 1
        pos = 0
        for run in np.split(r, breaks):
            block = self.read(int(run[0]), int(run[-1]) + 1)
            out[order[pos: pos + len(run)]] = block
            pos += len(run)
        return out

    def take_ranges(self, starts: Sequence[int], lengths: Sequence[int]) -> np.ndarray:
        """Rows ``[s, s + n)`` for each pair, concatenated in order."""
        parts = [self.read(int(s), int(s) + int(n)) for s, n in zip(starts, lengths)]
        if not parts:
            return np.empty((0,) + self.shape[1:], dtype=self.dtype)
        return np.concatenate(parts)

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            k = int(key) + (len(self) if key < 0 else 0)
            return self.read(k, k + 1)[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step == 1:
                return self.read(start, max(start, stop))
            return self.take_rows(np.arange(start, stop, step))
        if isinstance(key, tuple):
            raise ParameterError("stores support row indexing only (no column selection).",
                                 "prepare the target columns as their own store, or select columns before storing.")
        return self.take_rows(np.asarray(key).reshape(-1)).reshape(np.shape(key) + self.shape[1:])

    def to_numpy(self) -> np.ndarray:
        return self.read(0, len(self))


class NpyStore(RowStore):
    """Rows of a 2-D ``.npy`` file, read on demand with ``os.pread`` (no memory map)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.shape, self.dtype, self._offset = _npy_header(self.path)
        if len(self.shape) < 1:
            raise ParameterError(f"{self.path} holds a scalar.", "store a 2-D array (rows, features).")
        self._row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        self._fd: int | None = None

    def _file(self) -> int:
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY)
        return self._fd

    def read(self, start: int, stop: int) -> np.ndarray:
        n = len(self)
        if not 0 <= start <= stop <= n:
            raise IndexError(f"rows [{start}, {stop}) outside 0..{n} of {self.path}")
        nbytes = (stop - start) * self._row_bytes
        buf = bytearray(nbytes)
        view = memoryview(buf)
        got = 0
        while got < nbytes:
            k = os.preadv(self._file(), [view[got:]], self._offset + start * self._row_bytes + got)
            if k <= 0:
                raise OSError(f"short read from {self.path}")
            got += k
        return np.frombuffer(buf, dtype=self.dtype).reshape((stop - start,) + self.shape[1:])

    def __getstate__(self):  # file descriptors do not travel to other processes
        state = self.__dict__.copy()
        state["_fd"] = None
        return state

    def __del__(self):
        if getattr(self, "_fd", None) is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass

    def __repr__(self) -> str:
        return f"NpyStore({str(self.path)!r}, shape={self.shape}, dtype={self.dtype})"


@dataclass(frozen=True)
class Segment:
    """Rows ``[start, stop)`` of one ``.npy`` shard."""

    path: str
    start: int
    stop: int


class ShardedStore(RowStore):
    """Row ranges of ``.npy`` shards laid end to end as one virtual ``(rows, features)`` array."""

    def __init__(self, segments: Sequence[Segment | str | os.PathLike]):
        segs = []
        for s in segments:
            if not isinstance(s, Segment):
                shape, _, _ = _npy_header(Path(s))
                s = Segment(str(s), 0, int(shape[0]))
            segs.append(s)
        if not segs:
            raise ParameterError("a ShardedStore needs at least one shard.", "pass the .npy shard paths.")
        self.segments = segs
        self._stores: dict[str, NpyStore] = {}
        first = self._store(segs[0].path)
        self.dtype = first.dtype
        for s in segs:
            st = self._store(s.path)
            if st.shape[1:] != first.shape[1:] or st.dtype != first.dtype:
                raise ParameterError(f"shard {s.path} has shape {st.shape}/{st.dtype}, unlike {first.shape}/{first.dtype}.",
                                     "write every shard with the same columns and dtype.")
        self.bounds = np.concatenate([[0], np.cumsum([s.stop - s.start for s in segs])]).astype(np.int64)
        self.shape = (int(self.bounds[-1]),) + first.shape[1:]

    def _store(self, path: str) -> NpyStore:
        if path not in self._stores:
            self._stores[path] = NpyStore(path)
        return self._stores[path]

    def read(self, start: int, stop: int) -> np.ndarray:
        if not 0 <= start <= stop <= len(self):
            raise IndexError(f"rows [{start}, {stop}) outside 0..{len(self)}")
        first = int(np.searchsorted(self.bounds, start, side="right")) - 1
        parts = []
        pos, k = start, max(first, 0)
        while pos < stop:
            seg = self.segments[k]
            lo = pos - self.bounds[k]
            hi = min(stop, self.bounds[k + 1]) - self.bounds[k]
            parts.append(self._store(seg.path).read(seg.start + int(lo), seg.start + int(hi)))
            pos = int(self.bounds[k]) + int(hi)
            k += 1
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return np.empty((0,) + self.shape[1:], dtype=self.dtype)
        return np.concatenate(parts)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_stores"] = {}
        return state

    def __repr__(self) -> str:
        return f"ShardedStore({len(self.segments)} segments, shape={self.shape}, dtype={self.dtype})"


class StoreWindows:
    """Window "view" of a store: ``view[idx]`` reads windows ``(n, length, features)`` on demand."""

    def __init__(self, store: RowStore, length: int, step: int = 1):
        self.store, self.length, self.step = store, length, step
        n = max(len(store) - (length - 1) * step, 0)
        self.shape = (n, length) + store.shape[1:]
        self.dtype = store.dtype

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, slice):
            start, stop, step = key.indices(self.shape[0])
            key = np.arange(start, stop, step)
        idx = np.asarray(key, dtype=np.int64)
        return self.store.take_chunks(idx.reshape(-1), self.length, self.step).reshape(idx.shape + self.shape[1:])


def is_store(obj: Any) -> bool:
    return isinstance(obj, RowStore)


def write_npy(path: str | os.PathLike, blocks, shape: tuple, dtype: Any) -> NpyStore:
    """Write an ``.npy`` file block by block (bounded memory), return it as a store."""
    path = Path(path)
    dtype = np.dtype(dtype)
    with open(path, "wb") as f:
        np.lib.format.write_array_header_2_0(f, {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
                                                 "shape": tuple(int(d) for d in shape)})
        rows = 0
        for block in blocks:
            block = np.ascontiguousarray(block, dtype=dtype)
            f.write(block.tobytes())
            rows += len(block)
    if rows != shape[0]:
        raise ParameterError(f"wrote {rows} rows, header says {shape[0]}.", "pass the true shape.")
    return NpyStore(path)


class _Span:
    """Length and width of one stored series (what the planners need to know about it)."""

    def __init__(self, n: int, width: int):
        self.shape = (int(n), int(width))

    def __len__(self) -> int:
        return self.shape[0]


@dataclass
class StoredSeries:
    """Many series stored out of core, laid end to end in ``store`` in the order of ``ids``.

    Pass it wherever statebatch takes many series (``make_windows``, ``arrange_stateful``,
    ``bucket_batches``): plans are computed from ``lengths`` alone, and batches read from the store.

    Attributes
    ----------
    store : RowStore ``(total_steps, features)``
    ids : list of series ids
    lengths : ndarray of int, steps per series
    feature_names : list of str, optional
    target_store : RowStore, optional (``target_cols`` prepared alongside)
    info : dict, facts gathered while preparing (rows, non-finite counts, feature statistics)
    """

    store: RowStore
    ids: list
    lengths: np.ndarray
    feature_names: list | None = None
    target_store: RowStore | None = None
    target_names: list | None = None
    info: dict | None = None

    def series_set(self):
        from ._series import SeriesSet

        width = self.store.shape[1]
        spans = [_Span(n, width) for n in self.lengths]
        targets = None
        if self.target_store is not None:
            targets = [_Span(n, self.target_store.shape[1]) for n in self.lengths]
        return SeriesSet(spans, list(self.ids), feature_names=self.feature_names, targets=targets,
                         target_names=self.target_names, base=self.store, target_base=self.target_store)

    def __repr__(self) -> str:
        return (f"StoredSeries({len(self.ids)} series, {int(np.sum(self.lengths))} steps x {self.store.shape[1]} "
                f"features, {self.store!r})")


class BatchShards:
    """Batches written by :func:`write_batches`, read back one batch at a time.

    ``shards[k]`` is batch ``k`` as a tuple ``(X[, y[, sample_weight]])``; for arranged lanes the
    ``resets``, ``batch_size`` and ``continues`` of the arrangement are kept, so
    :class:`statebatch.keras.LaneResetCallback` works on them as on the arrangement itself.
    """

    def __init__(self, path: str | os.PathLike):
        import json

        self.path = Path(path)
        meta = json.loads((self.path / "manifest.json").read_text())
        self.n_batches = int(meta["n_batches"])
        self.per_shard = int(meta["batches_per_shard"])
        self.names = list(meta["names"])
        self.batch_size = int(meta["batch_size"])
        self.continues = bool(meta.get("continues", False))
        self.resets = np.load(self.path / "resets.npy") if (self.path / "resets.npy").exists() else None
        self._stores: dict[tuple[str, int], NpyStore] = {}

    def __len__(self) -> int:
        return self.n_batches

    def _store(self, name: str, shard: int) -> NpyStore:
        key = (name, shard)
        if key not in self._stores:
            self._stores[key] = NpyStore(self.path / f"{name}-{shard:05d}.npy")
        return self._stores[key]

    def __getitem__(self, k: int) -> tuple:
        if not 0 <= k < self.n_batches:
            raise IndexError(k)
        shard, row = divmod(k, self.per_shard)
        return tuple(self._store(name, shard).read(row, row + 1)[0] for name in self.names)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_stores"] = {}
        return state


def write_batches(source: Any, out_dir: str | os.PathLike, *, batch_size: int | None = None,
                  batches_per_shard: int = 64) -> BatchShards:
    """Materialise prepared batches once into ``.npy`` shards (bounded memory), for fast re-reading.

    Parameters
    ----------
    source : Arranged (its batches in lane order, with resets) or Windows (``batch_size`` required;
        the last, smaller batch is written only when it is full-sized, else reported)
    out_dir : directory (created)
    batches_per_shard : batches stacked in one shard file

    Returns
    -------
    BatchShards
    """
    import json
    import warnings

    from .errors import StatebatchWarning

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if hasattr(source, "resets") and hasattr(source, "batch"):  # Arranged
        n, get, bsize = source.n_batches, source.batch, source.batch_size
        np.save(out / "resets.npy", source.resets)
        continues = bool(source.continues)
    elif hasattr(source, "take") and hasattr(source, "series_ids"):  # Windows
        if not batch_size:
            raise ParameterError("writing windows needs batch_size.", "pass batch_size=...")
        n = source.n_windows // batch_size
        if source.n_windows % batch_size:
            warnings.warn(f"write_batches: the last {source.n_windows % batch_size} windows do not fill a batch of "
                          f"{batch_size} and are not written.", StatebatchWarning, stacklevel=2)
        bsize, continues = batch_size, False

        def get(k):
            return source.take(slice(k * batch_size, (k + 1) * batch_size))
    else:
        raise ParameterError(f"cannot write batches of {type(source).__name__}.", "pass an Arranged or Windows result.")
    names = None
    for shard, lo in enumerate(range(0, n, batches_per_shard)):
        batches = [get(k) for k in range(lo, min(lo + batches_per_shard, n))]
        names = ["X", "y", "sample_weight"][: len(batches[0])]
        for j, name in enumerate(names):
            np.save(out / f"{name}-{shard:05d}.npy", np.stack([b[j] for b in batches]))
    (out / "manifest.json").write_text(json.dumps({"n_batches": n, "batches_per_shard": batches_per_shard,
                                                   "names": names or ["X"], "batch_size": bsize,
                                                   "continues": continues}))
    return BatchShards(out)
