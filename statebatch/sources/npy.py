"""Out-of-core row sources: ``.npy`` files read with positioned reads, batch by batch.

A store is a :class:`~statebatch.source.RowSource` ``(rows, features)`` that reads only the rows a
batch needs, with positioned reads (``os.preadv``) from ``.npy`` files. A memory map would do the same
with less code, but every page it touches stays in the process's resident set; positioned reads keep
resident memory to the batch being built.

:class:`ShardedStore` lays many ``.npy`` shards (or row ranges of them) end to end as one virtual
array, e.g. series prepared by Dask workers (:mod:`statebatch.dask`); :class:`StoredSeries` adds the
series lengths and ids. :func:`write_batches` materialises prepared batches once as batch shards.
"""

from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .._args import check_bool, check_int
from ..errors import ParameterError, StatebatchWarning, StoreError
from .base import RowSource
from .registry import register_input


def _npy_header(path: Path) -> tuple[tuple, np.dtype, int]:
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
            else:
                shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
            offset = f.tell()
    except FileNotFoundError:
        raise StoreError(f"shard {str(path)!r} does not exist.",
                         "prepare the store again (statebatch.dask.prepare) or restore the missing file.") from None
    except IsADirectoryError:
        raise StoreError(f"{str(path)!r} is a directory, not a .npy file.", "pass the path of a .npy file.") from None
    except (ValueError, OSError, EOFError) as exc:  # numpy raises ValueError for a bad magic string
        raise StoreError(f"{str(path)!r} is not a readable .npy file ({exc}).",
                         "pass a file written by np.save or statebatch, or prepare the store again.") from None
    if fortran:
        raise StoreError(f"{path} is stored in Fortran order.", "save it C-contiguous (np.save(np.ascontiguousarray(a))).")
    if np.dtype(dtype).hasobject:
        raise StoreError(f"{path} holds Python objects (dtype {dtype}); a store reads raw numbers only.",
                         "save a numeric array.")
    return tuple(shape), np.dtype(dtype), offset


MANIFEST = "manifest.json"

# Shards whose content this process has checked against its manifest CRC-32:
# (device, inode, size, mtime_ns, ctime_ns, crc32). The change time is in the key because no tool can
# put it back (``cp -p`` and ``os.utime`` restore only the modification time): a shard edited in place
# after it was checked gets a new ctime and is checked again before its next read.
_CONTENT_CHECKED: set[tuple] = set()
_CHECK_BLOCK_BYTES = 4 << 20  # one 4 MB buffer while checking: a shard is never held in memory whole


def shard_record(path: str | os.PathLike, values: np.ndarray) -> dict:
    """What a manifest records of a shard just written: shape, dtype, size, time and a CRC-32 of the data.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "a.npy"
    >>> np.save(path, np.zeros((3, 2)))
    >>> record = shard_record(path, np.zeros((3, 2)))
    >>> record["file"], record["shape"], record["dtype"]
    ('a.npy', [3, 2], '<f8')
    """
    st = Path(path).stat()
    return {"file": Path(path).name, "shape": [int(d) for d in values.shape], "dtype": values.dtype.str,
            "bytes": int(st.st_size), "mtime_ns": int(st.st_mtime_ns),
            "crc32": zlib.crc32(np.ascontiguousarray(values).data.cast("B"))}


def _check_record(path: Path, shape: tuple, dtype: np.dtype, rec: dict) -> None:
    fix = "prepare the store again (statebatch.dask.prepare), or restore the shard from a backup."
    if list(shape) != list(rec["shape"]) or dtype != np.dtype(rec["dtype"]):
        raise StoreError(f"shard {path} now holds {tuple(shape)} {dtype}, but the manifest recorded "
                         f"{tuple(rec['shape'])} {np.dtype(rec['dtype'])}: it was rewritten after it was prepared.", fix)
    st = path.stat()
    if st.st_size != rec["bytes"] or st.st_mtime_ns != rec["mtime_ns"]:
        raise StoreError(f"shard {path} was modified after it was prepared (size or modification time differ from "
                         "the manifest); its rows may not be the prepared ones.", fix)


