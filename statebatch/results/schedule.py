"""Framework-neutral epoch logic for stateful lanes: what any training loop must do, and when.

A framework adapter (``statebatch.keras``, ``statebatch.torch``) wraps its recurrent state in a
:class:`StateHandle` (zero some rows, take a snapshot, restore it) and calls a :class:`LaneSchedule`
at the start of every epoch, before every batch, and around validation. The schedule decides:

- which lanes to zero before batch ``k`` of the current epoch's plan (all lanes before the first
  batch of an epoch; afterwards the lanes that move on to a new series);
- that validation inside training must save the training state first and restore it afterwards,
  and start from zero unless the validation data continues the training lanes;
- that batches arrive in order (:class:`InOrderGuard`), since a shuffled order scrambles lanes.

Resuming (:class:`TrainingBackup`): an epoch's plan is a pure function of the seed and the epoch, so
where a training run stands is ``(epoch, batch)``; together with the weights, the optimizer and the
lane states it is written atomically to one file, and refused when read back for other data.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import threading
import uuid
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .._args import check_int
from ..errors import ParameterError, ShuffleError, StoreError


class StateHandle(Protocol):
    """What a framework adapter exposes of a model's recurrent state (rows = lanes)."""

    def zero(self, rows: np.ndarray | None) -> None:
        """Zero the state of ``rows`` (all rows when ``None``)."""

    def snapshot(self) -> Any:
        """A copy of the whole state."""

    def restore(self, snapshot: Any) -> None:
        """Put a snapshot back."""


class ResetsSource(Protocol):
    """What :func:`resets_of` reads: lanes' ``resets`` ``(n_batches, batch_size)``, ``batch_size`` and,
    optionally, ``continues`` (validation lanes that continue the training lanes). ``Arranged`` and
    stored lane batches (``BatchShards``) are such sources."""

    resets: Any
    batch_size: int


#: The attribute by which a wrapper (a framework's dataset, a loader) names the lanes it serves:
#: ``wrapper.resets_source`` is an :class:`ResetsSource` (or another wrapper), and :func:`resets_of`
#: follows it. A wrapper declares it explicitly; nothing is guessed from other attribute names.
RESETS_SOURCE = "resets_source"


def resets_of(data: Any) -> tuple[Any, bool, int]:
    """``(source, continues, batch_size)`` of lanes, or of a wrapper that names them as ``resets_source``.

    Examples
    --------
    >>> import numpy as np
    >>> import statebatch as sb
    >>> a = sb.arrange_stateful([np.arange(9.0), np.arange(5.0)], timesteps=2, batch_size=2)
    >>> class Loader:  # any wrapper: it names the lanes it serves
    ...     def __init__(self, lanes):
    ...         self.resets_source = lanes
    >>> source, continues, batch_size = resets_of(Loader(a))
    >>> source is a, continues, batch_size
    (True, False, 2)
    """
    inner, seen = data, set()
    while getattr(inner, RESETS_SOURCE, None) is not None and id(inner) not in seen:  # wrappers of wrappers
        seen.add(id(inner))
        inner = getattr(inner, RESETS_SOURCE)
    if getattr(inner, "resets", None) is None or not hasattr(inner, "batch_size"):
        raise ParameterError(f"expected arranged lanes (statebatch.arrange_stateful) or their dataset, got "
                             f"{type(data).__name__}.", "pass what statebatch.arrange_stateful returned (or its "
                             "StatefulDataset); a wrapper of lanes names them as its resets_source attribute.")
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


# --------------------------------------------------------------------------- resuming
BACKUP_FILE = "statebatch-backup.npz"
_BACKUP_FORMAT = 1


def check_save_freq(save_freq: Any) -> int | str:
    """``"epoch"`` or a positive number of batches (``True``/floats/strings other than "epoch" refused).

    Examples
    --------
    >>> check_save_freq("epoch"), check_save_freq(50)
    ('epoch', 50)
    """
    if isinstance(save_freq, str) and save_freq == "epoch":
        return save_freq
    if isinstance(save_freq, bool) or not isinstance(save_freq, (int, np.integer)) or int(save_freq) < 1:
        raise ParameterError(f"save_freq must be 'epoch' or a positive number of batches, got {save_freq!r}.",
                             "pass save_freq='epoch' (a backup after every epoch) or e.g. save_freq=50 (every 50 "
                             "batches).")
    return int(save_freq)