class NpyStore(RowSource):
    """Rows of an ``.npy`` file, read on demand with ``os.preadv`` (no memory map).

    The file's size is checked against its header when opened: a truncated file is refused with its
    name, never read as garbage. With a manifest record (``expect``) the shape, dtype, size and
    modification time are checked when opened and before every read, and with ``check_content`` the
    data's CRC-32 once per process, before the first read (again only if the file's change time moved).
    """

    def __init__(self, path: str | os.PathLike, expect: dict | None = None, check_content: bool = True):
        self.path = Path(path)
        self.shape, self.dtype, self._offset = _npy_header(self.path)
        self._expect = expect
        self._check_content = bool(check_content) and expect is not None and "crc32" in expect
        self._checked_ctime: int | None = None
        if expect is not None:
            _check_record(self.path, self.shape, self.dtype, expect)
        if len(self.shape) < 1:
            raise StoreError(f"{self.path} holds a scalar.", "store a 2-D array (rows, features).")
        self._row_bytes = int(np.prod(self.shape[1:], dtype=np.int64)) * self.dtype.itemsize
        expected = self._offset + self.shape[0] * self._row_bytes
        size = self.path.stat().st_size
        if size != expected:
            raise StoreError(f"{self.path} has {size} bytes but its header promises {expected} "
                             f"({self.shape[0]} rows of {self._row_bytes} bytes): the file is truncated or was changed.",
                             "prepare the store again, or restore the file from its source.")
        self._fd: int | None = None

    def _file(self) -> int:
        if self._fd is None:
            try:
                self._fd = os.open(self.path, os.O_RDONLY)
            except OSError as exc:
                raise StoreError(f"cannot open {self.path}: {exc.strerror}.",
                                 "check that the file exists and is readable.") from None
        return self._fd

    def read_into(self, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        """Read rows ``[start, stop)`` straight into the C-contiguous array ``out`` (no extra copy)."""
        self._check_range(start, stop)
        if self._expect is not None:
            st = os.fstat(self._file())
            if st.st_mtime_ns != self._expect["mtime_ns"]:
                raise StoreError(f"shard {self.path} was modified while in use (after it was prepared).",
                                 "prepare the store again (statebatch.dask.prepare), or restore the shard.")
            if self._check_content and st.st_ctime_ns != self._checked_ctime:
                self._verify_content(st)
        nbytes = (stop - start) * self._row_bytes
        view = out.data.cast("B")
        if len(view) != nbytes:
            raise ParameterError(f"out has {len(view)} bytes for {nbytes}.", "pass an array of the rows' size.")
        got = 0
        while got < nbytes:
            try:
                k = os.preadv(self._file(), [view[got:]], self._offset + start * self._row_bytes + got)
            except OSError as exc:
                raise StoreError(f"reading {self.path} failed: {exc.strerror}.", "check the file and the disk.") from None
            if k <= 0:
                raise StoreError(f"{self.path} ended after {got} of {nbytes} bytes (rows {start}..{stop}): the file "
                                 "was truncated after the store was opened.",
                                 "prepare the store again, or restore the file from its source.")
            got += k
        return out

    def read(self, start: int, stop: int) -> np.ndarray:
        out = np.empty((stop - start,) + tuple(self.shape[1:]), dtype=self.dtype)
        return self.read_into(start, stop, out)

    def crc32(self) -> int:
        """CRC-32 of the data (after the header), read in 4 MB blocks with positioned reads."""
        fd, crc = self._file(), 0
        total = self.shape[0] * self._row_bytes
        buf = bytearray(min(_CHECK_BLOCK_BYTES, max(total, 1)))
        view = memoryview(buf)
        pos = 0
        while pos < total:
            want = min(len(buf), total - pos)
            try:
                k = os.preadv(fd, [view[:want]], self._offset + pos)
            except OSError as exc:
                raise StoreError(f"reading {self.path} failed: {exc.strerror}.", "check the file and the disk.") from None
            if k <= 0:
                raise StoreError(f"{self.path} ended after {pos} of {total} bytes: the file was truncated.",
                                 "prepare the store again, or restore the file from its source.")
            crc = zlib.crc32(view[:k], crc)
            pos += k
        return crc

    def _verify_content(self, st: os.stat_result) -> None:
        """Compare the data's CRC-32 with the manifest once per process (cached by inode, size and times)."""
        expect = self._expect
        if expect is None:  # a store without a manifest record: nothing to compare with
            return
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, expect["crc32"])
        if key not in _CONTENT_CHECKED:
            if self.crc32() != expect["crc32"]:
                raise StoreError(
                    f"shard {self.path} does not hold the data that was prepared: its checksum differs from the "
                    "manifest although its size and modification time match (changed in place, e.g. by a copy "
                    "that restored the time).",
                    "prepare the store again (statebatch.dask.prepare), or restore the shard; "
                    "open_prepared(dir, check_content=False) skips this check (not advised).")
            _CONTENT_CHECKED.add(key)
        self._checked_ctime = st.st_ctime_ns

    def __getstate__(self):  # file descriptors do not travel to other processes; each checks content once
        state = self.__dict__.copy()
        state["_fd"] = None
        state["_checked_ctime"] = None
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


class ShardedStore(RowSource):
    """Row ranges of ``.npy`` shards laid end to end as one virtual ``(rows, features)`` array."""

    _tmpdir: Any = None  # the temporary directory of statebatch.dask.prepare, kept alive with the store

    def __init__(self, segments: Sequence[Segment | str | os.PathLike], records: dict[str, dict] | None = None,
                 check_content: bool = True):
        self._records = records or {}  # path -> manifest record: checked when each shard is opened
        # with records: each shard's CRC-32 checked once per process before its first read (NpyStore)
        self.check_content = bool(check_content)
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
                raise StoreError(f"shard {s.path} has shape {st.shape}/{st.dtype}, unlike {first.shape}/{first.dtype}.",
                                 "write every shard with the same columns and dtype.")
            if not 0 <= s.start <= s.stop <= st.shape[0]:
                raise StoreError(f"segment rows {s.start}..{s.stop} lie outside shard {s.path} ({st.shape[0]} rows).",
                                 "prepare the store again.")
        self.bounds = np.concatenate([[0], np.cumsum([s.stop - s.start for s in segs])]).astype(np.int64)
        self.shape = (int(self.bounds[-1]),) + tuple(first.shape[1:])
        self.info: dict = {}
        # True when statebatch.dask.prepare counted no NaN/inf while writing these rows (the manifest
        # then guards every shard against later changes): batches read from it need no NaN scan.
        self.finite_checked = False

    def _store(self, path: str) -> NpyStore:
        if path not in self._stores:
            self._stores[path] = NpyStore(path, self._records.get(path), self.check_content)
        return self._stores[path]

    def verify(self) -> None:
        """Read every shard once and compare its CRC-32 with the manifest (content changed in place)."""
        for path, rec in self._records.items():
            if self._store(path).crc32() != rec["crc32"]:
                raise StoreError(f"shard {path} does not hold the data that was prepared (checksum differs).",
                                 "prepare the store again (statebatch.dask.prepare), or restore the shard.")

    def read(self, start: int, stop: int) -> np.ndarray:
        self._check_range(start, stop)
        out = np.empty((stop - start,) + tuple(self.shape[1:]), dtype=self.dtype)
        return self.read_into(start, stop, out)

    def read_into(self, start: int, stop: int, out: np.ndarray) -> np.ndarray:
        """Read rows ``[start, stop)`` straight into ``out`` (C-contiguous), across shards."""
        self._check_range(start, stop)
        k = max(int(np.searchsorted(self.bounds, start, side="right")) - 1, 0)
        pos = start
        while pos < stop:
            seg = self.segments[k]
            lo = pos - int(self.bounds[k])
            hi = min(stop, int(self.bounds[k + 1])) - int(self.bounds[k])
            self._store(seg.path).read_into(seg.start + lo, seg.start + hi, out[pos - start: pos - start + hi - lo])
            pos = int(self.bounds[k]) + hi
            k += 1
        return out

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_stores"] = {}
        return state

    def __repr__(self) -> str:
        return f"ShardedStore({len(self.segments)} segments, shape={self.shape}, dtype={self.dtype})"