def check_backup_dir(backup_dir: Any) -> Path:
    """The backup directory, created if missing and proved writable (a probe file is written and removed).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with tempfile.TemporaryDirectory() as d:
    ...     check_backup_dir(pathlib.Path(d) / "run1").is_dir()
    True
    """
    if isinstance(backup_dir, bool) or not isinstance(backup_dir, (str, os.PathLike)) or not os.fspath(backup_dir):
        raise ParameterError(f"backup_dir must be a directory path, got {backup_dir!r}.",
                             "pass e.g. backup_dir='runs/backup' (a directory only this training run uses).")
    path = Path(os.fspath(backup_dir))
    probe = path / f".statebatch-probe.{os.getpid()}.{uuid.uuid4().hex}"
    try:
        path.mkdir(parents=True, exist_ok=True)
        with open(probe, "wb") as f:
            f.write(b"0")
        probe.unlink()
    except OSError as exc:
        raise ParameterError(f"backup_dir {str(path)!r} is not a writable directory ({exc.strerror or exc}).",
                             "pass a directory (or a path that can be created) where this process may write "
                             "files.") from None
    return path


def plan_fingerprint(result: Any, **options: Any) -> str:
    """A digest of what fixes every epoch's batches: the result's kind, sizes and seed, the first epoch's
    plan (batch count, resets) and the contents of its first and last batches, plus ``options``.

    Two runs with equal fingerprints serve the same batches in every epoch (the plan is a pure function
    of the seed and the epoch); data changed elsewhere than in those two batches, with the same
    lengths, is not noticed.

    Examples
    --------
    >>> import numpy as np
    >>> import statebatch as sb
    >>> a = sb.arrange_stateful(np.arange(20.0), timesteps=2, batch_size=2, seed=0)
    >>> b = sb.arrange_stateful(np.arange(20.0), timesteps=2, batch_size=2, seed=0)
    >>> plan_fingerprint(a) == plan_fingerprint(b), plan_fingerprint(a) == plan_fingerprint(a, epochs=3)
    (True, False)
    """
    served = result.__dict__.get("_served", None)
    h = hashlib.sha256()
    plan = result.plan(0)
    head = {"kind": type(result).__name__, "n_batches": int(plan.n_batches),
            "batch_size": getattr(result, "batch_size", None), "timesteps": getattr(result, "timesteps", None),
            "seed": getattr(result, "seed", None), "shuffle": getattr(result, "shuffle", None),
            "jitter": getattr(result, "jitter", None), "series": len(getattr(result, "series_ids", []) or []),
            **{k: repr(v) for k, v in sorted(options.items())}}
    h.update(json.dumps(head, sort_keys=True, default=str).encode())
    resets = getattr(plan, "resets", None)
    if resets is not None:
        h.update(np.ascontiguousarray(resets).tobytes())
    for k in sorted({0, int(plan.n_batches) - 1}):
        if k >= 0:
            for a in result.batch(k, 0):
                a = np.ascontiguousarray(a)
                h.update(f"{a.dtype.str}{a.shape}".encode())
                h.update(a.tobytes())
    if served is None:
        result.__dict__.pop("_served", None)
    else:
        result._served = served
    return h.hexdigest()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


class TrainingBackup:
    """One training run's backup: a single ``.npz`` in ``directory``, replaced atomically.

    Each save writes a temporary file with a unique name (process id, thread and a random part) in the
    same directory, flushes and syncs it to disk (``fsync``), moves it over the backup with ``os.replace`` and syncs
    the directory: a process killed at any moment leaves either the previous backup or the new one,
    never part of one. Temporary files of writers that died are removed by the next backup opened on
    the directory.

    Parameters
    ----------
    directory : str or path
        Created if missing; must be writable (:func:`check_backup_dir`).
    fingerprint : dict of str
        What the run is (e.g. ``{"model": ..., "data": ..., "validation": ...}``); a backup written for
        another fingerprint is refused by :meth:`load`.
    """

    def __init__(self, directory: Any, fingerprint: dict[str, str]):
        self.directory = check_backup_dir(directory)
        self.path = self.directory / BACKUP_FILE
        self.fingerprint = dict(fingerprint)
        self._remove_stale()

    def _remove_stale(self) -> None:
        for tmp in glob.glob(str(self.directory / f".{BACKUP_FILE}.*.tmp")):
            try:
                pid = int(Path(tmp).name.split(".")[3])
            except (IndexError, ValueError):
                continue
            if pid == os.getpid() or not _pid_alive(pid):
                try:
                    os.unlink(tmp)
                except OSError:
                    pass

    def exists(self) -> bool:
        return self.path.exists()

    def save(self, epoch: int, batch: int, arrays: dict[str, list[np.ndarray]], **meta: Any) -> None:
        """Write the position ``(epoch, batch)`` (the next batch to train) and named lists of arrays."""
        header = {"format": _BACKUP_FORMAT, "epoch": int(epoch), "batch": int(batch),
                  "fingerprint": self.fingerprint, "counts": {k: len(v) for k, v in arrays.items()}, **meta}
        flat = {f"{k}_{j:05d}": np.asarray(a) for k, v in arrays.items() for j, a in enumerate(v)}
        tmp = self.directory / f".{BACKUP_FILE}.{os.getpid()}.{threading.get_ident()}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with open(tmp, "wb") as f:
                np.savez(f, meta=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8), **flat)  # type: ignore[arg-type]  # numpy stub
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            try:  # make the rename itself durable
                fd = os.open(self.directory, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError:
                pass
        except OSError as exc:
            try:
                tmp.unlink()
            except OSError:
                pass
            raise StoreError(f"cannot write the training backup {str(self.path)!r} ({exc.strerror or exc}).",
                             "free disk space in the backup directory, or pass another backup_dir.") from None

    def load(self) -> tuple[dict[str, Any], dict[str, list[np.ndarray]]]:
        """``(header, arrays)`` of the backup; refused (:class:`StoreError`) when unreadable or written for
        another fingerprint."""
        where = str(self.path)
        try:
            with np.load(self.path, allow_pickle=False) as z:
                header = json.loads(bytes(z["meta"]).decode())
                counts = header["counts"]
                arrays = {k: [np.array(z[f"{k}_{j:05d}"]) for j in range(int(n))] for k, n in counts.items()}
            epoch, batch = check_int("epoch", header["epoch"], 0), check_int("batch", header["batch"], 0)
            saved = dict(header["fingerprint"])
        except Exception as exc:  # noqa: BLE001 - any damage (zipfile.BadZipFile, missing keys, bad JSON) is one error
            if isinstance(exc, FileNotFoundError):
                raise StoreError(f"there is no training backup at {where!r}.", "train without resuming.") from None
            raise StoreError(f"the training backup {where!r} cannot be read ({type(exc).__name__}: {exc}).",
                             f"delete {where} to start training from the beginning.") from None
        if header.get("format") != _BACKUP_FORMAT:
            raise StoreError(f"the training backup {where!r} has format {header.get('format')!r}, this statebatch "
                             f"writes {_BACKUP_FORMAT}.", f"delete {where} to start training from the beginning.")
        differ = sorted(k for k in set(saved) | set(self.fingerprint) if saved.get(k) != self.fingerprint.get(k))
        if differ:
            raise StoreError(
                f"the training backup {where!r} was written for another run: its {', '.join(differ)} differ(s) from "
                "this call's, so resuming would continue a different training.",
                f"call with the same model, data and arrangement as the interrupted run, or pass another backup_dir "
                f"(or delete {where}) to start from the beginning.")
        header["epoch"], header["batch"] = epoch, batch
        return header, arrays

    def remove(self) -> None:
        """Delete the backup (training finished), and the directory when nothing else is in it."""
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        try:
            self.directory.rmdir()
        except OSError:
            pass