@dataclass
class StoredSeries:
    """Many series stored out of core, laid end to end in ``store`` in the order of ``ids``.

    Pass it wherever statebatch takes many series (``make_windows``, ``arrange_stateful``,
    ``bucket_batches``): plans are computed from ``lengths`` alone, and batches read from the store.

    Attributes
    ----------
    store : RowSource ``(total_steps, features)``
    ids : list of series ids
    lengths : ndarray of int, steps per series
    feature_names : list of str, optional
    target_store : RowSource, optional (``target_cols`` prepared alongside)
    info : dict, facts gathered while preparing (rows, non-finite counts, feature statistics)
    """

    store: RowSource
    ids: list
    lengths: np.ndarray
    feature_names: list | None = None
    target_store: RowSource | None = None
    target_names: list | None = None
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        self.lengths = np.asarray(self.lengths, dtype=np.int64)
        if len(self.ids) != len(self.lengths):
            raise ParameterError(f"{len(self.ids)} ids for {len(self.lengths)} series lengths.", "pass one id per series.")
        if int(self.lengths.sum()) != len(self.store):
            raise StoreError(f"the series lengths add up to {int(self.lengths.sum())} rows but the store holds "
                             f"{len(self.store)}.", "prepare the store again.")

    def __repr__(self) -> str:
        return (f"StoredSeries({len(self.ids)} series, {int(np.sum(self.lengths))} steps x {self.store.shape[1]} "
                f"features, {self.store!r})")


def write_manifest(out_dir: str | os.PathLike, shards: list[dict], **facts: Any) -> None:
    """Write ``manifest.json``: every shard's record and the facts needed to reopen the store.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> write_manifest(out, [], kind="array")
    >>> json.loads((out / "manifest.json").read_text())
    {'version': 1, 'shards': [], 'kind': 'array'}
    """
    Path(out_dir, MANIFEST).write_text(json.dumps({"version": 1, "shards": shards, **facts}, default=_plain))


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return str(value)


def open_prepared(out_dir: str | os.PathLike, *, check_content: bool = True) -> "StoredSeries | ShardedStore":
    """Reopen a directory written by :func:`statebatch.dask.prepare`, checking every shard against
    its manifest (a changed, truncated or missing shard is named, with the fix).

    Shape, dtype, size and modification time are checked when opened and before every read. With
    ``check_content`` (default) each shard's data is also compared with its recorded CRC-32 once per
    process, before its first read: a shard changed in place with its modification time put back
    (``cp -p``, ``rsync``) is refused by name. That costs one sequential read of each shard per
    process (not per epoch); ``check_content=False`` skips it.

    Examples
    --------
    >>> import dask.array as da, numpy as np, tempfile, pathlib
    >>> from statebatch.dask import prepare
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "prepared"
    >>> _ = prepare(da.from_array(np.arange(12.0).reshape(6, 2), chunks=3), out)
    >>> open_prepared(out)
    ShardedStore(2 segments, shape=(6, 2), dtype=float64)
    """
    check_content = check_bool("check_content", check_content)
    path = Path(out_dir)
    try:
        meta = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        raise StoreError(f"{path} has no {MANIFEST}: it was not written by statebatch.dask.prepare (or is incomplete).",
                         "prepare the data again into this directory.") from None
    except (OSError, ValueError) as exc:
        raise StoreError(f"{path / MANIFEST} cannot be read ({exc}).", "prepare the data again.") from None
    try:
        return _from_manifest(path, meta, check_content)
    except StoreError:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise StoreError(f"{path / MANIFEST} is malformed ({type(exc).__name__}: {exc}).",
                         "prepare the data again into this directory.") from None


def _from_manifest(path: Path, meta: dict, check_content: bool = True) -> "StoredSeries | ShardedStore":
    records = {str(path / r["file"]): r for r in meta["shards"]}
    if meta.get("kind") == "array":
        store = ShardedStore(list(records), records, check_content)
        store.info = meta.get("info", {})
        store.finite_checked = store.info.get("non_finite") == 0
        return store
    segs = [Segment(str(path / f), int(a), int(b)) for f, a, b in meta["segments"]]
    lengths = [int(n) for n in meta["lengths"]]
    if len(lengths) != len(segs) or any(s.stop - s.start != n for s, n in zip(segs, lengths)):
        raise StoreError(f"{path / MANIFEST} lists series lengths that do not match its segments, so series would run "
                         "into each other.", "prepare the data again into this directory.")
    store = ShardedStore(segs, records, check_content)
    store.finite_checked = meta.get("info", {}).get("non_finite") == 0  # counted over the feature columns
    tstore = None
    if meta.get("target_segments"):
        tstore = ShardedStore([Segment(str(path / f), int(a), int(b)) for f, a, b in meta["target_segments"]], records,
                              check_content)
    return StoredSeries(store=store, ids=meta["ids"], lengths=np.asarray(meta["lengths"], dtype=np.int64),
                        feature_names=meta.get("feature_names"), target_store=tstore,
                        target_names=meta.get("target_names"), info=meta.get("info", {}))


def write_npy(path: str | os.PathLike, blocks: Iterable[np.ndarray], shape: tuple, dtype: Any) -> NpyStore:
    """Write an ``.npy`` file block by block (bounded memory), return it as a store.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "b.npy"
    >>> store = write_npy(path, [np.ones((2, 2)), np.ones((1, 2))], (3, 2), "float32")
    >>> store.shape, float(store.read(0, 3).sum())
    ((3, 2), 6.0)
    """
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


class BatchShards:
    """Batches written by :func:`write_batches`, read back one batch at a time.

    Follows the batch part of the result protocol: ``n_batches``, ``batch(k)``, ``batch_size``,
    and for arranged lanes ``resets`` and ``continues``, so
    :class:`statebatch.keras.LaneResetCallback` works on them as on the arrangement itself.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        manifest = self.path / "manifest.json"
        try:
            meta = json.loads(manifest.read_text())
        except FileNotFoundError:
            raise StoreError(f"{manifest} does not exist: {self.path} holds no batches written by statebatch.",
                             "write them with statebatch.store.write_batches(result, dir).") from None
        except (ValueError, OSError) as exc:
            raise StoreError(f"{manifest} cannot be read ({exc}).", "write the batches again.") from None
        self.n_batches = int(meta["n_batches"])
        self.per_shard = int(meta["batches_per_shard"])
        self.names = list(meta["names"])
        self.batch_size = int(meta["batch_size"])
        self.continues = bool(meta.get("continues", False))
        self.epoch = 0
        self.resets = np.load(self.path / "resets.npy") if (self.path / "resets.npy").exists() else None
        self._stores: dict[tuple[str, int], NpyStore] = {}

    def __len__(self) -> int:
        return self.n_batches

    def _store(self, name: str, shard: int) -> NpyStore:
        key = (name, shard)
        if key not in self._stores:
            self._stores[key] = NpyStore(self.path / f"{name}-{shard:05d}.npy")
        return self._stores[key]

    def batch(self, k: int, epoch: int | None = None) -> tuple:
        k = check_int("k", k)
        if not 0 <= k < self.n_batches:
            raise ParameterError(f"batch {k} is outside 0..{self.n_batches - 1}.", "pass a valid batch index.")
        shard, row = divmod(k, self.per_shard)
        return tuple(self._store(name, shard).read(row, row + 1)[0] for name in self.names)

    def __getitem__(self, k: int) -> tuple:
        return self.batch(k)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_stores"] = {}
        return state

    def __repr__(self) -> str:
        return f"BatchShards({str(self.path)!r}, batches={self.n_batches}, batch_size={self.batch_size})"


def write_batches(result: Any, out_dir: str | os.PathLike, *, batches_per_shard: int = 64) -> BatchShards:
    """Materialise the batches of one epoch of a result once into ``.npy`` shards (bounded memory).

    Parameters
    ----------
    result : a statebatch result (``Windows``, ``Arranged``; anything with ``n_batches``, ``batch(k)``
        and ``batch_size``). Every batch must have the same shape, so windows need
        ``remainder="drop"`` when the last batch would be smaller (it is refused otherwise).
    out_dir : directory (created)
    batches_per_shard : batches stacked in one shard file

    Returns
    -------
    BatchShards

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> import statebatch as sb
    >>> w = sb.make_windows(np.arange(10.0), 3, batch_size=4, remainder="drop")
    >>> write_batches(w, pathlib.Path(tempfile.mkdtemp()) / "shards").n_batches
    2
    """
    import warnings

    batches_per_shard = check_int("batches_per_shard", batches_per_shard, 1)
    for attr in ("n_batches", "batch", "batch_size"):
        if not hasattr(result, attr):
            raise ParameterError(f"cannot write batches of {type(result).__name__} (it has no {attr!r}).",
                                 "pass a statebatch result such as make_windows(...) or arrange_stateful(...).")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    n = int(result.n_batches)
    resets = getattr(result, "resets", None)
    if resets is not None:
        np.save(out / "resets.npy", np.asarray(resets))
    names = None
    first_shapes = None
    for shard, lo in enumerate(range(0, n, batches_per_shard)):
        batches = [result.batch(k) for k in range(lo, min(lo + batches_per_shard, n))]
        shapes = [tuple(a.shape for a in b) for b in batches]
        first_shapes = first_shapes or shapes[0]
        if any(s != first_shapes for s in shapes):
            raise ParameterError(
                "the batches have different shapes, which one stacked shard cannot hold (e.g. the last batch of "
                "windows is smaller).", "build the windows with remainder='drop' (reported in left_out).")
        names = ["X", "y", "sample_weight"][: len(batches[0])]
        for j, name in enumerate(names):
            np.save(out / f"{name}-{shard:05d}.npy", np.stack([b[j] for b in batches]))
    if getattr(result, "left_out", None):
        warnings.warn(f"write_batches: the result leaves out {len(result.left_out)} part(s) of the data "
                      "(see its left_out).", StatebatchWarning, stacklevel=2)
    (out / "manifest.json").write_text(json.dumps({
        "n_batches": n, "batches_per_shard": batches_per_shard, "names": names or ["X"],
        "batch_size": int(result.batch_size), "continues": bool(getattr(result, "continues", False))}))
    return BatchShards(out)


def _stored_to_series(data: "StoredSeries", options: Any, what: str) -> Any:
    """Many series prepared out of core (:func:`statebatch.dask.prepare`): read by their lengths."""
    from .seriesset import SeriesSet, _check_numeric, _checked, _no_frame_args

    if options.target_cols is not None:  # naming the prepared target columns again is fine
        wanted = [str(c) for c in options.target_cols]
        if data.target_store is None or wanted != list(data.target_names or []):
            raise ParameterError(f"target_cols={wanted} but the stored series were prepared with target columns "
                                 f"{data.target_names}.", "prepare them with these target_cols, or drop target_cols.")
    _no_frame_args(options.id_col is not None or options.time_col is not None or options.feature_cols is not None,
                   data, what)
    _check_numeric(np.empty(0, dtype=data.store.dtype), what)
    offsets = np.concatenate([[0], np.cumsum(data.lengths)]).astype(np.int64)
    return _checked(SeriesSet(data.store, offsets, list(data.ids), feature_names=data.feature_names,
                              targets=data.target_store, target_names=data.target_names), what)


register_input(lambda d: isinstance(d, StoredSeries), _stored_to_series, name="stored_series", many=True,
               _rank=20, _native=True)
